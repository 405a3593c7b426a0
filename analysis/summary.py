"""What one partition contributes to a sample's result, as one row of numbers.

Selection, weights and the histogram fill run together in one function per partition,
and its result is a single row: events read, events selected, Σw, then the m4l
histogram's bin sums and variances (flow bins included). A sample's result is the sum
of its rows. In the graph that is one task per partition after the read, instead of a
dozen (kernel, masks, counts, weights, fill: each a task of its own when they are
separate dask-awkward operations), and a single tree reduction; the scheduler's work
per partition, which competes with the workers for the same cores on a small machine,
shrinks accordingly (``python -m bench``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import awkward as ak
import hist
import numpy as np

from .binning import m4l_axis
from .catalogue import Release, Sample, load_release
from .selection import PRESELECTIONS, select_four_leptons
from .weights import event_weight, weight_branches

#: Leading entries of a row; the histogram's values and variances follow.
N_IN, N_OUT, SUMW, FIRST_BIN = 0, 1, 2, 3


def branches_for(sample: Sample, release: Release | None = None) -> tuple[str, ...]:
    """The branches a sample needs: leptons and preselection, plus weights for simulation."""
    release = release or load_release("2020")
    settings = release.analysis
    branches = settings.lepton_branches
    if settings.preselection:
        branches += tuple(b for b in PRESELECTIONS[settings.preselection][0] if b not in branches)
    return branches if sample.is_data else branches + weight_branches(release)


def row_length(release: Release) -> int:
    """Entries in a row: three totals, then values and variances of every bin (with flow)."""
    return FIRST_BIN + 2 * (release.analysis.binning.bins + 2)


def row_meta(release: Release) -> ak.Array:
    """The typetracer of a partition's rows, for dask-awkward."""
    empty = ak.Array(np.zeros((0, row_length(release))))
    return ak.Array(empty.layout.to_typetracer(forget_length=True))


def empty_histogram(release: Release) -> hist.Hist:
    return hist.Hist(m4l_axis(release.analysis.binning), storage=hist.storage.Weight())


def summarise_partition(events: Any, sample: Sample, release: Release) -> ak.Array:
    """One row (a 1 × ``row_length`` float64 array) for the events of one partition.

    Counts are exact in float64 (below 2⁵³ events). m4l and the weights are computed as
    the notebook does (``select_four_leptons``, ``event_weight``: float32, then float64).
    """
    width = row_length(release)
    if ak.backend(events) == "typetracer":  # dask-awkward tracing: the columns read
        for branch in branches_for(sample, release):
            ak.typetracer.touch_data(events[branch])
        return row_meta(release)
    settings = release.analysis
    selected = select_four_leptons(
        *(events[branch] for branch in settings.lepton_branches),
        units_per_gev=settings.units_per_gev,
    )
    passed = np.asarray(selected.passed)
    if settings.preselection:
        branches, preselect = PRESELECTIONS[settings.preselection]
        passed = passed & np.asarray(preselect(*(events[branch] for branch in branches)))
    mass = np.asarray(selected.m4l)[passed]
    histogram = empty_histogram(release)
    if sample.is_data:
        histogram.fill(mass)
        sumw = float(np.count_nonzero(passed))
    else:
        weight = np.asarray(event_weight(events, sample, release), dtype=np.float64)[passed]
        histogram.fill(mass, weight=weight)
        sumw = float(weight.sum())
    row = np.empty((1, width))
    row[0, :FIRST_BIN] = (len(events), np.count_nonzero(passed), sumw)
    bins = histogram.view(flow=True)
    row[0, FIRST_BIN:] = np.concatenate([bins.value, bins.variance])
    return ak.Array(row)


@dataclass(frozen=True)
class SampleTotals:
    """A sample's result: events read and selected, Σw, the m4l histogram."""

    n_in: int
    n_out: int
    sumw: float
    hist: hist.Hist


def totals_from_row(row: Any, release: Release) -> SampleTotals:
    """A computed row (the sum of a sample's partition rows), read back."""
    values = np.asarray(row, dtype=np.float64).reshape(-1)
    if len(values) != row_length(release):
        raise ValueError(
            f"a row of {len(values)} numbers; release {release.name} has {row_length(release)}"
        )
    histogram = empty_histogram(release)
    bins = values[FIRST_BIN:]
    n = len(bins) // 2
    view = histogram.view(flow=True)
    view.value = bins[:n]
    view.variance = bins[n:]
    return SampleTotals(int(values[N_IN]), int(values[N_OUT]), float(values[SUMW]), histogram)
