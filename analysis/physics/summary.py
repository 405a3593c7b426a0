"""What one partition contributes to a sample's result: a row of numbers, and how it was read.

Selection, weights and the histogram fills run in one function per partition
(``partition_summary``), fused with the read into one task, which sends back one small
record: events read and selected, Σw, the m4l histogram's values and variances (flow
bins included), the same for each systematic variation (zeros for data), and the read
outcome. A sample's result is the exact sum of its rows (``rows_total``).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Any

import awkward as ak
import hist
import numpy as np

from analysis.errors import resource_exhausted
from analysis.inputs.binning import m4l_axis
from analysis.inputs.catalogue import Release, Sample, load_release
from analysis.inputs.reader import read_outcome
from analysis.inputs.sanity import check_events
from analysis.physics.selection import PRESELECTIONS, select_four_leptons
from analysis.physics.systematics import VARIATION_NAMES, fill_variations
from analysis.physics.weights import event_weight, weight_branches

#: Leading entries of a row; the histogram's values and variances follow, then those
#: of each variation (``VARIATION_NAMES`` order).
N_IN, N_OUT, SUMW, FIRST_BIN = 0, 1, 2, 3


def branches_for(sample: Sample, release: Release | None = None) -> tuple[str, ...]:
    """The branches a sample needs: leptons and preselection, plus weights for simulation."""
    release = release or load_release("2020")
    settings = release.analysis
    branches = settings.lepton_branches
    if settings.preselection:
        branches += tuple(b for b in PRESELECTIONS[settings.preselection][0] if b not in branches)
    return branches if sample.is_data else branches + weight_branches(release)


def histogram_width(release: Release) -> int:
    """Entries of one histogram in a row: values and variances of every bin (with flow)."""
    return 2 * (release.analysis.binning.bins + 2)


def row_length(release: Release) -> int:
    """Entries in a row: three totals, the nominal histogram, then each variation's."""
    return FIRST_BIN + histogram_width(release) * (1 + len(VARIATION_NAMES))


def _string(text: str) -> ak.contents.Content:
    """One string, as a layout."""
    data = np.frombuffer(text.encode(), dtype=np.uint8)
    return ak.contents.ListOffsetArray(
        ak.index.Index64(np.array([0, len(data)], dtype=np.int64)),
        ak.contents.NumpyArray(data, parameters={"__array__": "char"}),
        parameters={"__array__": "string"},
    )


def _optional_string(text: str | None) -> ak.contents.Content:
    """One string or None, as a layout whose type is ?string either way."""
    valid = np.array([text is not None], dtype=np.int8)
    return ak.contents.ByteMaskedArray(ak.index.Index8(valid), _string(text or ""), True)


def summary_record(row: np.ndarray, outcome: dict[str, Any]) -> ak.Array:
    """A one-record array: ``row`` and the read ``outcome``, built directly as a layout
    (``ak.enforce_type`` parses its type string on every call: 6 % of a task)."""
    fields = {
        "row": ak.contents.RegularArray(
            ak.contents.NumpyArray(np.ascontiguousarray(row, dtype=np.float64).reshape(-1)),
            size=row.size,
        ),
        "location": _string(outcome.get("location", "")),
        "entry_start": ak.contents.NumpyArray(np.array([outcome.get("entry_start", 0)], np.int64)),
        "entry_stop": ak.contents.NumpyArray(np.array([outcome.get("entry_stop", 0)], np.int64)),
        "exception": _optional_string(outcome.get("exception")),
        "message": _optional_string(outcome.get("message")),
        "seconds": ak.contents.NumpyArray(np.array([outcome.get("seconds", 0.0)], np.float64)),
    }
    return ak.Array(ak.contents.RecordArray(list(fields.values()), list(fields), length=1))


def summary_meta(release: Release) -> ak.Array:
    """The typetracer of a partition's summary, for dask-awkward: one per row length,
    made once (7 ms each, twice for every sample of every graph built)."""
    return _summary_meta(row_length(release))


@functools.cache
def _summary_meta(length: int) -> ak.Array:
    example = summary_record(np.zeros(length), {})
    return ak.Array(example.layout.to_typetracer(forget_length=True))


def empty_histogram(release: Release) -> hist.Hist:
    return hist.Hist(m4l_axis(release.analysis.binning), storage=hist.storage.Weight())


