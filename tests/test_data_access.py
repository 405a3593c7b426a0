"""Remote data access against a real local HTTP server with Range support: the analysis
over HTTP, byte counts, the --cache, hzz download with resume, timeouts, root://.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import uproot
from distributed import Client

from analysis.errors import RemoteAccessError
from analysis.inputs.catalogue import load_release
from analysis.inputs.sources import source_for
from analysis.physics.summary import branches_for
from analysis.results.document import HistogramDocument
from cluster.access.cache import cached_locations, mirror_dir, prepare_locations
from cluster.access.download import IntegrityError, download_release, fetch
from cluster.cli import main
from cluster.runtime.run import RunOptions, run_analysis

from .helpers import MIRROR_2020, PUBLISHED_COUNTS, SHARED_DATA
from .range_server import (
    RangeFileServer,
    serve_files,
    serve_files_in_subprocess,
    served_bytes,
    silent_server,
)

BASE_2020 = "/atlas-opendata-2020/4lep/"
BASE_2025 = "/atlas-opendata-2025/exactly4lep/"
SAMPLES = ["data_A", "data_B", "Zee"]
FILE_2025 = "ODEO_FEB2025_v0_exactly4lep_data15_periodD.exactly4lep.root"
LEPTONS_2025 = ["lep_pt", "lep_eta", "lep_phi", "lep_e", "lep_charge", "lep_type"]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """``main`` configures logging onto the captured stderr of the test that calls it."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def run(client: Client, locations: list[str], **options: object) -> HistogramDocument:
    release = load_release("2020")
    return run_analysis(
        client,
        release,
        RunOptions(locations=locations, samples=SAMPLES, show_progress=False, **options),  # type: ignore[arg-type]
    ).document


def assert_same_results(a: HistogramDocument, b: HistogramDocument) -> None:
    assert a.samples.keys() == b.samples.keys()
    for name in a.samples:
        left, right = a.samples[name], b.samples[name]
        assert (left.n_in, left.n_out, left.sumw) == (right.n_in, right.n_out, right.sumw)
        assert np.array_equal(left.hist.values(flow=True), right.hist.values(flow=True))
        assert np.array_equal(left.hist.variances(flow=True), right.hist.variances(flow=True))


def test_https_gives_the_numbers_of_the_directory(client: Client, server: RangeFileServer) -> None:
    """The worker reads the files over HTTP in byte ranges; results equal a local run."""
    over_http = run(client, [server.url + BASE_2020])
    local = run(client, [str(MIRROR_2020)])
    assert_same_results(over_http, local)
    for name in SAMPLES:
        assert (over_http.samples[name].n_in, over_http.samples[name].n_out) == (
            PUBLISHED_COUNTS[name]
        )
    # Every file body went out as a byte range: nothing asked for a whole file.
    assert server.traffic.gets() == len(server.traffic.ranges) > 0
    # These small 2020 files keep their baskets inside the TTree object itself (uproot
    # sees 0 compressed basket bytes), so opening the tree reads nearly all of the file.
    assert (
        uproot.open(MIRROR_2020 / "MC/mc_361106.Zee.4lep.root")["mini"]["lep_pt"].compressed_bytes
        == 0
    )


def test_only_the_needed_baskets_are_read_from_a_remote_file(client: Client) -> None:
    """The 2025 file (117 branches, baskets on their own) analysed over HTTP by a Dask
    worker: the server sends the baskets of the branches the analysis reads plus the
    tree metadata (read a few times: inspection, form, the task), a small part of it."""
    release = load_release("2025")
    sample = release.samples["data15_periodD"]
    local = SHARED_DATA / BASE_2025.strip("/") / FILE_2025
    tree = uproot.open(local)["analysis"]
    needed = branches_for(sample, release)
    basket_bytes = sum(tree[name].compressed_bytes for name in needed)
    metadata = tree.source.performance_counters.num_requested_bytes  # reading the header
    # The server runs in its own process: threads of this process's Dask client can
    # starve an in-process server long enough for uproot's reads to time out.
    with serve_files_in_subprocess(SHARED_DATA) as url:
        options = RunOptions(
            locations=[url + BASE_2025], samples=["data15_periodD"], show_progress=False
        )
        document = run_analysis(client, release, options).document
        served = served_bytes(url)
    assert (document.samples["data15_periodD"].n_in, document.samples["data15_periodD"].n_out) == (
        3424,
        2,
    )
    size = local.stat().st_size
    print(f"served {served} of {size} bytes; baskets {basket_bytes}, metadata {metadata}")
    assert basket_bytes <= served <= basket_bytes + 4 * metadata
    assert served < size / 2


