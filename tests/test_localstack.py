"""`hzz cluster`: the stack's stand-in on one machine, driven through the real CLI.

One stand-in (real `dask scheduler`, `dask worker` and `hzz plotter` processes) serves
the module: 1 worker, then 3 (identical histograms, the dashboard answers during a run,
the plotter draws the published document), then a worker added during a run takes tasks.
The broker is the real RabbitMQ on 127.0.0.1:5672 with this module's own names.
"""

from __future__ import annotations

import shlex
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pika
import pytest
from distributed import Client

from analysis.results.document import HistogramDocument, from_json
from analysis.results.outputs import outputs_in
from cluster.runtime.certificates import directory_security
from cluster.runtime.localstack import certificates_dir, load_state

from .helpers import HZZ, ON_DISK, PUBLISHED_COUNTS, URL, WAIT_S
from .helpers import hzz_ok as hzz

pytestmark = [pytest.mark.cluster, pytest.mark.broker]


class StandIn:
    """The running stand-in: its state directory, plots directory and broker names."""

    def __init__(self, root: Path) -> None:
        self.dir = root / "state"
        self.plots = root / "plots"
        self.names = f"hzz.test.localstack.{uuid.uuid4().hex[:8]}"
        self.run_with: list[str] = []  # the run command ``hzz cluster up`` printed

    @property
    def scheduler(self) -> str:
        return load_state(self.dir).scheduler

    @property
    def dashboard(self) -> str:
        return load_state(self.dir).dashboard

    @property
    def certificates(self) -> Path:
        return certificates_dir(self.dir)

    def client(self) -> Client:
        """A client of the stand-in, with its client certificate (it speaks only TLS)."""
        security = directory_security(self.certificates, "client")
        return Client(self.scheduler, timeout="10s", security=security)

    def run_args(self) -> list[str]:
        """``hzz run`` options that point it at the stand-in."""
        return ["--scheduler", self.scheduler, "--certificates", str(self.certificates)]

    def run(self, out: Path, *args: str) -> HistogramDocument:
        """`hzz run --scheduler` on the stand-in; the document it wrote."""
        hzz("run", *self.run_args(), "--out", str(out), "--no-progress", *args)
        (document,) = outputs_in(out, ".json")
        return from_json(document.read_bytes())

    def worker_names(self) -> set[str]:
        with self.client() as client:
            workers = client.scheduler_info(n_workers=-1)["workers"].values()
            return {str(info["name"]) for info in workers}


def delete_topology(names: str) -> None:
    with pika.BlockingConnection(pika.URLParameters(URL)) as connection:
        channel = connection.channel()
        for queue in (names, f"{names}.dead"):
            channel.queue_delete(queue)
        for exchange in (names, f"{names}.dlx"):
            channel.exchange_delete(exchange)


