"""``python -m bench --remote``: the 2020 release read over an emulated network link.

The files: the real ones of ``../shared/data`` plus stand-ins of the large MC samples at
their real entry counts (``hzz generate``), laid out as the open data server lays them
out and served with HTTP ranges from a network namespace behind a link of a given
bandwidth and round-trip time (``bench.link``). On each link, side by side, each a whole
process started afresh:

- ``hzz run`` on the embedded cluster (2 workers) reading the URLs, with no inspection
  kept from an earlier run, then again with the first run's inspections kept;
- the notebook's algorithm reading the same URLs (``bench.notebook``), file after file;
- every file downloaded whole (curl, 4 at a time), then ``hzz run`` on the copies;
- the limit: the compressed bytes of the branches the analysis reads, over the
  bandwidth, plus the round trips one file's opening needs, times the round-trip time.

The server counts the bytes and requests of each; the round trips of a file's opening
are the requests uproot makes, one after another, to open a file and its tree.

Then many small files over the far link (``bench.manyfiles``): the inspection of 1,000
files (``--quick``: 50) with none kept and with all kept, and the file headers a second
run reads.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .inputs import DEFAULT_INPUT_DIR, MIRROR_2020, REPO
from .link import Link, LinkSpec, emulated_link
from .manyfiles import many_markdown, measure_many

#: The links of the benchmark: a good campus link and a slow far one.
LINKS = (LinkSpec(100, 20), LinkSpec(50, 100))
QUICK_LINKS = (LinkSpec(100, 20),)
#: Stand-in events per sample in quick mode (full mode: the real files' entries).
QUICK_EVENTS = 20_000
HZZ = [sys.executable, "-m", "cluster.cli"]

#: Targets, as ratios measured in one run: on each link (Mbit/s, RTT ms), hzz run at most
#: this many times the limit, and at most this many times the notebook's time.
TARGETS_BY_LINK = {(100, 20): (1.3, 0.8), (50, 100): (1.2, 0.7)}
TARGET_DOWNLOAD = 0.6  # hzz run ≤ 0.6 × download whole, then run


def served_root(input_dir: Path, quick: bool, log: Callable[[str], None] = print) -> Path:
    """``ROOT/4lep/{Data,MC}``: copies of the real files (the server serves no link that
    leads out of its root) and the stand-ins, generated there once."""
    label = f"standins-{QUICK_EVENTS}" if quick else "standins-real"
    root = input_dir / f"served-{label}"
    release = root / "4lep"
    if not (root / ".complete").exists():
        log(f"generating stand-ins into {release}")
        command = [*HZZ, "generate", "--out", str(release)]
        if quick:
            command += ["--events", str(QUICK_EVENTS)]
        subprocess.run(command, check=True, capture_output=True, cwd=REPO, timeout=1800)
        (root / ".complete").touch()
    for path in sorted(MIRROR_2020.glob("*/*.root")):
        copy = release / path.relative_to(MIRROR_2020)
        if not copy.exists() or copy.stat().st_size != path.stat().st_size:
            copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, copy)
    return root


def needed_bytes(release_dir: Path) -> tuple[int, int]:
    """(compressed bytes of the branches the analysis reads, files) over the release."""
    import uproot

    from analysis.inputs.catalogue import load_release
    from analysis.inputs.locations import locate
    from analysis.physics.summary import branches_for

    release = load_release("2020")
    total = files = 0
    for sample in release.select():
        path = locate(sample, [str(release_dir)])
        if path is None:
            continue
        with uproot.open(path) as file:
            tree = file[release.tree]
            total += sum(tree[name].compressed_bytes for name in branches_for(sample))
            files += 1
    return total, files


def traffic(link: Link) -> dict[str, Any]:
    from tests.range_server import traffic as served

    return served(link.server_url)


def measured(link: Link, command: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run ``command`` to the end; its wall time and what the server sent meanwhile."""
    before = traffic(link)
    start = time.perf_counter()
    result = subprocess.run(
        command,
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, **(env or {})},
        timeout=3600,
        check=False,
    )
    wall = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(
            f"{' '.join(command[:4])} … exit {result.returncode}: {result.stderr[-2000:]}"
        )
    after = traffic(link)
    requests = {
        method: after["requests"].get(method, 0) - before["requests"].get(method, 0)
        for method in set(after["requests"]) | set(before["requests"])
    }
    figures: dict[str, Any] = {
        "wall_s": wall,
        "bytes": after["total_bytes"] - before["total_bytes"],
        "requests": sum(requests.values()),
        "requests_by_method": requests,
    }
    phases = run_phases(result.stderr)
    if phases:
        figures["phases"] = phases
    return figures


