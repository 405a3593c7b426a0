"""Per-event Monte Carlo weights, normalised to the release luminosity."""

from __future__ import annotations

from typing import Any

from .catalogue import Sample

PB_PER_FB = 1000.0

#: Per-event MC branches multiplied into the weight (all are 0 in data files).
WEIGHT_BRANCHES = (
    "mcWeight",
    "scaleFactor_PILEUP",
    "scaleFactor_ELE",
    "scaleFactor_MUON",
    "scaleFactor_LepTRIGGER",
)


def normalisation(sample: Sample, lumi_fb: float) -> float:
    """lumi · 1000 · xsec / (sumw · red_eff): events per unit of mcWeight at ``lumi_fb``."""
    if sample.is_data:
        raise ValueError(f"{sample.name} is data: data are never weighted")
    assert sample.xsec_pb is not None and sample.sumw is not None
    assert sample.red_eff is not None
    return lumi_fb * PB_PER_FB * sample.xsec_pb / (sample.sumw * sample.red_eff)


def event_weight(events: Any, sample: Sample, lumi_fb: float) -> Any:
    """The notebook's per-event weight: normalisation times mcWeight and four scale factors.

    Data files carry zeros in these branches, so this must never be applied to data.
    """
    weight = normalisation(sample, lumi_fb) * events[WEIGHT_BRANCHES[0]]
    for branch in WEIGHT_BRANCHES[1:]:
        weight = weight * events[branch]
    return weight
