"""A file that changes under a run: a run reads the version it inspected, or stops.

A real HTTP server on loopback (``tests.range_server``) switches a file to another
version after a number of range requests, as a server whose file is replaced while a
run reads it. The two versions have the same size and layout (uncompressed baskets),
``lep_pt`` × 1.02 in the second: a run that mixed them would exit 0 with a histogram
made of both."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import uproot
from distributed import Client

from analysis.errors import FileChangedError
from analysis.inputs.catalogue import load_release
from analysis.inputs.files import MARK_KEY
from analysis.results.document import HistogramDocument
from analysis.standins.events import generate_sample
from analysis.standins.samples import STANDINS
from analysis.standins.writer import TREE, rng_for
from cluster.access.inspected import InspectionCache
from cluster.cli import main
from cluster.defaults import INSPECTION_CACHE_ENV
from cluster.runtime.run import RunOptions, run_analysis

from .range_server import RangeFileServer, serve_files

SAMPLE = "ZH125_ZZ4lep"
EVENTS = 20_000
BASKET = 5_000  # one partition per basket: four partitions, each its own range requests

pytestmark = [pytest.mark.faults, pytest.mark.cluster]


def write_first_version(path: Path) -> None:
    """The stand-in sample, uncompressed, in baskets of BASKET entries."""
    spec = STANDINS[SAMPLE]
    branches = generate_sample(spec, EVENTS, rng_for(3, spec, 0), first_event=1)
    mark = {"generator": "hzz-standins", "sample": SAMPLE, "events": EVENTS, "seed": 3}
    path.parent.mkdir(parents=True, exist_ok=True)
    with uproot.recreate(path, compression=None) as file:
        file[MARK_KEY] = json.dumps(mark, sort_keys=True)
        chunks = [
            {name: values[start : start + BASKET] for name, values in branches.items()}
            for start in range(0, EVENTS, BASKET)
        ]
        tree = file.mktree(TREE, chunks[0], initial_basket_capacity=64)
        for chunk in chunks[1:]:
            tree.extend(chunk)


def write_second_version(first: Path, second: Path) -> None:
    """``first`` with every lep_pt × 1.02, patched in its uncompressed baskets: the same
    size, every byte of the layout in place, only the values differ (as a file rewritten
    with a recalibration would, to a reader that mixed the two)."""
    data = bytearray(first.read_bytes())
    with uproot.open(first) as file:
        branch = file[TREE]["lep_pt"]
        for i in range(branch.num_baskets):
            basket = branch.basket(i)
            start = int(branch.member("fBasketSeek")[i]) + basket.member("fKeylen")
            values = np.frombuffer(data, ">f4", basket.border // 4, start)
            data[start : start + basket.border] = (
                (values * np.float32(1.02)).astype(">f4").tobytes()
            )
    second.write_bytes(bytes(data))


@pytest.fixture(scope="module")
def versions(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The served tree (first version) and the second version, beside it."""
    root = tmp_path_factory.mktemp("changed")
    served = root / "served" / load_release("2020").samples[SAMPLE].path
    second = root / "second.root"
    write_first_version(served)
    write_second_version(served, second)
    assert served.stat().st_size == second.stat().st_size
    assert served.read_bytes() != second.read_bytes()
    later = served.stat().st_mtime + 60  # replaced a minute later: a new ETag and date
    os.utime(second, (later, later))
    return served, second


def options(server: RangeFileServer, cache: Path | None = None) -> RunOptions:
    """A run of the served sample; inspections kept in ``cache`` (None: none kept)."""
    chosen = RunOptions(
        locations=[server.url + "/"], samples=[SAMPLE], step_size=BASKET, show_progress=False
    )
    chosen.inspection_cache = cache  # not the user's: None keeps nothing
    return chosen


