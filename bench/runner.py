"""Running measurements in child processes and timing whole commands."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from cluster.runtime.tuning import WORKER_ALLOCATOR_ENV

from .inputs import REPO, FileSet


class MeasurementError(RuntimeError):
    """A child measurement failed; the message names it and ends with its stderr."""


def _env(as_worker: bool = False) -> dict[str, str]:
    """This environment, with the repository importable; ``as_worker``: with the allocator
    settings the pipeline's workers run with (``cluster.runtime.tuning``), so that a baseline doing
    a worker's work is measured in the same conditions."""
    env = dict(os.environ)
    if as_worker:
        env.update(WORKER_ALLOCATOR_ENV)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    return env


def in_child(
    kind: str, timeout_s: float = 1800, as_worker: bool = False, **request: Any
) -> dict[str, Any]:
    """Run ``bench.child`` for one measurement and return its JSON result."""
    return in_children(kind, [request], timeout_s, as_worker)[0]


def in_children(
    kind: str, requests: list[dict[str, Any]], timeout_s: float = 1800, as_worker: bool = False
) -> list[dict[str, Any]]:
    """Run one ``bench.child`` per request, all at once, and return their JSON results.

    Their output goes to files, not pipes: a child never waits for this process to read.
    """
    with contextlib.ExitStack() as stack:
        streams = [
            (
                stack.enter_context(tempfile.TemporaryFile("w+")),
                stack.enter_context(tempfile.TemporaryFile("w+")),
            )
            for _ in requests
        ]
        children = [
            subprocess.Popen(
                [sys.executable, "-m", "bench.child"],
                stdin=subprocess.PIPE,
                stdout=out,
                stderr=err,
                text=True,
                cwd=REPO,
                env=_env(as_worker),
            )
            for out, err in streams
        ]
        try:
            for child, request in zip(children, requests, strict=True):
                assert child.stdin is not None
                child.stdin.write(json.dumps({"kind": kind, **request}))
                child.stdin.close()
            deadline = time.monotonic() + timeout_s
            for child in children:
                child.wait(timeout=max(deadline - time.monotonic(), 0.0))
        finally:
            for child in children:
                if child.poll() is None:
                    child.kill()
                    child.wait()
        results = []
        for child, (out, err) in zip(children, streams, strict=True):
            out.seek(0)
            err.seek(0)
            if child.returncode != 0:
                tail = "\n".join(err.read().strip().splitlines()[-15:])
                raise MeasurementError(
                    f"measurement {kind} failed (exit {child.returncode}):\n{tail}"
                )
            results.append(json.loads(out.read().strip().splitlines()[-1]))
        return results


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
