"""When a transfer that is moving counts as stalled: one rule for every body hzz reads.

A read timeout ends only a transfer that stops dead; a server sending a byte a second
would hold a download, a cache fill or a worker's range read for ever. And a bound on
a request's whole duration fails a large range on a slow link that is working fine. So
the rule is on progress: every ``--timeout`` seconds must bring at least
``MIN_PROGRESS_BYTES`` (or the rest of the body, if less is left).
"""

from __future__ import annotations

import time

from analysis.errors import RemoteAccessError

#: Bytes a transfer must bring every ``--timeout`` seconds not to count as stalled.
MIN_PROGRESS_BYTES = 64 * 1024


class Stalled(RemoteAccessError, TimeoutError):
    """The server sends too little, too slowly: a trickle that per-read timeouts never end.

    A ``TimeoutError`` too, so that retries treat it as a server that does not answer.
    """


class Progress:
    """Watches one transfer: ``update`` with the bytes received so far raises ``Stalled``
    when a ``timeout`` window brought too little; ``wait_s`` is how long the next read
    may take before the window ends."""

    def __init__(self, url: str, timeout: float, at: int = 0, end: int | None = None) -> None:
        self.url, self.timeout, self.end = url, timeout, end
        self.mark, self.since = at, time.monotonic()

    def _needed(self) -> int:
        if self.end is None:
            return MIN_PROGRESS_BYTES
        return max(1, min(MIN_PROGRESS_BYTES, self.end - self.mark))

    def update(self, at: int) -> None:
        now = time.monotonic()
        if at - self.mark >= self._needed():
            self.mark, self.since = at, now
        elif now - self.since > self.timeout:
            raise self.stalled(at)

    def wait_s(self) -> float:
        """Seconds left in the current window (at least a moment, never negative)."""
        return max(0.01, self.since + self.timeout - time.monotonic())

    def stalled(self, at: int) -> Stalled:
        elapsed = time.monotonic() - self.since
        return Stalled(
            self.url,
            f"stalled: {at - self.mark} bytes in {elapsed:.0f} s "
            f"(at least {MIN_PROGRESS_BYTES} bytes every {self.timeout:g} s, --timeout)",
        )
