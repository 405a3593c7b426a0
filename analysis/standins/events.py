"""A stand-in sample as the 2020 ``mini`` tree's branches, normalised to its published yield.

Turns the generated leptons into every branch of the real files (MeV, float32, the
real integer types) and sets ``mcWeight`` so that the pipeline's own weight formula,
on the events passing the pipeline's own selection, gives the spec's yield exactly,
whatever the number of events.
"""

from __future__ import annotations

import awkward as ak
import numpy as np

from analysis.inputs.catalogue import load_release
from analysis.physics.selection import passes_cuts
from analysis.physics.weights import normalisation
from analysis.standins.physics import (
    ELECTRON,
    MAX_LEPTONS,
    MUON,
    Leptons,
    generate_leptons,
    scale_factors,
)
from analysis.standins.samples import StandinSpec

MEV_PER_GEV = 1000.0
MC_RUN_NUMBER = 284500  # mc16a, as in the real 2020 MC files
TRIGGER_PT_GEV = 25.0

#: Jagged collections of the real files that the stand-ins leave empty (not simulated),
#: with their fields and dtypes, so every one of the 81 branch names exists.
EMPTY_COLLECTIONS: dict[str, dict[str, str]] = {
    "jet": {
        "pt": "float32", "eta": "float32", "phi": "float32", "E": "float32",
        "jvt": "float32", "trueflav": "int32", "truthMatched": "bool", "MV2c10": "float32",
        "pt_syst": "float32",
    },
    "photon": {
        "truthMatched": "bool", "trigMatched": "bool", "pt": "float32", "eta": "float32",
        "phi": "float32", "E": "float32", "isTightID": "bool", "ptcone30": "float32",
        "etcone20": "float32", "convType": "int32", "pt_syst": "float32",
    },
    "tau": {
        "pt": "float32", "eta": "float32", "phi": "float32", "E": "float32",
        "isTightID": "bool", "truthMatched": "bool", "trigMatched": "bool", "nTracks": "int32",
        "BDTid": "float32", "pt_syst": "float32", "charge": "int32",
    },
    "largeRjet": {
        "pt": "float32", "eta": "float32", "phi": "float32", "E": "float32", "m": "float32",
        "truthMatched": "float32", "D2": "float32", "tau32": "float32", "pt_syst": "float32",
    },
}  # fmt: skip


def _jagged(padded: np.ndarray, present: np.ndarray, counts: np.ndarray, dtype: str) -> ak.Array:
    return ak.unflatten(padded[present].astype(dtype), counts)


def lepton_columns(
    rng: np.random.Generator, leptons: Leptons, trig_e: np.ndarray, trig_m: np.ndarray
) -> dict[str, ak.Array]:
    """The ``lep_*`` jagged branches (without the ``lep_`` prefix), in MeV."""
    shape = leptons.pt.shape
    present = np.arange(MAX_LEPTONS)[None, :] < leptons.n[:, None]
    pt_mev = leptons.pt * MEV_PER_GEV
    matched = (leptons.pt > TRIGGER_PT_GEV) & (
        ((leptons.type == ELECTRON) & trig_e[:, None]) | ((leptons.type == MUON) & trig_m[:, None])
    )
    ptcone = np.where(rng.random(shape) < 0.7, 0.0, rng.exponential(1000.0, shape))
    padded = {
        "truthMatched": (~leptons.fake, "bool"),
        "trigMatched": (matched, "bool"),
        "pt": (pt_mev, "float32"),
        "eta": (leptons.eta, "float32"),
        "phi": (leptons.phi, "float32"),
        "E": (leptons.E * MEV_PER_GEV, "float32"),
        "z0": (rng.normal(0.0, 0.05, shape), "float32"),
        "charge": (leptons.charge, "int32"),
        "type": (leptons.type, "uint32"),
        "isTightID": (~leptons.fake | (rng.random(shape) < 0.7), "bool"),
        "ptcone30": (ptcone, "float32"),
        "etcone20": (rng.normal(200.0, 800.0, shape), "float32"),
        "trackd0pvunbiased": (rng.normal(0.0, 0.02, shape), "float32"),
        "tracksigd0pvunbiased": (np.abs(rng.normal(0.0, 1.2, shape)), "float32"),
        "pt_syst": (pt_mev * np.abs(rng.normal(0.0, 0.005, shape)), "float32"),
    }
    counts = leptons.n
    return {
        name: _jagged(values, present, counts, dtype) for name, (values, dtype) in padded.items()
    }


