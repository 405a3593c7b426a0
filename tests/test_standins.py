"""Stand-ins: real 2020 format, physically sensible, normalised, reproducible, marked.

The format is checked against a real file of /work/shared/data; the physics by running
real data, real backgrounds and stand-ins through the real pipeline.
"""

from __future__ import annotations

from pathlib import Path

import awkward as ak
import dask
import numpy as np
import pytest
import uproot

from analysis import build, inspect
from analysis.inputs.catalogue import load_release
from analysis.physics.selection import LEPTON_BRANCHES
from analysis.physics.weights import WEIGHT_BRANCHES
from analysis.results.accounting import assemble_document
from analysis.results.plot import notes, render_png
from analysis.results.report import yields_table
from analysis.standins import STANDINS, read_mark, write_standins
from cluster.cli import main as cli_main

from .helpers import PUBLISHED_YIELDS, YIELD_REL_TOL

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
REAL_BASE = SHARED / "atlas-opendata-2020" / "4lep"
REAL_MC = REAL_BASE / "MC" / "mc_361106.Zee.4lep.root"
EVENTS = 20_000
PUBLISHED = {name: spec.yield_ for name, spec in STANDINS.items()}

needs_real = pytest.mark.skipif(not REAL_MC.is_file(), reason=f"real files not at {SHARED}")


@pytest.fixture(scope="module")
def standins(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("standins")
    write_standins(out, events=EVENTS, seed=7)
    return out


def _path(base: Path, name: str) -> Path:
    return base / load_release("2020").samples[name].path


def _dtype(branch: uproot.TBranch) -> np.dtype:
    """The on-disk dtype of a branch's values (of its list contents if jagged)."""
    interpretation = branch.interpretation
    return getattr(interpretation, "content", interpretation).to_dtype


@needs_real
def test_branches_read_by_the_analysis_have_the_real_names_and_types(standins: Path) -> None:
    real = uproot.open(REAL_MC)["mini"]
    made = uproot.open(_path(standins, "ggH125_ZZ4lep"))["mini"]
    for branch in LEPTON_BRANCHES + WEIGHT_BRANCHES:
        real_type = str(real[branch].array(entry_stop=5).type.content)
        assert str(made[branch].array(entry_stop=5).type.content) == real_type, branch
        assert _dtype(made[branch]) == _dtype(real[branch]), branch
    # Every real branch name exists too (jets, photons, taus are empty collections).
    assert set(real.keys()) <= set(made.keys())
    assert _dtype(made["lep_n"]) == _dtype(real["lep_n"]) == np.dtype(np.uint32)
    lazy = uproot.dask({str(_path(standins, "llll")): "mini"})
    assert str(lazy["lep_pt"].type).endswith("var * float32")


def test_file_layout_compression_and_mark(standins: Path) -> None:
    path = _path(standins, "llll")
    file = uproot.open(path)
    assert file.file.compression == uproot.ZLIB(1)
    assert file["mini"].num_entries == EVENTS
    mark = read_mark(str(path))
    assert mark is not None
    assert (mark["sample"], mark["events"], mark["seed"]) == ("llll", EVENTS, 7)


@needs_real
def test_real_file_carries_no_mark() -> None:
    assert read_mark(str(REAL_MC)) is None


def test_events_look_like_the_skim(standins: Path) -> None:
    events = uproot.open(_path(standins, "WH125_ZZ4lep"))["mini"].arrays()
    assert ak.all(events.lep_n == ak.num(events.lep_pt))
    assert set(np.unique(ak.to_numpy(events.lep_n))) == {4, 5}
    assert set(np.unique(ak.flatten(events.lep_type))) == {11, 13}
    assert set(np.unique(ak.flatten(events.lep_charge))) == {-1, 1}
    pt = events.lep_pt
    assert ak.all(pt[:, :-1] >= pt[:, 1:])  # decreasing pT, as in the real files
    assert ak.min(pt) > 5000.0  # MeV
    assert ak.all(events.channelNumber == 341964)


def test_same_seed_same_arrays_other_seed_other_arrays(tmp_path: Path) -> None:
    for seed, folder in ((1, "a"), (1, "b"), (2, "c")):
        write_standins(tmp_path / folder, ["ZH125_ZZ4lep"], events=2000, seed=seed)
    names = ["lep_pt", "lep_eta", "lep_charge", "lep_type", "mcWeight", "scaleFactor_PILEUP"]
    a, b, c = (
        uproot.open(_path(tmp_path / f, "ZH125_ZZ4lep"))["mini"].arrays(names) for f in "abc"
    )
    assert ak.array_equal(a, b)
    assert not ak.array_equal(a.lep_pt, c.lep_pt)


@needs_real
def test_pipeline_on_real_files_and_standins(standins: Path, tmp_path: Path) -> None:
    graph = build(inspect([REAL_BASE, standins]))
    assert graph.generated == list(STANDINS)
    (computed,) = dask.compute(graph.outputs(), scheduler="sync")
    document = assemble_document(graph.computed(computed))

    for name, published in PUBLISHED.items():
        result = document.samples[name]
        assert result.n_in == EVENTS
        assert abs(result.sumw / published - 1) < 0.10, name
        expected_pass = STANDINS[name].pass_fraction
        assert abs(result.n_out / result.n_in - expected_pass) < 0.02, name
    # Real samples are untouched by the stand-ins next to them.
    assert document.samples["Zee"].sumw == pytest.approx(PUBLISHED_YIELDS["Zee"], rel=YIELD_REL_TOL)

    signal = document.group_histogram("Signal ($m_H$ = 125 GeV)")
    centres, weights = signal.axes[0].centers, signal.values()
    window = (centres > 115) & (centres < 135)
    peak = np.average(centres[window], weights=weights[window])
    assert abs(peak - 125.0) < 2.0
    zz = document.samples["llll"].hist
    assert zz.values()[zz.axes[0].index(91.0)] > 3 * zz.values()[zz.axes[0].index(140.0)]

    assert document.generated == list(STANDINS)
    assert "Simulated stand-ins: Background $ZZ^*$, Signal" in "\n".join(notes(document))
    assert "llll *" in yields_table(document)
    png = tmp_path / "figure.png"
    png.write_bytes(render_png(document))
    assert png.read_bytes().startswith(b"\x89PNG")


def test_cli_generate_splits_files(tmp_path: Path) -> None:
    code = cli_main(
        ["generate", "--out", str(tmp_path), "--samples", "ggH125_ZZ4lep", "--events", "3001",
         "--files", "3", "--seed", "5"]
    )  # fmt: skip
    assert code == 0
    parts = sorted(tmp_path.glob("part-*/MC/mc_345060.ggH125_ZZ4lep.4lep.root"))
    assert [p.parent.parent.name for p in parts] == ["part-001", "part-002", "part-003"]
    entries = [uproot.open(p)["mini"].num_entries for p in parts]
    assert sum(entries) == 3001
    assert [read_mark(str(p))["part"] for p in parts] == [1, 2, 3]


def test_cli_generate_rejects_unknown_sample(tmp_path: Path) -> None:
    assert cli_main(["generate", "--out", str(tmp_path), "--samples", "Zee"]) == 2
