"""A machine that runs out of memory or file handles is the run's failure, never a bad file.

Real limits on real files: an address-space limit (as ``ulimit -v``) and an open-file
limit on a process reading a file, and Dask's own worker memory limit, whose nanny
kills a worker that goes over it, under ``hzz run --scheduler``. Each must fail naming
what ran out and the setting that helps, with or without ``--skip-bad-files`` (before:
``MemoryError`` made the file "bad", exit 2, and with ``--skip-bad-files`` the dominant
background was silently left out, exit 0; a killed worker said only ``KilledWorker``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from .helpers import HZZ
from .test_faults_workers import DaskProcesses

pytestmark = [pytest.mark.faults, pytest.mark.cluster]

#: Stand-in ZZ* events in one file: read as one partition they need about 260 MB more
#: address space than an idle worker; in partitions of 50 000, about 115 MB (measured
#: with one malloc arena, ``MALLOC_ARENA_MAX=1``: else each thread's arena reserves 64 MB
#: of address space when it first allocates, and the limit trips at random).
EVENTS = 600_000
ONE_ARENA = {"MALLOC_ARENA_MAX": "1"}
#: Dask's nanny only kills a worker over 95 % of its limit (no pausing or spilling first).
NO_PAUSE = {
    "DASK_DISTRIBUTED__WORKER__MEMORY__PAUSE": "False",
    "DASK_DISTRIBUTED__WORKER__MEMORY__SPILL": "False",
    "DASK_DISTRIBUTED__WORKER__MEMORY__TARGET": "False",
}
#: The address space the reading process may grow by: less than the whole file's
#: partition needs (about 120 MB for the seven branches read).
IN_PROCESS_HEADROOM = 100 * 2**20


@pytest.fixture(scope="module")
def big_llll(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("llll")
    subprocess.run(
        [*HZZ, "generate", "--samples", "llll", "--events", str(EVENTS), "--out", str(out)],
        check=True,
        capture_output=True,
        timeout=900,
    )
    return out


@pytest.fixture
def dask_processes(tmp_path: Path) -> Iterator[DaskProcesses]:
    processes = DaskProcesses(tmp_path)
    yield processes
    processes.close()


def _run(address: str, data: Path, out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    command = [*HZZ, "run", "--scheduler", address, "--data", str(data), "--samples", "llll"]
    command += ["--out", str(out), "--no-progress", *extra]
    return subprocess.run(command, capture_output=True, text=True, timeout=900, check=False)


def test_out_of_memory_is_the_runs_failure_not_the_files(big_llll: Path) -> None:
    """Under an address-space limit (as ``ulimit -v``) that one partition of the whole
    file exceeds, the reader raises ResourceExhausted naming memory, the file and
    ``--step-size`` (before: MemoryError recorded as the file's fault: a bad file, exit 2,
    skipped with --skip-bad-files). In a process of its own, so that only the reader
    allocates meanwhile (a Dask worker under such a limit may fail anywhere, even in its
    own messages, and die: the nanny test below covers the run)."""
    location = big_llll / "MC" / "mc_363490.llll.4lep.root"
    script = f"""
import resource
import awkward as ak
from analysis.inputs.files import inspect_file
from analysis.inputs.reader import PartitionReader, read_outcome
from analysis.errors import ResourceExhausted
location = {str(location)!r}
branches = ["lep_pt", "lep_eta", "lep_phi", "lep_E", "lep_charge", "lep_type", "mcWeight"]
info = inspect_file("llll", location, "mini", branches)
assert info.error is None and info.entries == {EVENTS}, info.error
reader = PartitionReader("mini", ak.forms.from_json(info.form).select_columns(branches))
with open("/proc/self/statm") as statm:
    size = int(statm.read().split()[0]) * resource.getpagesize()
limit = size + {IN_PROCESS_HEADROOM}
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
try:
    reader((location, 0, {EVENTS}))
except ResourceExhausted as err:
    print(err)
else:
    raise SystemExit("not a run failure")
"""
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env={**os.environ, **ONE_ARENA},
    )
    assert result.returncode == 0, result.stderr + result.stdout
    (line,) = result.stdout.splitlines()
    assert line.startswith(f"a worker ran out of memory while reading {location} entries 0–")
    assert "the file is not at fault" in line and "--step-size" in line


def test_out_of_file_handles_is_the_runs_failure_not_the_files(mirror: Path) -> None:
    """Under an open-file limit already reached, inspecting or reading a good file raises
    ResourceExhausted naming file handles (before: the file was called bad)."""
    script = f"""
import os, resource
from analysis.inputs.files import inspect_file
from analysis.inputs.reader import PartitionReader
from analysis.errors import ResourceExhausted
location = {str(mirror / "MC" / "mc_361106.Zee.4lep.root")!r}
good = inspect_file("Zee", location, "mini", ["lep_pt"])
assert good.error is None, good.error
import awkward as ak
reader = PartitionReader("mini", ak.forms.from_json(good.form).select_columns(["lep_pt"]))
used = len(os.listdir("/proc/self/fd")) - 1  # less the one listdir held
resource.setrlimit(resource.RLIMIT_NOFILE, (used, used))
for attempt in (lambda: inspect_file("Zee", location, "mini", ["lep_pt"]),
                lambda: reader((location, 0, 898))):
    try:
        attempt()
    except ResourceExhausted as err:
        print(err)
    else:
        raise SystemExit("not a run failure")
"""
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, result.stderr + result.stdout
    lines = result.stdout.splitlines()
    assert len(lines) == 2, result.stdout
    for line in lines:
        assert line.startswith("a worker ran out of file handles"), line
        assert "mc_361106.Zee.4lep.root" in line and "the file is not at fault" in line


def test_workers_killed_over_the_dask_memory_limit_are_named(
    dask_processes: DaskProcesses, big_llll: Path, tmp_path: Path
) -> None:
    """Dask's nanny kills a worker over 95 % of its memory limit; after the task has
    killed every worker it was given, the scheduler gives up (``KilledWorker``)."""
    dask_processes.start_workers(1, nanny=True, memory_limit="220MB", env=NO_PAUSE)
    out = tmp_path / "out"
    result = _run(
        dask_processes.address, big_llll, out, "--step-size", "1000000", "--skip-bad-files"
    )
    assert result.returncode == 1, result.stderr
    assert "died, one after another" in result.stderr
    assert "memory limit" in result.stderr and "--step-size" in result.stderr
    assert "skipped" not in result.stderr and "Traceback" not in result.stderr
