"""``hzz publish`` and ``hzz plotter``, and the broker options they share with ``hzz run``."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from cluster.defaults import setting

from .common import DEFAULT_OUT, EXIT_OK, HelpFormatter, add_seconds, positive

if TYPE_CHECKING:
    from cluster.service.amqp import Topology

log = logging.getLogger("hzz")


def add_broker_arguments(parser: argparse.ArgumentParser, run: bool = False) -> None:
    """Where the broker is and which exchange/queue, shared by run, publish and plotter."""
    from cluster.defaults import (
        DEFAULT_BROKER_TIMEOUT_S,
        DEFAULT_EXCHANGE,
        DEFAULT_QUEUE,
        DEFAULT_URL,
    )

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
            help="AMQP URL of the broker (default: env HZZ_BROKER, else the URL in the file "
            f"named by env HZZ_BROKER_FILE, else {DEFAULT_URL})",
        )
    parser.add_argument(
        "--exchange",
        default=setting("HZZ_EXCHANGE", DEFAULT_EXCHANGE),
        help="exchange documents are published to; its dead-letter exchange is "
        "EXCHANGE.dlx (env HZZ_EXCHANGE)",
    )
    parser.add_argument(
        "--queue",
        default=setting("HZZ_QUEUE", DEFAULT_QUEUE),
        help="queue of the plotting service; its dead-letter queue is QUEUE.dead (env HZZ_QUEUE)",
    )
    add_seconds(
        parser,
        "--broker-timeout",
        DEFAULT_BROKER_TIMEOUT_S,
        "give up connecting/publishing after this long (publishing only)",
    )


def warn_password_in_argv(url: str | None) -> None:
    """A password given with --broker is readable by every local user (``ps``) for as
    long as the process runs: say so, and where it belongs instead."""
    from urllib.parse import urlsplit

    if url is None:
        return
    try:
        password = urlsplit(url).password
    except ValueError:
        return
    if password:
        log.warning(
            "the --broker URL holds a password, readable by every local user (ps) while "
            "this runs; give the URL in a file named by HZZ_BROKER_FILE (or in HZZ_BROKER)"
        )


def _topology(args: argparse.Namespace) -> Topology:
    from cluster.service.amqp import Topology

    return Topology(exchange=args.exchange, queue=args.queue)


def resend_command(path: Path, args: argparse.Namespace) -> str:
    """The ``hzz publish`` command that sends ``path`` where this command sent it."""
    return command_to(["hzz", "publish", str(path)], args.broker, args.exchange, args.queue)


def command_to(words: list[str], broker: str | None, exchange: str, queue: str) -> str:
    """``words`` (a command) made to publish to ``broker``, ``exchange`` and ``queue``.

    A broker URL with a password is not repeated (it would be printed), unless it is
    the documented local default: the command then says to give the URL through the
    environment or a secret file."""
    import shlex
    from urllib.parse import urlsplit

    from cluster.defaults import DEFAULT_URL
    from cluster.service.amqp import redact

    words = [*words, "--exchange", exchange, "--queue", queue]
    where = ""
    if broker:
        try:
            secret = urlsplit(broker).password is not None and broker != DEFAULT_URL
        except ValueError:
            secret = True
        if secret:
            where = f" (with the broker URL {redact(broker)} in HZZ_BROKER or HZZ_BROKER_FILE)"
        else:
            words += ["--broker", broker]
    return shlex.join(words) + where


def publish_saved(path: Path, body: bytes, args: argparse.Namespace, run: str | None = None) -> int:
    """Publish a document saved at ``path`` (the last of ``run``, if it was live); on
    failure say where it is kept."""
    from analysis.errors import InputError, RunFailure
    from cluster.service.amqp import (
        BrokerConfigError,
        BrokerRefused,
        BrokerUnavailable,
        broker_url,
        redact,
    )
    from cluster.service.publisher import publish

    try:
        url = broker_url(args.broker)
        sent = publish(body, url, _topology(args), args.broker_timeout, run=run)
    except (BrokerConfigError, BrokerUnavailable, BrokerRefused) as err:
        # The document is safe either way; a refused topology is bad input (exit 2).
        kind = InputError if isinstance(err, BrokerRefused) else RunFailure
        failure = kind(str(err))
        failure.add_note(f"document kept at {path}; resend with: {resend_command(path, args)}")
        raise failure from err
    print(f"published: {sent.message_id} to {redact(url)} exchange {args.exchange}")
    return EXIT_OK


#: Longest a partial document of a live run may take to publish: the next one follows.
PARTIAL_TIMEOUT_S = 5.0


def publish_partial(body: bytes, args: argparse.Namespace, run: str | None) -> None:
    """Publish a partial document of the live run ``run`` (``hzz run --live``): not
    persistent; a failure is the caller's to log (the run goes on)."""
    from cluster.service.amqp import broker_url
    from cluster.service.publisher import publish

    url = broker_url(args.broker)
    timeout = min(args.broker_timeout, PARTIAL_TIMEOUT_S)
    publish(body, url, _topology(args), timeout, run=run, persistent=False)


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
    from analysis.errors import InputError
    from analysis.results.document import DocumentError, from_json
    from analysis.results.validation import check_limits
    from cluster.defaults import DEFAULT_MAX_BYTES

    try:
        with args.file.open("rb") as handle:  # never more than the plotter accepts
            body = handle.read(DEFAULT_MAX_BYTES + 1)
        if len(body) > DEFAULT_MAX_BYTES:
            raise InputError(
                f"{args.file}: larger than {DEFAULT_MAX_BYTES} bytes, the plotting service's "
                "limit (--max-bytes)"
            )
        check_limits(from_json(body))
    except (OSError, DocumentError) as err:
        raise InputError(f"{args.file}: {err}") from err
    return publish_saved(args.file, body, args)


