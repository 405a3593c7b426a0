"""``hzz plotter``: queued histogram documents turned into figures, each exactly once.

Prefetch 1 and manual acks, the ack sent only once the PNG is written and recorded in
the ledger (``cluster.service.ledger``): a crash redelivers, the ledger stops a second
figure. Whatever follows from a message (its content, a figure that fails or takes too
long in its forked drawing process, a message that keeps killing the service:
``cluster.service.inhand``) dead-letters it with the reason in ``x-hzz-reject-reason``
and the service goes on; a fault of its surroundings (an output directory it cannot
write) hands the message back and pauses consuming until it can write again
(docs/plotting-service.md).
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import logging
import multiprocessing
import os
import signal
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from types import FrameType
from typing import Any

import pika
import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel
from pika.spec import Basic, BasicProperties

from analysis.results.document import HistogramDocument
from analysis.results.outputs import RUN_PATTERN, live_path, replace_live, write_new
from analysis.results.plot import render_png
from cluster.defaults import (
    DEFAULT_CRASH_LIMIT,
    DEFAULT_LIVE_HOST,
    DEFAULT_MAX_BYTES,
    DEFAULT_RENDER_TIMEOUT_S,
    setting,
)

from .amqp import (
    BrokerRefused,
    BrokerUnavailable,
    Topology,
    describe,
    parameters,
    quiet_pika,
    redact,
    with_retry,
)
from .heartbeat import WORKING, Heartbeat
from .inhand import InHand, body_key
from .ledger import PNG_KEY, Ledger
from .messages import Rejected, decode, idempotency_key, message_label, printable, validate

log = logging.getLogger(__name__)

REASON_HEADER = "x-hzz-reject-reason"
#: Test hook: seconds to wait between writing the PNG and acking (crash window).
PAUSE_ENV = "HZZ_PLOTTER_TEST_PAUSE_BEFORE_ACK"
_POLL_S = 1.0
#: Health state while the output directory cannot be written.
NOT_CONSUMING = "not consuming"
#: Longest wait between two probes of an unwritable output directory.
MAX_PROBE_DELAY_S = 30.0
#: Bytes written (and removed) to tell whether the output directory can take a figure.
PROBE_BYTES = 1 << 20


class OutputUnavailable(Exception):
    """The output directory cannot be written: the plotter's fault, not the message's."""


class Outcome(Enum):
    PLOTTED = "plotted"
    DUPLICATE = "already plotted"
    REJECTED = "dead-lettered"
    PARTIAL = "partial"  # a live run's result so far: drawn into its live figure


#: Runs whose final document came, remembered so that a late partial one is not drawn
#: over their result.
FINISHED_RUNS_KEPT = 1000
#: How long to let the next delivery arrive after a partial document, to see a burst.
BURST_WAIT_S = 0.05


@dataclass
class PlotterOptions:
    """What ``hzz plotter`` was asked for."""

    url: str
    out_dir: Path
    topology: Topology = field(default_factory=Topology)
    max_bytes: int = DEFAULT_MAX_BYTES
    once: bool = False
    timeout_s: float | None = None  # --once: give up if no message came in this time
    health_file: Path | None = None  # refreshed while consuming (heartbeat.py)
    render_timeout_s: float = DEFAULT_RENDER_TIMEOUT_S  # longest drawing of one figure
    crash_limit: int = DEFAULT_CRASH_LIMIT  # stops while handling one message, then dead
    live_port: int | None = None  # serve the live figures' page here (None: not served)
    live_host: str = DEFAULT_LIVE_HOST


class Plotter:
    """One consumer: connect, consume, plot, ack; reconnect when the link drops."""

    def __init__(self, options: PlotterOptions) -> None:
        self.options = options
        self.ledger = Ledger(options.out_dir)
        self.in_hand = InHand(options.out_dir)
        self._stop = threading.Event()
        self._connection: pika.BlockingConnection | None = None
        self.heartbeat = Heartbeat(options.health_file)
        self._output_fault: str | None = None
        pause = setting(PAUSE_ENV)
        self._pause_before_ack = float(pause) if pause else 0.0
        #: The newest partial document of each live run not drawn yet, and the runs done.
        self._partials: dict[str, HistogramDocument] = {}
        self._drawn: dict[str, tuple[int, Any]] = {}
        self._finished: collections.OrderedDict[str, None] = collections.OrderedDict()
        quiet_pika()

    def stop(self, signum: int | None = None, frame: FrameType | None = None) -> None:
        """Stop after the message in hand (safe in a signal handler)."""
        if signum is not None:
            log.info("signal %d: stopping", signum)
        self._stop.set()

    def run(self) -> int:
        """Serve until stopped (exit 0); with ``once`` the exit code of the one message."""
        options = self.options
        try:
            if not self._wait_for_output():  # before consuming anything
                log.info("stopped")
                return 0
            deadline = None if options.timeout_s is None else time.monotonic() + options.timeout_s
            return self._run(deadline, 0.25)
        finally:
            self.heartbeat.clear()

    def _run(self, deadline: float | None, delay: float) -> int:
        options = self.options
        while not self._stop.is_set():
            if self._output_fault is not None and not self._wait_for_output():
                break
            self.heartbeat.beat("connecting")
            left = None if deadline is None else max(deadline - time.monotonic(), 0.0)
            try:
                connection, channel = with_retry(
                    self._connect,
                    f"connecting to {redact(options.url)}",
                    left if options.once else None,
                    sleep=self._stop.wait,
                    should_stop=self._stop.is_set,
                )
            except BrokerUnavailable as err:
                if self._stop.is_set():
                    break
                log.error("%s", err)
                return 1
            except BrokerRefused as err:  # retrying forever would change nothing
                log.error("%s", err)
                return 2
            self._connection = connection
            connected_at = time.monotonic()
            try:
                code = self._serve(channel, deadline)
                if code is not None:
                    return code
            except pika.exceptions.AMQPError as err:
                if time.monotonic() - connected_at > 30:  # a long-lived link: start over
                    delay = 0.25
                log.warning("broker link lost (%s); reconnecting in %.2g s", describe(err), delay)
                self.heartbeat.beat("reconnecting")
                self._stop.wait(delay)
                delay = min(delay * 2, 10.0)
            except OutputUnavailable as err:  # not the message's fault: it goes back
                log.error("%s; message returned to the queue", err)
                if options.once:
                    return 1
                self._output_fault = str(err)
            finally:
                self._connection = None
                if connection.is_open:
                    with contextlib.suppress(pika.exceptions.AMQPError):
                        connection.close()  # requeues an unacked message
        log.info("stopped")
        return 0

    def _probe_output(self) -> str | None:
        """None if a figure can be written to the output directory, else why not."""
        out_dir = self.options.out_dir
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=out_dir, prefix=".hzz-probe-") as probe:
                probe.write(b"\0" * PROBE_BYTES)
                probe.flush()
                os.fsync(probe.fileno())
        except OSError as err:
            return f"cannot write figures to {out_dir}: {err.strerror or err}"
        return None

    def _wait_for_output(self) -> bool:
        """Until the output directory can be written (True), or the service is stopped.

        Meanwhile nothing is consumed (messages wait in the queue), the health file
        says ``not consuming`` with the cause, and the directory is probed with backoff.
        """
        reason = self._output_fault or self._probe_output()
        self._output_fault = None
        delay = 1.0
        while reason is not None:
            self.heartbeat.beat(NOT_CONSUMING, reason=reason)
            log.error("%s; not consuming; trying again in %.0f s", reason, delay)
            if self._stop.wait(delay):
                return False
            delay = min(delay * 2, MAX_PROBE_DELAY_S)
            reason = self._probe_output()
            if reason is None:
                log.info("%s can be written again; consuming", self.options.out_dir)
        return not self._stop.is_set()

    def _connect(self) -> tuple[pika.BlockingConnection, BlockingChannel]:
        options = self.options
        name = f"hzz-plotter {options.topology.queue} pid {os.getpid()}"
        connection = pika.BlockingConnection(parameters(options.url, name))
        try:
            channel = connection.channel()
            options.topology.declare(channel)
            channel.basic_qos(prefetch_count=1)
            channel.confirm_delivery()  # for dead-letter republishing
        except BaseException:
            connection.close()
            raise
        log.info(
            "connected to %s; consuming %s, figures to %s",
            redact(options.url),
            options.topology.queue,
            options.out_dir,
        )
        return connection, channel

    def _serve(self, channel: BlockingChannel, deadline: float | None) -> int | None:
        """Consume until stopped (None) or, with ``once``, until one message (its code)."""
        queue = self.options.topology.queue
        for method, properties, body in channel.consume(queue, inactivity_timeout=_POLL_S):
            self.heartbeat.beat(WORKING, queue=queue)
            if method is None:
                if self._stop.is_set():
                    break
                self._draw_partials()
                if self.options.once and deadline is not None and time.monotonic() > deadline:
                    log.error("no message within %g s", self.options.timeout_s)
                    return 1
                continue
            outcome = self.handle_counted(channel, method, properties, body)
            if outcome is Outcome.PARTIAL:
                # A burst of partial documents waiting in the queue: only the newest of
                # each run is drawn, once the burst is read.
                if not self._next_message_waiting(channel):
                    self._draw_partials()
                continue
            if self.options.once:
                return 2 if outcome is Outcome.REJECTED else 0
            if self._stop.is_set():
                break
        return None

    def _next_message_waiting(self, channel: BlockingChannel) -> bool:
        """Whether another message arrives within ``BURST_WAIT_S`` (it is then the
        next the loop gets)."""
        deadline = time.monotonic() + BURST_WAIT_S
        while channel.get_waiting_message_count() == 0:
            left = deadline - time.monotonic()
            if left <= 0 or self._connection is None:
                return False
            self._connection.process_data_events(left)
        return True

    def handle_counted(
        self,
        channel: BlockingChannel,
        method: Basic.Deliver,
        properties: BasicProperties,
        body: bytes,
    ) -> Outcome:
        """``handle`` one message, its start counted on disk until it is settled.

        The count survives only a death of this process while handling the message (a
        redelivery after a dropped link, a full disk or an error this process lives
        through clears it), so a message found with ``crash_limit`` unfinished starts
        is one that keeps killing the service: it is dead-lettered unhandled.
        """
        key = body_key(body)
        try:
            stops = self.in_hand.start(key)
        except OSError as err:  # the output directory: not the message's fault
            raise OutputUnavailable(
                f"cannot write figures to {self.options.out_dir}: {err.strerror or err}"
            ) from err
        if stops >= self.options.crash_limit:
            reason = f"the plotter stopped while handling this message {stops} times"
            outcome = self._reject(
                channel, method, properties, body, message_label(properties), reason
            )
            self._finish(key)  # only once it is out of the queue: else counted again
            return outcome
        try:
            return self.handle(channel, method, properties, body)
        finally:
            self._finish(key)

    def _finish(self, key: str) -> None:
        try:
            self.in_hand.finish(key)
        except OSError as err:  # a stale count only makes the limit come sooner, once
            log.warning("cannot clear the in-hand record %s: %s", key, err.strerror or err)

    def handle(
        self,
        channel: BlockingChannel,
        method: Basic.Deliver,
        properties: BasicProperties,
        body: bytes,
    ) -> Outcome:
        """Plot, skip or dead-letter one message; ack it only when that is done."""
        started = time.monotonic()
        label = message_label(properties)
        try:
            payload = decode(body, properties, self.options.max_bytes)
            document = validate(payload)
        except Rejected as err:
            return self._reject(channel, method, properties, body, label, str(err))
        if document.partial is not None:
            return self._take_partial(channel, method, document, label)
        key = idempotency_key(payload)
        # Sample names come from the network: escape them so a log line stays one line.
        samples = ",".join(printable(n, 100) for n in document.samples) or "(none)"
        existing = self._already_plotted(key)
        if existing is None:
            try:
                contents = self._render(document, {PNG_KEY: key})
            except Rejected as err:
                return self._reject(channel, method, properties, body, label, str(err))
            try:
                with self.ledger.locked():
                    existing = self.ledger.plotted(key)
                    if existing is None:
                        self.ledger.begin(key)
                        figure = write_new(self.options.out_dir, contents, when=document.created)
                        self.ledger.done(key, figure[".png"])
            except OSError as err:  # full, read-only, gone: not the message's fault
                raise OutputUnavailable(
                    f"cannot write figures to {self.options.out_dir}: {err.strerror or err}"
                ) from err
            except Exception as err:  # e.g. a time no file name can hold
                reason = f"writing failed: {type(err).__name__}: {err}"
                return self._reject(channel, method, properties, body, label, reason)
        if self._pause_before_ack and self._connection is not None:
            log.info("test hook: pausing %g s before ack", self._pause_before_ack)
            self._connection.sleep(self._pause_before_ack)
        channel.basic_ack(method.delivery_tag)
        self._finish_run(properties.correlation_id, None if existing else figure[".png"])
        took = time.monotonic() - started
        if existing is not None:
            log.info(
                "message %s: samples %s: already plotted as %s; acked (%.2f s)",
                label,
                samples,
                existing,
                took,
            )
            return Outcome.DUPLICATE
        log.info(
            "message %s: samples %s: wrote %s in %.2f s%s",
            label,
            samples,
            figure[".png"],
            took,
            " (redelivered)" if method.redelivered else "",
        )
        return Outcome.PLOTTED

    def _take_partial(
        self,
        channel: BlockingChannel,
        method: Basic.Deliver,
        document: HistogramDocument,
        label: str,
    ) -> Outcome:
        """Ack a live run's partial document and keep it to draw if it is the newest of
        its run: never in the ledger, never dead-lettered for being partial."""
        channel.basic_ack(method.delivery_tag)
        progress = document.partial
        assert progress is not None
        run = progress.run or "unnamed"
        newest = (progress.done, document.created)
        waiting = self._partials.get(run)
        older = [self._drawn.get(run)]
        if waiting is not None and waiting.partial is not None:
            older.append((waiting.partial.done, waiting.created))
        if run in self._finished or any(o is not None and o >= newest for o in older):
            log.info("message %s: run %s: an older partial document; acked", label, run)
            return Outcome.PARTIAL
        self._partials[run] = document
        return Outcome.PARTIAL

    def _draw_partials(self) -> None:
        """Draw the newest partial document of each run into its live figure."""
        while self._partials:
            run, document = self._partials.popitem()
            progress = document.partial
            assert progress is not None
            try:
                png = self._render(document, {}, partial=True)[".png"]
                path = replace_live(self.options.out_dir, run, png)
            except (Rejected, OSError) as err:  # the next partial document may do better
                log.warning("run %s: live figure not drawn: %s", run, err)
                continue
            self._drawn[run] = (progress.done, document.created)
            done, total = progress.done, progress.total
            log.info("run %s: partial %d/%d partitions: drew %s", run, done, total, path)

    def _finish_run(self, run: Any, figure: Path | None) -> None:
        """The final document of a live run (its ``correlation_id``) came: its live
        figure becomes the final one, and its partial documents are no longer drawn."""
        if not isinstance(run, str) or RUN_PATTERN.fullmatch(run) is None:
            return
        self._partials.pop(run, None)
        self._drawn.pop(run, None)
        self._finished[run] = None
        while len(self._finished) > FINISHED_RUNS_KEPT:
            self._finished.popitem(last=False)
        live = live_path(self.options.out_dir, run)
        if figure is not None and live.exists():
            try:
                replace_live(self.options.out_dir, run, figure.read_bytes())
            except OSError as err:
                log.warning("run %s: live figure not replaced by the result: %s", run, err)

    def _already_plotted(self, key: str) -> Path | None:
        try:
            with self.ledger.locked():
                return self.ledger.plotted(key)
        except OSError as err:
            raise OutputUnavailable(
                f"cannot read the ledger in {self.options.out_dir}: {err.strerror or err}"
            ) from err

    def _render(
        self, document: HistogramDocument, metadata: dict[str, str], partial: bool = False
    ) -> dict[str, bytes]:
        """The files of a document (``_products``; of a ``partial`` one, the figure
        only), made in a forked child within ``render_timeout_s``; Rejected if it
        fails, crashes or takes longer. The broker link is served meanwhile."""
        context = multiprocessing.get_context("fork")
        receiver, sender = context.Pipe(duplex=False)
        child = context.Process(
            target=_render_child,
            args=(document, metadata, sender, os.getpid(), partial),
            name="hzz-render",
        )
        child.start()
        sender.close()
        limit = self.options.render_timeout_s
        deadline = time.monotonic() + limit
        try:
            while not receiver.poll(0.2):
                if not child.is_alive() and not receiver.poll(0):
                    raise Rejected(f"rendering failed: {_ended(child)}")
                if time.monotonic() > deadline:
                    raise Rejected(f"rendering took longer than {limit:g} s")
                if self._connection is not None:
                    self._connection.process_data_events(0)  # heartbeats
                self.heartbeat.beat(WORKING, queue=self.options.topology.queue)
            try:
                ok, result = receiver.recv()
            except (EOFError, OSError) as err:  # it died before it could answer
                raise Rejected(f"rendering failed: {_ended(child)}") from err
        finally:
            receiver.close()
            if child.is_alive():
                child.kill()
            child.join()
        if not ok:
            raise Rejected(f"rendering failed: {result}")
        return result

    def _reject(
        self,
        channel: BlockingChannel,
        method: Basic.Deliver,
        properties: BasicProperties,
        body: bytes,
        label: str,
        reason: str,
    ) -> Outcome:
        reason = printable(reason, 1000)
        self._dead_letter(channel, method, properties, body, reason)
        log.warning("message %s: dead-lettered: %s", label, reason)
        return Outcome.REJECTED

    def _dead_letter(
        self,
        channel: BlockingChannel,
        method: Basic.Deliver,
        properties: BasicProperties,
        body: bytes,
        reason: str,
    ) -> None:
        """Republish to the dead-letter exchange with the reason, then ack the original.

        Falls back to a plain reject (the queue's own dead-lettering, no reason
        header) if the broker does not confirm the republish.
        """
        ours = {
            REASON_HEADER: reason,
            "x-hzz-original-exchange": method.exchange,
            "x-hzz-original-routing-key": method.routing_key,
        }
        for headers in ({**(properties.headers or {}), **ours}, ours):
            copy = BasicProperties(
                content_type=properties.content_type,
                content_encoding=properties.content_encoding,
                headers=headers,
                delivery_mode=pika.DeliveryMode.Persistent,
                message_id=properties.message_id,
                timestamp=properties.timestamp,
                type=properties.type,
                app_id=properties.app_id,
            )
            try:
                channel.basic_publish(
                    self.options.topology.dead_letter_exchange,
                    method.routing_key,
                    body,
                    copy,
                    mandatory=True,
                )
            except (pika.exceptions.NackError, pika.exceptions.UnroutableError) as err:
                log.error("dead-letter republish not confirmed (%s); rejecting", describe(err))
                break
            except pika.exceptions.AMQPError:
                raise
            except Exception as err:  # the sender's headers cannot be re-encoded: drop them
                log.warning("dead letter without the sender's headers: %s", describe(err))
                continue
            channel.basic_ack(method.delivery_tag)
            return
        channel.basic_reject(method.delivery_tag, requeue=False)


def _ended(child: multiprocessing.process.BaseProcess) -> str:
    """How a drawing process that sent nothing ended."""
    child.join(5)
    code = child.exitcode
    if code is not None and code < 0:
        return f"the drawing process was killed by signal {-code}"
    return f"the drawing process exited with code {code}"


#: prctl(2) option: the signal this process gets when its parent dies (Linux).
_PR_SET_PDEATHSIG = 1


def _die_with(service: int) -> None:
    """Have the kernel SIGKILL this drawing process when the service process dies.

    A service killed while drawing (SIGKILL, the OOM killer) would otherwise leave its
    drawing process running on as an orphan, a hung figure for ever, one more after each
    restart. Linux only; elsewhere the orphan ends when its drawing does.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        return
    if os.getppid() != service:  # it died before the request took effect
        os._exit(1)


