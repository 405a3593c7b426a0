"""A stand-in for the swarm stack on one machine, without Docker.

A real ``dask scheduler``, N ``dask worker`` processes and the plotter (``hzz plotter``)
run as separate background processes on 127.0.0.1, exactly the processes the stack's
containers run, so ``hzz run --scheduler ADDRESS`` exercises the whole distributed path.
Their pids, start times, logs and addresses are kept in ``STATE_DIR/state.json``;
``down`` stops precisely those processes (a recycled pid is recognised and left alone).
They speak mutual TLS with certificates made for this cluster in ``STATE_DIR/certificates``
(readable by its owner only): a process of another user cannot submit work, and
``hzz run --scheduler ADDRESS --certificates STATE_DIR/certificates`` can.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import psutil

from analysis.errors import RunFailure
from cluster.defaults import BROKER_SECRETS

from .certificates import (
    directory_security,
    make_certificates,
    security_options,
    write_certificates,
)
from .tuning import (
    SATURATION_ENV,
    SCHEDULER_WORKER_SATURATION,
    WORKER_ALLOCATOR_ENV,
    periodic_env,
)

DEFAULT_DIR = Path(".hzz-cluster")
STATE_NAME = "state.json"
CERTIFICATES_NAME = "certificates"
HOST = "127.0.0.1"
START_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 20.0


class StackError(RunFailure):
    """The stand-in could not be started, found or changed; the message says why."""


@dataclass
class ManagedProcess:
    """One background process of the stand-in, identified by pid *and* start time."""

    role: str  # "scheduler", "worker" or "plotter"
    name: str
    pid: int
    started: float  # psutil create_time, to tell our process from a recycled pid
    log: str
    argv: list[str]

    def alive(self) -> bool:
        try:
            proc = psutil.Process(self.pid)
            return proc.status() != psutil.STATUS_ZOMBIE and (
                abs(proc.create_time() - self.started) < 1.0
            )
        except psutil.Error:
            return False


@dataclass
class StackState:
    """What ``state.json`` records: addresses and the processes to stop."""

    scheduler: str
    dashboard: str
    processes: list[ManagedProcess] = field(default_factory=list)
    worker_options: list[str] = field(default_factory=list)
    next_worker: int = 1

    def of_role(self, role: str) -> list[ManagedProcess]:
        return [proc for proc in self.processes if proc.role == role]


def state_path(state_dir: Path) -> Path:
    return state_dir / STATE_NAME


def certificates_dir(state_dir: Path) -> Path:
    """Where the cluster's CA and its scheduler, worker and client certificates are."""
    return state_dir / CERTIFICATES_NAME


def _tls_options(state_dir: Path, role: str) -> list[str]:
    """``dask scheduler``/``dask worker`` options: the CA, ``role``'s certificate and key."""
    options = security_options(certificates_dir(state_dir), role)
    return [
        "--tls-ca-file",
        options["tls_ca_file"],
        "--tls-cert",
        options[f"tls_{role}_cert"],
        "--tls-key",
        options[f"tls_{role}_key"],
    ]


#: Every Dask process of the stand-in refuses a connection that is not TLS.
REQUIRE_ENCRYPTION_ENV = {"DASK_DISTRIBUTED__COMM__REQUIRE_ENCRYPTION": "True"}


def load_state(state_dir: Path) -> StackState:
    """The recorded stand-in in ``state_dir``; a clear error if there is none or it is bad."""
    path = state_path(state_dir)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return StackState(
            scheduler=raw["scheduler"],
            dashboard=raw["dashboard"],
            processes=[ManagedProcess(**proc) for proc in raw["processes"]],
            worker_options=list(raw.get("worker_options", [])),
            next_worker=int(raw.get("next_worker", 1)),
        )
    except FileNotFoundError:
        raise StackError(
            f"no local cluster recorded in {path} (start one: hzz cluster up)"
        ) from None
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise StackError(f"{path}: not a local cluster state file ({err})") from None


def save_state(state_dir: Path, state: StackState) -> None:
    """Write the state atomically: a reader never sees half a file."""
    path = state_path(state_dir)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(asdict(state), indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)


