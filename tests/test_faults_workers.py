"""Worker loss against real `dask scheduler` / `dask worker` processes and `hzz run --scheduler`.

One worker SIGKILLed mid-run: its lost tasks are rerun and the document is identical
to an undisturbed run's. No worker at all, or every worker killed mid-run: `hzz run`
waits ``--worker-timeout`` seconds, then stops with a message naming the scheduler.
Workers run without a nanny, so a killed worker stays dead (a nanny would restart it).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from dask.utils import key_split
from distributed import Client

from analysis.results.document import HistogramDocument, from_json
from analysis.results.outputs import outputs_in

from .helpers import HZZ, ON_DISK, PUBLISHED_COUNTS, WAIT_S, free_port, wait_for

pytestmark = [pytest.mark.faults, pytest.mark.cluster]

DASK = [sys.executable, "-m", "dask"]
POLL_S = 0.02  # close polling: a worker must be caught while it has work
SAMPLES = [*ON_DISK, "llll"]


class DaskProcesses:
    """A scheduler and named no-nanny workers, each a real process with its log in a file."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.workers: dict[str, subprocess.Popen] = {}
        scheduler_file = directory / "scheduler.json"
        self.scheduler_log = directory / "scheduler.log"
        command = [*DASK, "scheduler", "--port", "0", "--dashboard-address", ":0"]
        command += ["--scheduler-file", str(scheduler_file)]
        with self.scheduler_log.open("wb") as log:
            self.scheduler = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "DASK_LOGGING__DISTRIBUTED": "info"},
            )
        wait_for(
            lambda: scheduler_file.exists() and scheduler_file.read_text(),
            "scheduler file",
            poll=POLL_S,
        )
        self.address: str = json.loads(scheduler_file.read_text())["address"]
        self.client = Client(self.address, timeout="60s")

    def start_workers(
        self,
        count: int,
        nanny: bool = False,
        memory_limit: str | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        """``count`` workers of one thread; without ``nanny`` a killed one stays dead, with
        it the nanny restarts it (and kills it over ``memory_limit``)."""
        for _ in range(count):
            name = f"fault-{uuid.uuid4().hex[:8]}"
            command = [*DASK, "worker", self.address, "--nthreads", "1"]
            command += ["--nanny" if nanny else "--no-nanny", "--no-dashboard", "--name", name]
            if memory_limit is not None:
                command += ["--memory-limit", memory_limit]
            with (self.directory / f"{name}.log").open("wb") as log:
                self.workers[name] = subprocess.Popen(
                    command,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env={**os.environ, **(env or {})},
                )
        self.client.wait_for_workers(len(self.workers), timeout=WAIT_S)

    def worker_names(self) -> dict[str, str]:
        """Scheduler address → worker name, for the workers connected now."""
        return {a: w["name"] for a, w in self.client.scheduler_info()["workers"].items()}

    def kill(self, name: str) -> None:
        process = self.workers.pop(name)
        process.send_signal(signal.SIGKILL)
        process.wait()

    def close(self) -> None:
        """Workers first (they say goodbye to a live scheduler), then the scheduler."""
        self.client.close()
        for group in (list(self.workers.values()), [self.scheduler]):
            for process in group:
                if process.poll() is None:
                    process.terminate()
            for process in group:
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


@pytest.fixture
def dask_processes(tmp_path: Path) -> Iterator[DaskProcesses]:
    processes = DaskProcesses(tmp_path)
    yield processes
    processes.close()


@pytest.fixture(scope="module")
def standins(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """300 000 simulated llll events: 15 partitions of 20 000, a run of several seconds."""
    out = tmp_path_factory.mktemp("standins")
    subprocess.run(
        [*HZZ, "generate", "--samples", "llll", "--events", "300000", "--out", str(out)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return out


def run_command(address: str, mirror: Path, standins: Path, out: Path, *extra: str) -> list[str]:
    return [
        *HZZ,
        "run",
        *["--scheduler", address, "--data", str(mirror), "--data", str(standins)],
        *["--samples", ",".join(SAMPLES), "--step-size", "20000", "--out", str(out)],
        "--no-progress",
        *extra,
    ]


def document_in(out: Path) -> HistogramDocument:
    (path,) = outputs_in(out, ".json")
    return from_json(path.read_bytes())


def analysis_tasks(keys: object) -> list[object]:
    """The keys of the analysis proper, not of the file inspection that precedes it."""
    return [key for key in keys or () if key_split(key) != "inspect_file"]


def analysis_in_progress(processes: DaskProcesses) -> bool:
    return any(analysis_tasks(keys) for keys in processes.client.processing().values())


def victim_with_work(processes: DaskProcesses) -> tuple[str, str] | None:
    """(address, name) of a worker computing an analysis task and holding some results."""
    processing = processes.client.processing()
    holding = processes.client.has_what()
    for address, name in processes.worker_names().items():
        if analysis_tasks(processing.get(address)) and analysis_tasks(holding.get(address)):
            return address, name
    return None


def test_a_worker_killed_mid_run_leaves_the_result_unchanged(
    dask_processes: DaskProcesses, mirror: Path, standins: Path, tmp_path: Path
) -> None:
    dask_processes.start_workers(3)
    calm_out = tmp_path / "undisturbed"
    calm = subprocess.run(
        run_command(dask_processes.address, mirror, standins, calm_out),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert calm.returncode == 0, calm.stderr
    expected = document_in(calm_out)

    out = tmp_path / "disturbed"
    run = subprocess.Popen(
        run_command(dask_processes.address, mirror, standins, out),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        address, victim = wait_for(
            lambda: victim_with_work(dask_processes),
            "a worker with analysis tasks done",
            poll=POLL_S,
        )
        assert run.poll() is None, "the run ended before a worker could be killed mid-run"
        dask_processes.kill(victim)
        _, stderr = run.communicate(timeout=600)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    assert run.returncode == 0, stderr
    assert len(dask_processes.client.nthreads()) == 2
    # The scheduler saw the loss and rescheduled the victim's results and tasks.
    log = dask_processes.scheduler_log.read_text()
    assert f"Removing worker '{address}' caused the cluster to lose already computed" in log
    assert f"name: {victim}" in log

    got = document_in(out)
    assert sorted(got.samples) == sorted(expected.samples) == sorted(SAMPLES)
    for name in SAMPLES:
        a, b = got.samples[name], expected.samples[name]
        assert (a.n_in, a.n_out, a.sumw) == (b.n_in, b.n_out, b.sumw), name
        assert np.array_equal(a.hist.values(flow=True), b.hist.values(flow=True)), name
        assert np.array_equal(a.hist.variances(flow=True), b.hist.variances(flow=True)), name
        if name in PUBLISHED_COUNTS:
            assert (a.n_in, a.n_out) == PUBLISHED_COUNTS[name]
    assert got.samples["llll"].n_in == 300_000
    assert got.generated == expected.generated == ["llll"]


def test_no_worker_at_all_fails_after_the_worker_timeout(
    dask_processes: DaskProcesses, mirror: Path, standins: Path, tmp_path: Path
) -> None:
    out = tmp_path / "plots"
    result = subprocess.run(
        run_command(dask_processes.address, mirror, standins, out, "--worker-timeout", "2"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 1, result.stderr
    assert f"no Dask workers for 2 s at scheduler {dask_processes.address}" in result.stderr
    assert "nothing written" in result.stderr
    assert not out.exists() or not any(out.iterdir())


def test_every_worker_killed_mid_run_fails_after_the_worker_timeout(
    dask_processes: DaskProcesses, mirror: Path, standins: Path, tmp_path: Path
) -> None:
    dask_processes.start_workers(2)
    out = tmp_path / "plots"
    run = subprocess.Popen(
        run_command(dask_processes.address, mirror, standins, out, "--worker-timeout", "3"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(
            lambda: analysis_in_progress(dask_processes), "analysis tasks in progress", poll=POLL_S
        )
        assert run.poll() is None, "the run ended before its workers could be killed"
        for name in list(dask_processes.workers):
            dask_processes.kill(name)
        _, stderr = run.communicate(timeout=300)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    assert run.returncode == 1, stderr
    assert f"no Dask workers at {dask_processes.address}; waiting up to 3 s" in stderr
    assert f"no Dask workers for 3 s at scheduler {dask_processes.address}" in stderr
    assert "nothing written" in stderr
    assert not out.exists() or not any(out.iterdir())


@pytest.mark.parametrize(
    ("value", "reason"), [("0", "be positive"), ("nan", "be a finite number, not nan")]
)
def test_a_worker_timeout_that_is_not_positive_is_named(
    value: str, reason: str, mirror: Path
) -> None:
    result = subprocess.run(
        [*HZZ, "run", "--data", str(mirror), "--worker-timeout", value],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert f"--worker-timeout must {reason}" in result.stderr


def test_a_run_started_before_its_scheduler_waits_for_it(
    mirror: Path, standins: Path, tmp_path: Path
) -> None:
    """As on a swarm, where the scheduler's name resolves only once it is healthy."""
    address = f"tcp://127.0.0.1:{free_port()}"
    out = tmp_path / "plots"
    run = subprocess.Popen(
        run_command(address, mirror, standins, out, "--worker-timeout", "120"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    started: list[subprocess.Popen] = []
    try:
        time.sleep(3)  # nothing listens yet: the run must still be waiting, not failed
        assert run.poll() is None, run.communicate()[1]
        port = address.rsplit(":", 1)[1]
        logs = tmp_path / "late.log"
        with logs.open("wb") as log:
            started.append(
                subprocess.Popen(
                    [*DASK, "scheduler", "--port", port, "--dashboard-address", ":0"],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
            started.append(
                subprocess.Popen(
                    [*DASK, "worker", address, "--nthreads", "1", "--no-nanny", "--no-dashboard"],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
        _, stderr = run.communicate(timeout=600)
    finally:
        for process in [run, *reversed(started)]:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
    assert run.returncode == 0, stderr
    got = document_in(out)
    for name, counts in PUBLISHED_COUNTS.items():
        assert (got.samples[name].n_in, got.samples[name].n_out) == counts, name


def test_a_scheduler_that_never_answers_fails_after_the_worker_timeout(
    mirror: Path, standins: Path, tmp_path: Path
) -> None:
    address = f"tcp://127.0.0.1:{free_port()}"
    out = tmp_path / "plots"
    result = subprocess.run(
        run_command(address, mirror, standins, out, "--worker-timeout", "3"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 1, result.stderr
    assert f"Timed out trying to connect to {address} after 3 s" in result.stderr
    assert "nothing written" in result.stderr
    assert not out.exists() or not any(out.iterdir())
