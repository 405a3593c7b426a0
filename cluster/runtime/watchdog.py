"""Bound the time a run spends without any Dask worker: a clear stop, never a silent hang.

A lost worker is harmless: the scheduler reruns its tasks elsewhere. But with every
worker gone the scheduler waits for new ones forever, and so would ``hzz run``. Here
the run waits at most ``timeout_s`` for a first worker and, while computing, a
watchdog thread asks the scheduler for its workers; after ``timeout_s`` with none it
cancels the run's futures and the run fails with NoWorkers naming the scheduler.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from types import TracebackType

from distributed import Client, Future

from analysis.errors import RunFailure

log = logging.getLogger(__name__)


class NoWorkers(RunFailure):
    """No Dask worker was connected to the scheduler for longer than the timeout."""


def no_workers_message(client: Client, timeout_s: float) -> str:
    return f"no Dask workers for {timeout_s:g} s at scheduler {client.scheduler.address}"


def wait_for_a_worker(client: Client, timeout_s: float) -> None:
    """Return once the scheduler has a worker; NoWorkers after ``timeout_s`` without one."""
    try:
        client.wait_for_workers(1, timeout=timeout_s)
    except TimeoutError as err:
        raise NoWorkers(no_workers_message(client, timeout_s)) from err


class WorkerWatchdog:
    """While in the ``with`` block: cancel ``futures`` once no worker was seen for
    ``timeout_s``. The main thread, woken by the cancellation, calls ``raise_if_tripped``.
    """

    def __init__(
        self, client: Client, futures: Sequence[Future], timeout_s: float, poll_s: float = 0.5
    ) -> None:
        self.client = client
        self.futures = list(futures)
        self.timeout_s = timeout_s
        self.poll_s = poll_s
        self.tripped = False
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="hzz-worker-watchdog", daemon=True)

    def __enter__(self) -> WorkerWatchdog:
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._done.set()
        self._thread.join()

    def raise_if_tripped(self) -> None:
        if self.tripped:
            raise NoWorkers(no_workers_message(self.client, self.timeout_s))

    def _watch(self) -> None:
        alone_since: float | None = None
        while not self._done.wait(self.poll_s):
            try:
                workers = len(self.client.nthreads())
            except Exception as err:  # the scheduler itself is gone: the gather fails anyway
                log.debug("watchdog: cannot ask the scheduler for workers: %s", err)
                continue
            now = time.monotonic()
            if workers:
                alone_since = None
                continue
            if alone_since is None:
                alone_since = now
                log.warning(
                    "no Dask workers at %s; waiting up to %g s for one",
                    self.client.scheduler.address,
                    self.timeout_s,
                )
            elif now - alone_since >= self.timeout_s:
                self.tripped = True
                self.client.cancel(self.futures)
                return
