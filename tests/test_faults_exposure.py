"""Slow servers, leaked secrets, exposed ports, and the command line's edges.

Real HTTP servers on loopback (one that trickles bytes), real ``hzz`` processes, the
real broker (own queue names), real Dask processes.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from analysis.results.outputs import STEM_GLOB, outputs_in
from cluster.runtime.clusters import dashboard_listen_address, open_client

from .helpers import ROOT, URL, hzz, make_document, run_args, trickle_server

pytestmark = pytest.mark.faults

ZEE = "MC/mc_361106.Zee.4lep.root"


@pytest.mark.cluster
def test_a_trickling_server_fails_download_cache_and_reads_naming_the_url(tmp_path: Path) -> None:
    with trickle_server() as base:
        url = f"{base}Data/data_A.4lep.root"
        got = hzz(
            "download", "--data", base, "--out", str(tmp_path / "m"), "--samples", "data_A",
            "--timeout", "2", "--retries", "0", "--no-progress",
        )  # fmt: skip
        assert got.returncode == 1, got.stderr
        assert url in got.stderr and "stalled" in got.stderr, got.stderr
        cached = hzz(
            *run_args(tmp_path, tmp_path / "out", "--samples", "data_A"),
            "--data", base, "--cache", str(tmp_path / "cache"), "--timeout", "2",
        )  # fmt: skip
        assert cached.returncode == 1, cached.stderr
        assert url in cached.stderr and "stalled" in cached.stderr, cached.stderr
        # Read in place (no --cache): uproot's range requests are bounded the same way.
        direct = hzz(
            *run_args(tmp_path, tmp_path / "out", "--samples", "data_A"),
            "--data", base, "--timeout", "2",
        )  # fmt: skip
        assert direct.returncode == 1, direct.stderr
        assert url in direct.stderr and "stalled" in direct.stderr, direct.stderr
        assert "Traceback" not in direct.stderr, direct.stderr


# --------------------------------------------------------------------------- secrets


@pytest.mark.cluster
def test_a_password_in_a_data_url_is_never_shown(fake_mirror: Path, tmp_path: Path) -> None:
    """An http:// data URL with a password: the error names the file as ``user:***@``."""
    from .range_server import serve_files

    (fake_mirror / ZEE).unlink()
    (fake_mirror / ZEE).write_bytes(b"<html>503</html>\n" * 100)
    with serve_files(fake_mirror) as server:
        port = server.server_address[1]
        base = f"http://reader:s3cr3t-pw@127.0.0.1:{port}/"
        stopped = hzz(
            "run", "--data", base, "--out", str(tmp_path / "out"), "--workers", "1",
            "--dashboard", ":0", "--no-progress", "--samples", "Zee", "--timeout", "10",
        )  # fmt: skip
    assert stopped.returncode == 2, stopped.stderr
    assert "s3cr3t-pw" not in stopped.stdout + stopped.stderr
    assert f"http://reader:***@127.0.0.1:{port}/{ZEE}" in stopped.stderr


@pytest.mark.cluster
def test_a_password_never_reaches_a_real_runs_skipped_list(
    fake_mirror: Path, tmp_path: Path
) -> None:
    """With --skip-bad-files the bad file goes into the document (which is published):
    its URL there, in the figure's notes and on the console is ``user:***@``."""
    import shutil

    from .range_server import serve_files

    data_a = "Data/data_A.4lep.root"
    real = (fake_mirror / data_a).resolve()
    (fake_mirror / data_a).unlink()
    shutil.copyfile(real, fake_mirror / data_a)  # the server serves no link out of its root
    (fake_mirror / ZEE).unlink()
    (fake_mirror / ZEE).write_bytes(b"<html>503</html>\n" * 100)
    out = tmp_path / "out"
    with serve_files(fake_mirror) as server:
        port = server.server_address[1]
        base = f"http://reader:s3cr3t-pw@127.0.0.1:{port}/"
        done = hzz(
            "run", "--data", base, "--out", str(out), "--workers", "1", "--dashboard", ":0",
            "--no-progress", "--samples", "data_A,Zee", "--skip-bad-files", "--timeout", "10",
        )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "s3cr3t-pw" not in done.stdout + done.stderr
    (document,) = outputs_in(out, ".json")
    text = document.read_text()
    assert "s3cr3t-pw" not in text
    skipped = json.loads(text)["skipped"]
    assert [s["file"] for s in skipped] == [f"http://reader:***@127.0.0.1:{port}/{ZEE}"]
    assert json.loads(text)["samples"]["data_A"]["n_in"] > 0


def test_a_password_never_reaches_the_documents_skipped_list(mirror: Path) -> None:
    """The skipped list is published: a bad file's URL and cause there are redacted."""
    from analysis.inputs.catalogue import load_release
    from analysis.inputs.files import FileInfo
    from analysis.inputs.locations import sort_inspected

    url = "https://reader:s3cr3t-pw@data.example/MC/mc_361106.Zee.4lep.root"
    bad = FileInfo("Zee", url, error=f"HTTP 503 for {url}")
    good = FileInfo("data_A", str(mirror / "Data/data_A.4lep.root"), entries=39)
    inspection = sort_inspected(load_release("2020"), [good, bad], skip_bad_files=True)
    (skipped,) = inspection.skipped
    assert skipped.file == "https://reader:***@data.example/MC/mc_361106.Zee.4lep.root"
    assert "s3cr3t-pw" not in skipped.cause and "reader:***@" in skipped.cause


