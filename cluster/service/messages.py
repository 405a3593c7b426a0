"""What the plotting service accepts from the queue: a message read into a document, or
the reason it never can be (the message then goes to the dead-letter queue).

Pure functions of a message's body and properties, apart from the broker link.
Nothing from the network is ever unpickled or evaluated: bodies are only gunzipped
(with a size cap) and parsed as JSON by ``analysis.results.document.from_json``.
"""

from __future__ import annotations

import hashlib
import re
import zlib

from pika.spec import BasicProperties

from analysis.results.document import SCHEMA, SCHEMAS, DocumentError, HistogramDocument, from_json
from analysis.results.validation import check_limits

from .publisher import CONTENT_TYPE

_SANE_ID = re.compile(r"[A-Za-z0-9._:@-]{1,128}")


class Rejected(Exception):
    """A message that can never be plotted; ``str()`` is the reason."""


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
    (e.g. ``[[[[…`` nested 100 000 deep makes ``json.loads`` raise RecursionError).
    A well-formed document must also stay within what a figure may be asked to draw
    (``analysis.results.validation``: the same check ``hzz run`` makes before publishing)."""
    try:
        return check_limits(from_json(payload))
    except DocumentError as err:
        raise Rejected(f"invalid document: {err}") from err
    except Exception as err:
        raise Rejected(f"invalid document: {type(err).__name__}: {err}") from err


def printable(text: str, limit: int | None = None) -> str:
    """``text`` with every unprintable character (newline, NUL, a lone surrogate, …)
    written as an escape: text a message brings stays one line in a log or header."""
    cut = text if limit is None else text[:limit]
    escaped = "".join(
        c if c.isprintable() else c.encode("unicode_escape", "backslashreplace").decode("ascii")
        for c in cut
    )
    return escaped if limit is None or len(text) <= limit else escaped + "…"


def idempotency_key(payload: bytes) -> str:
    """What the ledger knows a figure by: the SHA-256 of the document JSON.

    The content, not the sender's ``message_id``: a different document sent under an id
    already used is a new figure, never "already plotted". hzz's publisher sends this
    same hash as the message id, so a resend of one document is still recognised.
    """
    return hashlib.sha256(payload).hexdigest()


def message_label(properties: BasicProperties) -> str:
    """The message id for a log line: as sent if it is a plain token, else its repr, cut."""
    given = properties.message_id
    return given if isinstance(given, str) and _SANE_ID.fullmatch(given) else repr(given)[:80]
