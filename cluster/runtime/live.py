"""``hzz run --live``: the result so far, sent to the plotting service or drawn here.

The computation hands each partial result over and goes on: a thread of its own sends
it (publishes the partial document, or draws the live figure ``OUT/live/<run>.png``),
and when it is still busy with one, only the newest that arrived meanwhile is sent
next. A partial result that cannot be sent is logged and skipped: the run and its
final document do not depend on it.
"""

from __future__ import annotations

import logging
import secrets
import threading
from collections.abc import Callable
from datetime import UTC, datetime

from analysis.results.document import HistogramDocument
from analysis.results.result import AnalysisResult

log = logging.getLogger(__name__)

#: Sends one partial document.
Send = Callable[[HistogramDocument], object]


def new_run_id() -> str:
    """A name for a run, unique and readable: its start (UTC) and a random part."""
    return f"{datetime.now(UTC):%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"


class LiveResults:
    """The ``on_partial`` of a live run: newest-wins hand-over to a sending thread."""

    def __init__(self, send: Send) -> None:
        self._send = send
        self._pending: HistogramDocument | None = None
        self._closed = False
        self._changed = threading.Condition()
        self._failed = False
        self.sent = 0
        self._thread = threading.Thread(target=self._loop, name="hzz-live", daemon=True)
        self._thread.start()

    def __call__(self, result: AnalysisResult) -> None:
        with self._changed:
            self._pending = result.document
            self._changed.notify()

    def _loop(self) -> None:
        while True:
            with self._changed:
                while self._pending is None and not self._closed:
                    self._changed.wait()
                if self._closed:
                    return
                document, self._pending = self._pending, None
            try:
                self._send(document)
                self.sent += 1
            except Exception as err:  # the run goes on; its final document is what counts
                if not self._failed:
                    log.warning("a partial result could not be sent: %s", err)
                self._failed = True

    def close(self) -> None:
        """Stop: a partial result being sent is finished, one waiting is dropped (the
        final result follows)."""
        with self._changed:
            self._closed = True
            self._pending = None
            self._changed.notify()
        self._thread.join()
