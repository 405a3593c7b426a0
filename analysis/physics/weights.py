"""Per-event Monte Carlo weights, normalised to the release luminosity.

2020: ``lumi · 1000 · xsec / (sumw · red_eff)`` from the outreach metadata, times
mcWeight and four scale factors. 2025: the normalisation is in the file, per event
(``lumi · 1000 / sum_of_weights · |filteff| · |kfac| · |xsec|``), and every factor
enters with its absolute value. Data are never weighted (their weight branches hold 0).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from analysis.inputs.catalogue import Release, Sample

PB_PER_FB = 1000.0

#: The 2020 release's per-event MC factors (all are 0 in data files).
WEIGHT_BRANCHES = (
    "mcWeight",
    "scaleFactor_PILEUP",
    "scaleFactor_ELE",
    "scaleFactor_MUON",
    "scaleFactor_LepTRIGGER",
)


def weight_branches(release: Release) -> tuple[str, ...]:
    """Every branch the weight of a simulated event reads."""
    settings = release.analysis
    extra: tuple[str, ...] = ()
    if settings.normalisation == "in_file":
        assert settings.sum_of_weights_branch is not None
        extra = (*settings.normalisation_branches, settings.sum_of_weights_branch)
    return settings.weight_branches + extra


def normalisation(sample: Sample, lumi_fb: float) -> float:
    """lumi · 1000 · xsec / (sumw · red_eff): events per unit of mcWeight at ``lumi_fb``."""
    if sample.is_data:
        raise ValueError(f"{sample.name} is data: data are never weighted")
    if sample.xsec_pb is None or sample.sumw is None or sample.red_eff is None:
        raise ValueError(f"{sample.name}: no cross-section metadata in the catalogue")
    return lumi_fb * PB_PER_FB * sample.xsec_pb / (sample.sumw * sample.red_eff)


def event_weight(events: Any, sample: Sample, release: Release) -> Any:
    """The notebook's per-event weight of a simulated sample (eager or lazy arrays).

    Data files carry zeros in these branches, so this must never be applied to data.
    """
    if sample.is_data:
        raise ValueError(f"{sample.name} is data: data are never weighted")
    settings = release.analysis
    lumi = release.lumi_fb * PB_PER_FB

    def factor(branch: str) -> Any:
        return np.abs(events[branch]) if settings.absolute_weights else events[branch]

    if settings.normalisation == "in_file":
        assert settings.sum_of_weights_branch is not None
        weight = lumi / events[settings.sum_of_weights_branch]
        for branch in settings.normalisation_branches:
            weight = weight * factor(branch)
    else:
        weight = normalisation(sample, release.lumi_fb) * factor(settings.weight_branches[0])
        return _times(weight, settings.weight_branches[1:], factor)
    return _times(weight, settings.weight_branches, factor)


def _times(weight: Any, branches: tuple[str, ...], factor: Any) -> Any:
    for branch in branches:
        weight = weight * factor(branch)
    return weight
