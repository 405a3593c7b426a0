"""Settings of the Dask processes this project starts, and why (measured with ``python -m bench``).

A module of constants only: ``hzz cluster`` and the images use them without importing Dask.
"""

from __future__ import annotations

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


#: Scheduler setting: up to two partition tasks per worker thread handed out at once
#: (Dask's default, 1.1, queues the rest on the scheduler). A single-threaded worker
#: then always has its next task when one ends, instead of idling for a scheduler
#: round trip (about 8 % of a 1-worker run when each partition was ten tasks), while
#: no more than two partitions' events wait in a worker's memory. ``inf`` was tried:
#: no faster, and a worker read ahead of its summaries (peak RSS 1.0 GB instead of
#: 0.3 GB for 25 partitions of 200k events; `python -m bench`).
#: Dockerfile.scheduler sets the same (DASK_DISTRIBUTED__SCHEDULER__WORKER_SATURATION).
SCHEDULER_WORKER_SATURATION = "2.0"
SATURATION_ENV = "DASK_DISTRIBUTED__SCHEDULER__WORKER_SATURATION"


#: Dask's periodic callbacks, less often than its defaults. Every worker's event loop
#: samples the stacks of all its threads for the dashboard's profile every 10 ms, and
#: every Dask process checks its event loop's health every 20 ms; each wakes the loop and
#: takes the GIL from the thread computing the partition. On 1 worker (the benchmark's
#: input, interleaved runs) the worker's event-loop thread used 6 % of a core during a
#: compute with the defaults and 2 % with these, and the scheduler's process half the
#: CPU per compute (0.72 s → 0.36 s). The profile keeps 10 samples a second (still a
#: profile on the dashboard); the health check still warns of a loop blocked for seconds.
#: Dockerfile.worker and Dockerfile.scheduler set the same (``periodic_env``).
PERIODIC_CONFIG = {
    "distributed.worker.profile.interval": "100ms",
    "distributed.admin.tick.interval": "200ms",
}


def periodic_env() -> dict[str, str]:
    """``PERIODIC_CONFIG`` as the environment variables Dask reads its config from."""
    return {
        "DASK_" + key.replace(".", "__").replace("-", "_").upper(): value
        for key, value in PERIODIC_CONFIG.items()
    }


#: Modules the workers of a run import (file inspection; the partition reader and its
#: summary): imported once, by the server local worker processes are forked from
#: (``cluster.runtime.clusters.start_worker_server``), instead of by each worker on its
#: first task. Names only: the cluster does not import the analysis itself.
WORKER_PRELOAD = ("analysis.inputs.files", "analysis.physics.summary")