def _render_child(
    document: HistogramDocument,
    metadata: dict[str, str],
    sender: Any,
    service: int,
    partial: bool = False,
) -> None:
    """In the forked drawing process: the PNG, or why it could not be drawn."""
    _die_with(service)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the service decides when to stop
    try:
        made = {".png": render_png(document)} if partial else _products(document, metadata)
        sender.send((True, made))
    except BaseException as err:  # anything a document can make the figure code raise
        sender.send((False, f"{type(err).__name__}: {err}"))


def _products(document: HistogramDocument, metadata: dict[str, str]) -> dict[str, bytes]:
    """The figure, and when the document asks for a fit the post-fit figure, the fit
    results and the pyhf workspace; a document the model cannot fit still gets its
    figure, and the reason is logged."""
    from analysis.results.products import render_products

    def no_fit(err: Exception) -> None:
        log.warning("no fit: %s", printable(str(err), 500))

    made = render_products(document, metadata=metadata, on_fit_error=no_fit)
    if made.fit is not None:
        log.info("fit: mu = %.3f ± %.3f", made.fit.mu, made.fit.mu_error)
    return made.files


def _warm_up() -> None:
    """Draw one empty figure here, so that every forked drawing process starts with
    matplotlib's fonts, mathtext parser and styles loaded (a third of a cold figure)."""
    from analysis.inputs.catalogue import load_release
    from analysis.results.document import GroupStyle

    release = load_release("2020")
    groups = [GroupStyle(g.label, g.colour, g.role) for g in release.groups]
    try:
        render_png(HistogramDocument("2020", release.lumi_fb, groups, {}))
    except Exception as err:  # only a head start: drawing proper reports its own errors
        log.debug("warm-up figure: %s", err)


def serve(options: PlotterOptions) -> int:
    """Run a plotter in this process; SIGTERM and SIGINT stop it cleanly (exit 0)."""
    _warm_up()
    plotter = Plotter(options)
    signal.signal(signal.SIGTERM, plotter.stop)
    signal.signal(signal.SIGINT, plotter.stop)
    page = None
    if options.live_port is not None:
        from analysis.errors import InputError

        from .livepage import LivePage

        try:
            page = LivePage(options.out_dir, options.live_host, options.live_port).start()
        except OSError as err:  # a port taken, an address not of this machine
            where = f"{options.live_host} port {options.live_port}"
            raise InputError(f"--live-port: cannot listen on {where}: {err.strerror}") from err
    try:
        return plotter.run()
    finally:
        if page is not None:
            page.close()
