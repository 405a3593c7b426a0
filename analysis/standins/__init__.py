"""Simulated stand-ins for the 2020 MC samples too large to carry offline.

``write_standins`` writes files in exactly the 2020 ``mini`` format and server layout;
``read_mark`` tells them apart from real files by the mark stored inside each one.
"""

from .samples import STANDINS, StandinSpec
from .writer import DEFAULT_SEED, WrittenFile, read_mark, write_standins

__all__ = ["DEFAULT_SEED", "STANDINS", "StandinSpec", "WrittenFile", "read_mark", "write_standins"]
