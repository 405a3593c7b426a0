"""Ctrl-C belongs to the command, not to its local worker processes.

The terminal sends SIGINT to the whole foreground process group: the ``hzz run``
process and every local Dask worker it forked. Each worker would die printing its own
``KeyboardInterrupt`` traceback (150 lines for a small run) while the command has
already decided to stop. Imported in the server the workers are forked from
(``clusters.start_worker_server``), this module makes them ignore SIGINT, so the
command alone answers Ctrl-C (``interrupted, nothing written``, exit 130) and shuts
its cluster down.
"""

from __future__ import annotations

import signal

signal.signal(signal.SIGINT, signal.SIG_IGN)  # inherited by every worker forked from here