def _environ_for(role: str) -> dict[str, str]:
    """This process's environment, without the broker's credentials unless for the
    plotter; Dask's processes refuse unencrypted connections."""
    if role == "plotter":
        return dict(os.environ)
    return {
        **{k: v for k, v in os.environ.items() if k not in BROKER_SECRETS},
        **REQUIRE_ENCRYPTION_ENV,
    }


def _spawn(
    role: str, name: str, argv: list[str], state_dir: Path, env: dict[str, str] | None = None
) -> ManagedProcess:
    """Start ``argv`` detached (own session: survives the CLI, stopped as a group)."""
    log = state_dir / "logs" / f"{name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as sink:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=state_dir,
            env={**_environ_for(role), **(env or {})},
        )
    started = psutil.Process(proc.pid).create_time()
    return ManagedProcess(role, name, proc.pid, started, str(log), argv)


def _log_tail(proc: ManagedProcess, lines: int = 15) -> str:
    try:
        text = Path(proc.log).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def _died(proc: ManagedProcess) -> StackError:
    return StackError(f"{proc.name} (pid {proc.pid}) exited; end of {proc.log}:\n{_log_tail(proc)}")


def _wait_for_scheduler(proc: ManagedProcess, scheduler_file: Path) -> tuple[str, str]:
    """The scheduler's address and dashboard URL, once it has written its scheduler file."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if not proc.alive():
            raise _died(proc)
        try:
            info = json.loads(scheduler_file.read_text(encoding="utf-8"))
            port = info["services"]["dashboard"]
            return info["address"], f"http://{HOST}:{port}/status"
        except (OSError, ValueError, KeyError):
            time.sleep(0.2)
    raise StackError(f"the scheduler did not start within {START_TIMEOUT_S:.0f} s; see {proc.log}")


def connected_workers(scheduler: str, certificates: Path, timeout: str = "10s") -> dict[str, str]:
    """Names → addresses of the workers connected to ``scheduler``, asked with the client
    certificate of ``certificates``."""
    from distributed import Client

    security = directory_security(certificates, "client")
    with Client(scheduler, timeout=timeout, security=security) as client:
        workers = client.scheduler_info(n_workers=-1)["workers"]
    return {str(info.get("name")): address for address, info in workers.items()}


def wait_for_workers(state_dir: Path, state: StackState, names: Sequence[str]) -> dict[str, str]:
    """Block until every worker in ``names`` is connected; fail fast if one exits."""
    deadline = time.monotonic() + START_TIMEOUT_S
    wanted = set(names)
    while True:
        connected = connected_workers(state.scheduler, certificates_dir(state_dir))
        if wanted <= connected.keys():
            return connected
        for proc in state.of_role("worker"):
            if proc.name in wanted and not proc.alive():
                raise _died(proc)
        if time.monotonic() > deadline:
            missing = ", ".join(sorted(wanted - connected.keys()))
            raise StackError(f"workers {missing} did not connect within {START_TIMEOUT_S:.0f} s")
        time.sleep(0.3)


def _worker_argv(state_dir: Path, state: StackState, name: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "dask",
        "worker",
        state.scheduler,
        "--name",
        name,
        "--host",
        HOST,
        "--nworkers",
        "1",
        "--no-dashboard",
        *_tls_options(state_dir, "worker"),
        *state.worker_options,
    ]


def add_workers(state_dir: Path, state: StackState, count: int) -> list[str]:
    """Start ``count`` more workers, record them, and wait until they are connected."""
    names = []
    for _ in range(count):
        name = f"worker-{state.next_worker}"
        state.next_worker += 1
        argv = _worker_argv(state_dir, state, name)
        state.processes.append(
            _spawn("worker", name, argv, state_dir, {**WORKER_ALLOCATOR_ENV, **periodic_env()})
        )
        names.append(name)
    save_state(state_dir, state)
    wait_for_workers(state_dir, state, names)
    return names


def up(
    state_dir: Path,
    workers: int,
    *,
    threads: int = 1,
    memory_limit: str = "2GiB",
    port: int = 0,
    dashboard_port: int = 0,
    plotter_args: Sequence[str] | None = (),
    plotter_env: dict[str, str] | None = None,
) -> StackState:
    """Start scheduler, ``workers`` workers and (unless ``plotter_args`` is None) the plotter.

    ``plotter_env`` carries e.g. HZZ_BROKER, so a password never shows in argv or state.
    """
    if workers < 1:
        raise StackError("--workers must be at least 1")
    state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)  # new: the owner's only
    state_dir = state_dir.resolve()
    if state_path(state_dir).exists():
        old = load_state(state_dir)
        if any(proc.alive() for proc in old.processes):
            raise StackError(
                f"a local cluster is already up in {state_dir} (scheduler {old.scheduler}); "
                f"stop it first: hzz cluster down --dir {state_dir}"
            )
    certificates = certificates_dir(state_dir)
    shutil.rmtree(certificates, ignore_errors=True)  # a new CA for each cluster started
    write_certificates(certificates, make_certificates("hzz cluster"), keep_ca_key=False)
    scheduler_file = state_dir / "scheduler.json"
    scheduler_file.unlink(missing_ok=True)
    scheduler = _spawn(
        "scheduler",
        "scheduler",
        [
            sys.executable,
            "-m",
            "dask",
            "scheduler",
            "--protocol",
            "tls",
            "--host",
            HOST,
            "--port",
            str(port),
            *_tls_options(state_dir, "scheduler"),
            "--dashboard-address",
            f"{HOST}:{dashboard_port}",
            "--scheduler-file",
            str(scheduler_file),
        ],
        state_dir,
        {SATURATION_ENV: SCHEDULER_WORKER_SATURATION, **periodic_env()},
    )
    state = StackState(scheduler="", dashboard="", processes=[scheduler])
    try:
        state.scheduler, state.dashboard = _wait_for_scheduler(scheduler, scheduler_file)
        state.worker_options = ["--nthreads", str(threads), "--memory-limit", memory_limit]
        save_state(state_dir, state)
        if plotter_args is not None:
            argv = [sys.executable, "-m", "cluster.cli", "plotter", *plotter_args]
            state.processes.append(_spawn("plotter", "plotter", argv, state_dir, plotter_env))
            save_state(state_dir, state)
        add_workers(state_dir, state, workers)
        for proc in state.of_role("plotter"):
            if not proc.alive():
                raise _died(proc)
    except BaseException:
        stop(state.processes)
        state_path(state_dir).unlink(missing_ok=True)
        raise
    return state


def stop(processes: Sequence[ManagedProcess]) -> list[ManagedProcess]:
    """SIGTERM each live process's group (a worker's nanny and its child go together),
    wait, then SIGKILL what is left. Returns the processes that were running."""
    running = [proc for proc in processes if proc.alive()]
    for proc in running:
        _signal_group(proc, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while any(proc.alive() for proc in running) and time.monotonic() < deadline:
        time.sleep(0.1)
    for proc in running:
        if proc.alive():
            _signal_group(proc, signal.SIGKILL)
    return running


def _signal_group(proc: ManagedProcess, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)  # started with its own session: pgid == pid


def scale(state_dir: Path, workers: int) -> tuple[list[str], list[str]]:
    """Add or stop workers until ``workers`` run; returns (added, stopped) names."""
    if workers < 1:
        raise StackError("the number of workers must be at least 1")
    state = load_state(state_dir)
    alive = [proc for proc in state.of_role("worker") if proc.alive()]
    state.processes = [p for p in state.processes if p.role != "worker" or p in alive]
    if workers > len(alive):
        return add_workers(state_dir, state, workers - len(alive)), []
    surplus = alive[workers:]
    stop(surplus)
    state.processes = [p for p in state.processes if p not in surplus]
    save_state(state_dir, state)
    return [], [p.name for p in surplus]


def down(state_dir: Path) -> list[ManagedProcess]:
    """Stop every recorded process (plotter, workers, then scheduler); forget the state."""
    state = load_state(state_dir)
    order = {"plotter": 0, "worker": 1, "scheduler": 2}
    stopped = []
    for role in sorted(order, key=order.get):
        stopped += stop(state.of_role(role))
    state_path(state_dir).unlink(missing_ok=True)
    (state_dir / "scheduler.json").unlink(missing_ok=True)
    return stopped
