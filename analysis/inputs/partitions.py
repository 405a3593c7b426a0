"""How a file's entries are cut into partitions (one Dask task each).

Kept apart from the graph so that the command line can show the default without
importing Dask, uproot or NumPy.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

#: Entries per partition when none is given: a few partitions for the largest 2020
#: sample (llll, 554279 entries), one for each small one.
DEFAULT_STEP_SIZE = 200_000


def partition_steps(
    entries: int, step_size: int, boundaries: Sequence[int] = ()
) -> list[list[int]]:
    """``[[start, stop], …]`` covering ``entries``, each at most ``step_size`` long.

    Cuts fall on basket boundaries (``boundaries``: entries where every needed branch
    starts a new basket) wherever possible, so no basket is read and decompressed by
    two partitions; only a basket cluster longer than ``step_size`` is cut inside, into
    near-equal pieces.
    """
    if entries <= 0:
        return []
    edges = sorted({0, entries, *(b for b in boundaries if 0 < b < entries)})
    cuts = [0]
    for previous, edge in itertools.pairwise(edges):
        if edge - cuts[-1] > step_size and previous > cuts[-1]:
            cuts.append(previous)  # close the partition at the last basket boundary
        if edge - cuts[-1] > step_size and previous == cuts[-1]:
            # one basket cluster longer than a step: cut it into near-equal pieces
            import numpy as np  # only here: the command line imports this module

            pieces = math.ceil((edge - previous) / step_size)
            inner = np.linspace(previous, edge, pieces + 1).round().astype(int).tolist()
            cuts.extend(inner[1:-1])
    cuts.append(entries)
    return [[a, b] for a, b in itertools.pairwise(cuts)]
