"""The lazy per-sample graph: partition reads, the fused selection kernel, histograms.

Files are inspected first (``analysis.files``: entries, branches, form, stand-in mark),
so the graph is partitioned from known entry counts without the client opening any
file again, and one read layer (``analysis.reader``) covers all files of a sample:
building the graph stays cheap for thousands of files. Events are read by the Dask
workers when the graph is computed, and only the branches the kernel and the weights
use. Partition read errors are caught and reported per file (the reader's report),
so a run can name the bad file and either stop or skip it, never half-count it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import awkward as ak
import dask
import dask_awkward as dak
import hist
import hist.dask
import numpy as np

from .binning import m4l_axis
from .catalogue import Release, Sample, load_release, locate
from .document import GroupStyle, HistogramDocument, SampleResult, SkippedFile
from .files import FileInfo, inspect_file
from .partitions import DEFAULT_STEP_SIZE, partition_steps
from .reader import read_partitions
from .selection import KERNEL_OUTPUT, MASK_OUTPUT, PRESELECTIONS, select_four_leptons
from .weights import event_weight, weight_branches


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


def branches_for(sample: Sample, release: Release | None = None) -> tuple[str, ...]:
    """The branches a sample needs: leptons and preselection, plus weights for simulation."""
    release = release or load_release("2020")
    settings = release.analysis
    branches = settings.lepton_branches
    if settings.preselection:
        branches += tuple(b for b in PRESELECTIONS[settings.preselection][0] if b not in branches)
    return branches if sample.is_data else branches + weight_branches(release)


@dataclass
class SampleGraph:
    """The lazy results of one sample (all its files): counts, weighted sum, histogram."""

    sample: Sample
    files: list[FileInfo]
    n_in: Any
    n_out: Any
    sumw: Any
    hist: Any
    report: Any = None  # uproot's per-partition read report (None: no partition)
    partition_files: list[str] = field(default_factory=list)  # the file of each partition

    def outputs(self) -> tuple[Any, Any, Any, Any]:
        return (self.n_in, self.n_out, self.sumw, self.hist)

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

    def outputs(self) -> list[tuple[Any, Any, Any, Any]]:
        """Everything to hand to a single ``dask.compute`` call."""
        return [s.outputs() for s in self.samples]

    def reports(self) -> list[Any]:
        """The read reports, one per sample (compute them with the outputs)."""
        return [s.report for s in self.samples]

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


def read_failures(graph: AnalysisGraph, reports: Sequence[Any]) -> list[ReadFailure]:
    """The failed partitions in computed reports, one entry per bad file."""
    failures: dict[tuple[str, str], ReadFailure] = {}
    for sample_graph_, report in zip(graph.samples, reports, strict=True):
        if report is None:
            continue
        for index, row in enumerate(report.to_list()):
            if row["exception"] is None:
                continue
            location = sample_graph_.partition_files[index]
            key = (sample_graph_.sample.name, location)
            cause = f"{row['exception']}: {row['message']}".replace("\n", " ")
            failures.setdefault(key, ReadFailure(key[0], location, " ".join(cause.split())))
    return list(failures.values())


def _empty_outputs(release: Release) -> tuple[Any, Any, Any, Any]:
    histogram = hist.Hist(m4l_axis(release.analysis.binning), storage=hist.storage.Weight())
    return tuple(dask.delayed(value) for value in (0, 0, 0.0, histogram))  # type: ignore[return-value]


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


def sample_graph(
    sample: Sample,
    files: Sequence[FileInfo],
    release: Release,
    step_size: int = DEFAULT_STEP_SIZE,
    options: Mapping[str, Any] | None = None,
) -> SampleGraph:
    """The lazy counts, weighted sum and m4l histogram of one sample's inspected files.

    One fused kernel per partition (``select_four_leptons``) turns the six lepton
    columns into two flat columns, ``passed`` and ``m4l``; everything after it masks
    flat columns, never whole records.
    """
    steps = {f.location: partition_steps(f.entries, step_size, f.boundaries) for f in files}
    partitions = [(location, a, b) for location, s in steps.items() for a, b in s]
    if not partitions:  # only empty files: nothing to read
        return SampleGraph(sample, list(files), *_empty_outputs(release))
    settings = release.analysis
    events, report = read_partitions(
        release.tree, _common_form(sample, files), partitions, options, label=f"read-{sample.name}"
    )
    selected = dak.map_partitions(
        select_four_leptons,
        *(events[branch] for branch in settings.lepton_branches),
        units_per_gev=settings.units_per_gev,
        label="select-four-leptons",
        meta=ak.Array(KERNEL_OUTPUT.layout.to_typetracer(forget_length=True)),
    )
    passed = selected.passed
    if settings.preselection:
        branches, preselect = PRESELECTIONS[settings.preselection]
        passed = passed & dak.map_partitions(
            preselect,
            *(events[branch] for branch in branches),
            label=settings.preselection.replace("_", "-"),
            meta=ak.Array(MASK_OUTPUT.layout.to_typetracer(forget_length=True)),
        )
    mass = selected.m4l[passed]
    histogram = hist.dask.Hist(m4l_axis(settings.binning), storage=hist.storage.Weight())
    n_in = dak.num(passed, axis=0)
    n_out = dak.sum(passed)
    if sample.is_data:
        histogram.fill(mass)
        sumw = n_out
    else:
        weight = dak.values_astype(event_weight(events, sample, release), np.float64)
        weight = weight[passed]
        histogram.fill(mass, weight=weight)
        sumw = dak.sum(weight)
    partition_files = [location for location, _, _ in partitions]
    return SampleGraph(sample, list(files), n_in, n_out, sumw, histogram, report, partition_files)


def graph_from_files(
    release: Release,
    files: Mapping[str, Sequence[FileInfo]],
    step_size: int = DEFAULT_STEP_SIZE,
    options: Mapping[str, Any] | None = None,
    missing: Sequence[str] = (),
    skipped: Sequence[SkippedFile] = (),
) -> AnalysisGraph:
    """One lazy graph for all samples from their usable inspected files."""
    graphs = [
        sample_graph(release.samples[name], sample_files, release, step_size, options)
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
        n_in = int(outputs[0])
        if n_in != sample_graph_.entries:
            raise EventsLostError(
                f"{sample_graph_.sample.name}: read {n_in} events but its files hold "
                f"{sample_graph_.entries} ({', '.join(sample_graph_.locations)}): "
                "a partition was lost; nothing written"
            )


def assemble_document(
    graph: AnalysisGraph,
    computed: Sequence[tuple[Any, Any, Any, Any]],
    generated: Sequence[str] | None = None,
) -> HistogramDocument:
    """The histogram document from the computed outputs of ``graph.outputs()``.

    Checks the event accounting first: a document never hides a lost partition.
    """
    check_accounting(graph, computed)
    release = graph.release
    styles = {g.key: GroupStyle(g.label, g.colour, g.role) for g in release.groups}
    results: dict[str, SampleResult] = {}
    for sample_graph_, (n_in, n_out, sumw, histogram) in zip(graph.samples, computed, strict=True):
        sample = sample_graph_.sample
        results[sample.name] = SampleResult(
            group=styles[sample.group].label,
            n_in=int(n_in),
            n_out=int(n_out),
            sumw=float(sumw),
            hist=histogram,
        )
    return HistogramDocument(
        release=release.name,
        lumi_fb=release.lumi_fb,
        groups=[styles[g.key] for g in release.groups],
        samples=results,
        missing=list(graph.missing),
        generated=list(graph.generated if generated is None else generated),
        skipped=list(graph.skipped),
    )