#: The phases ``hzz run`` logs: what its wall time is made of.
_PHASES = {
    "inspect_s": re.compile(r"files inspected: .* in ([0-9.]+) s"),
    "compute_s": re.compile(r"computed in ([0-9.]+) s"),
}


def run_phases(stderr: str) -> dict[str, float]:
    """The inspection and compute seconds of an ``hzz run`` from its log lines."""
    found = {}
    for name, pattern in _PHASES.items():
        match = pattern.search(stderr)
        if match:
            found[name] = float(match.group(1))
    return found


def opening_round_trips(link: Link) -> int:
    """The requests uproot makes, one after another, to open one file and its tree."""
    code = (
        "import sys, uproot; f = uproot.open(sys.argv[1]); t = f['mini']; "
        "t['lep_pt'].member('fBasketSeek')"
    )
    url = f"{link.url}/4lep/MC/mc_361106.Zee.4lep.root"
    return measured(link, [sys.executable, "-c", code, url])["requests"]


NOTEBOOK_OVER_URLS = """
import sys
from analysis.inputs.catalogue import load_release
from analysis.inputs.locations import locate
from bench.notebook import info_for, read_files
release = load_release("2020")
events = 0
for sample in release.select():
    url = locate(sample, [sys.argv[1]])
    result = read_files([url], info_for(sample))
    events += result.n_in
print(events)
"""


def download_then_run(link: Link, release_url: str, work: Path) -> dict[str, Any]:
    """curl every file whole (4 at a time), then hzz run on the copies."""
    from analysis.inputs.catalogue import load_release
    from analysis.inputs.locations import join

    copies = work / "copies"
    shutil.rmtree(copies, ignore_errors=True)
    command = ["curl", "--silent", "--show-error", "--fail", "--parallel"]
    command += ["--parallel-max", "4", "--create-dirs"]
    for sample in load_release("2020").select():
        command += ["-o", str(copies / sample.path), join(release_url, sample.path)]
    download = measured(link, command)
    # Local copies: no inspection is kept for them anyway.
    run = measured(link, hzz_run(str(copies), work / "after-download"))
    return {
        "wall_s": download["wall_s"] + run["wall_s"],
        "download_s": download["wall_s"],
        "run_s": run["wall_s"],
        "bytes": download["bytes"],
        "requests": download["requests"],
    }


def kept_in(directory: Path) -> dict[str, str]:
    """The environment of an ``hzz run`` keeping its inspections in ``directory``: the
    benchmark never uses (or fills) the user's own."""
    return {"HZZ_INSPECTION_CACHE": str(directory)}


def hzz_run(data: str, out: Path) -> list[str]:
    return [
        *HZZ,
        "run",
        "--data",
        data,
        "--workers",
        "2",
        "--dashboard",
        ":0",
        "--no-progress",
        "--out",
        str(out),
    ]