def test_a_password_on_the_plotter_command_line_is_warned_about(tmp_path: Path) -> None:
    result = hzz(
        "plotter", "--out", str(tmp_path), "--broker", "amqp://guest:guest@127.0.0.1:1/",
        "--once", "--timeout", "1",
    )  # fmt: skip
    assert result.returncode == 1
    assert "readable by every local user (ps)" in result.stderr
    assert "HZZ_BROKER_FILE" in result.stderr
    assert "guest:guest" not in result.stderr


def _listening(pid: int) -> list[str]:
    found = []
    for process in [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]:
        try:
            connections = process.net_connections(kind="tcp")
        except psutil.NoSuchProcess:
            continue
        found += [c.laddr.ip for c in connections if c.status == psutil.CONN_LISTEN]
    return found


@pytest.mark.cluster
def test_a_local_cluster_listens_on_loopback_only() -> None:
    assert dashboard_listen_address(":8787") == "127.0.0.1:8787"
    assert dashboard_listen_address("0.0.0.0:8787") == "0.0.0.0:8787"  # asked for
    client, local = open_client(workers=1, dashboard_address=":0")
    try:
        addresses = _listening(os.getpid())
        assert addresses and set(addresses) == {"127.0.0.1"}, addresses
    finally:
        client.close()
        local.close()


@pytest.mark.cluster
def test_cluster_up_gives_the_broker_password_to_the_plotter_only(tmp_path: Path) -> None:
    secret = "amqp://guest:guest@127.0.0.1:5672/"
    env = {**os.environ, "HZZ_BROKER": secret}
    state = tmp_path / "stack"
    command = [sys.executable, "-m", "cluster.cli", "cluster"]
    up = subprocess.run(
        [*command, "up", "--dir", str(state), "--workers", "1", "--plots", str(tmp_path / "p"),
         "--queue", f"hzz-test-{os.getpid()}.q", "--exchange", f"hzz-test-{os.getpid()}.x"],
        capture_output=True, text=True, cwd=ROOT, env=env, timeout=180,
    )  # fmt: skip
    try:
        assert up.returncode == 0, up.stderr
        saved = json.loads((state / "state.json").read_text())
        roles = {p["role"]: p["pid"] for p in saved["processes"]}
        for process in saved["processes"]:
            environ = psutil.Process(process["pid"]).environ()
            has = environ.get("HZZ_BROKER") == secret
            assert has == (process["role"] == "plotter"), process["role"]
        assert {"scheduler", "worker", "plotter"} <= set(roles)
    finally:
        subprocess.run([*command, "down", "--dir", str(state)], cwd=ROOT, timeout=120, env=env)
        import pika

        channel = pika.BlockingConnection(pika.URLParameters(URL)).channel()
        for queue in (f"hzz-test-{os.getpid()}.q", f"hzz-test-{os.getpid()}.q.dead"):
            channel.queue_delete(queue)
        for exchange in (f"hzz-test-{os.getpid()}.x", f"hzz-test-{os.getpid()}.x.dlx"):
            channel.exchange_delete(exchange)
        channel.connection.close()


# --------------------------------------------------------------------------- smaller


def test_the_resend_command_keeps_the_names_the_run_used(tmp_path: Path) -> None:
    path = tmp_path / "doc.json"
    path.write_bytes(make_document().to_json())
    result = hzz(
        "publish", str(path), "--broker", "amqp://guest:guest@127.0.0.1:1/",
        "--exchange", "my.x", "--queue", "my.q", "--broker-timeout", "1",
    )  # fmt: skip
    assert result.returncode == 1
    assert f"resend with: hzz publish {path} --exchange my.x --queue my.q" in result.stderr
    assert "guest:***@127.0.0.1:1/ in HZZ_BROKER or HZZ_BROKER_FILE" in result.stderr
    assert "guest:guest" not in result.stderr


def test_publish_reads_no_more_than_the_plotter_accepts(tmp_path: Path) -> None:
    path = tmp_path / "huge.json"
    with path.open("wb") as handle:
        handle.truncate(64 * 1024 * 1024)  # sparse: 64 MiB of NUL
    result = hzz("publish", str(path), "--broker", "amqp://guest:guest@127.0.0.1:1/")
    assert result.returncode == 2
    assert f"{path}: larger than" in result.stderr


@pytest.mark.cluster
def test_ctrl_c_stops_a_run_with_one_line(mirror: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = run_args(mirror, out, "--allow-missing", "--workers", "2", "--step-size", "10")
    process = subprocess.Popen(
        [sys.executable, "-m", "cluster.cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, as a terminal's foreground job
    )
    assert process.stdout is not None
    for line in process.stdout:
        if line.startswith("Dask dashboard"):
            break
    os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C does: the whole group
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert "hzz run: interrupted, nothing written" in stderr
    # Only the promised line, besides the run's own log lines (a timestamp first).
    said = [line for line in stderr.splitlines() if not line[:4].isdigit()]
    assert said == ["hzz run: interrupted, nothing written"], stderr
    assert not out.exists() or not any(out.glob(STEM_GLOB))
