"""Connect to a running Dask scheduler, or start an embedded local cluster of processes."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import dask
from distributed import Client, LocalCluster

log = logging.getLogger(__name__)

DEFAULT_DASHBOARD = ":8787"

#: glibc allocator settings for worker processes. Distributed's nanny sets
#: ``MALLOC_TRIM_THRESHOLD_=65536`` by default, which also freezes glibc's mmap threshold
#: at 128 KiB: every basket and column buffer is then a fresh mmap, zeroed page by page
#: and unmapped when freed. For the partition-sized buffers of this analysis that cost
#: about a quarter of a 1-worker run (`python -m bench`). These are the values glibc's
#: own dynamic thresholds settle at (mmap above 32 MiB, trim above 64 MiB): memory
#: still goes back to the system, without a page fault for every buffer.
#: Dockerfile.worker sets the same variables (the nanny lets the environment win).
WORKER_ALLOCATOR_ENV = {
    "MALLOC_MMAP_THRESHOLD_": str(32 * 2**20),
    "MALLOC_TRIM_THRESHOLD_": str(64 * 2**20),
}


#: Scheduler setting: send every ready partition task to a worker at once instead of
#: queueing root tasks on the scheduler (Dask's default, saturation 1.1). Each partition
#: is an independent chain (read, select, fill) ending in small sums, so nothing piles
#: up on a worker, and a single-threaded worker no longer idles for a scheduler round
#: trip after each of its ~10 tasks per partition (about 8 % of a 1-worker run).
#: Dockerfile.scheduler sets the same (DASK_DISTRIBUTED__SCHEDULER__WORKER_SATURATION).
SCHEDULER_WORKER_SATURATION = "inf"
SATURATION_ENV = "DASK_DISTRIBUTED__SCHEDULER__WORKER_SATURATION"


def cluster_config() -> dict[str, object]:
    """Dask config for a cluster started here: allocator env for nannies, saturation."""
    environ = dict(dask.config.get("distributed.nanny.pre-spawn-environ", {}) or {})
    return {
        "distributed.nanny.pre-spawn-environ": {**environ, **WORKER_ALLOCATOR_ENV},
        "distributed.scheduler.worker-saturation": float(SCHEDULER_WORKER_SATURATION),
    }


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
        dask.config.set(cluster_config()),
        LocalCluster(
            n_workers=workers,
            threads_per_worker=threads_per_worker,
            processes=True,
            dashboard_address=dashboard_address,
        ) as local,
        Client(local) as client,
    ):
        yield client
