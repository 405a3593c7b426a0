"""The benchmark's baselines compute what the pipeline computes, so the comparison is fair."""

from __future__ import annotations

from pathlib import Path

import pytest

from analysis.inputs.catalogue import load_release
from bench.inputs import real_samples
from bench.notebook import info_for, read_file
from bench.readlimit import read_only

from .helpers import PUBLISHED_COUNTS, PUBLISHED_YIELDS, YIELD_REL_TOL


@pytest.fixture(scope="module")
def notebook_results(mirror: Path) -> dict:
    """Baseline (a), the notebook's algorithm, on every real file of the catalogue."""
    found = real_samples(load_release("2020"), mirror)
    return {sample.name: read_file(path, info_for(sample)) for sample, path in found}


def test_notebook_baseline_reads_every_real_file(notebook_results: dict) -> None:
    assert set(notebook_results) == set(PUBLISHED_COUNTS)


@pytest.mark.parametrize("name", sorted(PUBLISHED_COUNTS))
def test_notebook_baseline_counts_match_the_spec(notebook_results: dict, name: str) -> None:
    result = notebook_results[name]
    assert (result.n_in, result.n_out) == PUBLISHED_COUNTS[name]


@pytest.mark.parametrize("name", sorted(PUBLISHED_YIELDS))
def test_notebook_baseline_yields_match_the_spec(notebook_results: dict, name: str) -> None:
    assert notebook_results[name].sumw == pytest.approx(PUBLISHED_YIELDS[name], rel=YIELD_REL_TOL)


def test_notebook_baseline_chunking_does_not_change_the_result(mirror: Path) -> None:
    """Chunk by chunk (as uproot.iterate hands them) gives the one-chunk numbers."""
    zee = load_release("2020").samples["Zee"]
    path = str(mirror / zee.path)
    whole, chunked = read_file(path, info_for(zee)), read_file(path, info_for(zee), step_size=100)
    assert (chunked.n_in, chunked.n_out) == PUBLISHED_COUNTS["Zee"]
    assert chunked.sumw == pytest.approx(whole.sumw, rel=1e-12)
    assert list(chunked.hist.values(flow=True)) == pytest.approx(list(whole.hist.values(flow=True)))


def test_read_limit_reads_only_the_eleven_branches_of_every_partition(mirror: Path) -> None:
    zee = load_release("2020").samples["Zee"]
    path = str(mirror / zee.path)
    result = read_only([path], step_size=200)
    assert (result.events, result.partitions) == (898, 5)  # near-equal steps ≤ 200
    # Only the needed baskets (plus headers) are requested, far less than the file.
    assert result.branch_compressed_bytes <= result.requested_bytes < Path(path).stat().st_size


def test_both_read_limits_read_the_same_partitions_and_bytes(mirror: Path) -> None:
    """uproot's default inflate and ISA-L: the same events and bytes, only the speed differs."""
    import uproot

    path = str(mirror / load_release("2020").samples["Zee"].path)
    isal = read_only([path], step_size=200, inflate="isal")
    assert uproot.compression._decompress_ZLIB.library == "isal"
    zlib = read_only([path], step_size=200, inflate="zlib")
    assert uproot.compression._decompress_ZLIB.library == "zlib"
    assert isal.events == zlib.events == 898
    assert isal.partitions == zlib.partitions == 5
    assert isal.requested_bytes == zlib.requested_bytes
    read_only([path], step_size=200, inflate="isal")  # leave the process as the pipeline reads


@pytest.mark.parametrize("step_size", [100, 200_000])
def test_no_dask_baseline_gives_the_published_numbers(mirror: Path, step_size: int) -> None:
    """The pipeline's reader and summary in a plain loop: the spec's counts and yield."""
    from bench.nodask import summarise_without_dask

    zee = load_release("2020").samples["Zee"]
    result = summarise_without_dask([str(mirror / zee.path)], step_size, "Zee")
    assert (result.events, result.n_out) == PUBLISHED_COUNTS["Zee"]
    assert result.sumw == pytest.approx(PUBLISHED_YIELDS["Zee"], rel=YIELD_REL_TOL)


def test_side_by_side_children_split_the_files_and_add_up(mirror: Path) -> None:
    """Two no-Dask processes at once, on alternate files: together, every file once."""
    from bench.run import side_by_side

    release = load_release("2020")
    paths = [str(mirror / release.samples[name].path) for name in ("Zee", "Zmumu")]
    request = {"sample": "Zee", "paths": paths, "pattern": "", "events": 0}
    both = side_by_side(request, 200_000)
    counts = [(r["events"], r["n_out"]) for r in both["processes"]]
    assert counts == [PUBLISHED_COUNTS["Zee"], PUBLISHED_COUNTS["Zmumu"]]
    assert (both["events"], both["n_out"]) == (898 + 684, 243 + 257)
    assert both["seconds"] >= max(r["seconds"] for r in both["processes"])


def test_the_help_shows_no_path_of_this_machine() -> None:
    import os
    import subprocess
    import sys

    from .helpers import ROOT

    result = subprocess.run(
        [sys.executable, "-m", "bench", "--help"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "COLUMNS": "400"},  # argparse wraps no path
    )
    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.split())
    assert "../shared/data/atlas-opendata-2020/4lep beside the repository" in text
    assert str(ROOT.parent) not in text
