"""The one place for defaults and environment variables.

The defaults the command line shows in its help live here, apart from the modules that
use them: building ``hzz --help`` (and every command's parser) then imports neither
pika, requests nor the analysis, and ``hzz run`` starts its cluster sooner. Every
environment variable hzz reads is listed in ``ENVIRONMENT`` and read once per process,
by ``setting``.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from types import MappingProxyType

#: Every environment variable hzz reads, and what it sets.
ENVIRONMENT = {
    "HZZ_DATA": "hzz run: data locations, comma-separated (as --data)",
    "HZZ_SCHEDULER": "hzz run: a running Dask scheduler (as --scheduler)",
    "HZZ_CERTIFICATES": "hzz run: the Dask certificates directory (as --certificates)",
    "HZZ_BROKER": "the broker URL (as --broker; prefer HZZ_BROKER_FILE)",
    "HZZ_BROKER_FILE": "a file holding the broker URL, e.g. a swarm secret",
    "HZZ_BROKER_CA": "amqps://: the CA file that signed the broker's certificate",
    "HZZ_BROKER_CERT": "amqps://: this client's certificate file",
    "HZZ_BROKER_KEY": "amqps://: this client's key file",
    "HZZ_EXCHANGE": "the exchange documents are published to (as --exchange)",
    "HZZ_QUEUE": "the queue the plotter consumes (as --queue)",
    "HZZ_CLUSTER_DIR": "hzz cluster: where its state and logs are kept (as --dir)",
    "HZZ_INSPECTION_CACHE": "hzz run: where inspections of remote files are kept; off: none",
    "HZZ_CHECKPOINT": "hzz run: where computed partitions are kept to resume (as --checkpoint)",
    "XDG_CACHE_HOME": "the user's cache directory (default ~/.cache)",
    "HZZ_PLOTTER_TEST_PAUSE_BEFORE_ACK": "tests only: seconds the plotter waits before an ack",
}

#: Variables that carry the broker's credentials: only the plotter and ``hzz run``'s own
#: process get them. A Dask scheduler or worker holding them would hand them to any
#: client that asks (``client.run(os.environ.get, …)``).
BROKER_SECRETS = ("HZZ_BROKER", "HZZ_BROKER_FILE")


@functools.cache
def environment() -> Mapping[str, str]:
    """The variables of ``ENVIRONMENT`` that this process's environment sets, read once:
    a value cannot change under a running command. (Tests that change the environment
    in-process call ``environment.cache_clear()``.)"""
    return MappingProxyType({name: os.environ[name] for name in ENVIRONMENT if name in os.environ})


def setting(name: str, default: str | None = None) -> str | None:
    """The value of the environment variable ``name`` (one of ``ENVIRONMENT``)."""
    if name not in ENVIRONMENT:
        raise KeyError(f"{name} is not an environment variable hzz reads")
    return environment().get(name, default)


#: The broker of the single-machine set-up (RabbitMQ's default guest account).
DEFAULT_URL = "amqp://guest:guest@127.0.0.1:5672/"
DEFAULT_EXCHANGE = "hzz.histograms"
DEFAULT_QUEUE = "hzz.plots"

#: Largest histogram document the plotting service accepts, in bytes.
DEFAULT_MAX_BYTES = 8 * 1024 * 1024

#: Resumes of one file after a dropped connection before ``hzz download`` gives up.
DEFAULT_RETRIES = 3

#: Seconds to wait for a file server to connect or answer (``hzz run --timeout``).
DEFAULT_TIMEOUT_S = 30.0

#: Seconds to connect to and publish through the broker (``--broker-timeout``).
DEFAULT_BROKER_TIMEOUT_S = 30.0

#: Seconds a run waits for a scheduler to answer and goes on without any Dask worker
#: (``hzz run --worker-timeout``).
DEFAULT_WORKER_TIMEOUT_S = 60.0

#: Local input (the chosen samples' files) up to which ``hzz run`` without --workers or
#: --scheduler computes in its own process on Dask's threaded scheduler
#: (``cluster.runtime.inprocess``): about 1.5 M events of the 2020 layout, what one core
#: reads and analyses in the second a local cluster takes to start and stop.
IN_PROCESS_MAX_BYTES = 64 * 2**20

#: Where a local cluster's dashboard listens (``hzz run --dashboard``): loopback only.
DEFAULT_DASHBOARD = "127.0.0.1:8787"

#: Where ``hzz run`` keeps the inspections of remote files between runs
#: (``cluster.access.inspected``): env HZZ_INSPECTION_CACHE, "off" for none.
INSPECTION_CACHE_ENV = "HZZ_INSPECTION_CACHE"


def inspection_cache_dir() -> str | None:
    """The directory of kept inspections (None: not kept), from the environment."""
    chosen = setting(INSPECTION_CACHE_ENV)
    if chosen is not None:
        return None if chosen.strip().lower() in ("", "off", "none", "0") else chosen
    base = setting("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "hzz", "inspected")


#: Seconds between two partial documents of ``hzz run --live``.
DEFAULT_LIVE_INTERVAL_S = 2.0

#: Where the plotter serves its live figures' page (``--live-host``): loopback only.
DEFAULT_LIVE_HOST = "127.0.0.1"

#: Longest the plotting service spends on one document: its figure takes about 1-3 s,
#: a fit (when the document asks for one) about 30 s on two busy cores.
DEFAULT_RENDER_TIMEOUT_S = 180.0

#: Times the plotting service may stop (killed, out of memory, crashed) while handling
#: one message before that message is dead-lettered instead of handled again: more than
#: one, since the service can also be stopped for reasons of its own (a redeploy).
DEFAULT_CRASH_LIMIT = 3


#: Local worker processes per core and memory each, the most ``--workers`` may ask
#: for: each is a Python process of its own (about 150 MB resident once the analysis is
#: imported), so more than this only makes the machine swap or fail to start them.
WORKERS_PER_CORE = 8
MEMORY_PER_WORKER = 200 * 2**20


def most_local_workers() -> tuple[int, str]:
    """How many local worker processes this machine can start, and why that many."""
    cores = os.cpu_count() or 1
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):  # not a POSIX system that says
        memory = 0
    by_cores = WORKERS_PER_CORE * cores
    by_memory = memory // MEMORY_PER_WORKER if memory else by_cores
    most = max(1, min(by_cores, by_memory))
    why = (
        f" on this machine ({WORKERS_PER_CORE} per core on {cores} cores, "
        f"{MEMORY_PER_WORKER >> 20} MiB of its {memory >> 30} GiB memory each)"
    )
    return most, why
