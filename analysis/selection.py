"""The four-lepton selection and m4l, written once for awkward and dask-awkward arrays.

Everything here uses only operators and slicing, which both array libraries share,
so the same functions run eagerly in tests and lazily in the Dask graph.
"""

from __future__ import annotations

from typing import Any

import awkward as ak
import dask_awkward as dak
import vector

MEV_PER_GEV = 1000.0

#: Sums of lep_type over the first four leptons accepted by the notebook
#: (11 = electron, 13 = muon): eeee = 44, eeμμ = 48, μμμμ = 52.
ALLOWED_TYPE_SUMS = (44, 48, 52)

#: The lepton branches the selection and the mass read.
LEPTON_BRANCHES = ("lep_pt", "lep_eta", "lep_phi", "lep_E", "lep_charge", "lep_type")


def _first_four_sum(values: Any) -> Any:
    return values[:, 0] + values[:, 1] + values[:, 2] + values[:, 3]


def passes_selection(events: Any) -> Any:
    """Per-event mask: zero net charge and an allowed flavour sum on the first four leptons.

    These sum-based cuts are the notebook's proxies (e+e+μ-μ- passes); kept as they are.
    """
    charge_ok = _first_four_sum(events.lep_charge) == 0
    type_sum = _first_four_sum(events.lep_type)
    type_ok = (
        (type_sum == ALLOWED_TYPE_SUMS[0])
        | (type_sum == ALLOWED_TYPE_SUMS[1])
        | (type_sum == ALLOWED_TYPE_SUMS[2])
    )
    return charge_ok & type_ok


def four_lepton_mass(events: Any) -> Any:
    """Invariant mass of the first four leptons in GeV, from (pt, eta, phi, E) in MeV."""
    zip_ = dak.zip if isinstance(events, dak.Array) else ak.zip
    leptons = zip_(
        {
            "pt": events.lep_pt,
            "eta": events.lep_eta,
            "phi": events.lep_phi,
            "E": events.lep_E,
        },
        with_name="Momentum4D",
        behavior=vector.backends.awkward.behavior,
    )
    total = leptons[:, 0] + leptons[:, 1] + leptons[:, 2] + leptons[:, 3]
    return total.mass / MEV_PER_GEV
