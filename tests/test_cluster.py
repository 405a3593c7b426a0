"""The same histograms from 1 and 2 worker processes, and from different step sizes."""

from __future__ import annotations

import json
import multiprocessing
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from analysis.inputs.catalogue import load_release
from analysis.results.document import HistogramDocument, from_json
from analysis.results.outputs import outputs_in
from cluster.runtime.clusters import dask_client
from cluster.runtime.run import RunOptions, run_analysis

from .helpers import ON_DISK, PUBLISHED_COUNTS


def _run(mirror: Path, workers: int, step_size: int) -> HistogramDocument:
    options = RunOptions(
        locations=[str(mirror)], samples=ON_DISK, step_size=step_size, show_progress=False
    )
    with dask_client(workers=workers, dashboard_address=":0") as client:
        assert len(client.scheduler_info()["workers"]) == workers
        return run_analysis(client, load_release("2020"), options).document


@pytest.fixture(scope="module")
def one_worker(mirror: Path) -> HistogramDocument:
    return _run(mirror, workers=1, step_size=100)


@pytest.fixture(scope="module")
def two_workers(mirror: Path) -> HistogramDocument:
    return _run(mirror, workers=2, step_size=100)


@pytest.mark.cluster
def test_one_and_two_worker_processes_give_identical_histograms(
    one_worker: HistogramDocument, two_workers: HistogramDocument
) -> None:
    for name in ON_DISK:
        a, b = one_worker.samples[name], two_workers.samples[name]
        assert (a.n_in, a.n_out) == (b.n_in, b.n_out) == PUBLISHED_COUNTS[name]
        assert a.sumw == b.sumw
        assert np.array_equal(a.hist.values(flow=True), b.hist.values(flow=True))
        assert np.array_equal(a.hist.variances(flow=True), b.hist.variances(flow=True))


@pytest.mark.cluster
def test_step_sizes_give_the_same_histograms(mirror: Path, two_workers: HistogramDocument) -> None:
    """100 entries per partition (up to 11 partitions a file) against one partition a file.

    Counts are identical; weighted sums differ only by the order of float additions.
    """
    whole = _run(mirror, workers=2, step_size=1_000_000)
    for name in ON_DISK:
        a, b = two_workers.samples[name], whole.samples[name]
        assert (a.n_in, a.n_out) == (b.n_in, b.n_out)
        np.testing.assert_allclose(a.hist.values(flow=True), b.hist.values(flow=True), rtol=1e-12)
        np.testing.assert_allclose(
            a.hist.variances(flow=True), b.hist.variances(flow=True), rtol=1e-12
        )
        assert a.sumw == pytest.approx(b.sumw, rel=1e-12)


