"""The computed graph read back: read failures, bad files left out, event accounting,
and the histogram document.

Kept apart from the graph building (``analysis.graph``): what is decided here happens
after the one compute of a run, on the few numbers each partition sent back.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import awkward as ak
import numpy as np

from analysis.errors import EventsLostError
from analysis.graph import ComputedGraph, ComputedSample
from analysis.inputs.catalogue import Release
from analysis.inputs.files import SkippedFile
from analysis.physics.summary import SampleTotals, rows_total, totals_from_row
from analysis.redaction import redact_urls
from analysis.results.document import (
    FigureSettings,
    GroupStyle,
    HistogramDocument,
    Progress,
    SampleResult,
)


@dataclass(frozen=True)
class ReadFailure:
    """A partition that could not be read: which file, and why."""

    sample: str
    location: str
    cause: str


def read_failures(computed: ComputedGraph) -> list[ReadFailure]:
    """The partitions that failed to read: one entry per bad file."""
    failures: dict[tuple[str, str], ReadFailure] = {}
    for result in computed.samples:
        summaries = result.summaries
        failed = summaries[~ak.is_none(summaries["exception"])]
        for row in failed[["location", "exception", "message"]].to_list():
            key = (result.sample.name, row["location"])
            cause = f"{row['exception']}: {row['message']}".replace("\n", " ")
            failures.setdefault(key, ReadFailure(key[0], key[1], " ".join(cause.split())))
    return list(failures.values())


def leave_out(computed: ComputedGraph, failures: Sequence[ReadFailure]) -> ComputedGraph:
    """The computed run without the files that failed to read.

    A file with any unreadable partition is left out whole (all its partitions'
    summaries, which name their file, are dropped) and listed as skipped, so it is
    never half-counted; a sample left with no file is dropped.
    """
    samples: list[ComputedSample] = []
    for result in computed.samples:
        bad = {f.location for f in failures if f.sample == result.sample.name}
        good = [f for f in result.files if f.location not in bad]
        if not good:
            continue
        summaries = result.summaries
        if bad:
            keep = [location not in bad for location in summaries["location"].to_list()]
            summaries = summaries[np.asarray(keep, dtype=bool)]
        samples.append(ComputedSample(result.sample, good, summaries))
    skipped = [
        *computed.skipped,
        *(SkippedFile(f.sample, redact_urls(f.location), redact_urls(f.cause)) for f in failures),
    ]
    return replace(computed, samples=samples, skipped=skipped)


def sample_totals(summaries: ak.Array, release: Release) -> SampleTotals:
    """A sample's counts, Σw and histogram from its computed partition records."""
    return totals_from_row(rows_total(summaries, release), release)


def check_accounting(computed: ComputedGraph) -> None:
    """Every event of every file was read: events-read equals the files' entries."""
    for result in computed.samples:
        n_in = sample_totals(result.summaries, computed.release).n_in
        if n_in != result.entries:
            raise EventsLostError(
                f"{result.sample.name}: read {n_in} events but its files hold "
                f"{result.entries} ({', '.join(result.locations)}): "
                "a partition was lost; nothing written"
            )


def assemble_document(
    computed: ComputedGraph, partial: Progress | None = None
) -> HistogramDocument:
    """The histogram document of a computed run, or with ``partial`` of the partitions
    done so far.

    Checks the event accounting first (not of a partial run): a document never hides a
    lost partition.
    """
    if partial is None:
        check_accounting(computed)
    release = computed.release
    styles = {
        g.key: GroupStyle(g.label, g.colour, g.role, g.key, g.samples) for g in release.groups
    }
    results: dict[str, SampleResult] = {}
    for result in computed.samples:
        sample = result.sample
        totals = sample_totals(result.summaries, release)
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
        missing=list(computed.missing),
        generated=list(computed.generated),
        skipped=list(computed.skipped),
        figure=FigureSettings(y_headroom=release.analysis.y_headroom),
        partial=partial,
    )
