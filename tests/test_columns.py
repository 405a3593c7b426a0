"""Column projection: only the 11 branches of the spec are read (6 for data)."""

from __future__ import annotations

from pathlib import Path

import dask_awkward as dak

from analysis.catalogue import load_release
from analysis.graph import build_graph

SPEC_BRANCHES = {
    "lep_pt",
    "lep_eta",
    "lep_phi",
    "lep_E",
    "lep_charge",
    "lep_type",
    "mcWeight",
    "scaleFactor_PILEUP",
    "scaleFactor_ELE",
    "scaleFactor_MUON",
    "scaleFactor_LepTRIGGER",
}
LEPTON_BRANCHES = {b for b in SPEC_BRANCHES if b.startswith("lep_")}


def test_only_the_spec_branches_are_read(mirror: Path) -> None:
    release = load_release("2020")
    graph = build_graph(release, release.select(samples=["data_A", "Zee"]), [str(mirror)])
    for sample_graph in graph.samples:
        columns = dak.necessary_columns(*sample_graph.outputs())
        (read,) = columns.values()
        expected = LEPTON_BRANCHES if sample_graph.sample.is_data else SPEC_BRANCHES
        assert set(read) == expected, sample_graph.sample.name


def test_the_files_have_many_more_branches(mirror: Path) -> None:
    import uproot

    with uproot.open(mirror / "MC" / "mc_361106.Zee.4lep.root") as f:
        assert len(f["mini"].keys()) == 81