def summarise_partition(events: Any, sample: Sample, release: Release) -> ak.Array:
    """One row (a 1 × ``row_length`` float64 array) for the events of one partition.

    Counts are exact in float64 (below 2⁵³ events). m4l and the weights are computed as
    the notebook does (``select_four_leptons``, ``event_weight``: float32, then float64).
    Simulation also fills the variations from the same selected m4l and weights.
    """
    width = row_length(release)
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
    varied: list[tuple[np.ndarray, np.ndarray]] = []
    if sample.is_data:
        histogram.fill(mass)
        sumw = float(np.count_nonzero(passed))
    else:
        weight = np.asarray(event_weight(events, sample, release), dtype=np.float64)[passed]
        histogram.fill(mass, weight=weight)
        sumw = float(weight.sum())
        varied = fill_variations(mass, weight, histogram)
    row = np.zeros((1, width))
    row[0, :FIRST_BIN] = (len(events), np.count_nonzero(passed), sumw)
    bins = histogram.view(flow=True)
    step = histogram_width(release)
    row[0, FIRST_BIN : FIRST_BIN + step] = np.concatenate([bins.value, bins.variance])
    for k, (values, variances) in enumerate(varied, start=1):
        start = FIRST_BIN + k * step
        row[0, start : start + step] = np.concatenate([values, variances])
    return ak.Array(row)


def partition_summary(events: Any, sample: Sample, release: Release) -> ak.Array:
    """A one-record array: the partition's row and how it was read (``read_outcome``).

    The function the graph maps over the read partitions. Under dask-awkward's tracing
    it touches the branches the sample needs (column projection) and returns the meta.
    """
    if ak.backend(events) == "typetracer":
        for branch in branches_for(sample, release):
            ak.typetracer.touch_data(events[branch])
        return summary_meta(release)
    outcome = read_outcome(events) or {"entry_stop": len(events)}
    row = np.zeros(row_length(release))
    exhausted = None
    if outcome.get("exception") is None:
        try:  # readable but wrong (analysis.inputs.sanity): the file is bad, named and skippable
            check_events(events, release, outcome.get("entry_start", 0))
            row = np.asarray(summarise_partition(events, sample, release))
        except Exception as error:
            where = f"{outcome.get('location')} entries {outcome.get('entry_start')}–"
            exhausted = resource_exhausted(error, where + str(outcome.get("entry_stop")))
            if exhausted is None:
                outcome = {**outcome, "exception": type(error).__name__, "message": str(error)}
    if exhausted is not None:  # the machine's fault, not the file's: the run fails
        raise exhausted  # outside the handler: the error's frames are freed first
    return summary_record(row, outcome)


def rows_total(summaries: Any, release: Release) -> np.ndarray:
    """The sum of computed partition summaries' rows (zeros when there are none).

    Each column is summed exactly (``math.fsum``, correctly rounded), so the total does
    not depend on the order the partitions come in (the graph interleaves files for
    the workers' sake) nor on how many workers computed them.
    """
    rows = np.asarray(ak.to_numpy(summaries["row"]), dtype=np.float64)
    rows = rows.reshape(-1, row_length(release))
    return np.array([math.fsum(column) for column in rows.T], dtype=np.float64)


@dataclass(frozen=True)
class SampleTotals:
    """A sample's result: events read and selected, Σw, the m4l histogram and, for
    simulation, its variations by name (empty for data)."""

    n_in: int
    n_out: int
    sumw: float
    hist: hist.Hist
    variations: dict[str, hist.Hist] = field(default_factory=dict)


def _histogram_from(bins: np.ndarray, release: Release) -> hist.Hist:
    histogram = empty_histogram(release)
    n = len(bins) // 2
    view = histogram.view(flow=True)
    view.value = bins[:n]
    view.variance = bins[n:]
    return histogram


def totals_from_row(row: Any, release: Release, is_data: bool = False) -> SampleTotals:
    """A computed row (the sum of a sample's partition rows), read back; the variations
    of simulation too (``is_data``: none)."""
    values = np.asarray(row, dtype=np.float64).reshape(-1)
    if len(values) != row_length(release):
        raise ValueError(
            f"a row of {len(values)} numbers; release {release.name} has {row_length(release)}"
        )
    step = histogram_width(release)
    histogram = _histogram_from(values[FIRST_BIN : FIRST_BIN + step], release)
    variations = {}
    if not is_data:
        for k, name in enumerate(VARIATION_NAMES, start=1):
            start = FIRST_BIN + k * step
            variations[name] = _histogram_from(values[start : start + step], release)
    return SampleTotals(
        int(values[N_IN]), int(values[N_OUT]), float(values[SUMW]), histogram, variations
    )