def empty_collection(fields: dict[str, str], n: int) -> ak.Array:
    """A record of empty lists per event: the collection exists but holds nothing."""
    counts = np.zeros(n, dtype=np.int64)
    return ak.zip(
        {name: ak.unflatten(np.zeros(0, dtype=dtype), counts) for name, dtype in fields.items()},
        depth_limit=None,
    )


def generate_sample(
    spec: StandinSpec, n: int, rng: np.random.Generator, first_event: int = 1
) -> dict[str, np.ndarray | ak.Array]:
    """All branches of ``n`` events of ``spec``; jagged collections as awkward records."""
    leptons, _ = generate_leptons(rng, spec, n)
    factors = scale_factors(rng, leptons)
    present = np.arange(MAX_LEPTONS)[None, :] < leptons.n[:, None]
    trig_e = np.any(present & (leptons.type == ELECTRON) & (leptons.pt > TRIGGER_PT_GEV), axis=1)
    trig_m = np.any(present & (leptons.type == MUON) & (leptons.pt > TRIGGER_PT_GEV), axis=1)
    lep = lepton_columns(rng, leptons, trig_e, trig_m)

    release = load_release("2020")
    sample = release.samples[spec.name]
    spread = np.clip(rng.normal(1.0, 0.05, n), 0.5, 1.5)  # generator weights vary a little
    factor_product = np.prod([factors[k] for k in sorted(factors)], axis=0)
    selected = np.asarray(passes_cuts(lep["charge"], lep["type"]))
    per_weight = normalisation(sample, release.lumi_fb) * float(
        np.sum((spread * factor_product)[selected])
    )
    scale = spec.yield_ / per_weight
    met = rng.gamma(1.5, 10.0, n) * MEV_PER_GEV

    branches: dict[str, np.ndarray | ak.Array] = {
        "runNumber": np.full(n, MC_RUN_NUMBER, dtype=np.int32),
        "eventNumber": np.arange(first_event, first_event + n, dtype=np.int32),
        "channelNumber": np.full(n, spec.dsid, dtype=np.int32),
        "mcWeight": (scale * spread).astype(np.float32),
        "scaleFactor_PILEUP": factors["scaleFactor_PILEUP"].astype(np.float32),
        "scaleFactor_ELE": factors["scaleFactor_ELE"].astype(np.float32),
        "scaleFactor_MUON": factors["scaleFactor_MUON"].astype(np.float32),
        "scaleFactor_PHOTON": np.ones(n, dtype=np.float32),
        "scaleFactor_TAU": np.ones(n, dtype=np.float32),
        "scaleFactor_BTAG": np.ones(n, dtype=np.float32),
        "scaleFactor_LepTRIGGER": factors["scaleFactor_LepTRIGGER"].astype(np.float32),
        "scaleFactor_PhotonTRIGGER": np.ones(n, dtype=np.float32),
        "trigE": trig_e,
        "trigM": trig_m,
        "trigP": np.zeros(n, dtype=bool),
        "lep_n": leptons.n.astype(np.uint32),
        "lep": ak.zip(lep, depth_limit=None),
        "met_et": met.astype(np.float32),
        "met_phi": rng.uniform(-np.pi, np.pi, n).astype(np.float32),
        "ditau_m": np.zeros(n, dtype=np.float32),
        "met_et_syst": (met * np.abs(rng.normal(1.0, 0.05, n))).astype(np.float32),
        "XSection": np.full(n, sample.xsec_pb, dtype=np.float32),
        "SumWeights": np.full(n, sample.sumw, dtype=np.float32),
    }
    for collection, fields in EMPTY_COLLECTIONS.items():
        branches[f"{collection}_n"] = np.zeros(n, dtype=np.uint32)
        branches[collection] = empty_collection(fields, n)
    return branches
