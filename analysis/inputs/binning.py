"""The m4l histogram axis: 80–250 GeV, in the bins of the release (5 GeV in 2020)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # hist is imported where an axis is made: the CLI's help stays light
    import hist

M4L_NAME = "m4l"
M4L_LABEL = "4-lepton invariant mass $m_{4l}$ [GeV]"


@dataclass(frozen=True)
class Binning:
    """A regular m4l binning in GeV."""

    bins: int = 34
    low: float = 80.0
    high: float = 250.0

    @property
    def width(self) -> float:
        return (self.high - self.low) / self.bins


#: The 2020 notebook's binning; releases may set their own (2025: 68 bins of 2.5 GeV).
DEFAULT_BINNING = Binning()


def m4l_axis(binning: Binning = DEFAULT_BINNING) -> hist.axis.Regular:
    """A fresh m4l axis; every histogram of a run and of its document has this layout."""
    import hist

    return hist.axis.Regular(
        binning.bins, binning.low, binning.high, name=M4L_NAME, label=M4L_LABEL
    )
