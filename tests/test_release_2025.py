"""The 2025 catalogue (package data): names, file layout, the real file in ../shared/data,
and the spec's published data counts, recorded here for the 2025 analysis to meet.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import awkward as ak
import pytest
import uproot

from analysis.inputs.catalogue import load_release
from analysis.inputs.locations import locate
from analysis.physics.selection import PRESELECTIONS, trigger_pt_id_iso_2025
from analysis.physics.summary import branches_for
from analysis.physics.weights import event_weight
from analysis.results.document import from_json
from analysis.results.outputs import outputs_in
from analysis.results.plot import draw

from .helpers import MIRROR_2020, SHARED_DATA, hzz

MIRROR_2025 = SHARED_DATA / "atlas-opendata-2025" / "exactly4lep"

# shared/docs/analysis-spec.md, release "2025": events in → passing, all masses.
PUBLISHED_COUNTS_2025 = {
    "data15_periodD": (3424, 2),
    "data15_periodE": (25092, 17),
    "data15_periodF": (16234, 13),
    "data15_periodG": (37101, 24),
    "data15_periodH": (12152, 11),
    "data15_periodJ": (67630, 44),
    "data16_periodA": (29275, 19),
    "data16_periodB": (72544, 55),
    "data16_periodC": (91124, 79),
    "data16_periodD": (174618, 175),
    "data16_periodE": (54896, 45),
    "data16_periodF": (118615, 122),
    "data16_periodG": (134798, 139),
    "data16_periodI": (205285, 204),
    "data16_periodK": (84130, 68),
    "data16_periodL": (235693, 262),
}
PUBLISHED_PASSING_2025 = 1279

# The notebook's MC groups by DSID (the spec).
GROUP_DSIDS_2025 = {
    "z_tt": {410470, 410155, 410218, 410219, 412043, 364243, 364242, 364246, 364248}
    | set(range(700320, 700326)),
    "zz": {700600},
    "signal": {345060, 346228, 346310, 346311, 346312, 346340, 346341, 346342},
}

FILE_NAME = re.compile(
    r"ODEO_FEB2025_v0_exactly4lep_(?:data1[56]_period[A-Z]|mc_(\d{6})\.(\w+))\.exactly4lep\.root"
)


def test_the_2025_catalogue_loads_with_the_spec_numbers() -> None:
    release = load_release("2025")
    assert (release.name, release.lumi_fb, release.tree) == ("2025", 36.6, "analysis")
    assert release.default_location == (
        "https://opendata.cern.ch/eos/opendata/atlas/rucio/opendata/"
    )
    assert release.base_urls["xrootd"] == (
        "root://eospublic.cern.ch//eos/opendata/atlas/rucio/opendata/"
    )
    assert [g.key for g in release.groups] == ["data", "z_tt", "zz", "signal"]
    data = [s.name for s in release.samples.values() if s.is_data]
    assert data == list(PUBLISHED_COUNTS_2025)
    assert sum(n_out for _, n_out in PUBLISHED_COUNTS_2025.values()) == PUBLISHED_PASSING_2025
    for key, dsids in GROUP_DSIDS_2025.items():
        members = [release.samples[name] for name in release.group(key).samples]
        assert {s.dsid for s in members} == dsids
        assert all(s.group == key for s in members)
    assert release.samples["Sh_2212_llll"].dsid == 700600


def test_2025_files_are_flat_and_named_by_dsid_and_generator_tag() -> None:
    for sample in load_release("2025").samples.values():
        match = FILE_NAME.fullmatch(sample.path)
        assert match, sample.path
        if not sample.is_data:
            assert (int(match.group(1)), match.group(2)) == (sample.dsid, sample.name)
        else:
            assert sample.path == f"ODEO_FEB2025_v0_exactly4lep_{sample.name}.exactly4lep.root"


def test_the_real_2025_file_is_found_in_a_flat_mirror_and_matches() -> None:
    sample = load_release("2025").samples["data15_periodD"]
    found = locate(sample, [str(MIRROR_2025)])
    assert found == str(MIRROR_2025 / sample.path)
    with open(found, "rb") as handle:
        assert hashlib.sha256(handle.read()).hexdigest() == sample.sha256
    events_in, _ = PUBLISHED_COUNTS_2025["data15_periodD"]
    assert uproot.open(found)["analysis"].num_entries == events_in


def test_the_2020_catalogue_checksums_match_the_shared_files() -> None:
    release = load_release("2020")
    known = {name: s for name, s in release.samples.items() if s.sha256}
    assert set(known) == {"data_A", "data_B", "data_C", "data_D", "Zee", "Zmumu", "ttbar_lep"}
    for sample in known.values():
        digest = hashlib.sha256((MIRROR_2020 / sample.path).read_bytes()).hexdigest()
        assert digest == sample.sha256, sample.name


@pytest.mark.cluster
def test_hzz_run_release_2025_gives_the_published_count_and_the_2025_figure(
    tmp_path: Path,
) -> None:
    out = tmp_path / "plots"
    result = hzz(
        "run", "--release", "2025", "--data", str(MIRROR_2025), "--allow-missing",
        "--out", str(out), "--workers", "1", "--dashboard", ":0", "--no-progress",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    (doc_path,) = outputs_in(out, ".json")
    document = from_json(doc_path.read_bytes())
    assert (document.release, document.lumi_fb) == ("2025", 36.6)
    sample = document.samples["data15_periodD"]
    assert (sample.n_in, sample.n_out) == PUBLISHED_COUNTS_2025["data15_periodD"]
    assert sample.hist.axes[0].size == 68 and sample.hist.axes[0].widths[0] == 2.5
    sample.hist.fill([124.0, 124.5, 126.0])  # both real events lie outside 80–250 GeV
    figure = draw(document)
    ax = figure.axes[0]
    assert ax.get_ylabel() == "Events / 2.5 GeV"
    assert ax.get_ylim()[1] == 2.0 * 2  # the 2025 notebook's y range: 2 × highest data bin
    texts = " ".join(t.get_text() for t in ax.texts)
    assert "36.6" in texts and "ATLAS Open Data" in texts
    assert len(outputs_in(out, ".png")) == 1


def test_the_2025_selection_reads_its_own_branches() -> None:
    release = load_release("2025")
    data = branches_for(release.samples["data15_periodD"], release)
    assert {"lep_e", "trigE", "trigM", "lep_isTrigMatched", "lep_isMediumID"} <= set(data)
    assert not {"mcWeight", "xsec", "sum_of_weights"} & set(data)
    mc = branches_for(release.samples["Sh_2212_llll"], release)
    assert {"mcWeight", "xsec", "filteff", "kfac", "sum_of_weights", "ScaleFactor_PILEUP"} <= set(
        mc
    )


def test_2025_weights_take_the_absolute_value_of_every_factor() -> None:
    release = load_release("2025")
    events = ak.Array(
        {
            "sum_of_weights": [2.0e6],
            "xsec": [-0.5],
            "filteff": [0.8],
            "kfac": [-1.1],
            "mcWeight": [-3.0],
            "ScaleFactor_PILEUP": [0.9],
            "ScaleFactor_ELE": [-1.0],
            "ScaleFactor_MUON": [1.05],
            "ScaleFactor_LepTRIGGER": [0.97],
        }
    )
    expected = 36.6 * 1000 / 2.0e6 * 0.5 * 0.8 * 1.1 * 3.0 * 0.9 * 1.0 * 1.05 * 0.97
    weight = event_weight(events, release.samples["Sh_2212_llll"], release)
    assert float(weight[0]) == pytest.approx(expected, rel=1e-6)


def test_the_2025_preselection_on_hand_made_events() -> None:
    def event(**change: object) -> dict[str, object]:
        base: dict[str, object] = {
            "trigE": True, "trigM": False, "lep_isTrigMatched": [True, False, False, False],
            "lep_pt": [40.0, 30.0, 15.0, 8.0], "lep_type": [11, 11, 13, 13],
            "lep_isLooseID": [True, True, False, False], "lep_isLooseIso": [True] * 4,
            "lep_isMediumID": [False, False, True, True],
        }  # fmt: skip
        return {**base, **change}

    events = ak.Array(
        [
            event(),  # passes
            event(trigE=False),  # no trigger
            event(lep_isTrigMatched=[False] * 4),  # not matched
            event(lep_pt=[40.0, 30.0, 9.0, 8.0]),  # third lepton below 10 GeV
            event(lep_isMediumID=[False, False, True, False]),  # a muon fails its ID
            event(lep_isLooseIso=[True, True, True, False]),  # a muon fails isolation
        ]
    )
    mask = trigger_pt_id_iso_2025(*(events[b] for b in PRESELECTIONS["trigger_pt_id_iso_2025"][0]))
    assert ak.to_list(mask) == [True, False, False, False, False, False]
