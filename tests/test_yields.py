"""The notebook's published per-file counts and weighted yields, reproduced exactly."""

from __future__ import annotations

from pathlib import Path

import dask
import pytest

from analysis import build, inspect
from analysis.results.accounting import assemble_document
from analysis.results.document import HistogramDocument

from .helpers import ON_DISK, PUBLISHED_COUNTS, PUBLISHED_YIELDS, YIELD_REL_TOL


@pytest.fixture(scope="module")
def document(mirror: Path) -> HistogramDocument:
    graph = build(inspect(mirror, samples=ON_DISK), step_size=250)
    (computed,) = dask.compute(graph.outputs(), scheduler="sync")
    return assemble_document(graph.computed(computed))


@pytest.mark.parametrize("name", ON_DISK)
def test_events_in_and_passing_match_the_notebook(document: HistogramDocument, name: str) -> None:
    result = document.samples[name]
    assert (result.n_in, result.n_out) == PUBLISHED_COUNTS[name]


@pytest.mark.parametrize("name", sorted(PUBLISHED_YIELDS))
def test_weighted_yields_match_the_notebook(document: HistogramDocument, name: str) -> None:
    assert document.samples[name].sumw == pytest.approx(PUBLISHED_YIELDS[name], rel=YIELD_REL_TOL)


@pytest.mark.parametrize("name", ON_DISK)
def test_histogram_holds_the_passing_events_in_range(
    document: HistogramDocument, name: str
) -> None:
    result = document.samples[name]
    h = result.hist
    total = h.sum(flow=True)
    assert total.value == pytest.approx(result.sumw, rel=1e-12)
    assert h.sum(flow=True).variance > 0


def test_data_are_unweighted_counts(document: HistogramDocument) -> None:
    for name in ("data_A", "data_B", "data_C", "data_D"):
        h = document.samples[name].hist
        assert (h.values(flow=True) == h.variances(flow=True)).all()
        assert document.samples[name].sumw == document.samples[name].n_out


def test_data_counts_in_the_peak_region(document: HistogramDocument) -> None:
    """Data in 80–250 GeV: fewer than passing (some events lie outside the axis)."""
    in_range = sum(document.samples[n].hist.sum().value for n in ON_DISK[:4])
    assert 0 < in_range < sum(PUBLISHED_COUNTS[n][1] for n in ON_DISK[:4])
