"""The selection and m4l on hand-made events whose answers are known."""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest

from analysis.selection import four_lepton_mass, passes_selection


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
