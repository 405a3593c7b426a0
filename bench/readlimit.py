"""Baseline (b), the read limit: read and decompress the needed branches, compute nothing.

Partition by partition with the pipeline's entry ranges (``partition_steps``: steps of
at most ``step_size``, cut on basket boundaries), into awkward arrays as the pipeline's tasks
get them from uproot. No analysis can go faster on one core than this.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass

import uproot

from analysis.catalogue import load_release
from analysis.graph import branches_for, partition_steps

#: The branches the pipeline reads for a simulated 2020 sample (the spec's 11).
MC_BRANCHES = branches_for(load_release("2020").samples["llll"])


@dataclass
class ReadResult:
    """What was read: events, partitions and bytes (uproot's own request counter)."""

    events: int = 0
    partitions: int = 0
    requested_bytes: int = 0
    branch_compressed_bytes: int = 0  # the 11 branches' baskets as stored in the files
    branch_uncompressed_bytes: int = 0


def basket_aligned_steps(offsets: list[int], step_size: int) -> list[list[int]]:
    """Whole baskets per partition (as many as fit in ``step_size``, at least one)."""
    steps: list[list[int]] = []
    start = offsets[0]
    for previous, boundary in itertools.pairwise(offsets):
        if boundary - start > step_size and previous > start:
            steps.append([start, previous])
            start = previous
    if offsets[-1] > start:
        steps.append([start, offsets[-1]])
    return steps


def read_only(
    paths: Iterable[str], step_size: int, branches=MC_BRANCHES, aligned: bool = False
) -> ReadResult:
    """Read every partition of every file; keep nothing.

    ``aligned``: every partition ends on a basket boundary (``basket_aligned_steps``);
    else exactly the pipeline's ``partition_steps`` (which also cuts on basket boundaries
    where it can, and inside a basket cluster only when the cluster exceeds a step).
    """
    result = ReadResult()
    for path in paths:
        with uproot.open(path) as file:
            tree = file["mini"]
            entries = tree.num_entries
            offsets = [int(o) for o in tree.common_entry_offsets(filter_name=list(branches))]
            if aligned:
                steps = basket_aligned_steps(offsets, step_size)
            else:
                steps = partition_steps(entries, step_size, offsets)
            for start, stop in steps:
                arrays = tree.arrays(list(branches), entry_start=start, entry_stop=stop)
                result.events += len(arrays)
                result.partitions += 1
                del arrays
            result.requested_bytes += file.file.source.num_requested_bytes
            for name in branches:
                result.branch_compressed_bytes += tree[name].compressed_bytes
                result.branch_uncompressed_bytes += tree[name].uncompressed_bytes
    return result
