"""``hzz plotter``: the service loop that turns queued histogram documents into figures.

At-least-once delivery made exactly-once on disk: prefetch 1, manual acks, the ack
sent only after the PNG is written and recorded in the ledger (``cluster.service.ledger``),
so a crash redelivers the message and the ledger stops a second figure. A message
that is not a valid document is never retried: it goes to the dead-letter queue
with the reason in header ``x-hzz-reject-reason`` and the service carries on.
What a message may hold, and what makes it a document, is ``cluster.service.messages``.
A figure (and a fit, when the document asks for one) is made in a helper thread while
the connection's thread keeps servicing heartbeats: a fit can take longer than the
30 s heartbeat.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from types import FrameType

import pika
import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel
from pika.spec import Basic, BasicProperties

from analysis.document import HistogramDocument
from analysis.outputs import write_new
from analysis.result import AnalysisResult
from cluster.defaults import DEFAULT_MAX_BYTES, setting

from .amqp import BrokerUnavailable, Topology, describe, parameters, quiet_pika, redact, with_retry
from .heartbeat import WORKING, Heartbeat
from .ledger import PNG_KEY, Ledger
from .messages import Rejected, decode, idempotency_key, message_label, validate

log = logging.getLogger(__name__)

REASON_HEADER = "x-hzz-reject-reason"
#: Test hook: seconds to wait between writing the PNG and acking (crash window).
PAUSE_ENV = "HZZ_PLOTTER_TEST_PAUSE_BEFORE_ACK"
_POLL_S = 1.0


class Outcome(Enum):
    PLOTTED = "plotted"
    DUPLICATE = "already plotted"
    REJECTED = "dead-lettered"


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


class Plotter:
    """One consumer: connect, consume, plot, ack; reconnect when the link drops."""

    def __init__(self, options: PlotterOptions) -> None:
        self.options = options
        self.ledger = Ledger(options.out_dir)
        self._stop = threading.Event()
        self._connection: pika.BlockingConnection | None = None
        self.heartbeat = Heartbeat(options.health_file)
        pause = setting(PAUSE_ENV)
        self._pause_before_ack = float(pause) if pause else 0.0
        quiet_pika()

    def stop(self, signum: int | None = None, frame: FrameType | None = None) -> None:
        """Stop after the message in hand (safe in a signal handler)."""
        if signum is not None:
            log.info("signal %d: stopping", signum)
        self._stop.set()

    def run(self) -> int:
        """Serve until stopped (exit 0); with ``once`` the exit code of the one message."""
        options = self.options
        deadline = None if options.timeout_s is None else time.monotonic() + options.timeout_s
        delay = 0.25
        try:
            return self._run(deadline, delay)
        finally:
            self.heartbeat.clear()

    def _run(self, deadline: float | None, delay: float) -> int:
        options = self.options
        while not self._stop.is_set():
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
            except OSError as err:  # cannot write figures: not the message's fault
                log.error("%s; message left unacked for redelivery; exiting", err)
                return 1
            finally:
                self._connection = None
                if connection.is_open:
                    with contextlib.suppress(pika.exceptions.AMQPError):
                        connection.close()  # requeues an unacked message
        log.info("stopped")
        return 0

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
                if self.options.once and deadline is not None and time.monotonic() > deadline:
                    log.error("no message within %g s", self.options.timeout_s)
                    return 1
                continue
            outcome = self.handle(channel, method, properties, body)
            if self.options.once:
                return 2 if outcome is Outcome.REJECTED else 0
            if self._stop.is_set():
                break
        return None

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
            self._dead_letter(channel, method, properties, body, str(err))
            log.warning("message %s: dead-lettered: %s", label, err)
            return Outcome.REJECTED
        key = idempotency_key(properties, payload)
        # Sample names come from the network: escape them so a log line stays one line.
        samples = ",".join(n.encode("unicode_escape").decode() for n in document.samples)
        samples = samples or "(none)"
        with self.ledger.locked():
            existing = self.ledger.plotted(key)
            if existing is None:
                self.ledger.begin(key)
                try:
                    contents = self._render_alive(document, key)
                except Exception as err:  # a valid document the figure code cannot draw
                    reason = f"rendering failed: {type(err).__name__}: {err}"
                    self._dead_letter(channel, method, properties, body, reason)
                    log.warning("message %s: dead-lettered: %s", label, reason)
                    return Outcome.REJECTED
                try:
                    figure = write_new(self.options.out_dir, contents, when=document.created)
                except OSError:
                    raise  # cannot write figures: not the message's fault
                except Exception as err:  # e.g. a time no file name can hold
                    reason = f"writing failed: {type(err).__name__}: {err}"
                    self._dead_letter(channel, method, properties, body, reason)
                    log.warning("message %s: dead-lettered: %s", label, reason)
                    return Outcome.REJECTED
                self.ledger.done(key, figure[".png"])
        if self._pause_before_ack and self._connection is not None:
            log.info("test hook: pausing %g s before ack", self._pause_before_ack)
            self._connection.sleep(self._pause_before_ack)
        channel.basic_ack(method.delivery_tag)
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

    def _render_alive(self, document: HistogramDocument, key: str) -> dict[str, bytes]:
        """``_render`` in a helper thread while this one keeps the broker link alive:
        a fit takes longer than the heartbeat, and a link dropped mid-fit would have
        the message redelivered and fitted again, without end."""
        if self._connection is None:
            return _render(document, key)
        outcome: dict[str, object] = {}

        def work() -> None:
            try:
                outcome["contents"] = _render(document, key)
            except BaseException as err:
                outcome["error"] = err

        thread = threading.Thread(target=work, name="hzz-render", daemon=True)
        thread.start()
        while thread.is_alive():
            self._connection.sleep(0.2)  # services heartbeats
            thread.join(0.05)
        if "error" in outcome:
            raise outcome["error"]  # type: ignore[misc]
        return outcome["contents"]  # type: ignore[return-value]

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
            REASON_HEADER: reason[:1000],
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


def _render(document: HistogramDocument, key: str) -> dict[str, bytes]:
    """The figure (tagged with the message's key), and when the document asks for a fit
    (``figure.fit``) the post-fit figure, fit results and pyhf workspace; a document
    that cannot be fitted still gets its figure (the reason is logged)."""
    from analysis.fit import FitError
    from analysis.products import fit_products

    contents = {".png": AnalysisResult(document).to_png({PNG_KEY: key})}
    if document.figure.fit:
        try:
            fitted, result = fit_products(document)
        except FitError as err:
            log.warning("no fit: %s", err)
        else:
            contents.update(fitted)
            log.info("fit: mu = %.3f ± %.3f", result.mu, result.mu_error)
    return contents


def serve(options: PlotterOptions) -> int:
    """Run a plotter in this process; SIGTERM and SIGINT stop it cleanly (exit 0)."""
    import analysis.plot  # noqa: F401  (matplotlib loaded before the first message)

    plotter = Plotter(options)
    signal.signal(signal.SIGTERM, plotter.stop)
    signal.signal(signal.SIGINT, plotter.stop)
    return plotter.run()
