"""Connect to a running Dask scheduler, or start an embedded local cluster of processes."""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import Future
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dask
from distributed import Client, LocalCluster
from distributed.security import Security

from analysis.errors import InputError
from cluster.defaults import BROKER_SECRETS, DEFAULT_DASHBOARD, DEFAULT_WORKER_TIMEOUT_S

from .tuning import (
    PERIODIC_CONFIG,
    SCHEDULER_WORKER_SATURATION,
    WORKER_ALLOCATOR_ENV,
    WORKER_PRELOAD,
)

log = logging.getLogger(__name__)

#: Where a local cluster listens (scheduler, workers, dashboard) unless told otherwise.
LOOPBACK = "127.0.0.1"


def dashboard_listen_address(address: str | None) -> str | None:
    """``address`` with loopback as the host when it names only a port (``:8787``):
    Dask would listen on every interface. Give a host (``0.0.0.0:8787``) to expose it."""
    if address is not None and address.startswith(":"):
        return f"{LOOPBACK}{address}"
    return address


#: Local workers are forked from a warm server where the platform has one (Linux,
#: macOS), else spawned as fresh interpreters (Windows).
WORKER_START_METHOD = (
    "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
)


def worker_environ() -> dict[str, str]:
    """Variables a local worker process starts with: Dask's pre-spawn ones, our allocator's."""
    environ = dask.config.get("distributed.nanny.pre-spawn-environ", {}) or {}
    return {**{name: str(value) for name, value in environ.items()}, **WORKER_ALLOCATOR_ENV}


def cluster_config() -> dict[str, object]:
    """Dask config for a cluster started here: worker environment, saturation, Dask's
    periodic callbacks, and worker processes forked from a server
    (``start_worker_server``) where there is one."""
    return {
        **PERIODIC_CONFIG,
        "distributed.nanny.pre-spawn-environ": worker_environ(),
        "distributed.scheduler.worker-saturation": float(SCHEDULER_WORKER_SATURATION),
        "distributed.worker.multiprocessing-method": WORKER_START_METHOD,
    }


def start_worker_server(environ: Mapping[str, str], preload: Sequence[str] = ()) -> None:
    """Start the process that local worker processes are forked from, if not running.

    It starts with ``environ`` (variables read when a process starts, such as the
    allocator's: a forked worker inherits them, it cannot take new ones) and imports
    Dask and ``preload`` once, on another core, while this process starts the scheduler:
    workers then start in a fraction of a second with the analysis already imported,
    instead of each importing everything after the scheduler is up. The server lives
    as long as this process; a later call changes nothing. Like the nanny, this leaves
    ``environ`` set in this process. The server, and so every worker, starts without the
    broker's credentials (``BROKER_SECRETS``): code a client runs on a worker can read its
    environment.
    """
    if WORKER_START_METHOD != "forkserver":
        return  # each worker is spawned with the nanny's pre-spawn environment instead
    import multiprocessing.forkserver

    os.environ.update(environ)
    if os.environ.get("PYTHONHASHSEED") in (None, "0"):
        os.environ["PYTHONHASHSEED"] = "6640"  # as the nanny gives its workers
    multiprocessing.get_context("forkserver").set_forkserver_preload(
        ["cluster.runtime.interrupt", "distributed", *preload]  # workers ignore Ctrl-C
    )
    with _SPAWN_LOCK:
        withheld = {name: os.environ.pop(name) for name in BROKER_SECRETS if name in os.environ}
        try:
            multiprocessing.forkserver.ensure_running()  # inherits os.environ as it is now
        finally:
            os.environ.update(withheld)


_SPAWN_LOCK = threading.Lock()


