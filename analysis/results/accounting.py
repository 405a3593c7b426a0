"""The computed graph read back: read failures, bad files left out, event accounting,
and the histogram document.

Kept apart from the graph building (``analysis.graph``): what is decided here happens
after the one compute of a run, on the few numbers each partition sent back.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import awkward as ak
import numpy as np

from analysis.errors import EventsLostError
from analysis.graph import AnalysisGraph, SampleGraph
from analysis.inputs.catalogue import Release
from analysis.physics.summary import SampleTotals, rows_total, totals_from_row
from analysis.redaction import redact_urls
from analysis.results.document import (
    FigureSettings,
    GroupStyle,
    HistogramDocument,
    SampleResult,
    SkippedFile,
)


@dataclass(frozen=True)
class ReadFailure:
    """A partition that could not be read: which file, and why."""

    sample: str
    location: str
    cause: str


def read_failures(graph: AnalysisGraph, computed: Sequence[tuple[Any, ...]]) -> list[ReadFailure]:
    """The partitions that failed to read, in computed outputs: one entry per bad file."""
    failures: dict[tuple[str, str], ReadFailure] = {}
    for sample_graph_, (summaries,) in zip(graph.samples, computed, strict=True):
        failed = summaries[~ak.is_none(summaries["exception"])]
        for row in failed[["location", "exception", "message"]].to_list():
            key = (sample_graph_.sample.name, row["location"])
            cause = f"{row['exception']}: {row['message']}".replace("\n", " ")
            failures.setdefault(key, ReadFailure(key[0], key[1], " ".join(cause.split())))
    return list(failures.values())


def leave_out(
    graph: AnalysisGraph, computed: Sequence[tuple[Any, ...]], failures: Sequence[ReadFailure]
) -> tuple[AnalysisGraph, list[tuple[Any, ...]]]:
    """The graph and its computed outputs without the files that failed to read.

    A file with any unreadable partition is left out whole (all its partitions'
    summaries, which name their file, are dropped) and listed as skipped, so it is
    never half-counted; a sample left with no file is dropped.
    """
    samples: list[SampleGraph] = []
    outputs: list[tuple[Any, ...]] = []
    for sample_graph_, (summaries,) in zip(graph.samples, computed, strict=True):
        name = sample_graph_.sample.name
        bad = {f.location for f in failures if f.sample == name}
        good = [f for f in sample_graph_.files if f.location not in bad]
        if not good:
            continue
        if bad:
            keep = [location not in bad for location in summaries["location"].to_list()]
            summaries = summaries[np.asarray(keep, dtype=bool)]
        samples.append(SampleGraph(sample_graph_.sample, good, summaries))
        outputs.append((summaries,))
    skipped = [
        *graph.skipped,
        *(SkippedFile(f.sample, redact_urls(f.location), redact_urls(f.cause)) for f in failures),
    ]
    return AnalysisGraph(graph.release, samples, list(graph.missing), skipped), outputs


def sample_totals(computed: tuple[Any, ...], release: Release) -> SampleTotals:
    """A sample's counts, Σw and histogram from its computed outputs."""
    (summaries,) = computed
    return totals_from_row(rows_total(summaries, release), release)


def check_accounting(graph: AnalysisGraph, computed: Sequence[tuple[Any, ...]]) -> None:
    """Every event of every file was read: events-read equals the files' entries."""
    for sample_graph_, outputs in zip(graph.samples, computed, strict=True):
        n_in = sample_totals(outputs, graph.release).n_in
        if n_in != sample_graph_.entries:
            raise EventsLostError(
                f"{sample_graph_.sample.name}: read {n_in} events but its files hold "
                f"{sample_graph_.entries} ({', '.join(sample_graph_.locations)}): "
                "a partition was lost; nothing written"
            )


def assemble_document(
    graph: AnalysisGraph,
    computed: Sequence[tuple[Any, ...]],
) -> HistogramDocument:
    """The histogram document from the computed outputs of ``graph.outputs()``.

    Checks the event accounting first: a document never hides a lost partition.
    """
    check_accounting(graph, computed)
    release = graph.release
    styles = {
        g.key: GroupStyle(g.label, g.colour, g.role, g.key, g.samples) for g in release.groups
    }
    results: dict[str, SampleResult] = {}
    for sample_graph_, outputs in zip(graph.samples, computed, strict=True):
        sample = sample_graph_.sample
        totals = sample_totals(outputs, release)
        results[sample.name] = SampleResult(
            group=styles[sample.group].label,
            n_in=totals.n_in,
            n_out=totals.n_out,
            sumw=totals.sumw,
            hist=totals.hist,
            variations={} if sample.is_data else dict(totals.variations),
        )
    return HistogramDocument(
        release=release.name,
        lumi_fb=release.lumi_fb,
        groups=[styles[g.key] for g in release.groups],
        samples=results,
        missing=list(graph.missing),
        generated=list(graph.generated),
        skipped=list(graph.skipped),
        figure=FigureSettings(y_headroom=release.analysis.y_headroom),
    )
