"""``python -m bench [--quick]``: measure everything side by side, print the table, write JSON.

Order: inputs (generated and cached, page cache warmed), then rounds in which the read
limit (uproot's default zlib inflate, and ISA-L as the pipeline reads), the analysis
alone on events in memory, the pipeline's work without Dask (one process, then two side
by side), the notebook, the pipeline with 1 and 2 workers (and 2 over plain TCP instead of
mutual TLS), and the pipeline's compute with ``--live`` and ``--checkpoint`` beside a
plain one (``bench/live.py``) take turns (so machine noise hits all alike), then graph
building for many files, then the real set end to end.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from analysis.inputs.partitions import DEFAULT_STEP_SIZE
from analysis.standins import DEFAULT_SEED
from cluster.commands.common import HelpFormatter

from .inputs import DEFAULT_INPUT_DIR, MIRROR_2020, REPO, generated_input, many_files
from .notebook import NOTEBOOK_STEP_SIZE
from .probes import machine_info
from .report import figures, markdown, targets
from .runner import (
    MeasurementError,
    files_request,
    in_child,
    in_children,
    wall_time,
    warm_page_cache,
)

RESULTS_DIR = REPO / "bench" / "results"


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text}: must be at least 1")
    return value


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmark the pipeline against the notebook and the read limit; with "
        "--remote, the release read over an emulated network link.",
        formatter_class=HelpFormatter,
    )
    parser.add_argument(
        "--quick", action="store_true", help="tiny input, one repetition: for CI (about a minute)"
    )
    parser.add_argument(
        "--input-dir",
        type=Path,
        default=DEFAULT_INPUT_DIR,
        help="cache of generated input, reused when its marks match",
    )
    parser.add_argument(
        "--results-dir",
        type=Path,
        default=None,
        help="where to write the JSON and markdown (default: bench/results; "
        "with --quick a temporary directory)",
    )
    parser.add_argument("--events", type=positive, help="generated events (default 5M; quick 200k)")
    parser.add_argument("--files", type=positive, help="files they are spread over (10; quick 2)")
    parser.add_argument("--repeats", type=positive, help="rounds of every measurement (3; quick 1)")
    parser.add_argument(
        "--many-files", type=positive, help="files for the graph-building cost (1000; quick 50)"
    )
    parser.add_argument(
        "--step-size",
        type=positive,
        default=DEFAULT_STEP_SIZE,
        help="entries per partition for the pipeline and the read limit",
    )
    parser.add_argument(
        "--workers",
        type=positive,
        default=2,
        help="worker processes of the larger cluster and of hzz run",
    )
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="generator seed")
    parser.add_argument(
        "--mirror",
        type=Path,
        default=MIRROR_2020,
        help="the real small set (default: ../shared/data/atlas-opendata-2020/4lep beside "
        "the repository)",
    )
    parser.add_argument(
        "--remote",
        action="store_true",
        help="instead: the 2020 release at its real sizes over emulated links (100 Mbit/s, "
        "20 ms; 50 Mbit/s, 100 ms): hzz run, the notebook, download-then-run and the limit "
        "(needs root; with --quick one link and small stand-ins)",
    )
    args = parser.parse_args(argv)
    if not args.mirror.is_dir():
        parser.error(f"--mirror {args.mirror}: no such directory (the real 2020 files)")
    quick = args.quick
    args.events = args.events or (200_000 if quick else 5_000_000)
    args.files = args.files or (2 if quick else 10)
    args.repeats = args.repeats or (1 if quick else 3)
    args.many_files = args.many_files or (50 if quick else 1000)
    if args.results_dir is None:
        args.results_dir = Path(tempfile.mkdtemp(prefix="hzz-bench-")) if quick else RESULTS_DIR
    return args


def log(message: str) -> None:
    print(f"[bench {datetime.now(UTC):%H:%M:%S}] {message}", file=sys.stderr, flush=True)


class Recorder:
    """Collects raw measurements; a failed one is logged and recorded, the rest go on."""

    def __init__(self) -> None:
        self.raw: dict[str, Any] = {}
        self.errors: list[str] = []

    def add(self, key: str, label: str, measure: Callable[[], Any]) -> None:
        log(label)
        try:
            self.raw.setdefault(key, []).append(measure())
        except MeasurementError as err:
            log(f"FAILED: {err}")
            self.errors.append(f"{label}: {err}")


def measure(args: argparse.Namespace, recorder: Recorder) -> dict[str, Any]:
    """Every raw measurement, in the order described in the module docstring."""
    files = generated_input(args.input_dir, args.events, args.files, args.seed, log)
    warm_page_cache(files.paths)
    request = files_request(files)
    raw = recorder.raw
    raw["input"] = {**request, "files": len(files.paths), "step_size": args.step_size}
    raw["input"]["sample"] = raw["input"].pop("sample")
    for n in range(1, args.repeats + 1):
        for inflate, key in (("zlib", "read_limit_zlib"), ("isal", "read_limit")):
            recorder.add(
                key,
                f"round {n}/{args.repeats}: read limit, {inflate} inflate",
                lambda inflate=inflate: in_child(
                    "read_limit",
                    **request,
                    step_size=args.step_size,
                    inflate=inflate,
                    as_worker=inflate == "isal",  # as the pipeline reads
                ),
            )
        recorder.add(
            "analysis_only",
            f"round {n}/{args.repeats}: the analysis alone, on events in memory",
            lambda: in_child("analysis_only", **request, step_size=args.step_size, as_worker=True),
        )
        recorder.add(
            "no_dask_1p",
            f"round {n}/{args.repeats}: the pipeline's work without Dask, 1 process",
            lambda: in_child("no_dask", **request, step_size=args.step_size, as_worker=True),
        )
        recorder.add(
            "no_dask_2p",
            f"round {n}/{args.repeats}: the pipeline's work without Dask, 2 processes",
            lambda: side_by_side(request, args.step_size),
        )
        recorder.add(
            "notebook",
            f"round {n}/{args.repeats}: notebook",
            lambda: in_child("notebook", **request, step_size=NOTEBOOK_STEP_SIZE),
        )
        # TLS (as hzz run starts its cluster) and plain TCP take turns at going first.
        runs = [(1, "pipeline_1w", True), (args.workers, "pipeline_2w", True)]
        tcp = (args.workers, "pipeline_2w_tcp", False)
        runs = [*runs, tcp] if n % 2 else [runs[0], tcp, runs[1]]
        for workers, key, encrypted in runs:
            recorder.add(
                key,
                f"round {n}/{args.repeats}: pipeline, {workers} worker(s)"
                + ("" if encrypted else ", plain TCP"),
                lambda workers=workers, encrypted=encrypted: in_child(
                    "pipeline",
                    **request,
                    workers=workers,
                    step_size=args.step_size,
                    computes=2,
                    encrypted=encrypted,
                ),
            )
        recorder.add(
            "live",
            f"round {n}/{args.repeats}: --live and --checkpoint beside a plain compute, "
            f"{args.workers} workers",
            lambda: in_child(
                "live", **request, workers=args.workers, step_size=args.step_size, computes=2
            ),
        )
    many = many_files(args.input_dir, args.many_files, args.seed, log)
    warm_page_cache(many.paths[:1])
    rounds = min(args.repeats, 2)  # minutes per round at 1000 files: two show the noise
    for n in range(1, rounds + 1):
        recorder.add(
            "graph_build",
            f"graph build, {args.many_files} files ({n}/{rounds})",
            lambda: in_child("graph_build", **files_request(many), step_size=args.step_size),
        )
    measure_real_set(args, recorder)
    return raw


#: Seconds the two side-by-side processes get to start up before their common start.
SIDE_BY_SIDE_LEAD_S = 5.0


def side_by_side(request: dict[str, Any], step_size: int) -> dict[str, Any]:
    """Two no-Dask processes at once, on alternate files: together they do all the work.

    Both start their loops at one agreed moment (after imports and inspection), so the
    time is the span from it to the last one done.
    """
    halves = [request["paths"][0::2], request["paths"][1::2]]
    start_at = time.time() + SIDE_BY_SIDE_LEAD_S
    results = in_children(
        "no_dask",
        [{**request, "paths": h, "step_size": step_size, "start_at": start_at} for h in halves],
        as_worker=True,
    )
    return {
        "seconds": max(r["ended"] for r in results) - start_at,
        "events": sum(r["events"] for r in results),
        "n_in": sum(r["n_in"] for r in results),
        "n_out": sum(r["n_out"] for r in results),
        "sumw": sum(r["sumw"] for r in results),
        "processes": results,
    }


def measure_real_set(args: argparse.Namespace, recorder: Recorder) -> None:
    """`hzz run` and the notebook on the real files, whole processes, and hzz run's phases:
    `hzz run` as a user types it (a small input: computed in its own process), with a
    local cluster of ``--workers`` processes, and on a resident cluster (`hzz cluster up`,
    then `--scheduler`: no cluster start paid)."""
    hzz = [sys.executable, "-m", "cluster.cli"]
    if (Path(sys.executable).parent / "hzz").exists():
        hzz = [str(Path(sys.executable).parent / "hzz")]
    with tempfile.TemporaryDirectory(prefix="hzz-bench-real-") as out:
        run = [*hzz, "run", "--data", str(args.mirror), "--allow-missing", "--out", out]
        run += ["--no-progress"]
        local_cluster = [*run, "--workers", str(args.workers), "--dashboard", ":0"]
        notebook = [sys.executable, "-m", "bench.notebook", "--data", str(args.mirror)]
        notebook += ["--plot", str(Path(out) / "notebook.png")]
        stack = Path(out) / "resident"
        resident = resident_cluster(hzz, stack, args.workers, recorder)
        try:
            for n in range(1, args.repeats + 1):
                recorder.add(
                    "real_hzz_run_wall_s",
                    f"real set: hzz run end to end ({n}/{args.repeats})",
                    lambda: wall_time(run, cwd=Path(out)),
                )
                recorder.add(
                    "real_hzz_run_cluster_wall_s",
                    f"real set: hzz run --workers {args.workers} end to end ({n}/{args.repeats})",
                    lambda: wall_time(local_cluster, cwd=Path(out)),
                )
                if resident is not None:
                    recorder.add(
                        "real_hzz_run_resident_wall_s",
                        f"real set: hzz run on a resident cluster ({n}/{args.repeats})",
                        lambda: wall_time([*run, *resident], cwd=Path(out)),
                    )
                measure_notebook_and_phases(args, recorder, notebook, out, n)
        finally:
            if resident is not None:
                subprocess.run([*hzz, "cluster", "down", "--dir", str(stack)], capture_output=True)


def resident_cluster(
    hzz: list[str], stack: Path, workers: int, recorder: Recorder
) -> list[str] | None:
    """`hzz cluster up` (scheduler and workers, no plotter) in ``stack``: the options of
    `hzz run` that use it, or None if it did not start (recorded as a failed measurement)."""
    up = [*hzz, "cluster", "up", "--dir", str(stack), "--workers", str(workers), "--no-plotter"]
    done = subprocess.run(up, capture_output=True, text=True, timeout=300)
    lines = dict(line.split(":", 1) for line in done.stdout.splitlines() if ":" in line)
    if done.returncode != 0 or "scheduler" not in lines:
        recorder.errors.append(f"hzz cluster up failed (exit {done.returncode}): {done.stderr}")
        return None
    certificates = stack / "certificates"
    return ["--scheduler", lines["scheduler"].strip(), "--certificates", str(certificates)]


def measure_notebook_and_phases(
    args: argparse.Namespace, recorder: Recorder, notebook: list[str], out: str, n: int
) -> None:
    """The notebook on the real set, whole process, and `hzz run`'s phases in a child."""
    recorder.add(
        "real_notebook_wall_s",
        f"real set: notebook end to end ({n}/{args.repeats})",
        lambda: wall_time(notebook, cwd=REPO),
    )
    recorder.add(
        "real_phases",
        f"real set: hzz run phases ({n}/{args.repeats})",
        lambda: in_child(
            "real_set_phases", mirror=str(args.mirror), workers=args.workers, out_dir=out
        ),
    )


