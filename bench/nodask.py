"""The pipeline's per-partition work with no Dask: a plain loop in one process.

Each partition is read by the pipeline's own reader (``analysis.inputs.reader.PartitionReader``:
the same ISA-L inflate, the same per-process tree cache) and summarised by its own
``analysis.physics.summary.partition_summary``; the rows are summed as a run sums them. What
a worker does, minus the scheduler, the task protocol and the worker's event loop. One such process
over all files against two over half the files each, side by side, is the speed-up
this machine gives two processes doing this work: the bound for 2 workers over 1.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

import awkward as ak

from analysis.inputs.catalogue import load_release
from analysis.inputs.files import FileInfo, inspect_file
from analysis.inputs.partitions import partition_steps
from analysis.inputs.reader import PartitionReader
from analysis.physics.summary import branches_for, partition_summary, rows_total, totals_from_row


@dataclass
class NoDaskResult:
    started: float = 0.0  # time.time() at the first read, to line up parallel processes
    ended: float = 0.0
    events: int = 0
    n_out: int = 0
    sumw: float = 0.0

    @property
    def seconds(self) -> float:
        return self.ended - self.started


def _reader(info: FileInfo, tree: str) -> PartitionReader:
    """A reader of its own run (its trees are opened afresh), from the inspected form."""
    return PartitionReader(tree, ak.forms.from_json(info.form))


def summarise_without_dask(
    paths: Iterable[str], step_size: int, sample_name: str, start_at: float | None = None
) -> NoDaskResult:
    """Read and summarise every partition of ``paths`` in this process, timed as a whole.

    Each partition goes through what a worker's task runs (``PartitionReader``, then
    ``partition_summary``); the rows are added as a run adds them (``rows_total``).
    The partitions and the form come from ``inspect_file`` (untimed), as a run's do;
    one small partition is read first, untimed, as the pipeline is timed on warm workers.
    With ``start_at`` (a ``time.time()``), the timed loop waits for that moment.
    """
    release = load_release("2020")
    sample = release.samples[sample_name]
    branches = branches_for(sample, release)
    infos = [inspect_file(sample.name, path, release.tree, branches) for path in paths]
    bad = [f"{info.location}: {info.error}" for info in infos if not info.usable]
    if bad:
        raise RuntimeError("; ".join(bad))
    first = infos[0]
    warm_up = (first.location, 0, min(first.entries, 1000))
    partition_summary(_reader(first, release.tree)(warm_up), sample, release)
    if start_at is not None:  # processes side by side start their clocks together
        time.sleep(max(start_at - time.time(), 0.0))
    result = NoDaskResult(started=max(time.time(), start_at or 0.0))
    summaries = []
    for info in infos:
        read = _reader(info, release.tree)
        for start, stop in partition_steps(info.entries, step_size, info.boundaries):
            summaries.append(partition_summary(read((info.location, start, stop)), sample, release))
    result.ended = time.time()
    records = ak.concatenate(summaries)
    failed = records[~ak.is_none(records["exception"])]
    if len(failed):
        raise RuntimeError(f"{failed.location[0]}: {failed.message[0]}")
    totals = totals_from_row(rows_total(records, release), release)
    result.events, result.n_out, result.sumw = totals.n_in, totals.n_out, totals.sumw
    return result