def open_client(
    scheduler: str | None = None,
    workers: int | None = None,
    threads_per_worker: int = 1,
    dashboard_address: str | None = DEFAULT_DASHBOARD,
    connect_timeout_s: float = DEFAULT_WORKER_TIMEOUT_S,
    certificates: Path | None = None,
    encrypted: bool = True,
) -> tuple[Client, LocalCluster | None]:
    """A client of ``scheduler``, or of a new local cluster of ``workers`` processes
    (forked from a server that has imported what they run: ``start_worker_server``).

    A scheduler that does not answer yet (starting; on a swarm its name resolves only
    once its health check passed) is retried for ``connect_timeout_s``. Its client
    presents the client certificate of ``certificates`` (a directory made by ``hzz
    certificates``), else what Dask's config names (``distributed.comm.tls``).
    The local cluster speaks mutual TLS with certificates made for it and held in memory:
    no other process, of this user or another, can submit work to it (``encrypted=False``:
    plain TCP, open to every local process; only for the benchmark's comparison).

    Worker processes (not threads) because uproot decompression and awkward kernels
    hold the GIL for part of their work. Close with ``close_client``.
    """
    if scheduler:
        return Client(
            scheduler, timeout=connect_timeout_s, security=client_security(scheduler, certificates)
        ), None
    from .certificates import temporary_security

    start_worker_server(worker_environ(), WORKER_PRELOAD)
    security = temporary_security() if encrypted else None
    with dask.config.set(cluster_config()):  # read by the scheduler and nannies at start
        local = LocalCluster(
            n_workers=workers,
            threads_per_worker=threads_per_worker,
            processes=True,
            host=LOOPBACK,
            dashboard_address=dashboard_listen_address(dashboard_address),
            security=security,
        )
    try:
        return Client(local), local
    except BaseException:
        local.close()
        raise


def client_security(scheduler: str, certificates: Path | None) -> Security | None:
    """The client's ``Security`` for ``scheduler``: the files of ``certificates``, else
    Dask's config (None). A ``tls://`` scheduler with neither is a clear error, not
    Dask's "TLS expects a ssl_context" after the connect timeout."""
    from .certificates import directory_security

    if certificates is not None:
        return directory_security(certificates, "client")
    if scheduler.startswith("tls://") and not Security().get_connection_args("client").get(
        "ssl_context"
    ):
        raise InputError(
            f"scheduler {scheduler} speaks TLS: give its client certificates with "
            "--certificates DIR (env HZZ_CERTIFICATES) or Dask's config distributed.comm.tls"
        )
    return None


def close_client(client: Client, local: LocalCluster | None) -> None:
    """Close the client, then the local cluster it came with (if any)."""
    try:
        client.close()
    finally:
        if local is not None:
            local.close()


@contextmanager
def dask_client(
    scheduler: str | None = None,
    workers: int | None = None,
    threads_per_worker: int = 1,
    dashboard_address: str | None = DEFAULT_DASHBOARD,
    encrypted: bool = True,
) -> Iterator[Client]:
    """``open_client`` as a context: the local cluster is closed on exit."""
    client, local = open_client(
        scheduler, workers, threads_per_worker, dashboard_address, encrypted=encrypted
    )
    try:
        yield client
    finally:
        close_client(client, local)


class BackgroundClient:
    """``open_client`` and ``close_client`` run in background threads.

    A run starts its cluster first and imports the analysis (Dask, uproot, awkward,
    hist: about half a second) while the worker processes boot; at the end the
    cluster shuts down while the figure is written. ``client()`` waits for the start
    and raises what it raised; ``close()`` returns at once, and the interpreter waits
    for the shutdown to finish before it exits.
    """

    def __init__(
        self,
        scheduler: str | None = None,
        workers: int | None = None,
        threads_per_worker: int = 1,
        dashboard_address: str | None = DEFAULT_DASHBOARD,
        connect_timeout_s: float = DEFAULT_WORKER_TIMEOUT_S,
        certificates: Path | None = None,
    ) -> None:
        self._started = Future[tuple[Client, LocalCluster | None]]()
        arguments = (
            scheduler,
            workers,
            threads_per_worker,
            dashboard_address,
            connect_timeout_s,
            certificates,
        )
        threading.Thread(target=self._start, args=arguments, name="hzz-cluster-start").start()

    def _start(self, *arguments: Any) -> None:
        try:
            self._started.set_result(open_client(*arguments))
        except BaseException as err:  # handed to the caller of client()
            self._started.set_exception(err)

    def client(self) -> Client:
        return self._started.result()[0]

    def close(self, wait: bool = False) -> None:
        """Shut the cluster down (once its start finished; nothing to do if it failed)."""

        def shut_down() -> None:
            if self._started.exception() is not None:
                return  # nothing was started; client() raised the cause
            try:
                close_client(*self._started.result())
            except Exception as err:  # the results are safe; say what did not close
                log.warning("closing the Dask cluster: %s", err)

        closing = threading.Thread(target=shut_down, name="hzz-cluster-close")
        closing.start()
        if wait:
            closing.join()
