"""Small local inputs computed in this process, with Dask's threaded scheduler.

Starting a local cluster costs a run about a second of process starts, a scheduler, a
dashboard and its shutdown, and its worker processes pay off only when there is more to
read than that second: for the real 2020 files (1.8 MB) the whole computation takes a
fifth of a second. ``hzz run`` without ``--scheduler`` or ``--workers`` therefore
computes an input of local files totalling at most ``IN_PROCESS_MAX_BYTES``
(``cluster.defaults``) here, on
Dask's threaded scheduler (the same graph; no dashboard), and says so. ``--workers N``
always starts a local cluster of N worker processes.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import dask

from analysis.errors import HZZError, RunFailure
from cluster.defaults import IN_PROCESS_MAX_BYTES

if TYPE_CHECKING:
    from analysis.inputs.catalogue import Release

__all__ = ["IN_PROCESS_MAX_BYTES", "ThreadedCompute", "local_input_bytes"]


def local_input_bytes(release: Release, locations: Sequence[str], samples: Any) -> int | None:
    """The total size of the chosen samples' local files (absent ones count nothing);
    None if any location is remote (its sizes are known only after the HEAD pass)."""
    from analysis.inputs.locations import local_path, locate_samples, resolve_locations
    from analysis.inputs.sources import is_remote

    resolved = resolve_locations(locations)
    if any(is_remote(location) for location in resolved):
        return None
    located, _ = locate_samples(samples, resolved, allow_missing=True)
    return sum(os.path.getsize(local_path(location)) for _, location in located)


class ThreadedCompute:
    """The ``compute`` of a run in this process: Dask's threaded scheduler, one thread
    per core, with Dask's progress bar."""

    def __init__(self, show_progress: bool, threads: int | None = None) -> None:
        self.show_progress = show_progress
        self.readers = threads or os.cpu_count() or 1

    def describe(self, size: int) -> str:
        return (
            f"Dask: threaded scheduler in this process, {self.readers} threads "
            f"(local input {size / 2**20:.1f} MB; --workers N starts a local cluster)"
        )

    def __call__(self, collections: Sequence[Any]) -> list[Any]:
        from concurrent.futures import ThreadPoolExecutor
        from contextlib import nullcontext

        from dask.diagnostics import ProgressBar
        from dask.threaded import get as threaded_get

        bar = ProgressBar() if self.show_progress else nullcontext()
        # A pool of its own, ended here: Dask's shared pool would keep threads that the
        # command waits for at exit.
        try:
            with ThreadPoolExecutor(self.readers, thread_name_prefix="hzz-compute") as pool, bar:
                # The function, not its name: Dask would import distributed (0.3 s) to
                # look for a client first.
                return list(dask.compute(*collections, scheduler=threaded_get, pool=pool))
        except HZZError:  # raised on purpose by the analysis: it names what failed
            raise
        except Exception as err:
            raise RunFailure(f"computing the analysis failed: {type(err).__name__}: {err}") from err
