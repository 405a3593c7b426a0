"""Functions run on Dask workers by the tests; this module imports nothing heavy, so
running one of them does not itself import what a test checks for."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable


def start_environment(names: Iterable[str]) -> dict[str, str | None]:
    """``names`` in the environment this process started with (Linux
    ``/proc/self/environ``): what glibc's allocator read, whatever ``os.environ`` says now."""
    with open("/proc/self/environ", "rb") as raw:
        pairs = (item.split(b"=", 1) for item in raw.read().split(b"\0") if b"=" in item)
        environ = {key.decode(): value.decode() for key, value in pairs}
    return {name: environ.get(name) for name in names}


def current_environment(names: Iterable[str]) -> dict[str, str | None]:
    return {name: os.environ.get(name) for name in names}


def imported(names: Iterable[str]) -> dict[str, bool]:
    return {name: name in sys.modules for name in names}


def periodic_callbacks_ms(dask_worker=None, dask_scheduler=None) -> dict[str, float]:
    """How often this worker's (or scheduler's) event loop calls its periodic callbacks."""
    server = dask_worker if dask_worker is not None else dask_scheduler
    return {name: pc.callback_time for name, pc in server.periodic_callbacks.items()}