@pytest.fixture(scope="module")
def stand_in(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StandIn]:
    stack = StandIn(tmp_path_factory.mktemp("localstack"))
    up = hzz(
        "cluster", "up", "--workers", "1", "--dir", str(stack.dir), "--plots", str(stack.plots),
        "--broker", URL, "--exchange", stack.names, "--queue", stack.names,
    )  # fmt: skip
    assert f"scheduler: {stack.scheduler}" in up.stdout
    assert f"dashboard: {stack.dashboard}" in up.stdout
    (run_with,) = [line for line in up.stdout.splitlines() if line.startswith("run with:")]
    stack.run_with = shlex.split(run_with.removeprefix("run with:"))
    processes = load_state(stack.dir).processes
    try:
        yield stack
    finally:
        down = subprocess.run(
            [*HZZ, "cluster", "down", "--dir", str(stack.dir)],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        delete_topology(stack.names)
    assert down.returncode == 0, down.stderr
    assert not (stack.dir / "state.json").exists()
    still_running = [proc.name for proc in processes if proc.alive()]
    assert not still_running, f"hzz cluster down left {still_running} running"


@pytest.fixture(scope="module")
def one_worker(
    stand_in: StandIn, mirror: Path, tmp_path_factory: pytest.TempPathFactory
) -> HistogramDocument:
    """The stand-in with its one worker computes the real files (through the CLI)."""
    assert stand_in.worker_names() == {"worker-1"}
    out = tmp_path_factory.mktemp("one-worker")
    return stand_in.run(out, "--data", str(mirror), "--samples", ",".join(ON_DISK),
                        "--step-size", "100")  # fmt: skip


def test_one_and_three_workers_give_identical_histograms_and_the_plotter_draws(
    stand_in: StandIn, one_worker: HistogramDocument, mirror: Path, tmp_path: Path
) -> None:
    scaled = hzz("cluster", "scale", "3", "--dir", str(stand_in.dir))
    assert "worker-2, worker-3" in scaled.stdout
    assert stand_in.worker_names() == {"worker-1", "worker-2", "worker-3"}
    status = hzz("cluster", "status", "--dir", str(stand_in.dir))
    assert "workers connected: 3" in status.stdout

    # The three-worker run, as `hzz cluster up` said to run it, goes through the broker:
    # the stand-in's plotter draws it.
    out = tmp_path / "three"
    assert stand_in.run_with[:2] == ["hzz", "run"]
    assert stand_in.run_with[2:6] == stand_in.run_args()
    assert stand_in.run_with[6:] == [
        "--exchange", stand_in.names, "--queue", stand_in.names, "--broker", URL,
    ]  # fmt: skip
    run = subprocess.Popen(
        [*HZZ, *stand_in.run_with[1:], "--data", str(mirror),
         "--samples", ",".join(ON_DISK), "--step-size", "100", "--out", str(out),
         "--no-progress"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    dashboard_answers = []
    while run.poll() is None:
        with urllib.request.urlopen(stand_in.dashboard, timeout=10) as response:
            dashboard_answers.append(response.status)
        time.sleep(0.5)
    _, stderr = run.communicate()
    assert run.returncode == 0, stderr
    assert dashboard_answers and set(dashboard_answers) == {200}

    (document_path,) = outputs_in(out, ".json")
    three = from_json(document_path.read_bytes())
    for name in ON_DISK:
        a, b = one_worker.samples[name], three.samples[name]
        assert (a.n_in, a.n_out) == (b.n_in, b.n_out) == PUBLISHED_COUNTS[name]
        assert a.sumw == b.sumw
        assert np.array_equal(a.hist.values(flow=True), b.hist.values(flow=True))
        assert np.array_equal(a.hist.variances(flow=True), b.hist.variances(flow=True))

    png = stand_in.plots / document_path.with_suffix(".png").name
    deadline = time.monotonic() + WAIT_S
    while not png.exists() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", "the stand-in's plotter drew no PNG"


def test_worker_added_during_a_run_receives_tasks(stand_in: StandIn, tmp_path: Path) -> None:
    hzz("cluster", "scale", "1", "--dir", str(stand_in.dir))
    assert len(stand_in.worker_names()) == 1
    events = 80_000
    hzz("generate", "--out", str(tmp_path / "standins"), "--samples", "llll",
        "--events", str(events))  # fmt: skip
    out = tmp_path / "out"
    run = subprocess.Popen(
        [*HZZ, "run", *stand_in.run_args(), "--data", str(tmp_path / "standins"),
         "--samples", "llll", "--step-size", "1000", "--out", str(out), "--no-progress"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    with stand_in.client() as client:
        deadline = time.monotonic() + WAIT_S
        while not any(client.processing().values()) and run.poll() is None:
            assert time.monotonic() < deadline, "the run never started computing"
            time.sleep(0.2)
        added = hzz("cluster", "scale", "2", "--dir", str(stand_in.dir))
        new_name = added.stdout.split("started and connected:")[1].split()[0]
        _, stderr = run.communicate(timeout=600)
        assert run.returncode == 0, stderr
        workers = client.scheduler_info(n_workers=-1)["workers"]
        new_address = next(a for a, info in workers.items() if info["name"] == new_name)
        executed_by_new = client.run(
            lambda dask_worker: dask_worker.state.executed_count, workers=[new_address]
        )[new_address]
    assert executed_by_new > 0, f"{new_name} joined during the run but executed no task"
    print(f"{new_name} joined during the run and executed {executed_by_new} tasks")
    document = from_json(outputs_in(out, ".json")[0].read_bytes())
    assert document.samples["llll"].n_in == events


def test_a_second_up_in_the_same_directory_is_refused(stand_in: StandIn) -> None:
    result = subprocess.run(
        [*HZZ, "cluster", "up", "--workers", "1", "--dir", str(stand_in.dir)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1
    assert "already up" in result.stderr and "hzz cluster down" in result.stderr


def test_without_a_cluster_the_state_file_is_named(tmp_path: Path) -> None:
    def cluster(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*HZZ, "cluster", *args, "--dir", str(tmp_path)],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    state = tmp_path / "state.json"
    for args, code in ((("status",), 1), (("scale", "2"), 1), (("down",), 2)):
        result = cluster(*args)
        assert (
            result.returncode == code and f"no local cluster recorded in {state}" in result.stderr
        )
    state.write_text("{not json")
    result = cluster("status")
    assert result.returncode == 1 and f"{state}: not a local cluster state file" in result.stderr
