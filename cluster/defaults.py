"""Defaults the command line shows in its help, apart from the modules that use them.

Building ``hzz --help`` (and every command's parser) then imports neither pika,
requests nor the analysis: ``hzz run`` starts its cluster sooner.
"""

from __future__ import annotations

#: The broker of the single-machine set-up (RabbitMQ's default guest account).
DEFAULT_URL = "amqp://guest:guest@127.0.0.1:5672/"
DEFAULT_EXCHANGE = "hzz.histograms"
DEFAULT_QUEUE = "hzz.plots"

#: Largest histogram document the plotting service accepts, in bytes.
DEFAULT_MAX_BYTES = 8 * 1024 * 1024

#: Resumes of one file after a dropped connection before ``hzz download`` gives up.
DEFAULT_RETRIES = 3

#: Seconds to wait for a server to connect or answer (``--timeout``).
DEFAULT_TIMEOUT_S = 30.0

#: Where ``hzz run`` keeps the inspections of remote files between runs
#: (``cluster.access.inspected``): env HZZ_INSPECTION_CACHE, "off" for none.
INSPECTION_CACHE_ENV = "HZZ_INSPECTION_CACHE"


def inspection_cache_dir() -> str | None:
    """The directory of kept inspections (None: not kept), from the environment."""
    import os

    chosen = os.environ.get(INSPECTION_CACHE_ENV)
    if chosen is not None:
        return None if chosen.strip().lower() in ("", "off", "none", "0") else chosen
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "hzz", "inspected")