def add_plotter_parser(subparsers: argparse._SubParsersAction) -> None:
    from cluster.defaults import (
        DEFAULT_CRASH_LIMIT,
        DEFAULT_LIVE_HOST,
        DEFAULT_MAX_BYTES,
        DEFAULT_RENDER_TIMEOUT_S,
    )

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
        action=positive(),
        default=DEFAULT_MAX_BYTES,
        help="largest message accepted, on the wire and after gunzip",
    )
    parser.add_argument(
        "--once",
        action="store_true",
        help="handle one message and exit: 0 plotted (or already plotted), 2 dead-lettered, "
        "1 none within --timeout",
    )
    add_seconds(
        parser,
        "--timeout",
        None,
        "with --once: give up after this long without a message (default: wait)",
    )
    add_seconds(
        parser,
        "--render-timeout",
        DEFAULT_RENDER_TIMEOUT_S,
        "longest time to draw one figure; a document that takes longer is "
        "dead-lettered (the figure is drawn in a child process, the service goes on)",
    )
    parser.add_argument(
        "--crash-limit",
        metavar="N",
        action=positive(),
        default=DEFAULT_CRASH_LIMIT,
        help="dead-letter a message once this service has stopped (killed, out of memory, "
        "crashed) N times while handling it, instead of handling it again; the starts are "
        "counted in DIR/.hzz-in-hand",
    )
    parser.add_argument(
        "--health-file",
        metavar="FILE",
        default=None,
        help="keep FILE fresh while connected and consuming, for a container health "
        "check: hzz health FILE",
    )
    parser.add_argument(
        "--live-port",
        metavar="PORT",
        action=positive(zero=True),
        default=None,
        help="serve the live figures of runs started with hzz run --live (DIR/live/) on "
        "this port: a read-only page that reloads itself (0: any free port, logged); "
        "default: not served",
    )
    parser.add_argument(
        "--live-host",
        metavar="HOST",
        default=DEFAULT_LIVE_HOST,
        help="with --live-port: the address to listen on ('0.0.0.0': every interface)",
    )
    parser.set_defaults(handler=plotter_command)


def plotter_command(args: argparse.Namespace) -> int:
    from cluster.service.amqp import broker_url
    from cluster.service.plotter import PlotterOptions, serve

    warn_password_in_argv(args.broker)
    url = broker_url(args.broker)  # BrokerConfigError: bad input
    options = PlotterOptions(
        url=url,
        out_dir=Path(args.out),
        topology=_topology(args),
        max_bytes=args.max_bytes,
        once=args.once,
        timeout_s=args.timeout,
        health_file=Path(args.health_file) if args.health_file else None,
        render_timeout_s=args.render_timeout,
        crash_limit=args.crash_limit,
        live_port=None if args.live_port is None else int(args.live_port),
        live_host=args.live_host,
    )
    return serve(options)
