"""The 2025 catalogue (package data): names, file layout, the real file in ../shared/data,
and the spec's published data counts, recorded here for the 2025 analysis to meet.
"""

from __future__ import annotations

import hashlib
import re

import uproot

from analysis.catalogue import load_release, locate

from .conftest import MIRROR_2020, SHARED_DATA

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
