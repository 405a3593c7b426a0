"""The ``hzz`` command line: one entry point, one module per subcommand's work."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2

DEFAULT_OUT = "plots"

Handler = Callable[[argparse.Namespace], int]


def _step_size(text: str) -> int | str:
    """Entries per partition (an integer) or a size such as '50 MB'."""
    text = text.strip()
    if text.isdigit():
        value = int(text)
        if value <= 0:
            raise argparse.ArgumentTypeError("step size must be positive")
        return value
    if any(text.upper().endswith(unit) for unit in ("KB", "MB", "GB", "B")):
        return text
    raise argparse.ArgumentTypeError(
        f"invalid step size {text!r}: give entries (e.g. 100000) or bytes (e.g. '50 MB')"
    )


def _names(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


def add_run_parser(subparsers: argparse._SubParsersAction) -> None:
    from analysis.catalogue import load_release
    from analysis.graph import DEFAULT_STEP_SIZE

    release = load_release("2020")
    groups = ", ".join(g.key for g in release.groups)
    parser = subparsers.add_parser(
        "run",
        help="compute the analysis on Dask and write the figure and histogram document",
        description=(
            "Compute the 2020 ATLAS Open Data H→ZZ*→4ℓ analysis on a Dask cluster and write "
            "plot_dd_mm_yy-HH-MM.png (UTC time) and the histogram document "
            "plot_dd_mm_yy-HH-MM.json side by side in --out. An existing file is never "
            "overwritten: a second result in the same minute gets a _2, _3, … suffix. "
            "Without --scheduler an embedded local cluster of worker processes is started."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--data",
        metavar="LOCATION",
        action="append",
        help=(
            "base URL (https://, root://) or local directory with the server's Data/ and MC/ "
            "layout; repeat to search several locations in order "
            f"(default: {release.default_location}; env HZZ_DATA, separated by ':' "
            "for directories or ',' )"
        ),
    )
    parser.add_argument("--out", metavar="DIR", default=DEFAULT_OUT, help="output directory")
    parser.add_argument(
        "--workers",
        metavar="N",
        type=int,
        default=None,
        help="worker processes of the local cluster (default: one per core)",
    )
    parser.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        default=os.environ.get("HZZ_SCHEDULER"),
        help="address of a running Dask scheduler, e.g. tcp://scheduler:8786 "
        "(env HZZ_SCHEDULER); default: start a local cluster",
    )
    parser.add_argument(
        "--step-size",
        type=_step_size,
        default=DEFAULT_STEP_SIZE,
        help="entries per partition, or a size such as '50 MB'",
    )
    parser.add_argument(
        "--samples",
        type=_names,
        metavar="A,B,…",
        help=f"only these samples ({', '.join(release.samples)})",
    )
    parser.add_argument(
        "--groups", type=_names, metavar="A,B,…", help=f"only these groups ({groups})"
    )
    parser.add_argument(
        "--allow-missing",
        action="store_true",
        help="go on without samples whose files are absent (listed in the document and "
        "noted on the figure); without it a missing file is an error and nothing is written",
    )
    parser.add_argument(
        "--dashboard",
        metavar="ADDRESS",
        default=":8787",
        help="dashboard address of the local cluster (':0' for any free port)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(handler=run_command)


def _locations(args: argparse.Namespace, default: str) -> list[str]:
    if args.data:
        return list(args.data)
    env = os.environ.get("HZZ_DATA")
    if env:
        sep = "," if "://" in env else os.pathsep
        return [part for part in env.split(sep) if part]
    return [default]


def run_command(args: argparse.Namespace) -> int:
    from analysis.catalogue import is_remote, load_release
    from analysis.graph import SampleFileError
    from cluster.dask_cluster import dask_client
    from cluster.report import yields_table
    from cluster.run import RunOptions, compute_document, write_outputs

    release = load_release("2020")
    locations = _locations(args, release.default_location)
    for location in locations:
        if not is_remote(location) and not Path(location).is_dir():
            print(f"hzz run: --data {location}: no such directory", file=sys.stderr)
            return EXIT_BAD_INPUT
    if args.workers is not None and args.workers < 1:
        print("hzz run: --workers must be at least 1", file=sys.stderr)
        return EXIT_BAD_INPUT
    options = RunOptions(
        locations=locations,
        samples=args.samples,
        groups=args.groups,
        step_size=args.step_size,
        allow_missing=args.allow_missing,
        show_progress=not args.no_progress,
    )
    try:
        release.select(options.samples, options.groups)
    except ValueError as err:
        print(f"hzz run: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT

    try:
        with dask_client(args.scheduler, args.workers, dashboard_address=args.dashboard) as client:
            print(f"Dask dashboard: {client.dashboard_link}", flush=True)
            document = compute_document(client, release, options)
    except SampleFileError as err:
        print(f"hzz run: {err}", file=sys.stderr)
        print("hzz run: nothing written", file=sys.stderr)
        return EXIT_BAD_INPUT
    except (OSError, RuntimeError, TimeoutError) as err:
        print(f"hzz run: {err}", file=sys.stderr)
        print("hzz run: nothing written", file=sys.stderr)
        return EXIT_FAILED

    print(yields_table(document))
    written = write_outputs(document, Path(args.out))
    print(f"figure:   {written['.png']}")
    print(f"document: {written['.json']}")
    return EXIT_OK


#: Subcommand registrars, in --help order. Each adds a parser whose default
#: ``handler`` returns an exit code.
REGISTRARS: list[Callable[[argparse._SubParsersAction], None]] = [add_run_parser]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hzz",
        description=(
            "ATLAS Open Data H→ZZ*→4ℓ analysis on Dask: compute the m4l histograms, "
            "write the ATLAS-style figure, or ship the histograms to a plotting service."
        ),
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for register in REGISTRARS:
        register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.verbose:
        # Read by distributed when it is imported: here (dask's config is already
        # loaded) and in the worker processes it spawns (from the environment).
        import dask

        os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "warning")
        dask.config.set({"logging.distributed": "warning"})
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not args.verbose:
        for noisy in ("distributed", "bokeh", "tornado", "asyncio", "pika", "matplotlib"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
    handler: Handler = args.handler
    return handler(args)


if __name__ == "__main__":
    sys.exit(main())
