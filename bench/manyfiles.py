"""``python -m bench --remote``: many remote files inspected over a slow link.

What a run spends before it reads any event grows with the number of files, not their
size: one HEAD per file, then one opening per file (a chain of dependent range
requests) to inspect it. The target: 1,000 remote files inspected at 100 ms round trip
in at most 10 s on 2 workers, and a second run over the same files asking for no file
header at all (its inspections kept, the readers opening the files from the kept
headers).

The files: 1,000 names in one served directory, each a symbolic link to the same small
real file (``data_A`` of the 2020 release: 26 kB, 39 events), served behind the link
as different URLs. The run: a release catalogue of 1,000 data samples, one per name,
run by ``cluster.runtime.run`` as ``hzz run`` runs it (the HEAD pass, the kept
inspections, the inspection of the others on 2 workers of 2 threads, then the read),
in a process of its own started afresh for each run, with its own directory of kept
inspections: empty for the first run, the first run's for the second. The server
counts the requests of each phase, and the header reads (ranges from byte 0: one per
file opened).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from .inputs import MIRROR_2020, REPO
from .link import LinkSpec, emulated_link

#: Files of the full benchmark, and of ``--quick`` (CI).
MANY_FILES = 1_000
QUICK_MANY_FILES = 50
#: The link of the target: 100 ms round trip (50 Mbit/s, the benchmark's far link).
MANY_LINK = LinkSpec(50, 100)
#: The target: the files inspected in at most this many seconds, none kept before.
TARGET_INSPECT_S = 10.0
#: The target: their events (39,000 for 1,000 files) read in at most this many seconds.
TARGET_READ_S = 10.0
#: The file every name links to: small, as the target asks.
SMALL_FILE = "Data/data_A.4lep.root"
WORKERS = 2


def served_many(input_dir: Path, files: int) -> Path:
    """``ROOT/many/``: a copy of the small file and ``files`` links to it (the server
    serves no link that leads out of its root, so the copy is inside)."""
    root = input_dir / "served-many"
    directory = root / "many"
    directory.mkdir(parents=True, exist_ok=True)
    real = directory / Path(SMALL_FILE).name
    source = MIRROR_2020 / SMALL_FILE
    if not real.exists() or real.stat().st_size != source.stat().st_size:
        shutil.copyfile(source, real)
    for index in range(files):
        link = directory / f"{name(index)}.root"
        if not link.is_symlink():
            link.symlink_to(real.name)
    return root


def name(index: int) -> str:
    return f"data_{index:04d}"


def many_release(files: int) -> Any:
    """The 2020 release with ``files`` data samples, ``many/data_NNNN.root``, instead of
    its own."""
    from analysis.inputs.catalogue import Group, Sample, load_release

    names = [name(i) for i in range(files)]
    samples = {n: Sample(name=n, group="data", path=f"many/{n}.root") for n in names}
    data = Group("data", "Data", "black", "data", tuple(names))
    return replace(load_release("2020"), samples=samples, groups=(data,))


def _traffic(server_url: str) -> dict[str, Any]:
    from tests.range_server import traffic

    counts = traffic(server_url)
    return {
        "requests": sum(counts["requests"].values()),
        "heads": counts["requests"].get("HEAD", 0),
        "header_reads": counts["header_reads"],
        "bytes": counts["total_bytes"],
    }


def _since(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    return {key: after[key] - before[key] for key in before}


def _cpu_s() -> float:
    return time.process_time()


def workers_cpu_s(client: Any) -> float:
    """CPU seconds the worker processes have used so far (all their threads)."""
    return sum(client.run(_cpu_s).values())


def one_run(url: str, server_url: str, files: int, kept: Path) -> dict[str, Any]:
    """One run over the files (in this process): inspection and read, timed and counted."""
    import analysis
    from analysis.api import compute_graph
    from cluster.runtime.clusters import dask_client
    from cluster.runtime.run import REMOTE_THREADS_PER_WORKER, RunOptions, inspect_inputs

    release = many_release(files)
    options = RunOptions(locations=[url], show_progress=False, inspection_cache=kept)
    with dask_client(None, WORKERS, REMOTE_THREADS_PER_WORKER, ":0") as client:
        client.wait_for_workers(WORKERS)
        start = _traffic(server_url)
        cpu = workers_cpu_s(client)
        began = time.perf_counter()
        inspection, compute = inspect_inputs(client, release, options)
        inspected_s = time.perf_counter() - began
        inspect_cpu_s = workers_cpu_s(client) - cpu
        middle = _traffic(server_url)
        graph = analysis.build(inspection, options.step_size)
        result = analysis.collect(graph, compute_graph(graph, compute))
        read_s = time.perf_counter() - began - inspected_s
        end = _traffic(server_url)
    events = sum(sample.n_in for sample in result.document.samples.values())
    return {
        "inspect_s": inspected_s,
        "inspect_workers_cpu_s": inspect_cpu_s,
        "read_s": read_s,
        "inspection": _since(start, middle),
        "read": _since(middle, end),
        "events": events,
    }


def measure_many(input_dir: Path, quick: bool, log: Callable[[str], None] = print) -> dict:
    """The first run (no inspection kept) and the second, each in a fresh process."""
    files = QUICK_MANY_FILES if quick else MANY_FILES
    root = served_many(input_dir, files)
    with emulated_link(root, MANY_LINK) as link, tempfile.TemporaryDirectory() as tmp:
        log(f"{MANY_LINK.name}: {files} files behind the link at {link.url}")
        figures: dict[str, Any] = {"link": MANY_LINK.name, "files": files}
        for run in ("first", "second"):
            command = [sys.executable, "-m", "bench.manyfiles", f"{link.url}/", link.server_url]
            command += [str(files), str(Path(tmp) / "inspected")]
            done = subprocess.run(
                command, capture_output=True, text=True, cwd=REPO, timeout=1800, check=False
            )
            if done.returncode != 0:
                raise RuntimeError(f"{run} run over {files} files: {done.stderr[-2000:]}")
            figures[run] = json.loads(done.stdout.strip().splitlines()[-1])
            log(
                f"  {run} run: inspection {figures[run]['inspect_s']:.1f} s, "
                f"header reads {figures[run]['inspection']['header_reads']} + "
                f"{figures[run]['read']['header_reads']}"
            )
        return figures


def many_targets(figures: dict) -> list[tuple[str, str, bool]]:
    files, first, second = figures["files"], figures["first"], figures["second"]
    second_headers = second["inspection"]["header_reads"] + second["read"]["header_reads"]
    return [
        (
            f"{files} files inspected in ≤ {TARGET_INSPECT_S:.0f} s, none kept",
            f"{first['inspect_s']:.2f} s",
            first["inspect_s"] <= TARGET_INSPECT_S,
        ),
        (
            f"{files} files' events read in ≤ {TARGET_READ_S:.0f} s, first run",
            f"{first['read_s']:.2f} s",
            first["read_s"] <= TARGET_READ_S,
        ),
        ("second run: no file header read", str(second_headers), second_headers == 0),
    ]


def many_markdown(figures: dict) -> list[str]:
    lines = [
        "",
        f"{figures['files']} files (links to one 26 kB file), {figures['link']}, "
        f"{WORKERS} workers × 2 threads; each run a fresh process:",
        "",
        "| run | inspection s | workers' CPU s in it | read s | HEAD | "
        "header reads: inspection | header reads: readers | requests | events |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for run, label in (("first", "first (none kept)"), ("second", "second (kept)")):
        row = figures[run]
        cpu = row.get("inspect_workers_cpu_s")
        lines.append(
            f"| {label} | {row['inspect_s']:.2f} | "
            f"{'–' if cpu is None else format(cpu, '.2f')} | {row['read_s']:.2f} | "
            f"{row['inspection']['heads']} | {row['inspection']['header_reads']} | "
            f"{row['read']['header_reads']} | "
            f"{row['inspection']['requests'] + row['read']['requests']} | {row['events']} |"
        )
    lines += ["", "| target | measured | met |", "|---|---:|---|"]
    for target, value, met in many_targets(figures):
        lines.append(f"| {target} | {value} | {'met' if met else 'not met'} |")
    return lines


def main(argv: list[str]) -> int:
    url, server_url, files, kept = argv
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    print(json.dumps(one_run(url, server_url, int(files), Path(kept))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
