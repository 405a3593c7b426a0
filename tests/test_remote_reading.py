"""Reading remote files through faults, and inspections kept between runs, against a
real HTTP server on loopback that fails range requests on purpose."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import uproot
from distributed import Client

from analysis.catalogue import load_release
from analysis.document import HistogramDocument
from cluster.access.inspected import InspectionCache
from cluster.access.remote import check_reachable, uproot_open_options
from cluster.cli import main
from cluster.runtime.clusters import dask_client
from cluster.runtime.run import RunOptions, run_analysis

from .range_server import RangeFileServer, serve_files

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
BASE_2020 = "/atlas-opendata-2020/4lep/"
SAMPLES = ["data_A", "data_B", "Zee"]


@pytest.fixture(scope="module")
def client() -> Iterator[Client]:
    with dask_client(None, 1, dashboard_address=":0") as dask:
        yield dask


@pytest.fixture
def server() -> Iterator[RangeFileServer]:
    with serve_files(SHARED_DATA) as running:
        yield running


def run(client: Client, base: str, cache: Path | None) -> HistogramDocument:
    options = RunOptions(
        locations=[base], samples=SAMPLES, show_progress=False, inspection_cache=cache
    )
    return run_analysis(client, load_release("2020"), options).document


def numbers(document: HistogramDocument) -> dict:
    payload = json.loads(document.to_json())
    for volatile in ("created", "run", "timing", "host"):
        payload.pop(volatile, None)
    return payload


def test_five_percent_of_failed_range_requests_give_the_same_document(
    client: Client, server: RangeFileServer, tmp_path: Path
) -> None:
    clean = run(client, server.url + BASE_2020, None)
    # Every 4th range request, a reset or a 503 in turn: more often than the 5 % of the
    # benchmark, for three small files make only a few dozen requests.
    server.fail_every = 4
    faulty = run(client, server.url + BASE_2020, None)
    assert server.failures_sent >= 1
    assert numbers(faulty) == numbers(clean)
    assert faulty.samples == clean.samples


def test_a_server_failing_every_range_names_the_url_and_cause(
    server: RangeFileServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server.fail_every = 1
    args = ["run", "--data", server.url + BASE_2020, "--samples", "data_A", "--workers", "1"]
    code = main([*args, "--dashboard", ":0", "--no-progress", "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 1
    assert f"{server.url}{BASE_2020}Data/data_A.4lep.root" in err
    assert "HTTP 503" in err and "after 5 attempts" in err
    assert "not subscriptable" not in err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_a_second_run_opens_no_header(
    client: Client, server: RangeFileServer, tmp_path: Path
) -> None:
    cache = tmp_path / "inspected"
    first = run(client, server.url + BASE_2020, cache)
    assert len(list(cache.glob("*.json"))) == len(SAMPLES)
    server.traffic.reset()
    second = run(client, server.url + BASE_2020, cache)
    assert numbers(second) == numbers(first)
    header_reads = [r for _, r in server.traffic.ranges if r == "bytes=0-402"]
    # The readers open each file once to read its baskets; the inspection opened none.
    assert len(header_reads) == len(SAMPLES)
    heads = sum(n for (method, _), n in server.traffic.requests.items() if method == "HEAD")
    assert heads == len(SAMPLES)


def test_a_changed_file_is_inspected_again(server: RangeFileServer, tmp_path: Path) -> None:
    release = load_release("2020")
    chosen = release.select(["data_A"])
    base = server.url + BASE_2020
    remote = check_reachable(chosen, [base])
    (url,) = remote
    assert (
        remote[url].size
        == (SHARED_DATA / BASE_2020.strip("/") / "Data/data_A.4lep.root").stat().st_size
    )
    assert remote[url].identity is not None
    from analysis.files import inspect_file
    from analysis.summary import branches_for

    info = inspect_file("data_A", url, release.tree, branches_for(chosen[0], release))
    cache = InspectionCache(tmp_path)
    assert cache.keep([info], remote) == 1
    assert cache.known(remote) == {url: info}
    changed = {url: type(remote[url])(url, remote[url].size, '"other"', remote[url].last_modified)}
    assert cache.known(changed) == {}


def test_a_range_slower_than_the_timeout_is_read_while_it_keeps_moving(
    server: RangeFileServer,
) -> None:
    """A slow link is not a dead one: 400 kB at 128 kB/s takes three times the 1 s
    timeout, and each second brings more than the minimum, so the read completes."""
    relative = "MC/mc_410155.ttW.4lep.root"
    expected = (SHARED_DATA / BASE_2020.strip("/") / relative).read_bytes()[:400_000]
    server.bytes_per_second = 128 * 1024
    with uproot.open(server.url + BASE_2020 + relative, **uproot_open_options(1.0)) as file:
        chunk = file.file.source.chunk(0, len(expected))
        assert chunk.raw_data.tobytes() == expected
