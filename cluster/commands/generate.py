"""``hzz generate``: write simulated stand-ins (the generator is ``analysis.standins``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from .common import EXIT_OK, HelpFormatter, names, positive


def add_generate_parser(subparsers: argparse._SubParsersAction) -> None:
    from analysis.standins import DEFAULT_SEED, STANDINS

    parser = subparsers.add_parser(
        "generate",
        help="write simulated stand-ins for the large 2020 MC samples (offline runs)",
        description=(
            "Write MC/mc_<DSID>.<name>.4lep.root under --out in the 2020 'mini' format, "
            "marked inside as simulated stand-ins and normalised to the published yields. "
            "Use with the real files: hzz run --data REAL_DIR --data OUT. With --files K "
            "each sample's events are split over OUT/part-001 … part-K, each a complete "
            "layout normalised on its own (for benchmarks)."
        ),
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--out", metavar="DIR", required=True, help="output directory")
    parser.add_argument(
        "--samples", type=names, metavar="A,B,…", help=f"only these ({', '.join(STANDINS)})"
    )
    parser.add_argument(
        "--events",
        action=positive(),
        metavar="N",
        help="events per sample (default: the real file's entries)",
    )
    parser.add_argument(
        "--files", action=positive(), default=1, metavar="K", help="files per sample"
    )
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="random seed")
    parser.set_defaults(handler=generate_command)


def generate_command(args: argparse.Namespace) -> int:
    from analysis.errors import InputError
    from analysis.standins import write_standins

    try:
        written = write_standins(Path(args.out), args.samples, args.events, args.files, args.seed)
    except ValueError as err:  # an unknown sample
        raise InputError(str(err)) from err
    for item in written:
        rate = item.events / item.seconds * 60 if item.seconds > 0 else float("inf")
        print(f"{item.path}  {item.events} events  {item.seconds:.1f} s  ({rate:,.0f} events/min)")
    total = sum(item.events for item in written)
    seconds = sum(item.seconds for item in written)
    print(f"total: {total} events in {seconds:.1f} s ({total / max(seconds, 1e-9) * 60:,.0f}/min)")
    return EXIT_OK
