"""The m4l histogram axis of the analysis: 80–250 GeV in 5 GeV bins."""

from __future__ import annotations

import hist

M4L_BINS = 34
M4L_LOW_GEV = 80.0
M4L_HIGH_GEV = 250.0
M4L_NAME = "m4l"
M4L_LABEL = "4-lepton invariant mass $m_{4l}$ [GeV]"


def m4l_axis() -> hist.axis.Regular:
    """A fresh m4l axis; every histogram of a run and of a document has this layout."""
    return hist.axis.Regular(M4L_BINS, M4L_LOW_GEV, M4L_HIGH_GEV, name=M4L_NAME, label=M4L_LABEL)
