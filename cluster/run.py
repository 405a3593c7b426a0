"""``hzz run``: build the lazy graph, compute it once on Dask, write figure and document."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from distributed import Client, progress

from analysis.catalogue import Release, Sample, locate
from analysis.document import HistogramDocument, SkippedFile
from analysis.files import FileInfo, inspect_file
from analysis.graph import (
    AnalysisGraph,
    MissingFileError,
    SampleFileError,
    assemble_document,
    branches_for,
    graph_from_files,
    leave_out,
    read_failures,
)
from analysis.outputs import write_new

from .remote import DEFAULT_TIMEOUT_S, prepare_locations, uproot_open_options
from .workers import DEFAULT_WORKER_TIMEOUT_S, WorkerWatchdog, wait_for_a_worker

log = logging.getLogger(__name__)


@dataclass
class RunOptions:
    """What ``hzz run`` was asked for; defaults are the CLI's."""

    locations: list[str]
    samples: list[str] | None = None
    groups: list[str] | None = None
    step_size: int = 200_000
    allow_missing: bool = False
    skip_bad_files: bool = False  # leave bad files out (listed) instead of stopping
    show_progress: bool = True
    worker_timeout_s: float = DEFAULT_WORKER_TIMEOUT_S  # longest wait with no worker
    cache_dir: Path | None = None  # fetch remote files here first (--cache)
    timeout_s: float = DEFAULT_TIMEOUT_S  # wait for a remote server (--timeout)


def inspect_on_cluster(
    client: Client,
    release: Release,
    located: Sequence[tuple[Sample, str]],
    options: Mapping[str, Any],
    worker_timeout_s: float = DEFAULT_WORKER_TIMEOUT_S,
) -> list[FileInfo]:
    """Open every input file's header on the workers, in parallel (entries, branches, mark)."""
    futures = client.map(
        inspect_file,
        [sample.name for sample, _ in located],
        [location for _, location in located],
        [release.tree] * len(located),
        [branches_for(sample, release) for sample, _ in located],
        options=dict(options),
        pure=False,
    )
    with WorkerWatchdog(client, futures, worker_timeout_s) as watchdog:
        try:
            return list(client.gather(futures))
        except Exception:
            watchdog.raise_if_tripped()
            raise


def compute_document(client: Client, release: Release, options: RunOptions) -> HistogramDocument:
    """Inspect the files, build one graph for all chosen samples, compute it, assemble.

    A bad file (unreadable header, missing tree or branch, or a partition that fails
    to read) stops the run with its name and cause; with ``skip_bad_files`` it is left
    out whole (none of its partitions counted; no second compute) and listed in the document.
    """
    chosen = release.select(options.samples, options.groups)
    # Remote files: checked (one HEAD each) or, with --cache, fetched; never hung on.
    locations = prepare_locations(
        chosen, options.locations, options.cache_dir, options.timeout_s, options.show_progress
    )
    read_options = uproot_open_options(options.timeout_s)
    missing: list[str] = []
    located: list[tuple[Sample, str]] = []
    for sample in chosen:
        location = locate(sample, locations)
        if location is None:
            if not options.allow_missing:
                searched = ", ".join(locations)
                raise MissingFileError(sample.name, sample.path, f"not found in {searched}")
            missing.append(sample.name)
        else:
            located.append((sample, location))

    wait_for_a_worker(client, options.worker_timeout_s)
    files: dict[str, list[FileInfo]] = {}
    skipped: list[SkippedFile] = []
    inspected = inspect_on_cluster(client, release, located, read_options, options.worker_timeout_s)
    for info in inspected:
        if info.missing and options.allow_missing:
            missing.append(info.sample)
        elif info.missing:
            raise MissingFileError(info.sample, info.location, info.error or "file not found")
        elif info.error is not None and options.skip_bad_files:
            skipped.append(SkippedFile(info.sample, info.location, info.error))
        elif info.error is not None:
            raise SampleFileError(info.sample, info.location, info.error)
        else:
            files.setdefault(info.sample, []).append(info)
    if missing:
        log.warning(
            "%d sample(s) without a file, going on without them (--allow-missing): %s",
            len(missing),
            ", ".join(missing),
        )
    if not files:
        raise SampleFileError("(all)", ", ".join(options.locations), "no readable sample file")

    readers = sum(client.nthreads().values())  # the graph spreads files over them
    graph = graph_from_files(
        release, files, int(options.step_size), read_options, missing, skipped, readers
    )
    results = _compute(client, graph, options)
    failures = read_failures(graph, results)
    if failures and not options.skip_bad_files:
        first = failures[0]
        raise SampleFileError(first.sample, first.location, first.cause)
    for failure in failures:
        log.warning("skipping %s (%s): %s", failure.location, failure.sample, failure.cause)
    # No second compute: the bad files' partitions are dropped from the results.
    return assemble_document(*leave_out(graph, results, failures))


def _compute(client: Client, graph: AnalysisGraph, options: RunOptions) -> list[tuple[Any, ...]]:
    """One compute call for all outputs, watched for lost workers."""
    outputs = graph.outputs()
    width = len(outputs[0])
    flat = [output for sample_outputs in outputs for output in sample_outputs]
    # One flat list, one compute call: Dask optimises the whole graph together
    # (column projection, shared reads) and every file is read once.
    futures = client.compute(flat)
    # A lost worker's tasks are rerun elsewhere; with none left the watchdog cancels.
    with WorkerWatchdog(client, futures, options.worker_timeout_s) as watchdog:
        try:
            if options.show_progress:
                progress(futures, notebook=False)
                print(flush=True)
            results = client.gather(futures)
        except Exception as err:
            watchdog.raise_if_tripped()
            raise RuntimeError(
                f"computing the analysis failed: {type(err).__name__}: {err}"
            ) from err
    return [tuple(results[i : i + width]) for i in range(0, len(flat), width)]


def write_outputs(
    document: HistogramDocument, out_dir: Path, fit: bool = False
) -> tuple[dict[str, Path], Any]:
    """The PNG and the JSON document side by side, with one timestamped stem; with
    ``fit`` also the post-fit PNG, the fit results and the pyhf workspace. Returns the
    paths by name ending, and the fit result (None without a fit)."""
    # matplotlib (and pyhf) are imported while the cluster starts
    from analysis.products import products

    contents, result = products(document, fit)
    written = write_new(out_dir, {**contents, ".json": document.to_json()}, when=document.created)
    return written, result


def write_document(document: HistogramDocument, out_dir: Path) -> Path:
    """Only the JSON document: with ``--broker`` the plotting service draws the PNG."""
    return write_new(out_dir, {".json": document.to_json()}, when=document.created)[".json"]


__all__: Sequence[str] = [
    "RunOptions",
    "compute_document",
    "write_document",
    "write_outputs",
]
