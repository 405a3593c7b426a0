"""Checkpoints: a run killed half-way resumes with the document an uninterrupted run
writes, a rerun reuses every partition, and a changed analysis reuses none."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from distributed import Client

import analysis
from analysis.inputs.catalogue import load_release
from analysis.inputs.files import FileInfo
from analysis.results import checkpoint
from analysis.results.checkpoint import CheckpointStore, analysis_version, partition_key, prune
from analysis.results.outputs import outputs_in

from .helpers import HZZ, ROOT, SHARED_DATA, hzz, hzz_ok, run_args, wait_for

REUSED = re.compile(r"checkpoint: (\d+) of (\d+) partitions reused$", re.MULTILINE)
#: The samples of the runs below: real files, and a large stand-in that takes seconds.
SAMPLES = "data_A,data_B,Zee,Zmumu,llll"
STEP = "10000"


def reused(stdout: str) -> tuple[int, int]:
    """K and N of the run's ``checkpoint: K of N partitions reused`` line."""
    (line,) = REUSED.findall(stdout)
    return int(line[0]), int(line[1])


def document(out: Path) -> dict:
    """The run's document as JSON, without its time (the only field two runs differ in)."""
    (path,) = outputs_in(out, ".json")
    raw = json.loads(path.read_bytes())
    raw.pop("created")
    return raw


def timeless(result: analysis.AnalysisResult) -> dict:
    raw = result.document.to_dict()
    raw.pop("created")
    return raw


