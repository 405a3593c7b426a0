"""A small local input is computed in the command's own process; the figure is drawn by a
warm process of its own; uproot's class names are memoised. Same results throughout."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import uproot
import uproot.model

import cluster.runtime.run as runtime_run
from analysis.inputs.catalogue import load_release
from analysis.inputs.classnames import memoise_classname_regularize
from analysis.results.document import from_json
from analysis.results.outputs import outputs_in
from analysis.results.plot import render_png
from cluster.runtime.drawer import Drawer
from cluster.runtime.run import RunOptions, RunTarget

from .helpers import PUBLISHED_COUNTS, PUBLISHED_YIELDS, YIELD_REL_TOL, hzz


def test_a_small_local_input_is_computed_in_this_process(mirror: Path, tmp_path: Path) -> None:
    out = tmp_path / "plots"
    result = hzz(
        "run", "--data", str(mirror), "--out", str(out), "--allow-missing", "--no-progress"
    )
    assert result.returncode == 0, result.stderr
    assert "threaded scheduler in this process" in result.stdout
    assert "Dask dashboard" not in result.stdout  # no cluster was started
    (png,) = outputs_in(out, ".png")
    assert png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    (json_path,) = outputs_in(out, ".json")
    document = from_json(json_path.read_bytes())
    for name, (n_in, n_out) in PUBLISHED_COUNTS.items():
        assert (document.samples[name].n_in, document.samples[name].n_out) == (n_in, n_out)
    for name, value in PUBLISHED_YIELDS.items():
        assert document.samples[name].sumw == pytest.approx(value, rel=YIELD_REL_TOL)
    assert re.search(r"^Zee\s+898\s+243\s+43\.14179", result.stdout, re.M)
    # The figure the drawer made is the one this process draws from the document.
    assert png.read_bytes() == render_png(document)


def test_what_computes_in_this_process(mirror: Path, tmp_path: Path, monkeypatch) -> None:
    release = load_release("2020")
    local = RunOptions(locations=[str(mirror)], allow_missing=True)
    here = RunTarget(out_dir=tmp_path)
    size = runtime_run._in_process(release, local, here)
    files = [*(mirror / "Data").iterdir(), *(mirror / "MC").iterdir()]
    chosen = [f for f in files if any(f".{n}." in f".{f.name}" for n in PUBLISHED_COUNTS)]
    assert len(chosen) == len(PUBLISHED_COUNTS)  # the samples the release has files for
    assert size == sum(f.stat().st_size for f in chosen)
    for asked in (
        RunTarget(out_dir=tmp_path, workers=1),  # --workers: a local cluster
        RunTarget(out_dir=tmp_path, scheduler="tcp://127.0.0.1:1"),
        RunTarget(out_dir=tmp_path, fit=True),
        RunTarget(out_dir=tmp_path, publish=lambda path, body: None),
    ):
        assert runtime_run._in_process(release, local, asked) is None
    for computed_by_partition in (
        RunOptions(locations=[str(mirror)], allow_missing=True, run_id="live"),
        RunOptions(locations=[str(mirror)], allow_missing=True, checkpoint=tmp_path / "kept"),
    ):
        assert runtime_run._in_process(release, computed_by_partition, here) is None
    remote = RunOptions(locations=["http://127.0.0.1:1/4lep"], allow_missing=True)
    assert runtime_run._in_process(release, remote, here) is None
    monkeypatch.setattr(runtime_run, "IN_PROCESS_MAX_BYTES", size - 1)  # too large now
    assert runtime_run._in_process(release, local, here) is None


def test_the_drawer_draws_what_this_process_draws(mirror: Path, tmp_path: Path) -> None:
    release = load_release("2020")
    result = hzz(
        "run", "--data", str(mirror), "--out", str(tmp_path), "--samples", "data_A,Zee",
        "--no-progress",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    (json_path,) = outputs_in(tmp_path, ".json")
    document = from_json(json_path.read_bytes())
    assert Drawer(release).draw(document) == render_png(document)
    Drawer(release).close()  # ended unused: returns, leaves no process behind


def test_class_names_are_memoised_with_the_same_results(mirror: Path) -> None:
    memoise_classname_regularize()
    memoise_classname_regularize()  # once: a second call wraps nothing again
    cached = uproot.model.classname_regularize
    plain = cached.__wrapped__
    assert not hasattr(plain, "cache_info")
    for name in ("TTree", "vector< float >", "std :: map<int , Long64_t>", None):
        assert cached(name) == plain(name)
    with uproot.open(mirror / "Data" / "data_A.4lep.root") as file:
        assert file["mini"].num_entries == PUBLISHED_COUNTS["data_A"][0]
    assert cached.cache_info().hits > 0
