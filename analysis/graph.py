"""The lazy graph of a run: per sample, one task per partition that reads and summarises it.

Built from inspected files (entries, basket boundaries, form), so the client opens no
file to partition it and one read layer (``analysis.inputs.reader``) covers a sample's
files; the workers read only the branches the summary (``analysis.physics.summary``)
touches. Once computed, ``AnalysisGraph.computed`` gives the records their type
(``ComputedGraph``), which ``analysis.results.accounting`` reads back.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import awkward as ak
import dask
import dask_awkward as dak

from analysis.errors import SampleFileError
from analysis.inputs.catalogue import Release, Sample
from analysis.inputs.files import FileInfo, SkippedFile
from analysis.inputs.partitions import DEFAULT_STEP_SIZE, partition_steps
from analysis.inputs.reader import TREE_CACHE_SIZE, inspected, read_partitions
from analysis.physics.summary import partition_summary, summary_meta


@dataclass
class SampleFiles:
    """A sample and its usable inspected files."""

    sample: Sample
    files: list[FileInfo]

    @property
    def entries(self) -> int:
        return sum(f.entries for f in self.files)

    @property
    def generated(self) -> bool:
        return any(f.generated for f in self.files)

    @property
    def locations(self) -> list[str]:
        return [f.location for f in self.files]


@dataclass(frozen=True)
class Partition:
    """One task's share of a sample: a file and a range of its entries."""

    file: FileInfo
    start: int
    stop: int


@dataclass
class SampleGraph(SampleFiles):
    """The lazy results of one sample (all its files): counts, weighted sum, histogram."""

    #: One summary record per partition (``analysis.physics.summary.partition_summary``:
    #: its row of numbers and how it was read), lazy.
    summaries: Any
    #: Each partition's file and entry range, in the order of ``summaries``' partitions.
    partitions: list[Partition] = field(default_factory=list)

    def outputs(self) -> tuple[Any]:
        return (self.summaries,)


@dataclass
class ComputedSample(SampleFiles):
    """One sample's computed records: one per partition, its row and how it was read."""

    summaries: ak.Array


S = TypeVar("S", bound=SampleFiles)


@dataclass
class _Run(Generic[S]):
    """A run's samples, and the samples not found or skipped."""

    release: Release
    samples: list[S]
    missing: list[str] = field(default_factory=list)
    skipped: list[SkippedFile] = field(default_factory=list)

    @property
    def generated(self) -> list[str]:
        """Names of the samples read from simulated stand-ins, for the document and figure."""
        return [s.sample.name for s in self.samples if s.generated]


@dataclass
class ComputedGraph(_Run[ComputedSample]):
    """A computed run: each sample's records; the samples not found or skipped."""


@dataclass
class AnalysisGraph(_Run[SampleGraph]):
    """The whole run: one SampleGraph per sample found; the samples not found or skipped."""

    def outputs(self) -> list[tuple[Any]]:
        """Everything to hand to a single ``dask.compute`` call."""
        return [s.outputs() for s in self.samples]

    def computed(self, outputs: Sequence[Sequence[Any]]) -> ComputedGraph:
        """``outputs()`` once computed (a tuple per sample, in order), each sample's
        records with its sample and files."""
        if len(outputs) != len(self.samples):
            raise ValueError(f"{len(outputs)} computed outputs for {len(self.samples)} samples")
        samples = [
            ComputedSample(graph.sample, list(graph.files), summaries)
            for graph, (summaries,) in zip(self.samples, outputs, strict=True)
        ]
        return ComputedGraph(self.release, samples, list(self.missing), list(self.skipped))


def _empty_outputs(release: Release) -> tuple[Any]:
    empty = ak.Array(summary_meta(release).layout.form.length_zero_array())
    return (dask.delayed(empty),)


#: dask-awkward's optimisations of the analysis graph. Its column projection runs every
#: sample's layers on typetracers to find the columns used (about 25 ms a sample on the
#: client, every run); the readers already read only what the summary uses (the
#: inspection's form holds the needed branches alone, ``branches_for``), so it would cut
#: nothing. Layer chains still fuse each read with its summary into one task.
OPTIMISATIONS = {"awkward.optimization.which": ["layer-chains"]}


def optimising() -> Any:
    """The Dask settings a compute of the analysis graph runs under (a context manager):
    ``OPTIMISATIONS``."""
    return dask.config.set(OPTIMISATIONS)


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
    # Each partition carries its file's header when the inspection recorded one (remote
    # files): the reader opens the file from it without a request; and the version
    # inspected, which the reader checks it reads.
    partitions = interleave(
        [
            [Partition(f, a, b) for a, b in partition_steps(f.entries, step_size, f.boundaries)]
            for f in files
        ],
        readers,
    )
    if not partitions:  # only empty files: nothing to read
        return SampleGraph(sample, list(files), *_empty_outputs(release))
    events = read_partitions(
        release.tree,
        _common_form(sample, files),
        [(p.file.location, p.start, p.stop, p.file.header, inspected(p.file)) for p in partitions],
        options,
        label=f"read-{sample.name}",
    )
    summaries = dak.map_partitions(
        partition_summary,
        events,
        sample=sample,
        release=release.for_sample(sample),
        label=f"select-and-fill-{sample.name}",
        # Named after the events' collection (unique per graph): no hashing of the
        # release, and no search of it for Dask collections (it holds none).
        token=events.name.rpartition("-")[2],
        traverse=False,
        meta=summary_meta(release),
    )
    return SampleGraph(sample, list(files), summaries, partitions)


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
