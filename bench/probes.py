"""Clocks, memory and machine facts shared by every measurement."""

from __future__ import annotations

import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any

#: Distributions whose versions decide the numbers.
VERSIONED = (
    "uproot",
    "awkward",
    "awkward_cpp",
    "vector",
    "hist",
    "boost-histogram",
    "dask",
    "distributed",
    "dask-awkward",
    "numpy",
    "cramjam",
)


class Stopwatch:
    """Named wall-clock laps, in seconds, for one measurement."""

    def __init__(self) -> None:
        self.laps: dict[str, float] = {}

    @contextmanager
    def lap(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.laps[name] = time.perf_counter() - started


def peak_rss_bytes() -> int:
    """Peak resident set size of this process so far (Linux ru_maxrss is in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def summary(values: Sequence[float]) -> dict[str, Any]:
    """Best, median, worst and spread ((max − min) / median) of repeated timings."""
    if not values:
        return {"n": 0}
    median = statistics.median(values)
    return {
        "n": len(values),
        "min": min(values),
        "median": median,
        "max": max(values),
        "spread": (max(values) - min(values)) / median if median else 0.0,
        "values": list(values),
    }


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def git_commit(repo: Path) -> str | None:
    """The checked-out commit (read-only), and '+dirty' when the tree has changes."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=repo, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=repo,
            capture_output=True,
            text=True,
        ).stdout.strip()
    except OSError:
        return None
    return (head + ("+dirty" if dirty else "")) or None


def machine_info(repo: Path) -> dict[str, Any]:
    """What the numbers were measured on: CPU, cores, memory, load, Python, versions."""
    import psutil

    versions = {}
    for name in VERSIONED:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "cpu_model": cpu_model(),
        "logical_cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)),
        "memory_bytes": psutil.virtual_memory().total,
        "load_average_at_start": list(os.getloadavg()),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "versions": versions,
        "commit": git_commit(repo),
    }
