"""The systematics of the model, in one table, and the varied histograms they need.

Those of the IRIS-HEP Analysis Grand Challenge's H → ZZ* → 4ℓ fit, so that it can be
reproduced and compared (docs/fit.md): a ±10 % lepton scale factor on the event weight
and a ±1 % energy scale on m4l, each a shape + normalisation systematic of every
simulated sample from two varied histograms (``sf_up``/``sf_down``,
``m4l_up``/``m4l_down``), and a ±10 % normalisation of ZZ*, which needs no histogram.
The varied histograms, the model's parameters, the figure's band and the fit's pulls are
all derived from ``SYSTEMATICS``. A variation is filled from the events and weights the
nominal histogram was filled with (nothing read or selected again; m4l scaled in float64
so that an event near a bin edge moves as the exact product says); data are never varied.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import hist
import numpy as np


@dataclass(frozen=True)
class Systematic:
    """One nuisance parameter of the model (a pull in the fit's table).

    With ``prefix``: a shape + normalisation systematic of every simulated sample, from
    the histograms ``PREFIX_up`` and ``PREFIX_down`` filled with the event weight times
    ``weight`` and m4l times ``mass`` (up, down). With ``norm``: ± that fraction of the
    yield of group ``group``, no histogram.
    """

    name: str
    label: str
    prefix: str = ""
    weight: tuple[float, float] = (1.0, 1.0)
    mass: tuple[float, float] = (1.0, 1.0)
    norm: float = 0.0
    group: str = ""

    @property
    def up(self) -> str:
        return f"{self.prefix}_up"

    @property
    def down(self) -> str:
        return f"{self.prefix}_down"


SYSTEMATICS: tuple[Systematic, ...] = (
    Systematic(
        "scale_factors", "scale factors ×1.1 / ×0.9 (weights)", prefix="sf", weight=(1.1, 0.9)
    ),
    Systematic("m4l_scale", "m4l ×1.01 / ×0.99 (energy scale)", prefix="m4l", mass=(1.01, 0.99)),
    Systematic("zz_norm", "ZZ* normalisation ±10 %", norm=0.10, group="zz"),
)
#: The systematics made of varied histograms, and those that scale one group's yield.
SHAPES: tuple[Systematic, ...] = tuple(s for s in SYSTEMATICS if s.prefix)
NORMALISATIONS: tuple[Systematic, ...] = tuple(s for s in SYSTEMATICS if s.norm)


@dataclass(frozen=True)
class Variation:
    """One varied histogram: a factor on the weight or on m4l, and its systematic."""

    name: str
    systematic: str  # the parameter of the statistical model it varies
    direction: str  # "up" or "down"
    weight_factor: float = 1.0
    mass_factor: float = 1.0


#: Every varied histogram, in the order a partition's row holds them.
VARIATIONS: tuple[Variation, ...] = tuple(
    Variation(f"{s.prefix}_{direction}", s.name, direction, s.weight[i], s.mass[i])
    for s in SHAPES
    for i, direction in enumerate(("up", "down"))
)
VARIATION_NAMES: tuple[str, ...] = tuple(v.name for v in VARIATIONS)


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
