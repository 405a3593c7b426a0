"""The selection and m4l on hand-made events whose answers are known."""

from __future__ import annotations

from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import uproot
import vector

from analysis.physics.selection import (
    LEPTON_BRANCHES,
    four_lepton_mass,
    passes_selection,
    select_four_leptons,
)
from analysis.standins import write_standins


def _events(charges: list[list[int]], types: list[list[int]]) -> ak.Array:
    n = [len(c) for c in charges]
    ones = [[1.0] * k for k in n]
    return ak.Array(
        {
            "lep_charge": charges,
            "lep_type": types,
            "lep_pt": ones,
            "lep_eta": ones,
            "lep_phi": ones,
            "lep_E": ones,
        }
    )


def test_charge_and_flavour_sums_on_the_first_four_leptons() -> None:
    events = _events(
        charges=[[1, -1, 1, -1], [1, 1, -1, -1], [1, -1, 1, 1], [1, -1, 1, -1, 1], [1, -1, 1, -1]],
        types=[
            [11, 11, 13, 13],
            [11, 11, 13, 13],
            [13, 13, 13, 13],
            [13, 13, 13, 13, 11],
            [11, 11, 11, 13],
        ],
    )
    # eeμμ; e+e+μ-μ- (the notebook's proxy lets it pass); net charge +2;
    # fifth lepton ignored; eeeμ (type sum 46) rejected.
    assert passes_selection(events).tolist() == [True, True, False, True, False]


def test_mass_of_two_back_to_back_z_bosons() -> None:
    """Four massless leptons from two Z at rest along ±x and ±y: m4l = 2 · 91.1876 GeV."""
    mz = 91_187.6  # MeV
    half = mz / 2
    pt = [[half, half, half, half]]
    phi = [[0.0, np.pi, np.pi / 2, -np.pi / 2]]
    events = ak.Array(
        {
            "lep_pt": pt,
            "lep_eta": [[0.0] * 4],
            "lep_phi": phi,
            "lep_E": pt,
            "lep_charge": [[1, -1, 1, -1]],
            "lep_type": [[11, 11, 13, 13]],
        }
    )
    assert four_lepton_mass(events)[0] == pytest.approx(2 * mz / 1000, rel=1e-6)


def notebook_selection_and_mass(events: ak.Array) -> tuple[np.ndarray, np.ndarray]:
    """The notebook's own code: jagged slicing, vector.zip, ``.M * MeV`` on selected events."""
    q, t = events.lep_charge, events.lep_type
    passed = (q[:, 0] + q[:, 1] + q[:, 2] + q[:, 3]) == 0
    type_sum = t[:, 0] + t[:, 1] + t[:, 2] + t[:, 3]
    passed = passed & ((type_sum == 44) | (type_sum == 48) | (type_sum == 52))
    chosen = events[passed]
    p4 = vector.zip(
        {"pt": chosen.lep_pt, "eta": chosen.lep_eta, "phi": chosen.lep_phi, "E": chosen.lep_E}
    )
    mass = (p4[:, 0] + p4[:, 1] + p4[:, 2] + p4[:, 3]).M * 0.001
    return np.asarray(passed), np.asarray(mass)


@pytest.mark.parametrize(
    "relative", ["Data/data_D.4lep.root", "MC/mc_361106.Zee.4lep.root", "standin"]
)
def test_the_fused_kernel_equals_the_notebook_bit_for_bit(
    relative: str, mirror: Path, tmp_path: Path
) -> None:
    if relative == "standin":  # 30k ZZ* events, some with five leptons
        write_standins(tmp_path, ["llll"], events=30_000, seed=7)
        path = tmp_path / "MC" / "mc_363490.llll.4lep.root"
    else:
        path = mirror / relative
    with uproot.open(path) as file:
        events = file["mini"].arrays(list(LEPTON_BRANCHES))
    expected_passed, expected_mass = notebook_selection_and_mass(events)
    result = select_four_leptons(*(events[b] for b in LEPTON_BRANCHES))
    passed = np.asarray(result.passed)
    assert np.array_equal(passed, expected_passed)
    assert np.array_equal(np.asarray(result.m4l)[passed], expected_mass)  # bit for bit
    assert np.asarray(result.m4l).dtype == expected_mass.dtype == np.float32


def test_events_with_fewer_than_four_leptons_never_pass() -> None:
    events = _events(charges=[[1, -1, 1], [1, -1, 1, -1]], types=[[11, 11, 13], [11, 11, 13, 13]])
    result = select_four_leptons(*(events[b] for b in LEPTON_BRANCHES))
    assert np.asarray(result.passed).tolist() == [False, True]
    assert np.isnan(np.asarray(result.m4l)[0])


def test_the_fast_azimuth_wrap_is_vectors_bit_for_bit() -> None:
    """``_rectify`` against vector's ``rectify`` on edges, random sums of two azimuths
    and values far out of range (which take vector's own expression)."""
    from vector._compute.planar.add import rectify

    from analysis.physics.selection import _rectify

    two_pi, pi = np.float32(2 * np.pi), np.float32(np.pi)
    edges = np.array(
        [0.0, -0.0, pi, -pi, two_pi, -two_pi, 2 * two_pi, 3 * pi, -3 * pi, 1e-30, -1e-30],
        dtype=np.float32,
    )
    near = np.concatenate([np.nextafter(edges, np.float32(np.inf)), np.nextafter(edges, -np.inf)])
    rng = np.random.default_rng(3)
    sums = (rng.uniform(-np.pi, np.pi, 200_000) + rng.uniform(-np.pi, np.pi, 200_000)).astype(
        np.float32
    )
    for phi in (edges, near.astype(np.float32), sums):
        expected = rectify(np, phi)
        assert np.array_equal(_rectify(phi).view(np.uint32), expected.view(np.uint32))
    far = np.array([100.0, -1e6, np.nan, np.inf], dtype=np.float32)
    with np.errstate(invalid="ignore"):
        assert np.array_equal(_rectify(far), rectify(np, far), equal_nan=True)
