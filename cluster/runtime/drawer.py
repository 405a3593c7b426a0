"""The figure drawn in a process of its own, started warm while the run computes.

A run that computes in this process (a small input, ``cluster.runtime.inprocess``) has
no core to spare for the figure's imports (matplotlib, mplhep: about 0.7 s) and first
drawing (fonts, the mathtext parser: about half of a figure) in a thread: the GIL would
serialise them with the computation. A ``Drawer`` is a child process started when the
run starts: it imports the figure code and draws a throw-away figure on the other core,
then waits for the run's document and sends the PNG back. If it fails in any way, the
run draws the figure itself (``draw`` returns None): the drawer only saves time.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from analysis.inputs.catalogue import Release
    from analysis.results.document import HistogramDocument

log = logging.getLogger(__name__)


def _serve(connection: Connection, release: Release) -> None:
    """The drawer process: warm up, then one document (JSON) in, one PNG out."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the command's to answer
    try:
        from analysis.results.document import from_json
        from analysis.results.plot import render_png, warm_up

        warm_up(release)
        document = connection.recv_bytes()
        connection.send_bytes(render_png(from_json(document)))
    except EOFError:
        pass  # the run ended without a figure to draw
    except Exception as err:  # the run draws the figure itself and reports what fails
        log.debug("drawer failed: %s", err)
    finally:
        connection.close()
        os._exit(0)  # no teardown of matplotlib's modules: the parent waits for none


class Drawer:
    """A warm figure-drawing process; ``draw`` once, or ``close`` to end it unused."""

    def __init__(self, release: Release) -> None:
        # A fork is ready at once and inherits what is imported; with other threads
        # running (a lock could be held mid-fork) a fresh interpreter is safer.
        methods = multiprocessing.get_all_start_methods()
        method = "fork" if "fork" in methods and threading.active_count() == 1 else "spawn"
        context = multiprocessing.get_context(method)
        self._connection, child = context.Pipe()
        self._process = context.Process(
            target=_serve, args=(child, release), name="hzz-drawer", daemon=True
        )
        self._process.start()
        child.close()

    def draw(self, document: HistogramDocument) -> bytes | None:
        """The document's pre-fit figure as PNG bytes, or None if the drawer failed."""
        try:
            self._connection.send_bytes(document.to_json())
            return self._connection.recv_bytes()
        except (EOFError, OSError) as err:
            log.debug("drawer gave no figure (%s): drawing it here", err)
            return None
        finally:
            self.close()

    def close(self) -> None:
        """End the drawer (it exits when its end of the pipe closes)."""
        self._connection.close()
        self._process.join(timeout=5)