@pytest.mark.cluster
def test_run_against_a_separately_started_scheduler_and_workers(
    mirror: Path, tmp_path: Path
) -> None:
    """The deployment shape: `dask scheduler` and `dask worker` processes, `hzz run --scheduler`."""
    scheduler_file = tmp_path / "scheduler.json"
    dask_cli = [sys.executable, "-m", "dask"]
    procs = [
        subprocess.Popen(
            [
                *dask_cli,
                "scheduler",
                "--port",
                "0",
                "--dashboard-address",
                ":0",
                "--scheduler-file",
                str(scheduler_file),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    ]
    try:
        deadline = time.monotonic() + 60
        while not scheduler_file.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        address = json.loads(scheduler_file.read_text())["address"]
        for _ in range(2):
            procs.append(
                subprocess.Popen(
                    [*dask_cli, "worker", address, "--nthreads", "1", "--no-dashboard"],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        out = tmp_path / "plots"
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "cluster.cli",
                "run",
                "--scheduler",
                address,
                "--data",
                str(mirror),
                "--samples",
                ",".join(ON_DISK),
                "--step-size",
                "200",
                "--out",
                str(out),
                "--no-progress",
            ],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        (doc_path,) = outputs_in(out, ".json")
        document = from_json(doc_path.read_bytes())
        for name in ON_DISK:
            sample = document.samples[name]
            assert (sample.n_in, sample.n_out) == PUBLISHED_COUNTS[name]
    finally:
        for proc in reversed(procs):
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=30)


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="reads /proc (Linux)")
@pytest.mark.cluster
def test_local_workers_start_with_the_allocator_thresholds(monkeypatch: pytest.MonkeyPatch) -> None:
    """The nanny's default MALLOC_TRIM_THRESHOLD_ is replaced by ours in every worker, in
    the environment the worker process started with (the one glibc reads), not only in
    ``os.environ`` (workers are forked from a server: they cannot take new variables)."""
    from cluster.runtime.tuning import WORKER_ALLOCATOR_ENV

    from .worker_probes import current_environment, start_environment

    for name in WORKER_ALLOCATOR_ENV:  # a nanny started earlier here exports its own
        monkeypatch.delenv(name, raising=False)

    with dask_client(workers=2, dashboard_address=":0") as client:
        at_start = client.run(start_environment, list(WORKER_ALLOCATOR_ENV))
        now = client.run(current_environment, list(WORKER_ALLOCATOR_ENV))
    assert len(at_start) == len(now) == 2
    assert all(env == WORKER_ALLOCATOR_ENV for env in at_start.values())
    assert all(env == WORKER_ALLOCATOR_ENV for env in now.values())


@pytest.mark.skipif(
    "forkserver" not in multiprocessing.get_all_start_methods(), reason="workers are spawned"
)
@pytest.mark.cluster
def test_local_workers_start_with_the_analysis_imported() -> None:
    """Workers are forked from a server that imported the analysis once: a new worker
    has it before it runs anything, instead of importing it on its first task."""
    from cluster.runtime.tuning import WORKER_PRELOAD

    from .worker_probes import imported

    with dask_client(workers=2, dashboard_address=":0") as client:
        seen = client.run(imported, [*WORKER_PRELOAD, "uproot", "awkward"])
    assert len(seen) == 2
    assert all(all(found.values()) for found in seen.values()), seen


def test_the_worker_image_sets_the_same_allocator_thresholds() -> None:
    from cluster.runtime.tuning import WORKER_ALLOCATOR_ENV

    dockerfile = (Path(__file__).resolve().parents[1] / "Dockerfile.worker").read_text()
    for name, value in WORKER_ALLOCATOR_ENV.items():
        assert f"{name}={value}" in dockerfile


def test_the_images_call_dasks_periodic_callbacks_as_local_clusters_do() -> None:
    from cluster.runtime.tuning import periodic_env

    root = Path(__file__).resolve().parents[1]
    worker = (root / "Dockerfile.worker").read_text()
    scheduler = (root / "Dockerfile.scheduler").read_text()
    for name, value in periodic_env().items():
        assert f"{name}={value}" in worker
    tick = "DASK_DISTRIBUTED__ADMIN__TICK__INTERVAL"
    assert f"{tick}={periodic_env()[tick]}" in scheduler


@pytest.mark.cluster
def test_local_workers_and_scheduler_run_dasks_periodic_callbacks_less_often() -> None:
    """The profile's sampling and the event loop's health check as ``PERIODIC_CONFIG``
    sets them, in the worker processes (forked from a server) and the scheduler."""
    from dask.utils import parse_timedelta

    from cluster.runtime.tuning import PERIODIC_CONFIG

    from .worker_probes import periodic_callbacks_ms

    ms = {key: 1000 * parse_timedelta(value) for key, value in PERIODIC_CONFIG.items()}
    with dask_client(workers=2, dashboard_address=":0") as client:
        on_workers = client.run(periodic_callbacks_ms)
        on_scheduler = client.run_on_scheduler(periodic_callbacks_ms)
    assert len(on_workers) == 2
    for callbacks in on_workers.values():
        assert callbacks["profile"] == ms["distributed.worker.profile.interval"]
        assert callbacks["tick"] == ms["distributed.admin.tick.interval"]
    assert on_scheduler["tick"] == ms["distributed.admin.tick.interval"]


def _saturation(dask_scheduler) -> float:
    return dask_scheduler.WORKER_SATURATION


@pytest.mark.cluster
def test_the_schedulers_hand_out_two_partition_tasks_per_thread() -> None:
    """The embedded scheduler and the scheduler image use the same saturation."""
    from cluster.runtime.tuning import SATURATION_ENV, SCHEDULER_WORKER_SATURATION

    with dask_client(workers=1, dashboard_address=":0") as client:
        assert client.run_on_scheduler(_saturation) == float(SCHEDULER_WORKER_SATURATION) == 2.0
    dockerfile = (Path(__file__).resolve().parents[1] / "Dockerfile.scheduler").read_text()
    assert f"{SATURATION_ENV}={SCHEDULER_WORKER_SATURATION}" in dockerfile


@pytest.mark.cluster
def test_a_background_client_starts_computes_and_closes() -> None:
    """The cluster ``hzz run`` starts while it imports, and closes while it draws."""
    from cluster.runtime.clusters import BackgroundClient

    background = BackgroundClient(workers=1, dashboard_address=":0")
    client = background.client()
    assert client.submit(sum, [1, 2, 3]).result() == 6
    background.close(wait=True)
    assert client.status == "closed"
