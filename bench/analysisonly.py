"""The per-event work alone: the pipeline's per-partition computation on events already
read into memory (the m4l kernel, the weights, the masks, the histogram fill).

Only this work is timed, not the read. The read limit plus this time is the least one
core can take for the whole job, so ``read / (read + this)`` is the highest
1-worker-over-read-limit ratio any pipeline doing this work can reach.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

import hist
import numpy as np
import uproot

from analysis.binning import m4l_axis
from analysis.catalogue import load_release
from analysis.graph import branches_for
from analysis.partitions import partition_steps
from analysis.selection import LEPTON_BRANCHES, select_four_leptons
from analysis.weights import event_weight

from .readlimit import set_inflate


@dataclass
class AnalysisOnlyResult:
    seconds: float = 0.0
    events: int = 0
    n_out: int = 0
    sumw: float = 0.0


def analyse_in_memory(paths: Iterable[str], step_size: int, sample_name: str) -> AnalysisOnlyResult:
    """Read each partition (untimed), then time the analysis of it."""
    release = load_release("2020")
    sample = release.samples[sample_name]
    branches = list(branches_for(sample, release))
    histogram = hist.Hist(m4l_axis(release.analysis.binning), storage=hist.storage.Weight())
    set_inflate("isal")
    result = AnalysisOnlyResult()
    for path in paths:
        with uproot.open(path) as file:
            tree = file[release.tree]
            offsets = [int(o) for o in tree.common_entry_offsets(filter_name=branches)]
            for start, stop in partition_steps(tree.num_entries, step_size, offsets):
                events = tree.arrays(branches, entry_start=start, entry_stop=stop)
                began = time.perf_counter()
                selected = select_four_leptons(
                    *(events[b] for b in LEPTON_BRANCHES),
                    units_per_gev=release.analysis.units_per_gev,
                )
                passed = np.asarray(selected.passed)
                weight = np.asarray(event_weight(events, sample, release), dtype=np.float64)
                weight = weight[passed]
                histogram.fill(np.asarray(selected.m4l)[passed], weight=weight)
                result.n_out += int(passed.sum())
                result.sumw += float(weight.sum())
                result.seconds += time.perf_counter() - began
                result.events += len(events)
    return result
