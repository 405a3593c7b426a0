"""The pipeline's per-partition work with no Dask: a plain loop in one process.

Each partition is read by the pipeline's own reader (``analysis.reader.PartitionReader``:
the same ISA-L inflate, the same per-process tree cache) and summarised by its own
``analysis.summary.summarise_partition``; the rows are summed. What a worker does,
minus the scheduler, the task protocol and the worker's event loop. One such process
over all files against two over half the files each, side by side, is the speed-up
this machine gives two processes doing this work: the bound for 2 workers over 1.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

import awkward as ak
import numpy as np

from analysis.catalogue import Release, Sample, load_release
from analysis.files import FileInfo, inspect_file
from analysis.graph import branches_for
from analysis.partitions import partition_steps
from analysis.reader import PartitionReader, read_outcome
from analysis.summary import row_length, summarise_partition, totals_from_row


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


def _warm_up(info: FileInfo, tree: str, sample: Sample, release: Release) -> None:
    """One untimed partition, as the pipeline's timed compute runs on warm workers
    (first-use imports and set-up done); its tree is not reused (a reader of its own)."""
    if info.form is None:
        raise RuntimeError(f"{info.location}: {info.error}")
    reader = PartitionReader(tree, ak.forms.from_json(info.form))
    events = reader((info.location, 0, min(info.entries, 1000)))
    summarise_partition(events, sample, release)


def summarise_without_dask(
    paths: Iterable[str], step_size: int, sample_name: str, start_at: float | None = None
) -> NoDaskResult:
    """Read and summarise every partition of ``paths`` in this process, timed as a whole.

    The partitions and the form come from ``inspect_file`` (untimed), as a run's do;
    one small partition is read first, untimed, as the pipeline is timed on warm workers.
    With ``start_at`` (a ``time.time()``), the timed loop waits for that moment.
    """
    release = load_release("2020")
    sample = release.samples[sample_name]
    branches = branches_for(sample, release)
    infos = [inspect_file(sample.name, path, release.tree, branches) for path in paths]
    total = np.zeros(row_length(release))
    _warm_up(infos[0], release.tree, sample, release)
    if start_at is not None:  # processes side by side start their clocks together
        time.sleep(max(start_at - time.time(), 0.0))
    result = NoDaskResult(started=max(time.time(), start_at or 0.0))
    for info in infos:
        if info.form is None:
            raise RuntimeError(f"{info.location}: {info.error}")
        reader = PartitionReader(release.tree, ak.forms.from_json(info.form))
        for start, stop in partition_steps(info.entries, step_size, info.boundaries):
            events = reader((info.location, start, stop))
            outcome = read_outcome(events) or {}
            if outcome.get("exception") is not None:
                raise RuntimeError(f"{info.location}: {outcome['message']}")
            total += np.asarray(summarise_partition(events, sample, release))[0]
    result.ended = time.time()
    totals = totals_from_row(total, release)
    result.events, result.n_out, result.sumw = totals.n_in, totals.n_out, totals.sumw
    return result
