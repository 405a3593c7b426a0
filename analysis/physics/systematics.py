"""Systematic variations of the simulation, filled in the same pass as the nominal histogram.

The variations are those of the IRIS-HEP Analysis Grand Challenge's H → ZZ* → 4ℓ
pipeline, so that its fit can be reproduced and compared:

- ``sf_up`` / ``sf_down``: the event weight × 1.1 / × 0.9 (a lepton scale factor
  uncertainty of ±10 %, applied to the weight);
- ``m4l_up`` / ``m4l_down``: the selected events' m4l × 1.01 / × 0.99 (a ±1 % energy
  scale), with the nominal weight.

They are filled from the events and weights the nominal histogram was filled with:
nothing is read or selected again, and the nominal fill is unchanged (a variation only
adds histograms after it). m4l is scaled in float64 (the nominal m4l is float32, as the
notebook computes it), so an event near a bin edge moves as the exact product says.
Data are never varied.

The ``ZZ*`` normalisation uncertainty (±10 %) needs no histogram: the statistical model
(``analysis.results.fit``) adds it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import hist
import numpy as np


@dataclass(frozen=True)
class Variation:
    """One varied histogram: a factor on the weight or on m4l, and the systematic it belongs to."""

    name: str
    systematic: str  # the parameter of the statistical model it varies
    direction: str  # "up" or "down"
    weight_factor: float = 1.0
    mass_factor: float = 1.0


@dataclass(frozen=True)
class Systematic:
    """A shape + normalisation systematic: its up and down variations and how to describe it."""

    name: str
    label: str
    up: str
    down: str


VARIATIONS: tuple[Variation, ...] = (
    Variation("sf_up", "scale_factors", "up", weight_factor=1.1),
    Variation("sf_down", "scale_factors", "down", weight_factor=0.9),
    Variation("m4l_up", "m4l_scale", "up", mass_factor=1.01),
    Variation("m4l_down", "m4l_scale", "down", mass_factor=0.99),
)
VARIATION_NAMES: tuple[str, ...] = tuple(v.name for v in VARIATIONS)

SYSTEMATICS: tuple[Systematic, ...] = (
    Systematic("scale_factors", "scale factors ×1.1 / ×0.9 (weights)", "sf_up", "sf_down"),
    Systematic("m4l_scale", "m4l ×1.01 / ×0.99 (energy scale)", "m4l_up", "m4l_down"),
)


def fill_variations(
    mass: np.ndarray, weight: np.ndarray, histogram: hist.Hist
) -> list[tuple[np.ndarray, np.ndarray]]:
    """The varied histograms' (values, variances), flow bins included, in ``VARIATIONS``
    order. ``mass`` and ``weight`` are those of the selected events, as filled in the
    nominal ``histogram``; a fresh histogram of its layout is filled per variation."""
    mass64 = np.asarray(mass, dtype=np.float64)
    filled = []
    for variation in VARIATIONS:
        varied = hist.Hist(*histogram.axes, storage=hist.storage.Weight())
        x = mass64 * variation.mass_factor if variation.mass_factor != 1.0 else mass64
        w = weight * variation.weight_factor if variation.weight_factor != 1.0 else weight
        varied.fill(x, weight=w)
        view = varied.view(flow=True)
        filled.append((view.value, view.variance))
    return filled


def symmetric_uncertainty(
    nominal: np.ndarray, variations: Mapping[str, np.ndarray], systematics: Sequence[Systematic]
) -> np.ndarray:
    """Per bin, the quadrature sum over ``systematics`` of half the up-down difference:
    the pre-fit systematic uncertainty of a prediction (the figure's band)."""
    total = np.zeros_like(nominal, dtype=float)
    for systematic in systematics:
        up, down = variations.get(systematic.up), variations.get(systematic.down)
        if up is None or down is None:
            continue
        total += (0.5 * (np.asarray(up) - np.asarray(down))) ** 2
    return np.sqrt(total)