def measure_link(root: Path, spec: LinkSpec, needed: int, log: Callable[[str], None]) -> dict:
    with emulated_link(root, spec) as link, tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        release_url = f"{link.url}/4lep"
        log(f"{spec.name}: file server behind the link at {link.url}")
        figures: dict[str, Any] = {"link": spec.name}
        limit_target, notebook_target = TARGETS_BY_LINK.get((spec.mbit_s, spec.rtt_ms), (1.3, 0.8))
        figures["targets"] = {"limit": limit_target, "notebook": notebook_target}
        figures["open_round_trips"] = opening_round_trips(link)
        kept = kept_in(work / "inspected")
        figures["hzz_run"] = measured(link, hzz_run(release_url, work / "hzz"), kept)
        log(f"  hzz run: {figures['hzz_run']['wall_s']:.1f} s")
        figures["hzz_run_kept"] = measured(link, hzz_run(release_url, work / "hzz2"), kept)
        log(f"  hzz run, inspections kept: {figures['hzz_run_kept']['wall_s']:.1f} s")
        figures["hzz_run_faulty"] = faulty_run(link, release_url, work)
        log(
            f"  hzz run, 1 range request in {FAULTY_EVERY} failing: "
            f"{figures['hzz_run_faulty']['wall_s']:.1f} s, same document: "
            f"{figures['hzz_run_faulty']['same_document']}"
        )
        figures["notebook"] = measured(
            link, [sys.executable, "-c", NOTEBOOK_OVER_URLS, release_url]
        )
        log(f"  notebook: {figures['notebook']['wall_s']:.1f} s")
        figures["download_then_run"] = download_then_run(link, release_url, work)
        log(f"  download, then run: {figures['download_then_run']['wall_s']:.1f} s")
        transfer_s = needed / spec.bytes_per_s
        figures["limit"] = {
            "wall_s": transfer_s + figures["open_round_trips"] * spec.rtt_ms / 1000,
            "bytes": needed,
            "transfer_s": transfer_s,
        }
        hzz = figures["hzz_run"]["wall_s"]
        figures["ratios"] = {
            "hzz_over_limit": hzz / figures["limit"]["wall_s"],
            "hzz_over_download_then_run": hzz / figures["download_then_run"]["wall_s"],
            "notebook_over_hzz": figures["notebook"]["wall_s"] / hzz,
            "hzz_over_notebook": hzz / figures["notebook"]["wall_s"],
        }
        return figures


#: One range request in this many fails (a reset and a 503 in turn): 5 %.
FAULTY_EVERY = 20


def document_numbers(out: Path) -> dict[str, Any]:
    """The run's document in ``out`` without what differs from run to run."""
    (path,) = sorted(out.glob("plot_*.json"))
    payload = json.loads(path.read_text())
    payload.pop("created", None)
    return payload


def faulty_run(link: Link, release_url: str, work: Path) -> dict[str, Any]:
    """``hzz run`` with no inspection kept while the server fails 1 range request in 20
    (inspection and basket reads alike), its document compared with the clean run's."""
    from tests.range_server import fail_every

    fail_every(link.server_url, FAULTY_EVERY)
    try:
        figures = measured(
            link, hzz_run(release_url, work / "faulty"), kept_in(work / "inspected-faulty")
        )
    finally:
        fail_every(link.server_url, 0)
    figures["same_document"] = document_numbers(work / "faulty") == document_numbers(work / "hzz")
    return figures


def targets(figures: dict) -> list[tuple[str, str, bool]]:
    ratios = figures["ratios"]
    wanted = figures.get("targets", {"limit": 1.3, "notebook": 0.8})
    faulty = figures.get("hzz_run_faulty")
    same = (
        [
            (
                f"1 range request in {FAULTY_EVERY} failing: the same document",
                "same" if faulty["same_document"] else "differs",
                bool(faulty["same_document"]),
            )
        ]
        if faulty
        else []
    )
    return [
        *same,
        (
            f"hzz run ≤ {wanted['limit']} × limit",
            f"{ratios['hzz_over_limit']:.2f}",
            ratios["hzz_over_limit"] <= wanted["limit"],
        ),
        (
            f"hzz run ≤ {TARGET_DOWNLOAD} × download whole, then run",
            f"{ratios['hzz_over_download_then_run']:.2f}",
            ratios["hzz_over_download_then_run"] <= TARGET_DOWNLOAD,
        ),
        (
            f"hzz run ≤ {wanted['notebook']} × the notebook's time",
            f"{ratios['hzz_over_notebook']:.2f}",
            ratios["hzz_over_notebook"] <= wanted["notebook"],
        ),
    ]


