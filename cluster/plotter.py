"""``hzz plotter``: the service that turns queued histogram documents into figures.

At-least-once delivery made exactly-once on disk: prefetch 1, manual acks, the ack
sent only after the PNG is written and recorded in the ledger (``cluster.ledger``),
so a crash redelivers the message and the ledger stops a second figure. A message
that is not a valid document is never retried: it goes to the dead-letter queue
with the reason in header ``x-hzz-reject-reason`` and the service carries on.
Nothing from the network is ever unpickled or evaluated: bodies are only gunzipped
(with a size cap) and parsed as JSON by ``analysis.document.from_json``.
A figure (and a fit, when the document asks for one) is made in a helper thread while
the connection's thread keeps servicing heartbeats: a fit can take longer than the
30 s heartbeat.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import signal
import threading
import time
import zlib
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from types import FrameType

import pika
import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel
from pika.spec import Basic, BasicProperties

from analysis.document import SCHEMA, SCHEMAS, DocumentError, HistogramDocument, from_json
from analysis.outputs import write_new

from .amqp import BrokerUnavailable, Topology, describe, parameters, quiet_pika, redact, with_retry
from .defaults import DEFAULT_MAX_BYTES
from .ledger import Ledger, tag_png
from .publisher import CONTENT_TYPE

log = logging.getLogger(__name__)

REASON_HEADER = "x-hzz-reject-reason"
#: Test hook: seconds to wait between writing the PNG and acking (crash window).
PAUSE_ENV = "HZZ_PLOTTER_TEST_PAUSE_BEFORE_ACK"
_SANE_ID = re.compile(r"[A-Za-z0-9._:@-]{1,128}")
_POLL_S = 1.0


class Rejected(Exception):
    """A message that can never be plotted; ``str()`` is the reason."""


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


def _gunzip(body: bytes, max_bytes: int) -> bytes:
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(body, max_bytes + 1)
    except zlib.error as err:
        raise Rejected(f"content encoding gzip: corrupt stream: {err}") from err
    if len(out) > max_bytes or inflater.unconsumed_tail:
        raise Rejected(f"decompressed size exceeds the limit of {max_bytes} bytes")
    if not inflater.eof:
        raise Rejected("content encoding gzip: truncated stream")
    return out


def decode(body: bytes, properties: BasicProperties, max_bytes: int) -> bytes:
    """The document JSON of a message, or Rejected with the reason."""
    if properties.content_type != CONTENT_TYPE:
        raise Rejected(f"content type {properties.content_type!r} is not {CONTENT_TYPE!r}")
    encoding = properties.content_encoding or "identity"
    if encoding not in ("identity", "gzip"):
        raise Rejected(f"content encoding {encoding!r} is not 'identity' or 'gzip'")
    if properties.type not in (None, *SCHEMAS):
        raise Rejected(f"message type {properties.type!r} is not {SCHEMA!r}")
    if len(body) > max_bytes:
        raise Rejected(f"message of {len(body)} bytes exceeds the limit of {max_bytes} bytes")
    return _gunzip(body, max_bytes) if encoding == "gzip" else body


def validate(payload: bytes) -> HistogramDocument:
    """The document, or Rejected. Any error counts: a message must never crash the service
    (e.g. ``[[[[…`` nested 100 000 deep makes ``json.loads`` raise RecursionError)."""
    try:
        return from_json(payload)
    except DocumentError as err:
        raise Rejected(f"invalid document: {err}") from err
    except Exception as err:
        raise Rejected(f"invalid document: {type(err).__name__}: {err}") from err


def idempotency_key(properties: BasicProperties, payload: bytes) -> str:
    """The sender's message_id if it is a plain token, else the content hash."""
    message_id = properties.message_id
    if isinstance(message_id, str) and _SANE_ID.fullmatch(message_id):
        return message_id
    return hashlib.sha256(payload).hexdigest()


class Plotter:
    """One consumer: connect, consume, plot, ack; reconnect when the link drops."""

    def __init__(self, options: PlotterOptions) -> None:
        self.options = options
        self.ledger = Ledger(options.out_dir)
        self._stop = threading.Event()
        self._connection: pika.BlockingConnection | None = None
        pause = os.environ.get(PAUSE_ENV)
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
        while not self._stop.is_set():
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
        for method, properties, body in channel.consume(
            self.options.topology.queue, inactivity_timeout=_POLL_S
        ):
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
        given = properties.message_id
        label = given if isinstance(given, str) and _SANE_ID.fullmatch(given) else repr(given)[:80]
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
                    contents = self._render_alive(document)
                    contents[".png"] = tag_png(contents[".png"], key)
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

    def _render_alive(self, document: HistogramDocument) -> dict[str, bytes]:
        """``_render`` in a helper thread while this one keeps the broker link alive:
        a fit takes longer than the heartbeat, and a link dropped mid-fit would have
        the message redelivered and fitted again, without end."""
        if self._connection is None:
            return _render(document)
        outcome: dict[str, object] = {}

        def work() -> None:
            try:
                outcome["contents"] = _render(document)
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


def _render(document: HistogramDocument) -> dict[str, bytes]:
    """The figure, and when the document asks for a fit (``figure.fit``) the post-fit
    figure, fit results and pyhf workspace; a document that cannot be fitted still gets
    its figure (the reason is logged)."""
    # matplotlib is imported on first use, not when the command line is built
    from analysis.fit import FitError
    from analysis.plot import render_png
    from analysis.products import fit_products

    contents = {".png": render_png(document)}
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
