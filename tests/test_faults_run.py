"""``hzz run`` against files that are wrong but readable, and outputs that cannot be written.

Real ROOT files (the real Zee file rewritten with one thing wrong), real ``hzz run``
processes with real Dask workers, real file systems (a tmpfs of its own where a full or
read-only disk is needed).

Policy: a file whose needed branches have another type than the release's (an integer
weight, float charges), whose lepton branches disagree on the leptons of an event, or
which holds a NaN or infinite kinematic or weight value is a bad file: exit 2 naming
the file and the cause, nothing written; with ``--skip-bad-files`` it is left out
whole and listed, every other sample exact.
"""

from __future__ import annotations

import resource
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import uproot

from analysis import InputError, validate_document
from analysis.results.document import from_json
from analysis.results.outputs import outputs_in

from .helpers import PUBLISHED_COUNTS, hzz, make_document, run_args

pytestmark = pytest.mark.faults

ZEE = "MC/mc_361106.Zee.4lep.root"
BRANCHES = [
    "lep_pt", "lep_eta", "lep_phi", "lep_E", "lep_charge", "lep_type",
    "mcWeight", "scaleFactor_PILEUP", "scaleFactor_ELE", "scaleFactor_MUON",
    "scaleFactor_LepTRIGGER",
]  # fmt: skip


def _with_nan(values: ak.Array, entry: int, value: float) -> ak.Array:
    """``values`` (per event or per lepton) with ``value`` at the first item of ``entry``."""
    flat = np.asarray(ak.flatten(values, axis=None)).copy()
    index = 0 if values.ndim == 1 else int(np.asarray(ak.num(values, axis=1))[:entry].sum())
    flat[index + (entry if values.ndim == 1 else 0)] = value
    if values.ndim == 1:
        return ak.Array(flat)
    return ak.unflatten(flat, ak.num(values, axis=1))


def _drop_one_lepton(values: ak.Array, entry: int) -> ak.Array:
    keep = [row[:-1] if i == entry else row for i, row in enumerate(values.to_list())]
    return ak.Array(keep, with_name=None)


BREAKAGES: dict[str, tuple[Callable[[dict[str, ak.Array]], None], str]] = {
    "integer mcWeight": (
        lambda a: a.update(mcWeight=ak.values_astype(a["mcWeight"] * 1000, np.int32)),
        "wrong branch type: mcWeight holds int32, not floating-point numbers",
    ),
    "float charges": (
        lambda a: a.update(lep_charge=ak.values_astype(a["lep_charge"], np.float32)),
        "lep_charge holds a list of float32, not a list of integer numbers",
    ),
    "lepton counts disagree": (
        lambda a: a.update(lep_eta=_drop_one_lepton(a["lep_eta"], 17)),
        "entry 17: lep_pt has",
    ),
    "NaN in lep_pt": (
        lambda a: a.update(lep_pt=_with_nan(a["lep_pt"], 5, np.nan)),
        "lep_pt: 1 non-finite value(s) (nan)",
    ),
    "inf mcWeight": (
        lambda a: a.update(mcWeight=_with_nan(a["mcWeight"], 3, np.inf)),
        "mcWeight: 1 non-finite value(s) (inf)",
    ),
}


def _rewrite(real: Path, path: Path, breakage: Callable[[dict[str, ak.Array]], None]) -> None:
    with uproot.open(real) as f:
        arrays = f["mini"].arrays(BRANCHES, library="ak")
    columns = {name: arrays[name] for name in BRANCHES}
    breakage(columns)
    path.unlink()
    with uproot.recreate(path) as out:
        out.mktree("mini", {k: v.type for k, v in columns.items()})
        out["mini"].extend(columns)


@pytest.mark.parametrize("name", list(BREAKAGES))
@pytest.mark.cluster
def test_a_wrong_but_readable_file_is_a_bad_file(
    name: str, fake_mirror: Path, mirror: Path, tmp_path: Path
) -> None:
    breakage, cause = BREAKAGES[name]
    bad = fake_mirror / ZEE
    _rewrite(mirror / ZEE, bad, breakage)
    out = tmp_path / "plots"
    args = run_args(fake_mirror, out, "--samples", "data_A,Zee,Zmumu", "--step-size", "300")
    stopped = hzz(*args)
    assert stopped.returncode == 2, stopped.stderr
    assert str(bad) in stopped.stderr and cause in stopped.stderr, stopped.stderr
    assert "nothing written" in stopped.stderr and "Traceback" not in stopped.stderr
    assert not any(out.iterdir())

    skipped = hzz(*args, "--skip-bad-files")
    assert skipped.returncode == 0, skipped.stderr
    (doc_path,) = outputs_in(out, ".json")
    document = from_json(doc_path.read_bytes())
    assert [(s.sample, s.file) for s in document.skipped] == [("Zee", str(bad))]
    assert cause in document.skipped[0].cause
    assert "Zee" not in document.samples
    for sample in ("data_A", "Zmumu"):
        result = document.samples[sample]
        assert (result.n_in, result.n_out) == PUBLISHED_COUNTS[sample]