def main_remote(args: argparse.Namespace) -> int:
    from .remote import markdown as remote_markdown
    from .remote import run_remote, write_results

    results = run_remote(args.quick, args.input_dir, log)
    args.results_dir.mkdir(parents=True, exist_ok=True)
    json_path, md_path = write_results(results, args.results_dir)
    print(remote_markdown(results))
    print(f"written: {json_path}, {md_path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.remote:
        return main_remote(args)
    started = time.perf_counter()
    machine = machine_info(REPO)
    recorder = Recorder()
    raw = measure(args, recorder)
    result: dict[str, Any] = {
        "schema": "hzz.bench/1",
        "created": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "mode": "quick" if args.quick else "full",
        "repeats": args.repeats,
        "machine": machine,
        "load_average_at_end": list(os.getloadavg()),
        "input": raw["input"] | {"paths": [*raw["input"]["paths"][:3], "…"]},
        "notes": {
            "bytes": "uproot's source counter num_requested_bytes in the read-limit process "
            "(local files are memory-mapped, so OS read counters do not see them)",
            "pipeline_compute": "Client.compute of the dask.optimize'd graph until gathered; "
            "warm workers (second compute of each cluster); cluster start-up, graph build "
            "and optimisation timed apart",
            "many_files": "symbolic links to one 2000-event stand-in; each is opened by uproot "
            "as its own file",
        },
    }
    result["errors"] = recorder.errors
    result["figures"] = figures(raw, DEFAULT_STEP_SIZE)
    result["targets"] = targets(result["figures"])
    result["raw"] = raw
    result["wall_s"] = time.perf_counter() - started
    table = markdown(result)
    args.results_dir.mkdir(parents=True, exist_ok=True)
    stem = "quick" if args.quick else "latest"
    (args.results_dir / f"{stem}.json").write_text(json.dumps(result, indent=1) + "\n")
    (args.results_dir / f"{stem}.md").write_text(table)
    print(table)
    print(
        f"written: {args.results_dir / f'{stem}.json'}, {args.results_dir / f'{stem}.md'} "
        f"({result['wall_s']:.0f} s)"
    )
    if recorder.errors:
        print(f"bench: {len(recorder.errors)} measurement(s) failed", file=sys.stderr)
        return 1
    return 0
