"""``hzz checkpoint prune``: keep a checkpoint directory (``hzz run --checkpoint``) bounded."""

from __future__ import annotations

import argparse
import re

from cluster.defaults import setting

from .common import EXIT_OK, HelpFormatter, add_seconds

_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([KMGT]?)i?B?", re.IGNORECASE)
_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}


def size(text: str) -> int:
    """Bytes: ``500M``, ``2G``, ``1048576`` (K, M, G, T are powers of 1024)."""
    match = _SIZE.fullmatch(text.strip())
    if match is None:
        raise argparse.ArgumentTypeError(f"invalid size {text!r}: give bytes, e.g. 500M or 2G")
    return int(float(match.group(1)) * _UNITS[match.group(2).upper()])


def add_checkpoint_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "checkpoint",
        help="manage a checkpoint directory of hzz run --checkpoint",
        description="A checkpoint directory holds one small file per computed partition "
        "(hzz run --checkpoint DIR). Entries are never wrong for a later run (their key "
        "holds the file's identity and the analysis version) but they accumulate: prune "
        "removes the ones not used for a while, or the least recently used beyond a size.",
        formatter_class=HelpFormatter,
    )
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    prune = actions.add_parser(
        "prune",
        help="remove old checkpoints",
        description="Remove the checkpoints not used within --max-age, then the least "
        "recently used until the rest fit in --max-size, and temporary files left by a "
        "killed run. Safe while runs use the directory (they compute a removed partition "
        "again); two prunes take turns (a file lock).",
        formatter_class=HelpFormatter,
    )
    prune.add_argument(
        "dir",
        metavar="DIR",
        nargs="?",
        default=setting("HZZ_CHECKPOINT"),
        help="the checkpoint directory (default: env HZZ_CHECKPOINT)",
    )
    add_seconds(prune, "--max-age", None, "remove checkpoints not used for this long")
    prune.add_argument(
        "--max-size",
        metavar="SIZE",
        type=size,
        default=None,
        help="then remove the least recently used until the rest hold at most SIZE "
        "(bytes, or with K, M, G: 500M)",
    )
    prune.set_defaults(handler=prune_command)


def prune_command(args: argparse.Namespace) -> int:
    from analysis.errors import InputError
    from analysis.results.checkpoint import prune

    if not args.dir:
        raise InputError("hzz checkpoint prune: give DIR (or set HZZ_CHECKPOINT)")
    if args.max_age is None and args.max_size is None:
        raise InputError("hzz checkpoint prune: give --max-age, --max-size or both")
    pruned = prune(args.dir, args.max_age, args.max_size)
    print(
        f"checkpoint: removed {pruned.removed} ({pruned.removed_bytes} bytes), "
        f"kept {pruned.kept} ({pruned.kept_bytes} bytes) in {args.dir}"
    )
    return EXIT_OK
