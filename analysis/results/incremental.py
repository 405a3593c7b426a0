"""Computing a run partition by partition: kept partitions reused, each new one kept as
it arrives, and the result so far handed out while the rest computes.

The same lazy graph as a run computed at once (``analysis.graph``), cut into one Dask
collection per partition (``to_delayed``: the graph optimised, columns projected, as a
whole compute would). Only the partitions without a checkpoint
(``analysis.results.checkpoint``) are computed; each is kept as soon as it arrives.
The records are then put back in the graph's order, so ``collect`` sees exactly what a
whole compute gives, and the document is the same to the last bit (a sample's row is an
exact sum, in any order: ``analysis.physics.summary.rows_total``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import awkward as ak
import numpy as np

from analysis.graph import (
    AnalysisGraph,
    ComputedGraph,
    ComputedSample,
    Partition,
    SampleGraph,
    optimising,
)
from analysis.inputs.catalogue import Release
from analysis.physics.summary import row_length, rows_total, summary_meta, summary_record
from analysis.results.accounting import assemble_document, leave_out, read_failures
from analysis.results.checkpoint import CheckpointStore, analysis_version, partition_key
from analysis.results.document import Progress
from analysis.results.result import AnalysisResult

log = logging.getLogger(__name__)

#: Computes Dask collections as they finish: given a list, yields ``(index, result)``
#: for each, in the order they complete.
ComputeEach = Callable[[Sequence[Any]], Iterable[tuple[int, Any]]]
#: Called with the result so far (a partial document) while a run computes.
OnPartial = Callable[[AnalysisResult], object]

#: Seconds between two partial results when none is given.
DEFAULT_PARTIAL_INTERVAL_S = 2.0


@dataclass(frozen=True)
class Reused:
    """How many of a run's partitions came from checkpoints, of how many."""

    reused: int
    total: int

    def __str__(self) -> str:
        return f"checkpoint: {self.reused} of {self.total} partitions reused"


class _Records:
    """Each sample's partition records as they arrive, in the graph's order."""

    def __init__(self, graph: AnalysisGraph) -> None:
        self.graph = graph
        self.records: list[list[ak.Array | None]] = [
            [None] * len(s.partitions) for s in graph.samples
        ]
        self.total = sum(len(s.partitions) for s in graph.samples)
        self.done = 0
        self.events = 0
        # For partial results: each sample's records merged so far (in arrival order),
        # and those arrived since, so that a partial result joins only the new ones.
        self._merged: list[ak.Array] = [self._empty() for _ in graph.samples]
        self._arrived: list[list[ak.Array]] = [[] for _ in graph.samples]

    def _empty(self) -> ak.Array:
        return ak.Array(summary_meta(self.graph.release).layout.form.length_zero_array())

    def put(self, sample: int, partition: int, record: ak.Array) -> None:
        self.records[sample][partition] = record
        self._arrived[sample].append(record)
        self.done += 1
        if record["exception"][0] is None:
            self.events += int(record["row"][0][0])

    def summaries(self, sample: int) -> ak.Array:
        """A sample's records in the graph's order (all of them, once computed)."""
        done = [r for r in self.records[sample] if r is not None]
        if not done:
            return self._empty()
        return ak.concatenate(done) if len(done) > 1 else done[0]

    def _so_far(self, sample: int) -> ak.Array:
        """A sample's records so far, as one record per file (its rows summed) and the
        failed ones: a partial result costs the partitions new since the last one, not
        all done so far (thousands of records take seconds to join)."""
        if self._arrived[sample]:
            joined = ak.concatenate([self._merged[sample], *self._arrived[sample]])
            self._merged[sample] = _per_file(joined, self.graph.release)
            self._arrived[sample] = []
        return self._merged[sample]

    def partial(self, run: str | None) -> AnalysisResult:
        """The result of the partitions done so far: files with a failed partition left
        out (the run decides at the end what they mean), no event accounting."""
        computed = ComputedGraph(
            self.graph.release,
            [
                ComputedSample(s.sample, list(s.files), self._so_far(k))
                for k, s in enumerate(self.graph.samples)
            ],
            list(self.graph.missing),
            list(self.graph.skipped),
        )
        computed = leave_out(computed, read_failures(computed))
        progress = Progress(self.done, self.total, self.events, run)
        return AnalysisResult(assemble_document(computed, progress))


