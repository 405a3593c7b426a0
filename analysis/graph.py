"""The lazy per-sample graph: partition reads, the fused selection kernel, histograms.

Files are inspected first (``analysis.files``: entries, branches, form, stand-in mark),
so the graph is partitioned from known entry counts without the client opening any
file again, and one read layer (``analysis.reader``) covers all files of a sample:
building the graph stays cheap for thousands of files. Events are read by the Dask
workers when the graph is computed, and only the branches the kernel and the weights
use. Partition read errors are caught and reported per file (each partition's
summary says how its read went), so a run can name the bad file and either stop or
skip it, never half-count it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import awkward as ak
import dask
import dask_awkward as dak
import numpy as np

from .catalogue import Release, Sample, locate
from .document import FigureSettings, GroupStyle, HistogramDocument, SampleResult, SkippedFile
from .files import FileInfo, inspect_file
from .partitions import DEFAULT_STEP_SIZE, partition_steps
from .reader import TREE_CACHE_SIZE, read_partitions
from .summary import (
    SampleTotals,
    branches_for,
    partition_summary,
    rows_total,
    summary_meta,
    totals_from_row,
)


class SampleFileError(RuntimeError):
    """A sample's file could not be read; the message names the file."""

    def __init__(self, sample: str, location: str, reason: str) -> None:
        super().__init__(f"{sample}: cannot read {location}: {reason}")
        self.sample = sample
        self.location = location
        self.reason = reason


class MissingFileError(SampleFileError):
    """A sample's file is absent from every location searched."""


class EventsLostError(RuntimeError):
    """Fewer events were read than the files hold: a partition was lost."""


@dataclass
class SampleGraph:
    """The lazy results of one sample (all its files): counts, weighted sum, histogram."""

    sample: Sample
    files: list[FileInfo]
    #: One summary record per partition (``analysis.summary.partition_summary``: its
    #: row of numbers and how it was read): lazy, or once computed the records.
    summaries: Any
    partition_files: list[str] = field(default_factory=list)  # the file of each partition

    def outputs(self) -> tuple[Any]:
        return (self.summaries,)

    @property
    def entries(self) -> int:
        return sum(f.entries for f in self.files)

    @property
    def generated(self) -> bool:
        return any(f.generated for f in self.files)

    @property
    def locations(self) -> list[str]:
        return [f.location for f in self.files]


@dataclass
class AnalysisGraph:
    """The whole run: one SampleGraph per sample found; the samples not found or skipped."""

    release: Release
    samples: list[SampleGraph]
    missing: list[str] = field(default_factory=list)
    skipped: list[SkippedFile] = field(default_factory=list)

    def outputs(self) -> list[tuple[Any]]:
        """Everything to hand to a single ``dask.compute`` call."""
        return [s.outputs() for s in self.samples]

    @property
    def generated(self) -> list[str]:
        """Names of the samples read from simulated stand-ins, for the document and figure."""
        return [s.sample.name for s in self.samples if s.generated]


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
    skipped = [*graph.skipped, *(SkippedFile(f.sample, f.location, f.cause) for f in failures)]
    return AnalysisGraph(graph.release, samples, list(graph.missing), skipped), outputs


def sample_totals(computed: tuple[Any, ...], release: Release) -> SampleTotals:
    """A sample's counts, Σw and histogram from its computed outputs."""
    (summaries,) = computed
    return totals_from_row(rows_total(summaries, release), release)


def _empty_outputs(release: Release) -> tuple[Any]:
    empty = ak.Array(summary_meta(release).layout.form.length_zero_array())
    return (dask.delayed(empty),)


def _common_form(sample: Sample, files: Sequence[FileInfo]) -> ak.forms.Form:
    """The branches' form, the same in every file of the sample (else the odd file is named)."""
    first = next((f for f in files if f.form is not None), None)
    if first is None:
        raise ValueError(f"{sample.name}: no inspected file carries the branches' form")
    for info in files:
        if info.form is not None and info.form != first.form:
            raise SampleFileError(
                sample.name, info.location, f"branch types differ from {first.location}"
            )
    return ak.forms.from_json(first.form)


