"""The physics of one partition: the four-lepton selection, the Monte Carlo weights, the
systematic variations, and the row of numbers a partition contributes."""
