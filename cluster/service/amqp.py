"""Where the broker is and what lives on it: URL, exchange and queue names, connecting.

Publisher and plotter both declare the whole topology (idempotent), so either may
start first and a message is never published into a void. Default topology:

* exchange ``hzz.histograms`` (direct, durable), routing key ``histograms``, bound to
* queue ``hzz.plots`` (durable, ``x-dead-letter-exchange`` = ``hzz.histograms.dlx``);
* exchange ``hzz.histograms.dlx`` (fanout, durable) feeding queue ``hzz.plots.dead``.
"""

from __future__ import annotations

import logging
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit, urlunsplit

import pika
import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel

from analysis.errors import InputError, RunFailure
from cluster.defaults import DEFAULT_EXCHANGE, DEFAULT_QUEUE, DEFAULT_URL, setting

log = logging.getLogger(__name__)

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


class BrokerUnavailable(RunFailure):
    """The broker could not be reached (or did not confirm) within the time budget."""


class BrokerRefused(InputError):
    """The broker refused what was asked of it for good: a queue or exchange that exists
    with other arguments (``PRECONDITION_FAILED``), or one this user may not use
    (``ACCESS_REFUSED``). Retrying cannot help; the names or the broker must change."""


#: Channel close codes that no retry changes: 403 ACCESS_REFUSED, 406 PRECONDITION_FAILED.
PERMANENT_REPLY_CODES = frozenset({403, 406})


def refused_for_good(err: BaseException) -> bool:
    """Whether the broker closed the channel for a reason no retry changes."""
    return (
        isinstance(err, pika.exceptions.ChannelClosedByBroker)
        and err.reply_code in PERMANENT_REPLY_CODES
    )


class BrokerBlocked(ConnectionError):
    """The broker held this connection blocked (``connection.blocked``, sent in a memory
    or disk alarm) past the time budget. pika's own error says only "Blocked connection
    timeout expired", which does not tell an operator to look at the broker's alarms."""

    def __init__(self, waited_s: float) -> None:
        super().__init__(
            "the broker blocked publishing (connection.blocked: a memory or disk alarm on "
            f"the broker) and did not unblock within {waited_s:.3g} s"
        )


def describe(err: BaseException) -> str:
    """One line for a broker error; pika's own ``str()`` is often empty."""
    if isinstance(err, pika.exceptions.AMQPError):
        return repr(err)
    return f"{type(err).__name__}: {err}"


def quiet_pika() -> None:
    """pika logs every failed attempt at ERROR with a traceback; we log one line instead."""
    if not logging.getLogger().isEnabledFor(logging.DEBUG):
        logging.getLogger("pika").setLevel(logging.CRITICAL)


#: Env naming a file that holds the broker URL (a Docker secret such as
#: /run/secrets/hzz_broker_url), so the password stays out of env listings and `ps`.
BROKER_FILE_ENV = "HZZ_BROKER_FILE"


class BrokerConfigError(InputError):
    """The broker URL file is unreadable or holds no AMQP URL (its content is never shown)."""


def broker_url(explicit: str | None = None) -> str:
    """``explicit``, else env ``HZZ_BROKER``, else the URL in the file named by env
    ``HZZ_BROKER_FILE``, else the local default broker."""
    url = explicit or setting("HZZ_BROKER")
    if url:
        return url
    path = setting(BROKER_FILE_ENV)
    return read_url_file(Path(path)) if path else DEFAULT_URL


def read_url_file(path: Path) -> str:
    """The AMQP URL stored in ``path``, surrounding whitespace dropped."""
    try:
        url = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as err:
        reason = getattr(err, "strerror", None) or type(err).__name__
        raise BrokerConfigError(f"{BROKER_FILE_ENV}={path}: cannot read it: {reason}") from None
    if not url.startswith(("amqp://", "amqps://")) or "\n" in url:
        raise BrokerConfigError(
            f"{BROKER_FILE_ENV}={path}: expected one amqp:// or amqps:// URL in the file"
        )
    return url


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


#: amqps:// settings: CA bundle to verify the broker (default: the system's), and an
#: optional client certificate and its key (PEM files).
TLS_CA_ENV, TLS_CERT_ENV, TLS_KEY_ENV = "HZZ_BROKER_CA", "HZZ_BROKER_CERT", "HZZ_BROKER_KEY"


def tls_options(url: str) -> pika.SSLOptions:
    """TLS for an amqps:// URL: the broker's certificate and host name are verified.

    A CA, certificate or key file that cannot be loaded is BrokerUnavailable naming
    the variable and file: retrying cannot help.
    """
    ca_file = setting(TLS_CA_ENV) or None
    cert_file = setting(TLS_CERT_ENV) or None
    key_file = setting(TLS_KEY_ENV) or None
    try:
        context = ssl.create_default_context(cafile=ca_file)
    except (OSError, ValueError) as err:
        raise BrokerUnavailable(f"{TLS_CA_ENV}={ca_file}: cannot load the CA: {err}") from None
    if cert_file:
        try:
            context.load_cert_chain(cert_file, key_file)
        except (OSError, ValueError) as err:
            raise BrokerUnavailable(
                f"{TLS_CERT_ENV}={cert_file} / {TLS_KEY_ENV}={key_file}: "
                f"cannot load the client certificate: {err}"
            ) from None
    return pika.SSLOptions(context, server_hostname=urlsplit(url).hostname)


def parameters(
    url: str, connection_name: str, blocked_timeout_s: float = 60.0
) -> pika.URLParameters:
    """Connection parameters: heartbeats on, short socket timeouts, one attempt (we retry)."""
    params = pika.URLParameters(url)
    query = urlsplit(url).query
    if params.ssl_options is not None and "ssl_options" not in query:
        params.ssl_options = tls_options(url)  # amqps://, verified
    if "heartbeat" not in query:
        params.heartbeat = HEARTBEAT_S
    if "socket_timeout" not in query:
        params.socket_timeout = 5
    params.connection_attempts = 1
    params.stack_timeout = 10  # one attempt, TCP to AMQP handshake, is at most this long
    # A broker in a disk or memory alarm blocks publishers: give up after this long.
    params.blocked_connection_timeout = blocked_timeout_s
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
    says what failed last. What no retry changes stops at once: wrong credentials
    (BrokerUnavailable), a topology the broker refuses (BrokerRefused).
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
            if refused_for_good(err):
                raise BrokerRefused(
                    f"{what}: {reason}; a queue or exchange of that name exists with other "
                    "settings (or may not be used): delete it, or give another --queue/--exchange"
                ) from err
            if should_stop():
                raise BrokerUnavailable(f"{what}: stopped ({reason})") from err
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise BrokerUnavailable(f"{what} failed for {timeout_s:.3g} s: {reason}") from err
            wait = delay if left is None else min(delay, left)
            log.warning("%s failed (%s); retrying in %.2g s", what, reason, wait)
            sleep(wait)
            delay = min(delay * 2, 10.0)
