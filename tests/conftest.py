"""Shared fixtures, and the two tiers: a test marked with what it starts (``cluster``,
``broker``, ``docker``, ``netns``) is ``slow``, outside ``pytest -m "not slow"``."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from distributed import Client, LocalCluster

from .helpers import MIRROR_2020, SHARED_DATA, Broker, Plotter
from .range_server import RangeFileServer, serve_files

#: Markers that say a test starts something heavy: each makes the test ``slow``.
STARTS = ("cluster", "broker", "docker", "netns")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if any(item.get_closest_marker(name) for name in STARTS):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def mirror() -> Path:
    """The local mirror of the 2020 4lep files (data A–D, Zee, Zmumu, ttbar_lep)."""
    assert MIRROR_2020.is_dir(), f"real data files expected at {MIRROR_2020}"
    return MIRROR_2020


@pytest.fixture
def fake_mirror(tmp_path: Path, mirror: Path) -> Path:
    """A writable mirror whose files link to the real ones, for tests that break one."""
    for folder in ("Data", "MC"):
        (tmp_path / folder).mkdir()
        for real in (mirror / folder).iterdir():
            os.symlink(real, tmp_path / folder / real.name)
    return tmp_path


@pytest.fixture(autouse=True)
def environment_read_afresh() -> Iterator[None]:
    """hzz reads its environment variables once per process (``cluster.defaults``); a
    test that sets them in this process sees them as a new process would."""
    from cluster.defaults import environment

    environment.cache_clear()
    yield
    environment.cache_clear()


@pytest.fixture(scope="module")
def client() -> Iterator[Client]:
    """A Dask client whose worker runs in this process on threads: the distributed API
    ``hzz run`` computes with, without starting a process."""
    with (
        LocalCluster(
            n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client


@pytest.fixture
def server() -> Iterator[RangeFileServer]:
    """An HTTP server on loopback serving the shared data, with byte ranges."""
    with serve_files(SHARED_DATA) as running:
        yield running


@pytest.fixture
def broker() -> Iterator[Broker]:
    """A test's own exchange and queue on the real broker (127.0.0.1:5672)."""
    corner = Broker()
    yield corner
    corner.close()


@pytest.fixture
def plotters() -> Iterator[list[Plotter]]:
    """Plotter processes a test starts (append them): killed at its end."""
    started: list[Plotter] = []
    yield started
    for plotter in started:
        plotter.stop()
