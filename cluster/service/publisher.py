"""Send one histogram document to the plotting service, confirmed by the broker.

A message is persistent, mandatory (unroutable is an error) and confirmed, so a
successful return means the broker has the document on disk in a queue. Its
``message_id`` is the SHA-256 of the JSON, so a resend of the same document is
recognised by the plotter and not plotted twice.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import os
import time
from dataclasses import dataclass

import pika
import pika.exceptions

from analysis.results.document import SCHEMA
from cluster.defaults import DEFAULT_BROKER_TIMEOUT_S

from .amqp import BrokerBlocked, Topology, parameters, quiet_pika, redact, with_retry

log = logging.getLogger(__name__)

CONTENT_TYPE = "application/json"
GZIP_ABOVE_BYTES = 64 * 1024


@dataclass(frozen=True)
class Published:
    """What was sent: the message id and the size on the wire."""

    message_id: str
    wire_bytes: int
    encoding: str


def message_id_for(body: bytes) -> str:
    """Content hash of the uncompressed JSON: equal documents, equal ids."""
    return hashlib.sha256(body).hexdigest()


def encode(
    body: bytes, run: str | None = None, persistent: bool = True
) -> tuple[bytes, pika.BasicProperties]:
    """The wire body (gzip above 64 KiB) and the message properties; ``run`` names the
    run (its partial documents' live figure) as the ``correlation_id``; a partial
    document is not ``persistent`` (the next one replaces it)."""
    encoding = None
    wire = body
    if len(body) > GZIP_ABOVE_BYTES:
        wire = gzip.compress(body, mtime=0)
        encoding = "gzip"
    properties = pika.BasicProperties(
        content_type=CONTENT_TYPE,
        content_encoding=encoding,
        delivery_mode=(pika.DeliveryMode.Persistent if persistent else pika.DeliveryMode.Transient),
        message_id=message_id_for(body),
        correlation_id=run,
        type=SCHEMA,
        timestamp=int(time.time()),
        app_id="hzz",
        headers={"x-hzz-host": os.uname().nodename},
    )
    return wire, properties


def publish(
    body: bytes,
    url: str,
    topology: Topology | None = None,
    timeout_s: float = DEFAULT_BROKER_TIMEOUT_S,
    run: str | None = None,
    persistent: bool = True,
) -> Published:
    """Publish validated document JSON; BrokerUnavailable if not confirmed in ``timeout_s``.
    ``run`` and ``persistent`` as for ``encode``."""
    topology = topology or Topology()
    wire, properties = encode(body, run, persistent)
    quiet_pika()
    deadline = time.monotonic() + timeout_s

    def attempt() -> None:
        name = f"hzz-publish pid {os.getpid()}"
        left = max(deadline - time.monotonic(), 0.5)  # a blocked broker counts too
        connection = pika.BlockingConnection(parameters(url, name, blocked_timeout_s=left))
        try:
            channel = connection.channel()
            topology.declare(channel)
            channel.confirm_delivery()
            # Raises UnroutableError / NackError unless the broker took it.
            channel.basic_publish(
                topology.exchange, topology.routing_key, wire, properties, mandatory=True
            )
        except pika.exceptions.ConnectionBlockedTimeout as err:
            raise BrokerBlocked(left) from err
        finally:
            if connection.is_open:
                connection.close()

    with_retry(attempt, f"publishing to {redact(url)}", timeout_s)
    log.info(
        "published %s (%d bytes%s) to %s/%s",
        properties.message_id,
        len(wire),
        ", gzip" if properties.content_encoding else "",
        topology.exchange,
        topology.routing_key,
    )
    return Published(properties.message_id, len(wire), properties.content_encoding or "identity")
