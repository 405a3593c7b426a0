"""Simulated stand-ins for the 2020 MC samples too large to carry offline.

``write_standins`` writes files in exactly the 2020 ``mini`` format and server layout;
``read_mark`` tells them apart from real files by the mark stored inside each one.
The writer (uproot, NumPy) is imported on first use, so that the command line's help
can name the stand-ins and the default seed without it.
"""

from typing import Any

from analysis.standins.samples import DEFAULT_SEED, STANDINS, StandinSpec

_FROM_WRITER = ("WrittenFile", "write_standins")


def __getattr__(name: str) -> Any:
    if name == "read_mark":  # what tells a stand-in apart: the inspection's to read
        from analysis.inputs.files import read_mark

        return read_mark
    if name in _FROM_WRITER:
        from analysis.standins import writer

        return getattr(writer, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["DEFAULT_SEED", "STANDINS", "StandinSpec", "WrittenFile", "read_mark", "write_standins"]
