"""Reading remote files through faults, and inspections kept between runs, against a
real HTTP server on loopback that fails range requests on purpose."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import uproot
from distributed import Client

from analysis.inputs.catalogue import load_release
from analysis.results.document import HistogramDocument
from analysis.results.outputs import outputs_in
from cluster.access.inspected import InspectionCache
from cluster.access.reading import uproot_open_options
from cluster.access.remote import check_reachable
from cluster.cli import main
from cluster.runtime.run import RunOptions, run_analysis

from .helpers import SHARED_DATA
from .range_server import RangeFileServer, serve_files

BASE_2020 = "/atlas-opendata-2020/4lep/"
SAMPLES = ["data_A", "data_B", "Zee"]


def run(client: Client, base: str, cache: Path | None) -> HistogramDocument:
    options = RunOptions(
        locations=[base], samples=SAMPLES, show_progress=False, inspection_cache=cache
    )
    if cache is None:  # none kept (not the user's): every run inspects afresh
        options.inspection_cache = None
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


def test_failed_basket_reads_are_retried_to_the_same_document(
    client: Client, tmp_path: Path
) -> None:
    """Every 4th basket read fails (a reset or a 503 in turn): the same document. The
    inspection is kept from the first run, so every request of the second is a basket
    read of a stand-in with many baskets (the small real files' baskets lie inside the
    header the inspection recorded)."""
    from analysis.standins import write_standins

    served = tmp_path / "served"
    write_standins(served, ["ZH125_ZZ4lep"], events=20_000, seed=3)
    with serve_files(served) as server:
        options = RunOptions(
            locations=[server.url + "/"],
            samples=["ZH125_ZZ4lep"],
            step_size=5_000,
            show_progress=False,
            inspection_cache=tmp_path / "inspected",
        )
        clean = run_analysis(client, load_release("2020"), options).document
        server.traffic.reset()
        server.fail_every = 4
        faulty = run_analysis(client, load_release("2020"), options).document
        assert server.failures_sent >= 2
        assert header_requests(server) == {}  # all of them basket reads
    assert numbers(faulty) == numbers(clean)


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
    # The inspection opened no file and the readers opened them from the kept headers.
    assert header_requests(server) == {}
    heads = sum(n for (method, _), n in server.traffic.requests.items() if method == "HEAD")
    assert heads == len(SAMPLES)


def header_requests(server: RangeFileServer) -> dict[str, int]:
    """Requests for each file's first bytes (its header), by path."""
    counts: dict[str, int] = {}
    for path, requested in server.traffic.ranges:
        if requested == "bytes=0-402":
            counts[path] = counts.get(path, 0) + 1
    return counts


def test_a_run_opens_each_remote_file_once(
    client: Client, server: RangeFileServer, tmp_path: Path
) -> None:
    remote = run(client, server.url + BASE_2020, None)
    # Inspection asked for each file's header once; the readers asked for none of it.
    assert sorted(header_requests(server).values()) == [1] * len(SAMPLES)
    gets = server.traffic.gets()
    local = run(client, str(SHARED_DATA / BASE_2020.strip("/")), None)
    assert numbers(remote) == numbers(local)
    assert remote.samples == local.samples
    # The files of these samples keep their few baskets inside the tree's metadata: the
    # readers had everything from the headers and asked for nothing more.
    assert gets == 3 * len(SAMPLES)


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
    from analysis.inputs.files import inspect_file
    from analysis.physics.summary import branches_for

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


