"""``hzz run``: build the lazy graph, compute it once on Dask, write figure and document."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from distributed import Client, progress

from analysis.catalogue import Release
from analysis.document import HistogramDocument
from analysis.graph import AnalysisGraph, SampleFileError, assemble_document, build_graph
from analysis.outputs import write_new
from analysis.plot import render_png

log = logging.getLogger(__name__)


@dataclass
class RunOptions:
    """What ``hzz run`` was asked for; defaults are the CLI's."""

    locations: list[str]
    samples: list[str] | None = None
    groups: list[str] | None = None
    step_size: int | str = 200_000
    allow_missing: bool = False
    show_progress: bool = True


def compute_document(client: Client, release: Release, options: RunOptions) -> HistogramDocument:
    """Build one graph for all chosen samples, compute it in one go, assemble the document."""
    chosen = release.select(options.samples, options.groups)
    graph: AnalysisGraph = build_graph(
        release, chosen, options.locations, options.step_size, options.allow_missing
    )
    for name in graph.missing:
        log.warning("sample %s: file not found; going on without it (--allow-missing)", name)
    if not graph.samples:
        raise SampleFileError("(all)", ", ".join(options.locations), "no sample file found")
    # One flat list, one compute call: Dask optimises the whole graph together
    # (column projection, shared reads) and every file is read once.
    flat = [output for outputs in graph.outputs() for output in outputs]
    futures = client.compute(flat)
    if options.show_progress:
        progress(futures, notebook=False)
        print(flush=True)
    try:
        results = client.gather(futures)
    except Exception as err:
        raise RuntimeError(describe_failure(graph, err)) from err
    width = len(graph.outputs()[0])
    computed = [tuple(results[i : i + width]) for i in range(0, len(results), width)]
    return assemble_document(graph, computed, generated=graph.generated)


def describe_failure(graph: AnalysisGraph, err: BaseException) -> str:
    """A compute error, with the file it came from when the message names one."""
    message = f"{type(err).__name__}: {err}"
    for sample_graph in graph.samples:
        if sample_graph.location in message:
            return f"{sample_graph.sample.name}: reading {sample_graph.location} failed: {message}"
    return f"computing the analysis failed: {message}"


def write_outputs(document: HistogramDocument, out_dir: Path) -> dict[str, Path]:
    """The PNG and the JSON document side by side, with one timestamped stem."""
    return write_new(
        out_dir,
        {".png": render_png(document), ".json": document.to_json()},
        when=document.created,
    )


def write_document(document: HistogramDocument, out_dir: Path) -> Path:
    """Only the JSON document: with ``--broker`` the plotting service draws the PNG."""
    return write_new(out_dir, {".json": document.to_json()}, when=document.created)[".json"]


def main_run(
    client: Client, release: Release, options: RunOptions, out_dir: Path
) -> tuple[HistogramDocument, dict[str, Path]]:
    document = compute_document(client, release, options)
    return document, write_outputs(document, out_dir)


__all__: Sequence[str] = [
    "RunOptions",
    "compute_document",
    "main_run",
    "write_document",
    "write_outputs",
]