@pytest.mark.cluster
def test_a_tree_claiming_more_entries_than_its_branches_hold_is_a_bad_file(
    fake_mirror: Path, mirror: Path, tmp_path: Path
) -> None:
    """A forged (or corrupt) entry count in the tree's header: 10¹² entries over
    branches holding 898 would have been cut into 5 million partitions of nothing (the
    run hung building them). The tree's count must be its branches'."""
    bad = fake_mirror / ZEE
    _rewrite(mirror / ZEE, bad, lambda columns: None)
    data = bytearray(bad.read_bytes())
    at = data.index((898).to_bytes(8, "big"))  # the tree's fEntries comes first
    data[at : at + 8] = (10**12).to_bytes(8, "big")
    bad.write_bytes(bytes(data))
    with uproot.open(bad) as f:
        assert f["mini"].num_entries == 10**12  # the forgery took
    out = tmp_path / "plots"
    stopped = hzz(*run_args(fake_mirror, out, "--samples", "data_A,Zee"))
    assert stopped.returncode == 2, stopped.stderr
    cause = "tree 'mini' says 1000000000000 entries but branch"
    assert str(bad) in stopped.stderr and cause in stopped.stderr, stopped.stderr
    assert not any(out.iterdir())


def test_a_run_validates_its_own_document_as_the_plotter_does() -> None:
    document = make_document()
    validate_document(document)  # a good one passes
    sample = next(iter(document.samples.values()))
    sample.hist.view().value[3] = np.nan
    with pytest.raises(InputError, match=r"storage values must be finite"):
        validate_document(document)
    crowded = make_document()
    crowded.generated = [f"stand-in {i}" for i in range(20000)]
    with pytest.raises(InputError, match="generated: 20000 entries"):
        validate_document(crowded)


# --------------------------------------------------------------------------- outputs


def test_out_that_is_a_file_stops_before_the_cluster_starts(mirror: Path, tmp_path: Path) -> None:
    out = tmp_path / "plots"
    out.write_text("not a directory\n")
    result = hzz(*run_args(mirror, out, "--samples", "data_A"))
    assert result.returncode == 2
    assert f"--out {out}: exists and is not a directory" in result.stderr
    assert "Dask dashboard" not in result.stdout  # no cluster was started


@pytest.fixture
def tmpfs(tmp_path: Path):
    """A mount point for a tmpfs of the test's own (root only); unmounted afterwards."""
    point = tmp_path / "disk"
    point.mkdir()
    mounted: list[Path] = []

    def mount(options: str) -> Path:
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(point)], capture_output=True
        )
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
        mounted.append(point)
        return point

    yield mount
    for path in mounted:
        subprocess.run(["umount", "-l", str(path)], check=False)


def test_a_read_only_out_stops_before_the_cluster_starts(
    mirror: Path, tmp_path: Path, tmpfs: Callable[[str], Path]
) -> None:
    out = tmpfs("ro,size=1m") / "plots"
    result = hzz(*run_args(mirror, out, "--samples", "data_A"))
    assert result.returncode == 2
    assert f"--out {out}: cannot write there: Read-only file system" in result.stderr
    assert "Dask dashboard" not in result.stdout


def test_a_full_out_stops_before_the_cluster_starts(
    mirror: Path, tmp_path: Path, tmpfs: Callable[[str], Path]
) -> None:
    disk = tmpfs("size=2m")
    (disk / "ballast").write_bytes(b"\0" * (1024 * 1024))
    result = hzz(*run_args(mirror, disk, "--samples", "data_A"))
    assert result.returncode == 2
    assert f"--out {disk}: only" in result.stderr and "bytes free" in result.stderr
    assert "Dask dashboard" not in result.stdout


def _limit_file_size() -> None:
    """In the child: files may not grow past 16 KiB (the figure is larger), so the
    write fails with EFBIG as it would on a disk that filled up during the run."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (16 * 1024, 16 * 1024))


@pytest.mark.cluster
def test_a_write_that_fails_after_the_computation_leaves_nothing(
    mirror: Path, tmp_path: Path
) -> None:
    out = tmp_path / "plots"
    result = subprocess.run(
        [sys.executable, "-m", "cluster.cli", *run_args(mirror, out, "--samples", "data_A")],
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=_limit_file_size,
    )
    assert result.returncode == 1, result.stderr
    assert f"writing to --out {out}: File too large" in result.stderr
    assert "Traceback" not in result.stderr
    assert sorted(p.name for p in out.iterdir()) == []  # no .tmp-*.part, no half result
