"""Where the broker is and what lives on it: URL, exchange and queue names, connecting.

Publisher and plotter both declare the whole topology (idempotent), so either may
start first and a message is never published into a void. Default topology:

* exchange ``hzz.histograms`` (direct, durable), routing key ``histograms``, bound to
* queue ``hzz.plots`` (durable, ``x-dead-letter-exchange`` = ``hzz.histograms.dlx``);
* exchange ``hzz.histograms.dlx`` (fanout, durable) feeding queue ``hzz.plots.dead``.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar
from urllib.parse import urlsplit, urlunsplit

import pika
import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel

log = logging.getLogger(__name__)

DEFAULT_URL = "amqp://guest:guest@127.0.0.1:5672/"
DEFAULT_EXCHANGE = "hzz.histograms"
DEFAULT_QUEUE = "hzz.plots"
ROUTING_KEY = "histograms"
HEARTBEAT_S = 30

#: What a failing connect or publish raises: retried until the time budget is spent.
CONNECT_ERRORS: tuple[type[BaseException], ...] = (
    pika.exceptions.AMQPConnectionError,
    pika.exceptions.AMQPChannelError,
    ConnectionError,
    OSError,
)

#: Wrong credentials or vhost: retrying cannot help.
FATAL_ERRORS: tuple[type[BaseException], ...] = (
    pika.exceptions.ProbableAuthenticationError,
    pika.exceptions.ProbableAccessDeniedError,
)

T = TypeVar("T")


class BrokerUnavailable(RuntimeError):
    """The broker could not be reached (or did not confirm) within the time budget."""


def describe(err: BaseException) -> str:
    """One line for a broker error; pika's own ``str()`` is often empty."""
    if isinstance(err, pika.exceptions.AMQPError):
        return repr(err)
    return f"{type(err).__name__}: {err}"


def quiet_pika() -> None:
    """pika logs every failed attempt at ERROR with a traceback; we log one line instead."""
    if not logging.getLogger().isEnabledFor(logging.DEBUG):
        logging.getLogger("pika").setLevel(logging.CRITICAL)


def broker_url(explicit: str | None = None) -> str:
    """``explicit``, else env ``HZZ_BROKER``, else the local default broker."""
    return explicit or os.environ.get("HZZ_BROKER") or DEFAULT_URL


def redact(url: str) -> str:
    """The URL without its password, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))


@dataclass(frozen=True)
class Topology:
    """Exchange, queue and dead-letter names; the dead-letter names follow the main ones."""

    exchange: str = DEFAULT_EXCHANGE
    queue: str = DEFAULT_QUEUE
    routing_key: str = ROUTING_KEY

    @property
    def dead_letter_exchange(self) -> str:
        return f"{self.exchange}.dlx"

    @property
    def dead_letter_queue(self) -> str:
        return f"{self.queue}.dead"

    def declare(self, channel: BlockingChannel) -> None:
        """Declare everything; a no-op when it exists with the same settings."""
        channel.exchange_declare(self.dead_letter_exchange, "fanout", durable=True)
        channel.queue_declare(self.dead_letter_queue, durable=True)
        channel.queue_bind(self.dead_letter_queue, self.dead_letter_exchange)
        channel.exchange_declare(self.exchange, "direct", durable=True)
        channel.queue_declare(
            self.queue,
            durable=True,
            arguments={"x-dead-letter-exchange": self.dead_letter_exchange},
        )
        channel.queue_bind(self.queue, self.exchange, routing_key=self.routing_key)


def parameters(url: str, connection_name: str) -> pika.URLParameters:
    """Connection parameters: heartbeats on, short socket timeouts, one attempt (we retry)."""
    params = pika.URLParameters(url)
    query = urlsplit(url).query
    if "heartbeat" not in query:
        params.heartbeat = HEARTBEAT_S
    if "socket_timeout" not in query:
        params.socket_timeout = 5
    params.connection_attempts = 1
    params.stack_timeout = 10  # one attempt, TCP to AMQP handshake, is at most this long
    params.blocked_connection_timeout = 60
    params.client_properties = {"connection_name": connection_name}
    return params


def with_retry(
    action: Callable[[], T],
    what: str,
    timeout_s: float | None,
    sleep: Callable[[float], None] = time.sleep,
    should_stop: Callable[[], bool] = lambda: False,
) -> T:
    """Call ``action`` until it succeeds, backing off 0.25 s, 0.5 s, … up to 10 s.

    ``timeout_s`` bounds the total time (None: forever); then BrokerUnavailable
    says what failed last.
    """
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    delay = 0.25
    while True:
        try:
            return action()
        except FATAL_ERRORS as err:
            raise BrokerUnavailable(f"{what}: {describe(err)}") from err
        except CONNECT_ERRORS as err:
            reason = describe(err)
            if should_stop():
                raise BrokerUnavailable(f"{what}: stopped ({reason})") from err
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise BrokerUnavailable(f"{what} failed for {timeout_s:g} s: {reason}") from err
            wait = delay if left is None else min(delay, left)
            log.warning("%s failed (%s); retrying in %.2g s", what, reason, wait)
            sleep(wait)
            delay = min(delay * 2, 10.0)
