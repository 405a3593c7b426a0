"""The ``hzz`` command line: one entry point, one module per subcommand's work."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cluster.amqp import Topology

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2

DEFAULT_OUT = "plots"

Handler = Callable[[argparse.Namespace], int]


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows "(default: …)" only where there is a default the help does not already give."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if action.default is None or action.default is False or "default" in text:
            return action.help
        return super()._get_help_string(action)


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
        formatter_class=HelpFormatter,
    )
    parser.add_argument(
        "--data",
        metavar="LOCATION",
        action="append",
        help=(
            "base URL (https://, root://) or local directory with the server's Data/ and MC/ "
            "layout; repeat to search several locations in order "
            f"(env HZZ_DATA, several separated by ','; default: {release.default_location})"
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
    add_broker_arguments(parser, run=True)
    parser.set_defaults(handler=run_command)


def _locations(args: argparse.Namespace, default: str) -> list[str]:
    if args.data:
        return list(args.data)
    env = os.environ.get("HZZ_DATA")
    if env:
        return [part.strip() for part in env.split(",") if part.strip()]
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
    if args.broker or os.environ.get("HZZ_BROKER"):
        from cluster.run import write_document

        saved = write_document(document, Path(args.out))
        print(f"document: {saved}")
        return publish_saved(saved, document.to_json(), args, "hzz run")
    written = write_outputs(document, Path(args.out))
    print(f"figure:   {written['.png']}")
    print(f"document: {written['.json']}")
    return EXIT_OK


def add_broker_arguments(parser: argparse.ArgumentParser, run: bool = False) -> None:
    """Where the broker is and which exchange/queue, shared by run, publish and plotter."""
    from cluster.amqp import DEFAULT_EXCHANGE, DEFAULT_QUEUE, DEFAULT_URL

    if run:
        parser.add_argument(
            "--broker",
            metavar="URL",
            default=None,  # not the env value: --help would print its password
            help="send the histogram document to the plotting service at this AMQP URL, "
            "e.g. amqp://guest:guest@127.0.0.1:5672/ (env HZZ_BROKER), instead of drawing "
            "the figure here; the JSON document is still written to --out",
        )
    else:
        parser.add_argument(
            "--broker",
            metavar="URL",
            default=None,
            help=f"AMQP URL of the broker (default: env HZZ_BROKER, else {DEFAULT_URL})",
        )
    parser.add_argument(
        "--exchange",
        default=os.environ.get("HZZ_EXCHANGE", DEFAULT_EXCHANGE),
        help="exchange documents are published to; its dead-letter exchange is "
        "EXCHANGE.dlx (env HZZ_EXCHANGE)",
    )
    parser.add_argument(
        "--queue",
        default=os.environ.get("HZZ_QUEUE", DEFAULT_QUEUE),
        help="queue of the plotting service; its dead-letter queue is QUEUE.dead (env HZZ_QUEUE)",
    )
    parser.add_argument(
        "--broker-timeout",
        metavar="SECONDS",
        type=float,
        default=30.0,
        help="give up connecting/publishing after this long (publishing only)",
    )


def _topology(args: argparse.Namespace) -> Topology:
    from cluster.amqp import Topology

    return Topology(exchange=args.exchange, queue=args.queue)


def publish_saved(path: Path, body: bytes, args: argparse.Namespace, prog: str) -> int:
    """Publish a document saved at ``path``; on failure say where it is kept."""
    from cluster.amqp import BrokerUnavailable, broker_url, redact
    from cluster.publisher import publish

    url = broker_url(args.broker)
    try:
        sent = publish(body, url, _topology(args), args.broker_timeout)
    except BrokerUnavailable as err:
        print(f"{prog}: {err}", file=sys.stderr)
        print(f"{prog}: document kept at {path}; resend with: hzz publish {path}", file=sys.stderr)
        return EXIT_FAILED
    print(f"published: {sent.message_id} to {redact(url)} exchange {args.exchange}")
    return EXIT_OK


def add_publish_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "publish",
        help="send a saved histogram document to the plotting service",
        description="Validate a histogram document (e.g. one kept by 'hzz run --broker' when "
        "the broker was unreachable) and publish it, confirmed, to the plotting service.",
        formatter_class=HelpFormatter,
    )
    parser.add_argument("file", type=Path, metavar="FILE", help="histogram document (.json)")
    add_broker_arguments(parser)
    parser.set_defaults(handler=publish_command)


def publish_command(args: argparse.Namespace) -> int:
    from analysis.document import DocumentError, from_json

    try:
        body = args.file.read_bytes()
        from_json(body)
    except (OSError, DocumentError) as err:
        print(f"hzz publish: {args.file}: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return publish_saved(args.file, body, args, "hzz publish")


def add_plotter_parser(subparsers: argparse._SubParsersAction) -> None:
    from cluster.plotter import DEFAULT_MAX_BYTES

    parser = subparsers.add_parser(
        "plotter",
        help="run the plotting service: histogram documents from RabbitMQ to PNG files",
        description="Consume histogram documents from the queue, draw each as "
        "plot_dd_mm_yy-HH-MM.png in --out and ack it only once written. Invalid messages "
        "go to the dead-letter queue with header x-hzz-reject-reason. A document already "
        "plotted (same message id, ledger DIR/.hzz-plotted) is acked without a second "
        "figure. Reconnects when the broker goes away; SIGTERM/SIGINT stop it (exit 0).",
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--out", metavar="DIR", default=DEFAULT_OUT, help="output directory")
    add_broker_arguments(parser)
    parser.add_argument(
        "--max-bytes",
        type=int,
        default=DEFAULT_MAX_BYTES,
        help="largest message accepted, on the wire and after gunzip",
    )
    parser.add_argument(
        "--once",
        action="store_true",
        help="handle one message and exit: 0 plotted (or already plotted), 2 dead-lettered, "
        "1 none within --timeout",
    )
    parser.add_argument(
        "--timeout",
        metavar="SECONDS",
        type=float,
        default=None,
        help="with --once: give up after this long without a message (default: wait)",
    )
    parser.set_defaults(handler=plotter_command)


def plotter_command(args: argparse.Namespace) -> int:
    from cluster.amqp import broker_url
    from cluster.plotter import PlotterOptions, serve

    if args.max_bytes < 1:
        print("hzz plotter: --max-bytes must be positive", file=sys.stderr)
        return EXIT_BAD_INPUT
    options = PlotterOptions(
        url=broker_url(args.broker),
        out_dir=Path(args.out),
        topology=_topology(args),
        max_bytes=args.max_bytes,
        once=args.once,
        timeout_s=args.timeout,
    )
    return serve(options)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


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
        "--samples", type=_names, metavar="A,B,…", help=f"only these ({', '.join(STANDINS)})"
    )
    parser.add_argument(
        "--events",
        type=_positive,
        metavar="N",
        help="events per sample (default: the real file's entries)",
    )
    parser.add_argument("--files", type=_positive, default=1, metavar="K", help="files per sample")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="random seed")
    parser.set_defaults(handler=generate_command)


def generate_command(args: argparse.Namespace) -> int:
    from analysis.standins import write_standins

    try:
        written = write_standins(Path(args.out), args.samples, args.events, args.files, args.seed)
    except ValueError as err:
        print(f"hzz generate: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except OSError as err:
        print(f"hzz generate: {err}", file=sys.stderr)
        return EXIT_FAILED
    for item in written:
        rate = item.events / item.seconds * 60 if item.seconds > 0 else float("inf")
        print(f"{item.path}  {item.events} events  {item.seconds:.1f} s  ({rate:,.0f} events/min)")
    total = sum(item.events for item in written)
    seconds = sum(item.seconds for item in written)
    print(f"total: {total} events in {seconds:.1f} s ({total / max(seconds, 1e-9) * 60:,.0f}/min)")
    return EXIT_OK


#: Subcommand registrars, in --help order. Each adds a parser whose default
#: ``handler`` returns an exit code.
REGISTRARS: list[Callable[[argparse._SubParsersAction], None]] = [
    add_run_parser,
    add_publish_parser,
    add_plotter_parser,
    add_generate_parser,
]


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
