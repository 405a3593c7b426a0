"""Connect to a running Dask scheduler, or start an embedded local cluster of processes."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from distributed import Client, LocalCluster

log = logging.getLogger(__name__)

DEFAULT_DASHBOARD = ":8787"


@contextmanager
def dask_client(
    scheduler: str | None = None,
    workers: int | None = None,
    threads_per_worker: int = 1,
    dashboard_address: str | None = DEFAULT_DASHBOARD,
) -> Iterator[Client]:
    """A client of ``scheduler``, or of a local cluster of ``workers`` processes.

    Worker processes (not threads) because uproot decompression and awkward kernels
    hold the GIL for part of their work. The local cluster is closed on exit.
    """
    if scheduler:
        with Client(scheduler, timeout="30s") as client:
            yield client
        return
    with (
        LocalCluster(
            n_workers=workers,
            threads_per_worker=threads_per_worker,
            processes=True,
            dashboard_address=dashboard_address,
        ) as local,
        Client(local) as client,
    ):
        yield client
