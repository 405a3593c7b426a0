"""Running measurements in child processes and timing whole commands."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from .inputs import REPO, FileSet


class MeasurementError(RuntimeError):
    """A child measurement failed; the message names it and ends with its stderr."""


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    return env


def in_child(kind: str, timeout_s: float = 1800, **request: Any) -> dict[str, Any]:
    """Run ``bench.child`` for one measurement and return its JSON result."""
    payload = json.dumps({"kind": kind, **request})
    done = subprocess.run(
        [sys.executable, "-m", "bench.child"],
        input=payload,
        capture_output=True,
        text=True,
        cwd=REPO,
        env=_env(),
        timeout=timeout_s,
    )
    if done.returncode != 0:
        tail = "\n".join(done.stderr.strip().splitlines()[-15:])
        raise MeasurementError(f"measurement {kind} failed (exit {done.returncode}):\n{tail}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def files_request(files: FileSet) -> dict[str, Any]:
    return {
        "sample": files.sample.name,
        "paths": list(files.paths),
        "pattern": files.pattern,
        "events": files.events,
    }


def wall_time(command: list[str], cwd: Path, timeout_s: float = 600) -> float:
    """Seconds a whole command takes, from exec to exit (interpreter start-up included)."""
    started = time.perf_counter()
    done = subprocess.run(
        command, capture_output=True, text=True, cwd=cwd, env=_env(), timeout=timeout_s
    )
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        tail = "\n".join(done.stderr.strip().splitlines()[-15:])
        raise MeasurementError(f"{' '.join(command)} failed (exit {done.returncode}):\n{tail}")
    return seconds


def warm_page_cache(paths: list[str] | tuple[str, ...]) -> int:
    """Read every file once so that every measurement reads from memory alike."""
    total = 0
    for path in paths:
        with open(path, "rb") as handle:
            while chunk := handle.read(16 << 20):
                total += len(chunk)
    return total