def interleave(per_file: Sequence[Sequence[Any]], readers: int) -> list[Any]:
    """The files' partitions in groups of ``readers`` files, alternating within a group:
    with 2, ``a0 b0 a1 b1 a2 b2 c0 d0 …``. At most ``TREE_CACHE_SIZE`` files alternate,
    so one worker alone never reopens a file it had open."""
    width = max(1, min(readers, TREE_CACHE_SIZE))
    ordered: list[Any] = []
    for first in range(0, len(per_file), width):
        group = per_file[first : first + width]
        for k in range(max((len(parts) for parts in group), default=0)):
            ordered += [parts[k] for parts in group if k < len(parts)]
    return ordered


def sample_graph(
    sample: Sample,
    files: Sequence[FileInfo],
    release: Release,
    step_size: int = DEFAULT_STEP_SIZE,
    options: Mapping[str, Any] | None = None,
    readers: int = 1,
) -> SampleGraph:
    """The lazy counts, weighted sum and m4l histogram of one sample's inspected files.

    One task per partition, the read fused with its summary (``partition_summary``:
    the m4l kernel, weights, histogram fill, and how the read went), gives one record;
    the sample's result is the sum of their rows, taken by ``sample_totals`` from the
    computed records (a few numbers per partition: no reduction tasks needed).

    ``readers``: how many partitions the cluster reads at once (its worker threads).
    Partitions of that many files alternate (``interleave``), so that workers taking
    queued partitions in turn each tend to stay with one file and parse its header once,
    not every worker every file; results do not depend on the order (``rows_total``).
    """
    steps = {f.location: partition_steps(f.entries, step_size, f.boundaries) for f in files}
    partitions = interleave(
        [[(location, a, b) for a, b in s] for location, s in steps.items()], readers
    )
    if not partitions:  # only empty files: nothing to read
        return SampleGraph(sample, list(files), *_empty_outputs(release))
    events = read_partitions(
        release.tree, _common_form(sample, files), partitions, options, label=f"read-{sample.name}"
    )
    summaries = dak.map_partitions(
        partition_summary,
        events,
        sample=sample,
        release=release,
        label=f"select-and-fill-{sample.name}",
        meta=summary_meta(release),
    )
    partition_files = [location for location, _, _ in partitions]
    return SampleGraph(sample, list(files), summaries, partition_files)


def graph_from_files(
    release: Release,
    files: Mapping[str, Sequence[FileInfo]],
    step_size: int = DEFAULT_STEP_SIZE,
    options: Mapping[str, Any] | None = None,
    missing: Sequence[str] = (),
    skipped: Sequence[SkippedFile] = (),
    readers: int = 1,
) -> AnalysisGraph:
    """One lazy graph for all samples from their usable inspected files (``readers``:
    the cluster's worker threads, see ``sample_graph``)."""
    graphs = [
        sample_graph(release.samples[name], sample_files, release, step_size, options, readers)
        for name, sample_files in files.items()
    ]
    return AnalysisGraph(release, graphs, list(missing), list(skipped))


def build_graph(
    release: Release,
    samples: Sequence[Sample],
    locations: Sequence[str],
    step_size: int = DEFAULT_STEP_SIZE,
    allow_missing: bool = False,
    options: Mapping[str, Any] | None = None,
) -> AnalysisGraph:
    """Locate and inspect each sample's file here, then build the graph.

    The eager, in-process path (tests, benchmarks); ``hzz run`` inspects files on the
    cluster instead. A missing file raises unless ``allow_missing``; a bad file raises.
    """
    files: dict[str, list[FileInfo]] = {}
    missing: list[str] = []
    for sample in samples:
        location = locate(sample, list(locations))
        if location is None:
            searched = ", ".join(str(loc) for loc in locations)
            info = FileInfo(
                sample.name, sample.path, missing=True, error=f"not found in {searched}"
            )
        else:
            branches = branches_for(sample, release)
            info = inspect_file(sample.name, location, release.tree, branches, options)
        if info.missing:
            if not allow_missing:
                raise MissingFileError(sample.name, info.location, info.error or "not found")
            missing.append(sample.name)
        elif info.error is not None:
            raise SampleFileError(sample.name, info.location, info.error)
        else:
            files[sample.name] = [info]
    return graph_from_files(release, files, step_size, options, missing)


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
    generated: Sequence[str] | None = None,
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
        generated=list(graph.generated if generated is None else generated),
        skipped=list(graph.skipped),
        figure=FigureSettings(y_headroom=release.analysis.y_headroom),
    )
