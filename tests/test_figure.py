"""The figure says what it shows: ratio points above the panel drawn as arrows at its
edge, a legend of what is drawn only, and a word for what cannot be drawn (data partly
read, events all outside the axis, no data to compare), on real files."""

from __future__ import annotations

from pathlib import Path

import dask
import numpy as np
import pytest
from matplotlib.container import ErrorbarContainer

from analysis import build, inspect
from analysis.results.accounting import assemble_document
from analysis.results.document import HistogramDocument, from_json
from analysis.results.plot import RATIO_RANGE, draw

from .helpers import SHARED_DATA

MIRROR_2025 = SHARED_DATA / "atlas-opendata-2025" / "exactly4lep"


def _document(location: Path, release: str, **select: list[str]) -> HistogramDocument:
    graph = build(inspect(str(location), release, allow_missing=True, **select), readers=1)
    (computed,) = dask.compute(graph.outputs(), scheduler="sync")
    return from_json(assemble_document(graph.computed(computed)).to_json())


@pytest.fixture(scope="module")
def real_2020(mirror: Path) -> HistogramDocument:
    return _document(mirror, "2020")


@pytest.fixture(scope="module")
def one_period_2025() -> HistogramDocument:
    return _document(MIRROR_2025, "2025")


def _note(figure) -> str:
    (note,) = [t for t in figure.texts if t.get_gid() == "notes"]
    return note.get_text()


def test_ratio_points_above_the_panel_are_arrows_at_its_edge(
    real_2020: HistogramDocument,
) -> None:
    figure = draw(real_2020)
    _main, ratio = figure.axes
    counts = real_2020.group_histogram("Data").values()
    total = sum(real_2020.group_histogram(g.label).values() for g in real_2020.groups[1:])
    with np.errstate(divide="ignore", invalid="ignore"):
        values = np.where(total > 0, counts / total, np.nan)
    shown = (counts > 0) & (total > 0)
    above = shown & (values > RATIO_RANGE[1])
    assert above.sum() >= 10  # the default run: Z+tt̄ only under the data
    (points,) = [c for c in ratio.containers if isinstance(c, ErrorbarContainer)]
    _x, y = points.lines[0].get_data()
    assert np.array_equal(y, values[shown & ~above]) and max(y) <= RATIO_RANGE[1]
    arrows = [a for a in ratio.texts if a.get_gid() == "data-ratio-above"]
    centres = real_2020.group_histogram("Data").axes[0].centers
    assert sorted(a.xy[0] for a in arrows) == pytest.approx(centres[above])
    for arrow in arrows:  # pointing up, ending inside the panel at its top edge
        assert arrow.xyann[1] < arrow.xy[1] < RATIO_RANGE[1]
    assert not _note(figure).count("Partial")  # all four data periods read


def test_a_figure_of_one_2025_period_says_what_it_cannot_draw(
    one_period_2025: HistogramDocument,
) -> None:
    document = one_period_2025
    data = document.group_histogram("Data")
    assert data.values().sum() == 0 and data.sum(flow=True).value == 2  # both in overflow
    figure = draw(document)
    main, ratio = figure.axes
    # Nothing to draw: no legend entry for Data, and the strip and the panel say why.
    legend = main.get_legend()
    assert legend is None or "Data" not in [t.get_text() for t in legend.get_texts()]
    note = _note(figure)
    assert "Data: all 2 selected events lie outside 80–250 GeV" in note
    # Data partly read: said, with the luminosity the simulation is normalised to.
    assert "Partial data, 1 of 16 samples (data15_periodD)" in note
    assert f"the full {document.lumi_fb:g} fb" in note
    # Data is not "not drawn" for want of files: one period ran.
    (absent,) = [line for line in note.splitlines() if line.startswith("Not available")]
    assert "Data" not in absent
    (word,) = [t for t in ratio.texts if t.get_gid() == "ratio-note"]
    assert word.get_text() == "no data in range to compare"


def test_a_simulation_only_figure_says_so_in_the_ratio_panel(mirror: Path) -> None:
    document = _document(mirror, "2020", samples=["Zee"])
    figure = draw(document)
    main, ratio = figure.axes
    assert "Data" not in [t.get_text() for t in main.get_legend().get_texts()]
    (word,) = [t for t in ratio.texts if t.get_gid() == "ratio-note"]
    assert word.get_text() == "simulation only: no data"
    assert "Partial: 1 of 3 samples of Background" in _note(figure)
