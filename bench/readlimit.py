"""Baseline (b), the read limit: read and decompress the needed branches, compute nothing.

Partition by partition with the pipeline's entry ranges (``partition_steps``: steps of
at most ``step_size``, cut on basket boundaries), into awkward arrays as the pipeline's tasks
get them from uproot. No analysis can go faster on one core than this. Measured with
uproot's default inflate (zlib) and with ISA-L, the one the pipeline's reader uses: the
pipeline is judged against the second, the same decompression it does. Files are
opened as the pipeline's reader opens them (no uproot array cache), and ``python -m
bench`` runs the ISA-L read limit with the workers' allocator settings.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import uproot

from analysis.inputs.catalogue import load_release
from analysis.inputs.partitions import partition_steps
from analysis.inputs.reader import use_fast_inflate, use_inflate
from analysis.physics.summary import branches_for

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


def set_inflate(library: str) -> None:
    """``"zlib"`` (uproot's default) or ``"isal"`` (ISA-L, as the pipeline's reader)."""
    if library == "isal" and use_fast_inflate() != "isal":
        raise RuntimeError("isal is not installed: cannot measure the ISA-L read limit")
    use_inflate(library)


def read_only(
    paths: Iterable[str], step_size: int, branches=MC_BRANCHES, inflate: str = "zlib"
) -> ReadResult:
    """Read every partition of every file with ``inflate``; keep nothing.

    Partitions are exactly the pipeline's (``partition_steps``: cut on basket
    boundaries where possible, inside a basket cluster only when it exceeds a step).
    """
    set_inflate(inflate)
    result = ReadResult()
    for path in paths:
        with uproot.open(path, array_cache=None) as file:
            tree = file["mini"]
            entries = tree.num_entries
            offsets = [int(o) for o in tree.common_entry_offsets(filter_name=list(branches))]
            for start, stop in partition_steps(entries, step_size, offsets):
                arrays = tree.arrays(list(branches), entry_start=start, entry_stop=stop)
                result.events += len(arrays)
                result.partitions += 1
                del arrays
            result.requested_bytes += file.file.source.num_requested_bytes
            for name in branches:
                result.branch_compressed_bytes += tree[name].compressed_bytes
                result.branch_uncompressed_bytes += tree[name].uncompressed_bytes
    return result
