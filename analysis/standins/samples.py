"""What each stand-in must look like: the published counts and yields it is tuned to.

The targets are the spec's published numbers for the real files (events in, events
passing the selection, weighted yield at 10 fb⁻¹); the shape parameters are rough
physics choices, not fits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Process = Literal["higgs", "zz"]

#: The generator seed of `hzz generate` and the benchmarks, unless one is given.
DEFAULT_SEED = 20200122


@dataclass(frozen=True)
class FailModes:
    """How failing events fail, as shares: charge flip, wrong flavour, hard extra lepton."""

    charge: float
    flavour: float
    extra: float


@dataclass(frozen=True)
class StandinSpec:
    """One stand-in sample: its catalogue name, process, targets and shape parameters."""

    name: str
    dsid: int
    process: Process
    events: int  # real entries: the default number of events
    passing: int  # real events passing the selection: sets the failing share
    yield_: float  # published weighted yield at 10 fb⁻¹ (all masses)
    pt_shape: float  # Gamma shape of the Higgs / ZZ-system pT
    pt_scale_gev: float  # Gamma scale of that pT
    y_sigma: float  # Gaussian width of its rapidity
    extra_rate: float  # share of passing events with a soft fifth lepton
    fail_modes: FailModes

    @property
    def pass_fraction(self) -> float:
        return self.passing / self.events


_LOW_FAKE = FailModes(charge=0.45, flavour=0.35, extra=0.20)

#: The five samples too large to carry offline, in catalogue order.
STANDINS: dict[str, StandinSpec] = {
    s.name: s
    for s in (
        StandinSpec(
            "llll", 363490, "zz", 554279, 523957, 264.85263, 1.3, 15.0, 1.8, 0.005, _LOW_FAKE
        ),
        StandinSpec(
            "ggH125_ZZ4lep",
            345060,
            "higgs",
            164716,
            161451,
            8.639792,
            1.3,
            20.0,
            1.8,
            0.01,
            _LOW_FAKE,
        ),
        StandinSpec(
            "VBFH125_ZZ4lep",
            344235,
            "higgs",
            191126,
            186870,
            0.7747851,
            2.0,
            45.0,
            2.0,
            0.01,
            _LOW_FAKE,
        ),
        StandinSpec(
            "WH125_ZZ4lep",
            341964,
            "higgs",
            15379,
            9772,
            0.2175638,
            2.2,
            40.0,
            1.6,
            0.10,
            FailModes(charge=0.10, flavour=0.10, extra=0.80),
        ),
        StandinSpec(
            "ZH125_ZZ4lep",
            341947,
            "higgs",
            14485,
            11947,
            0.0015058718,
            2.2,
            40.0,
            1.6,
            0.25,
            FailModes(charge=0.15, flavour=0.15, extra=0.70),
        ),
    )
}