def entries(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.json")) if directory.is_dir() else []


@pytest.fixture(scope="module")
def standins(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """200 000 simulated llll events: 20 partitions of 10 000, a run of seconds."""
    out = tmp_path_factory.mktemp("standins")
    hzz_ok("generate", "--samples", "llll", "--events", "200000", "--out", str(out))
    return out


# --- the store ---------------------------------------------------------------------------


def test_a_kept_row_comes_back_bit_for_bit(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path / "ck")
    row = np.array([898.0, 243.0, 43.141793123456789, 1e-300, -0.0, np.pi])
    assert store.save("k1", row, 0.25)
    kept = store.load("k1", row.size)
    assert kept is not None
    assert kept.row.tobytes() == row.tobytes()
    assert kept.seconds == 0.25
    assert store.load("k1", row.size + 1) is None  # a row of another release's length
    assert store.load("absent", row.size) is None
    assert not list((tmp_path / "ck").glob("*.tmp"))  # written whole, then renamed


@pytest.mark.parametrize(
    "content",
    [
        b'{"format": 1, "key": "k1", "row": "AAAA',  # torn
        b"\x00\x00\x00",  # not JSON
        b'{"format": 99, "key": "k1", "row": ""}',  # another format
        b'{"format": 1, "key": "k2", "row": "AAAAAAAA8D8="}',  # another key's entry
        b'{"format": 1, "key": "k1", "row": "not base64!"}',
        b"[1, 2, 3]",
    ],
)
def test_a_torn_or_foreign_entry_is_ignored(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "k1.json").write_bytes(content)
    assert CheckpointStore(tmp_path).load("k1", 1) is None


def test_the_key_holds_the_file_identity_range_and_analysis_version() -> None:
    release = load_release("2020")
    zee, zmumu = release.samples["Zee"], release.samples["Zmumu"]
    info = FileInfo("Zee", "/d/MC/Zee.root", 898, uuid="a4484f1a", size=25826)
    version = analysis_version(zee, release)
    key = partition_key(version, info, "mini", 0, 898)
    assert key == partition_key(
        version, replace(info, location="/elsewhere/Zee.root"), "mini", 0, 898
    )
    changed = [
        partition_key(version, replace(info, uuid="b0000000"), "mini", 0, 898),
        partition_key(version, replace(info, size=25827), "mini", 0, 898),
        partition_key(version, replace(info, validator='[25826, "e2", null]'), "mini", 0, 898),
        partition_key(version, info, "other", 0, 898),
        partition_key(version, info, "mini", 0, 897),
        partition_key(analysis_version(zmumu, release), info, "mini", 0, 898),
        partition_key(
            analysis_version(replace(zee, xsec_pb=zee.xsec_pb * 2), release), info, "mini", 0, 898
        ),
        partition_key(analysis_version(zee, load_release("2025")), info, "mini", 0, 898),
    ]
    assert len({key, *changed}) == len(changed) + 1


def test_the_analysis_version_follows_the_row_code(monkeypatch: pytest.MonkeyPatch) -> None:
    release = load_release("2020")
    before = analysis_version(release.samples["Zee"], release)
    monkeypatch.setattr(checkpoint, "code_version", lambda: "another selection")
    assert analysis_version(release.samples["Zee"], release) != before


def test_prune_removes_the_oldest_first(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path)
    now = time.time()
    for k in range(5):
        store.save(f"k{k}", np.zeros(100))
        os.utime(tmp_path / f"k{k}.json", (now - 1000 * (5 - k), now - 1000 * (5 - k)))
    size = (tmp_path / "k0.json").stat().st_size
    torn = tmp_path / ".left-by-a-killed-run.tmp"
    torn.write_text("{")
    os.utime(torn, (now - 7200, now - 7200))
    assert store.load("k1", 100) is not None  # used now: kept longest

    pruned = prune(tmp_path, max_age_s=2500)  # k0 (5000 s) and k2 (3000 s)
    assert (pruned.removed, pruned.kept) == (2, 3)
    assert sorted(p.stem for p in entries(tmp_path)) == ["k1", "k3", "k4"]
    assert not torn.exists()

    pruned = prune(tmp_path, max_bytes=2 * size)  # the least recently used: k3
    assert (pruned.removed, pruned.kept, pruned.kept_bytes) == (1, 2, 2 * size)
    assert sorted(p.stem for p in entries(tmp_path)) == ["k1", "k4"]


def test_hzz_checkpoint_prune(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path)
    for k in range(3):
        store.save(f"k{k}", np.zeros(10))
    result = hzz_ok("checkpoint", "prune", str(tmp_path), "--max-size", "0")
    assert "checkpoint: removed 3 (" in result.stdout
    assert not entries(tmp_path)
    result = hzz("checkpoint", "prune", str(tmp_path))
    assert result.returncode == 2
    assert "give --max-age, --max-size or both" in result.stderr
    result = hzz("checkpoint", "prune", str(tmp_path), "--max-size", "lots")
    assert result.returncode == 2
    assert "invalid size 'lots'" in result.stderr


# --- runs --------------------------------------------------------------------------------


def checkpointed_run(
    mirror: Path, standins: Path, out: Path, kept: Path, samples: str = SAMPLES
) -> list[str]:
    return [
        *run_args(mirror, out, "--data", str(standins), "--samples", samples),
        *["--step-size", STEP, "--checkpoint", str(kept)],
    ]


@pytest.mark.cluster
def test_a_killed_run_resumes_with_the_same_document(
    mirror: Path, standins: Path, tmp_path: Path
) -> None:
    hzz_ok(
        *run_args(
            mirror,
            tmp_path / "uninterrupted",
            "--data",
            str(standins),
            "--samples",
            SAMPLES,
            "--step-size",
            STEP,
        )
    )
    expected = document(tmp_path / "uninterrupted")

    kept = tmp_path / "kept"
    killed = subprocess.Popen(
        [*HZZ, *checkpointed_run(mirror, standins, tmp_path / "killed", kept)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its group: the command, its scheduler and workers
    )
    try:
        wait_for(lambda: len(entries(kept)) >= 3, "a few partitions kept", poll=0.02)
        assert killed.poll() is None, "the run ended before it could be killed half-way"
    finally:
        os.killpg(killed.pid, signal.SIGKILL)
        killed.wait()
    assert not (tmp_path / "killed").exists() or not outputs_in(tmp_path / "killed", ".json")

    resumed = hzz_ok(*checkpointed_run(mirror, standins, tmp_path / "resumed", kept))
    k, n = reused(resumed.stdout)
    assert 0 < k < n, resumed.stdout
    assert document(tmp_path / "resumed") == expected

    warm = hzz_ok(*checkpointed_run(mirror, standins, tmp_path / "warm", kept))
    assert reused(warm.stdout) == (n, n)
    assert document(tmp_path / "warm") == expected


@pytest.mark.cluster
def test_one_more_sample_computes_only_that_sample(
    mirror: Path, standins: Path, tmp_path: Path
) -> None:
    kept = tmp_path / "kept"
    first = hzz_ok(*checkpointed_run(mirror, standins, tmp_path / "a", kept, "data_A,Zee"))
    assert reused(first.stdout) == (0, 2)
    more = hzz_ok(*checkpointed_run(mirror, standins, tmp_path / "b", kept, "data_A,Zee,llll"))
    assert reused(more.stdout) == (2, 22)


@pytest.mark.cluster
def test_a_changed_analysis_reuses_nothing(
    client: Client, mirror: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog
) -> None:
    kept = tmp_path / "kept"
    samples = ["data_A", "Zee", "Zmumu"]
    caplog.set_level("INFO", logger="analysis.api")
    first = analysis.run(mirror, samples=samples, step_size=200, checkpoint=kept)
    n = len(entries(kept))
    assert n > 3
    assert f"checkpoint: 0 of {n} partitions reused" in caplog.text

    caplog.clear()
    again = analysis.run(mirror, samples=samples, step_size=200, checkpoint=kept)
    assert f"checkpoint: {n} of {n} partitions reused" in caplog.text
    assert timeless(again) == timeless(first)

    # A different cross-section for Zee: its partitions only are computed again.
    release = load_release("2020")
    zee = replace(release.samples["Zee"], xsec_pb=release.samples["Zee"].xsec_pb * 2)
    doubled = replace(release, samples={**release.samples, "Zee": zee})
    caplog.clear()
    changed = analysis.run(mirror, release=doubled, samples=samples, step_size=200, checkpoint=kept)
    (line,) = REUSED.findall(caplog.text)
    assert 0 < int(line[0]) < n
    assert changed.yields["Zee"] == pytest.approx(2 * first.yields["Zee"], rel=1e-12)
    assert changed.yields["Zmumu"] == first.yields["Zmumu"]

    # Another selection (the code's version): nothing is reused.
    monkeypatch.setattr(checkpoint, "code_version", lambda: "another selection")
    caplog.clear()
    analysis.run(mirror, samples=samples, step_size=200, checkpoint=kept)
    assert f"checkpoint: 0 of {n} partitions reused" in caplog.text


@pytest.mark.cluster
def test_the_user_guide_commands_run_as_written(tmp_path: Path) -> None:
    guide = (ROOT / "docs" / "user-guide.md").read_text("utf-8")
    section = guide[guide.index("### Runs that resume") :]
    (block,) = re.findall(r"```bash\n(.*?)```", section, flags=re.S)[:1]
    run_line, prune_line = block.strip().splitlines()
    checkout = tmp_path / "checkout"  # the repository root, with ../shared beside it
    checkout.mkdir()
    (checkout / ".venv").symlink_to(ROOT / ".venv")
    (tmp_path / "shared").symlink_to(SHARED_DATA.parent)
    outputs = []
    for command in (run_line, run_line, prune_line):
        result = subprocess.run(
            ["bash", "-c", command], cwd=checkout, capture_output=True, text=True, timeout=600
        )
        assert result.returncode == 0, f"{command}: {result.stderr}"
        outputs.append(result.stdout)
    k, n = reused(outputs[0])
    assert k == 0 and n > 0
    assert reused(outputs[1]) == (n, n)
    assert f"kept {n} (" in outputs[2]
