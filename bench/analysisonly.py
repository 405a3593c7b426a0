"""The per-event work alone: the pipeline's per-partition computation
(``analysis.physics.summary.summarise_partition``: the m4l kernel, the weights, the masks, the
histogram fill) on events already read into memory.

Only this work is timed, not the read. The read limit plus this time is the least one
core can take for the whole job, so ``read / (read + this)`` is the highest
1-worker-over-read-limit ratio any pipeline doing this work can reach.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import uproot

from analysis.inputs.catalogue import load_release
from analysis.inputs.partitions import partition_steps
from analysis.physics.summary import branches_for, row_length, summarise_partition, totals_from_row

from .readlimit import set_inflate


@dataclass
class AnalysisOnlyResult:
    seconds: float = 0.0
    events: int = 0
    n_out: int = 0
    sumw: float = 0.0


def analyse_in_memory(paths: Iterable[str], step_size: int, sample_name: str) -> AnalysisOnlyResult:
    """Read each partition (untimed), then time the pipeline's own work on it
    (``summarise_partition``: kernel, weights, histogram fill) and the sum of rows."""
    release = load_release("2020")
    sample = release.samples[sample_name]
    branches = list(branches_for(sample, release))
    set_inflate("isal")
    result = AnalysisOnlyResult()
    total = np.zeros(row_length(release))
    for path in paths:
        with uproot.open(path) as file:
            tree = file[release.tree]
            offsets = [int(o) for o in tree.common_entry_offsets(filter_name=branches)]
            for start, stop in partition_steps(tree.num_entries, step_size, offsets):
                events = tree.arrays(branches, entry_start=start, entry_stop=stop)
                began = time.perf_counter()
                total += np.asarray(summarise_partition(events, sample, release))[0]
                result.seconds += time.perf_counter() - began
    totals = totals_from_row(total, release)
    result.events, result.n_out, result.sumw = totals.n_in, totals.n_out, totals.sumw
    return result