def _per_file(records: ak.Array, release: Release) -> ak.Array:
    """``records`` with the readable ones of each file summed into one record (named by
    its file, so that a file left out is left out whole), and the failed ones as they
    are."""
    failed = ~ak.is_none(records["exception"])
    read = records[~failed]
    locations = read["location"].to_list()
    merged = [records[failed]]
    for location in dict.fromkeys(locations):
        mine = read[np.array([other == location for other in locations])]
        merged.append(summary_record(rows_total(mine, release), {"location": location}))
    return ak.concatenate(merged)


def _stored_record(partition: Partition, row: Any, seconds: float) -> ak.Array:
    """A kept partition's record, as the task that computed it gave it."""
    outcome = {
        "location": partition.file.location,
        "entry_start": partition.start,
        "entry_stop": partition.stop,
        "seconds": seconds,
    }
    return summary_record(row, outcome)


def _collections(sample: SampleGraph) -> list[Any]:
    """One Dask collection per partition of ``sample``, in order."""
    if not sample.partitions:
        return []
    return list(sample.summaries.to_delayed())


def compute_by_partition(
    graph: AnalysisGraph,
    compute_each: ComputeEach,
    checkpoint: CheckpointStore | None = None,
    on_partial: OnPartial | None = None,
    partial_interval_s: float = DEFAULT_PARTIAL_INTERVAL_S,
    run: str | None = None,
) -> tuple[list[tuple[Any]], Reused]:
    """``graph.outputs()`` computed (as ``collect`` takes them), and how many
    partitions were reused from ``checkpoint``.

    Kept partitions are read from ``checkpoint``, the others computed with
    ``compute_each`` and kept as each arrives (a record that failed to read is never
    kept: the file is read again next time). ``on_partial`` gets the result so far at
    the first partition computed and then at most every ``partial_interval_s`` seconds;
    ``run`` names the run in those partial documents."""
    with optimising():  # as ``compute_graph``: per-partition collections included
        return _compute_by_partition(
            graph, compute_each, checkpoint, on_partial, partial_interval_s, run
        )


def _compute_by_partition(
    graph: AnalysisGraph,
    compute_each: ComputeEach,
    checkpoint: CheckpointStore | None,
    on_partial: OnPartial | None,
    partial_interval_s: float,
    run: str | None,
) -> tuple[list[tuple[Any]], Reused]:
    records = _Records(graph)
    release = graph.release
    length = row_length(release)
    keys: list[list[str | None]] = []
    todo: list[tuple[int, int, Any]] = []
    for k, sample in enumerate(graph.samples):
        version = analysis_version(sample.sample, release)
        sample_keys: list[str | None] = []
        collections = _collections(sample)
        for p, (partition, collection) in enumerate(
            zip(sample.partitions, collections, strict=True)
        ):
            key = None
            if checkpoint is not None:
                key = partition_key(
                    version, partition.file, release.tree, partition.start, partition.stop
                )
                kept = checkpoint.load(key, length)
                if kept is not None:
                    records.put(k, p, _stored_record(partition, kept.row, kept.seconds))
                    sample_keys.append(key)
                    continue
            sample_keys.append(key)
            todo.append((k, p, collection))
        keys.append(sample_keys)
    reused = Reused(records.done, records.total)
    last_partial = float("-inf")
    if todo:
        for index, record in compute_each([c for _, _, c in todo]):
            k, p, _ = todo[index]
            record = ak.Array(record)
            records.put(k, p, record)
            key = keys[k][p]
            if checkpoint is not None and key is not None and record["exception"][0] is None:
                checkpoint.save(key, record["row"][0].to_numpy(), float(record["seconds"][0]))
            now = time.monotonic()
            due = now - last_partial >= partial_interval_s
            if on_partial is not None and records.done < records.total and due:
                last_partial = now
                on_partial(records.partial(run))
    return [(records.summaries(k),) for k in range(len(graph.samples))], reused