def range_requests(server: RangeFileServer, served: Path, run: RunOptions, client: Client) -> int:
    """How many range requests a clean run makes of the served file."""
    server.traffic.reset()
    run_analysis(client, load_release("2020"), run)
    return server.ranges_of("/" + load_release("2020").samples[SAMPLE].path)


def switch_midway(server: RangeFileServer, second: Path, total: int) -> None:
    """The file becomes its second version after half of a run's range requests."""
    server.traffic.reset()
    path = "/" + load_release("2020").samples[SAMPLE].path
    server.new_version[path] = (total // 2, second)


def test_a_file_replaced_on_the_server_mid_run_stops_the_run_naming_it(
    versions: tuple[Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The case as a user meets it: exit 1 and the URL, never exit 0 with both versions."""
    served, second = versions
    monkeypatch.setenv(INSPECTION_CACHE_ENV, str(tmp_path / "kept"))
    with serve_files(served.parents[1]) as server:
        server.new_version["/" + str(served.relative_to(served.parents[1]))] = (4, second)
        args = ["run", "--data", server.url + "/", "--samples", SAMPLE, "--workers", "1"]
        args += ["--step-size", str(BASKET), "--dashboard", ":0", "--no-progress"]
        code = main([*args, "--out", str(tmp_path / "out")])
        refused = server.refused
    err = capsys.readouterr().err
    assert code == 1, err
    assert f"{server.url}/{served.relative_to(served.parents[1])}" in err
    assert "changed on the server during the run" in err and "HTTP 412" in err
    assert refused >= 1
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


@pytest.mark.parametrize(
    ("honour_conditions", "send_validators", "said"),
    [
        (True, True, "HTTP 412"),  # If-Match refused: the server knows the version asked
        (False, True, "ETag"),  # conditions ignored: the answer's ETag tells
        (False, False, "bytes, inspected at"),  # no validator at all: the size tells
    ],
)
def test_no_mix_of_two_versions_whatever_the_server_supports(
    client: Client,
    versions: tuple[Path, Path],
    honour_conditions: bool,
    send_validators: bool,
    said: str,
    tmp_path: Path,
) -> None:
    served, second = versions
    if not send_validators:  # a second version of another size: only that can tell
        bigger = tmp_path / "bigger.root"
        bigger.write_bytes(second.read_bytes() + b"\0" * 1024)
        second = bigger
    with serve_files(served.parents[1]) as server:
        server.honour_conditions = honour_conditions
        server.send_validators = send_validators
        clean = options(server)
        total = range_requests(server, served, clean, client)
        assert total >= 4
        switch_midway(server, second, total)
        with pytest.raises(FileChangedError, match=said) as raised:
            run_analysis(client, load_release("2020"), clean)
    assert "changed on the server during the run" in str(raised.value)
    assert raised.value.location == f"{server.url}/{served.relative_to(served.parents[1])}"


def test_the_second_version_is_read_whole_by_the_next_run(
    client: Client, versions: tuple[Path, Path], tmp_path: Path
) -> None:
    """After the failure, the next run inspects the file again (its kept inspection was
    of the first version) and reads the second version only: lep_pt × 1.02 moves m4l."""
    served, second = versions
    kept = tmp_path / "kept"
    with serve_files(served.parents[1]) as server:
        first = run_analysis(client, load_release("2020"), options(server, kept)).document
        total = server.ranges_of("/" + str(served.relative_to(served.parents[1])))
        switch_midway(server, second, total + 2)
        with pytest.raises(FileChangedError):
            run_analysis(client, load_release("2020"), options(server, kept))
        again = run_analysis(client, load_release("2020"), options(server, kept)).document
    with serve_files(second.parent) as alone:
        relative = served.relative_to(served.parents[1])
        (second.parent / relative).parent.mkdir(parents=True, exist_ok=True)
        os.replace(second, second.parent / relative)
        try:
            expected = run_analysis(client, load_release("2020"), options(alone)).document
        finally:
            os.replace(second.parent / relative, second)
    assert again.samples == expected.samples
    assert again.samples != first.samples


def run_and_keep(
    client: Client, server: RangeFileServer, kept: Path
) -> tuple[HistogramDocument, Path, dict]:
    """A run whose inspection is kept in ``kept``: its document, the one entry kept, and
    that entry's JSON (to be edited)."""
    document = run_analysis(client, load_release("2020"), options(server, kept)).document
    (entry,) = kept.glob("*.json")
    return document, entry, json.loads(entry.read_text())


def test_a_kept_inspection_edited_on_disk_is_inspected_again(
    client: Client, versions: tuple[Path, Path], tmp_path: Path
) -> None:
    """An entry whose entries were edited (a smaller count would read fewer events,
    unseen): its checksum no longer holds, so the file is inspected again in this run."""
    served, _ = versions
    kept = tmp_path / "kept"
    with serve_files(served.parents[1]) as server:
        first, entry, text = run_and_keep(client, server, kept)
        text["info"]["entries"] = EVENTS - BASKET
        text["info"]["boundaries"] = text["info"]["boundaries"][:-1]
        entry.write_text(json.dumps(text))
        server.traffic.reset()
        second = run_analysis(client, load_release("2020"), options(server, kept)).document
        assert server.traffic.header_reads() == 1  # opened once more, by the inspection
    assert second.samples == first.samples
    assert json.loads(entry.read_text())["info"]["entries"] == EVENTS


def test_a_kept_header_that_no_longer_parses_is_read_from_the_server(
    client: Client, versions: tuple[Path, Path], tmp_path: Path
) -> None:
    """An entry whose recorded header is damaged but whose checksum holds (written so by
    some other program): the readers open the file from the server, the result is right."""
    import base64
    import hashlib

    from analysis.inputs.headers import decode, encode

    served, _ = versions
    kept = tmp_path / "kept"
    with serve_files(served.parents[1]) as server:
        first, entry, text = run_and_keep(client, server, kept)
        ranges = decode(base64.b64decode(text["info"]["header"]))
        start, data = max(ranges, key=lambda r: len(r[1]))  # the tree's metadata
        damaged = data[:16] + b"\xff" * (len(data) - 16)  # its key and length kept
        ranges[ranges.index((start, data))] = (start, damaged)
        text["info"]["header"] = base64.b64encode(encode(ranges)).decode()
        canonical = json.dumps(text["info"], sort_keys=True).encode()
        text["sha256"] = hashlib.sha256(canonical).hexdigest()
        entry.write_text(json.dumps(text))
        assert InspectionCache(kept).known({}) == {}  # nothing asked, nothing known
        second = run_analysis(client, load_release("2020"), options(server, kept)).document
    assert second.samples == first.samples


def test_a_download_never_resumes_onto_another_version(
    versions: tuple[Path, Path], tmp_path: Path
) -> None:
    """A .part begun on the first version, the server holding the second when the
    download is resumed: the copy is the second version whole, not a splice of both
    (same size: only the version the .part was begun on can tell)."""
    from analysis.errors import RemoteAccessError
    from cluster.access.download import fetch

    served, second = versions
    path = "/" + str(served.relative_to(served.parents[1]))
    dest = tmp_path / "copy.root"
    half = served.stat().st_size // 2
    assert served.read_bytes()[:half] != second.read_bytes()[:half]  # a splice would show
    with serve_files(served.parents[1]) as server:
        server.cut_first_get[path] = half  # the first transfer breaks half way
        with pytest.raises(RemoteAccessError, match="interrupted"):
            fetch(server.url + path, dest, retries=0)
        assert 0 < dest.with_name(dest.name + ".part").stat().st_size <= half
        server.new_version[path] = (-1, second)  # replaced on the server from now on
        fetch(server.url + path, dest, retries=0)
    assert dest.read_bytes() == second.read_bytes()
    assert not dest.with_name(dest.name + ".part.version").exists()
