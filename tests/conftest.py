"""Shared fixtures: the real ATLAS files in ../shared/data and the published numbers."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
MIRROR_2020 = SHARED_DATA / "atlas-opendata-2020" / "4lep"

# The notebook's published numbers (shared/docs/analysis-spec.md).
PUBLISHED_COUNTS = {
    "data_A": (39, 27),
    "data_B": (156, 86),
    "data_C": (237, 146),
    "data_D": (400, 248),
    "Zee": (898, 243),
    "Zmumu": (684, 257),
    "ttbar_lep": (1031, 334),
}
PUBLISHED_YIELDS = {"Zee": 43.141792, "Zmumu": 51.99949, "ttbar_lep": 28.132816}
ON_DISK = list(PUBLISHED_COUNTS)


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