def test_cache_fetches_once_and_a_second_run_reads_nothing(
    client: Client, server: RangeFileServer, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    first = run(client, [server.url + BASE_2020], cache_dir=cache)
    sizes = {
        BASE_2020 + path: (MIRROR_2020 / path).stat().st_size
        for path in ("Data/data_A.4lep.root", "Data/data_B.4lep.root", "MC/mc_361106.Zee.4lep.root")
    }
    assert (
        dict(server.traffic.body_bytes) == sizes
    )  # each file once, whole; workers read the copies
    server.traffic.reset()
    second = run(client, [server.url + BASE_2020], cache_dir=cache)
    assert server.traffic.total_bytes() == 0
    assert {method for method, _ in server.traffic.requests} == {"HEAD"}
    assert_same_results(first, second)
    assert_same_results(first, run(client, [str(MIRROR_2020)]))
    copy = mirror_dir(cache, server.url + BASE_2020) / "MC/mc_361106.Zee.4lep.root"
    assert sha256(copy) == load_release("2020").samples["Zee"].sha256


def test_cache_replaces_a_damaged_copy(server: RangeFileServer, tmp_path: Path) -> None:
    release = load_release("2020")
    base = server.url + BASE_2020
    locations = cached_locations([base], release.select(["data_A"]), tmp_path)
    copy = Path(locations[0]) / "Data/data_A.4lep.root"
    assert locations == [str(mirror_dir(tmp_path, base)), base]
    data = bytearray(copy.read_bytes())
    data[1000] ^= 0xFF  # same size, wrong bytes: only the checksum can tell
    copy.write_bytes(bytes(data))
    server.traffic.reset()
    cached_locations([base], release.select(["data_A"]), tmp_path)
    assert server.traffic.gets() == 1
    assert sha256(copy) == release.samples["data_A"].sha256


def test_a_file_with_the_wrong_checksum_is_refused(tmp_path: Path) -> None:
    """A server whose data_A is another file: the download names the URL and is not kept."""
    served = tmp_path / "server"
    (served / "Data").mkdir(parents=True)
    shutil.copy(MIRROR_2020 / "Data/data_B.4lep.root", served / "Data/data_A.4lep.root")
    release = load_release("2020")
    with serve_files(served) as impostor:
        url = impostor.url + "/Data/data_A.4lep.root"
        with pytest.raises(IntegrityError, match=r"SHA-256 .* differs") as raised:
            fetch(url, tmp_path / "out/data_A.4lep.root", sha256=release.samples["data_A"].sha256)
    assert url in str(raised.value)
    assert not any(p.suffix in (".root", ".part") for p in (tmp_path / "out").iterdir())


def test_download_resumes_after_a_dropped_connection(
    server: RangeFileServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    zee = BASE_2020 + "MC/mc_361106.Zee.4lep.root"
    size = (MIRROR_2020 / "MC/mc_361106.Zee.4lep.root").stat().st_size
    server.cut_first_get[zee] = 100_000  # the first transfer breaks after 100 kB
    args = ["download", "--release", "2020", "--samples", "data_A,Zee", "--out", str(tmp_path)]
    args += ["--data", server.url + BASE_2020, "--retries", "0", "--no-progress"]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert server.url + zee in err and "run the same command again to resume" in err
    part = tmp_path / "MC/mc_361106.Zee.4lep.root.part"
    kept = part.stat().st_size
    assert 0 < kept <= 100_000
    server.traffic.reset()
    assert main(args) == 0
    assert server.traffic.ranges == [(zee, f"bytes={kept}-")]
    assert server.traffic.body_bytes[zee] == size - kept
    assert BASE_2020 + "Data/data_A.4lep.root" not in server.traffic.body_bytes  # was complete
    release = load_release("2020")
    for name in ("data_A", "Zee"):
        written = tmp_path / release.samples[name].path
        assert sha256(written) == sha256(MIRROR_2020 / release.samples[name].path)
        assert sha256(written) == release.samples[name].sha256
    assert not part.exists()
    assert "2 files in" in capsys.readouterr().out


def test_download_resumes_within_one_call(server: RangeFileServer, tmp_path: Path) -> None:
    release = load_release("2020")
    path = BASE_2020 + "Data/data_D.4lep.root"
    size = (MIRROR_2020 / "Data/data_D.4lep.root").stat().st_size
    server.cut_first_get[path] = 70_000
    (got,) = download_release(
        release, release.select(["data_D"]), server.url + BASE_2020, tmp_path, show_progress=False
    )
    ((_, header),) = server.traffic.ranges  # one resume, from what the .part kept
    kept = int(header.removeprefix("bytes=").removesuffix("-"))
    assert 0 < kept <= 70_000
    assert got.transferred == size - kept == got.size - kept
    assert server.traffic.body_bytes[path] == 70_000 + size - kept
    assert sha256(got.path) == release.samples["data_D"].sha256


def test_download_2025_into_a_flat_mirror(server: RangeFileServer, tmp_path: Path) -> None:
    args = ["download", "--release", "2025", "--samples", "data15_periodD"]
    args += ["--out", str(tmp_path), "--data", server.url + BASE_2025, "--no-progress"]
    assert main(args) == 0
    written = tmp_path / FILE_2025
    assert sha256(written) == load_release("2025").samples["data15_periodD"].sha256


def test_download_bad_input_is_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["download", "--samples", "nonesuch", "--out", str(tmp_path)]) == 2
    assert "nonesuch" in capsys.readouterr().err
    root = "root://eospublic.cern.ch//eos/opendata/atlas/OutreachDatasets/2020-01-22/4lep/"
    assert main(["download", "--out", str(tmp_path), "--data", root]) == 2
    assert root in capsys.readouterr().err


def test_a_server_that_never_answers_fails_with_the_url_and_the_timeout(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    release = load_release("2020")
    with silent_server() as base:
        started = time.monotonic()
        with pytest.raises(RemoteAccessError) as raised:
            prepare_locations(release.select(["data_A"]), [base + BASE_2020], timeout=1)
        assert time.monotonic() - started < 20  # it did not hang
        url = base + BASE_2020 + "Data/data_A.4lep.root"
        # Tried twice (a silent server gets one more chance), then the URL and the wait.
        assert str(raised.value) == f"{url}: no answer within 1 s (--timeout 1) (after 2 attempts)"
        args = ["download", "--samples", "data_A", "--out", str(tmp_path), "--data"]
        assert main([*args, base + BASE_2020, "--timeout", "1", "--no-progress"]) == 1
        assert f"{url}: no answer within 1 s" in capsys.readouterr().err
        with pytest.raises(RemoteAccessError, match="no answer within 1 s"):
            cached_locations([base + BASE_2020], release.select(["data_A"]), tmp_path, timeout=1)


@pytest.mark.cluster
def test_hzz_run_against_a_hanging_server_exits_1_naming_url_and_timeout(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with silent_server() as base:
        args = ["run", "--data", base + BASE_2020, "--samples", "data_A", "--timeout", "1"]
        code = main(
            [*args, "--workers", "1", "--dashboard", ":0", "--no-progress", "--out", str(tmp_path)]
        )
    err = capsys.readouterr().err
    assert code == 1
    assert f"{base}{BASE_2020}Data/data_A.4lep.root: no answer within 1 s" in err
    assert "nothing written" in err
    assert not any(tmp_path.iterdir())


@pytest.mark.skipif(
    source_for("root://").missing_client() is None, reason="the XRootD client is installed"
)
def test_root_urls_without_xrootd_say_how_to_install_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = load_release("2020").base_urls["xrootd"]
    code = main(["run", "--data", root, "--samples", "data_A", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2
    assert root in err and "pip install 'hzz-cluster[xrootd]'" in err


def test_mirror_dir_follows_the_url(tmp_path: Path) -> None:
    assert mirror_dir(tmp_path, "https://opendata.cern.ch/eos/opendata/atlas/") == (
        tmp_path / "opendata.cern.ch/eos/opendata/atlas"
    )
    assert mirror_dir(tmp_path, "http://127.0.0.1:8080/a/../../b/") == tmp_path / "127.0.0.1_8080/b"
    with pytest.raises(ValueError, match="no host"):
        mirror_dir(tmp_path, "https:///x/")