def phases_markdown(results: dict) -> list[str]:
    """Where ``hzz run``'s wall time goes: the compute phase (every byte read and
    analysed) against the transfer time of the needed bytes, and the rest (process and
    cluster start, the HEAD pass and inspection, the figure, the exit)."""
    rows = []
    for figures in results["links"]:
        transfer = figures["limit"].get("transfer_s")
        for key, label in (("hzz_run", "hzz run"), ("hzz_run_kept", "hzz run, kept")):
            row = figures.get(key) or {}
            phases = row.get("phases", {})
            if "compute_s" not in phases or not transfer:
                continue
            compute = phases["compute_s"]
            rest = row["wall_s"] - compute - phases.get("inspect_s", 0.0)
            rows.append(
                f"| {figures['link']} | {label} | {phases.get('inspect_s', 0.0):.2f} | "
                f"{compute:.2f} | {compute / transfer:.2f} | {rest:.2f} |"
            )
    if not rows:
        return []
    return [
        "",
        "Where `hzz run`'s time goes (from its log): the compute phase reads and analyses "
        "every event; the transfer time is the needed bytes over the bandwidth; the rest "
        "is process and cluster start, the HEAD pass, the figure and the exit.",
        "",
        "| link | run | inspection s | compute s | compute / transfer time | rest s |",
        "|---|---|---:|---:|---:|---:|",
        *rows,
    ]


def markdown(results: dict) -> str:
    lines = [
        "# Remote benchmark: the 2020 release over an emulated link",
        "",
        f"{results['when']}, commit {results['commit']}, {results['machine']}; "
        f"{results['files']} files, {results['needed_bytes'] / 1e6:.1f} MB of needed "
        f"branches ({'quick' if results['quick'] else 'real entry counts'}).",
        "",
        "| link | what | wall s | MB sent | requests |",
        "|---|---|---:|---:|---:|",
    ]
    for figures in results["links"]:
        for key, label in (
            ("limit", "limit (needed bytes / bandwidth + opening round trips)"),
            ("hzz_run", "hzz run, 2 workers"),
            ("hzz_run_kept", "hzz run again, inspections kept"),
            ("hzz_run_faulty", f"hzz run, 1 range request in {FAULTY_EVERY} failing"),
            ("notebook", "notebook algorithm"),
            ("download_then_run", "download whole (curl), then hzz run"),
        ):
            row = figures.get(key)
            if row is None:  # results of a version without this row
                continue
            requests = row.get("requests", "–")
            lines.append(
                f"| {figures['link']} | {label} | {row['wall_s']:.2f} | "
                f"{row['bytes'] / 1e6:.1f} | {requests} |"
            )
        lines.append(
            f"| {figures['link']} | round trips to open one file | | | "
            f"{figures['open_round_trips']} |"
        )
    lines += phases_markdown(results)
    lines += ["", "| link | target | measured | met |", "|---|---|---:|---|"]
    for figures in results["links"]:
        for name, value, met in targets(figures):
            lines.append(
                f"| {figures['link']} | {name} | {value} | {'met' if met else 'not met'} |"
            )
    if "many_files" in results:
        lines += many_markdown(results["many_files"])
    return "\n".join(lines) + "\n"


def run_remote(quick: bool, input_dir: Path = DEFAULT_INPUT_DIR, log=print) -> dict:
    """Measure every link; returns the results (also written by the caller)."""
    from .probes import machine_info

    root = served_root(input_dir, quick, log)
    needed, files = needed_bytes(root / "4lep")
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO
    ).stdout.strip()
    results = {
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "commit": commit,
        "machine": machine_info(REPO).get("cpu_model", ""),
        "quick": quick,
        "files": files,
        "needed_bytes": needed,
        "links": [],
    }
    for spec in QUICK_LINKS if quick else LINKS:
        results["links"].append(measure_link(root, spec, needed, log))
    results["many_files"] = measure_many(input_dir, quick, log)
    return results


def write_results(results: dict, directory: Path) -> tuple[Path, Path]:
    name = "remote-quick" if results["quick"] else "remote"
    json_path, md_path = directory / f"{name}.json", directory / f"{name}.md"
    json_path.write_text(json.dumps(results, indent=2) + "\n")
    md_path.write_text(markdown(results))
    return json_path, md_path