def test_readers_open_a_remote_file_from_its_inspected_header(tmp_path: Path) -> None:
    """A file whose baskets lie outside its header (a stand-in, many baskets), read over
    HTTP partition by partition: the readers ask only for baskets, and read what the
    local file holds."""
    import awkward as ak

    from analysis.inputs import reader
    from analysis.inputs.files import inspect_file
    from analysis.inputs.partitions import partition_steps
    from analysis.physics.summary import branches_for
    from analysis.standins import write_standins

    release = load_release("2020")
    sample = release.samples["ZH125_ZZ4lep"]
    write_standins(tmp_path, [sample.name], events=20_000, seed=3)
    branches = branches_for(sample, release)
    with serve_files(tmp_path) as server:
        url = f"{server.url}/{sample.path}"
        info = inspect_file(sample.name, url, release.tree, branches)
        assert info.usable and info.header is not None
        local = inspect_file(sample.name, str(tmp_path / sample.path), release.tree, branches)
        assert local.header is None  # local files are opened, not replayed
        assert (info.entries, info.boundaries, info.form) == (
            local.entries,
            local.boundaries,
            local.form,
        )
        server.traffic.reset()
        read = reader.PartitionReader(release.tree, ak.forms.from_json(info.form))
        opens = reader.OPEN_TREES.opens
        steps = partition_steps(info.entries, 5_000, info.boundaries)
        assert len(steps) > 1
        remote = [read((url, a, b, info.header)) for a, b in steps]
        assert reader.OPEN_TREES.opens == opens + 1  # one open for all partitions
        assert all(reader.read_outcome(part)["exception"] is None for part in remote)
        assert header_requests(server) == {}
        assert server.traffic.gets() > 0  # the baskets
    with uproot.open(tmp_path / sample.path) as file:
        expected = file[release.tree].arrays(list(branches))
    assert ak.array_equal(ak.concatenate(remote), expected)


def test_a_header_too_large_to_carry_is_not_kept(
    server: RangeFileServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Beyond the limit the inspection keeps no header: the readers open the file
    themselves (and read what they read with one)."""
    import awkward as ak

    from analysis.inputs import headers, reader
    from analysis.inputs.files import inspect_file
    from analysis.physics.summary import branches_for

    release = load_release("2020")
    zee = release.samples["Zee"]
    url = f"{server.url}{BASE_2020}{zee.path}"
    branches = branches_for(zee, release)
    kept = inspect_file(zee.name, url, release.tree, branches)
    monkeypatch.setattr(headers, "HEADER_LIMIT", 1000)
    too_large = inspect_file(zee.name, url, release.tree, branches)
    assert kept.header is not None and too_large.header is None
    assert (too_large.entries, too_large.form) == (kept.entries, kept.form)
    read = reader.PartitionReader(release.tree, ak.forms.from_json(kept.form))
    server.traffic.reset()
    opened = read((url, 0, kept.entries, too_large.header))
    assert header_requests(server) == {f"{BASE_2020}{zee.path}": 1}
    replayed = reader.PartitionReader(release.tree, ak.forms.from_json(kept.form))
    assert ak.array_equal(opened, replayed((url, 0, kept.entries, kept.header)))


@pytest.mark.cluster
def test_a_server_that_ignores_ranges_gives_the_same_document(
    mirror: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``python -m http.server`` answers a range request with the whole file (HTTP 200):
    the run is right (each range cut out of the answer; fsspec would hand uproot the
    whole body), and says once per file that ``--cache`` would move each file once."""
    import functools
    import threading
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    from .helpers import hzz

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    handler = functools.partial(Quiet, directory=str(mirror))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}/"
    documents = {}
    monkeypatch.setenv("HZZ_INSPECTION_CACHE", str(tmp_path / "inspected"))  # not the user's
    try:
        for name, data in (("local", str(mirror)), ("plain-http", base)):
            out = tmp_path / name
            done = hzz(
                "run", "--data", data, "--samples", "data_A,Zee", "--workers", "1",
                "--dashboard", ":0", "--no-progress", "--out", str(out),
            )  # fmt: skip
            assert done.returncode == 0, done.stderr
            (path,) = outputs_in(out, ".json")
            documents[name] = done.stderr, json.loads(path.read_text())
    finally:
        server.shutdown()
        server.server_close()
    stderr, remote = documents["plain-http"]
    _, local = documents["local"]
    assert remote["samples"] == local["samples"]
    zee = f"{base}MC/mc_361106.Zee.4lep.root: the server ignores byte ranges"
    assert stderr.count(zee) >= 1 and "--cache DIR downloads it once" in stderr, stderr
