"""Dask speaks mutual TLS: ``hzz certificates``, and another local user (uid 65534,
``nobody``) refused by the schedulers of ``hzz cluster`` and of ``hzz run``.

Real processes throughout: the intruder is a separate Python process running as another
user (``tests/intruder.py``), against a real ``hzz cluster`` and a real ``hzz run``.
"""

from __future__ import annotations

import json
import os
import signal
import ssl
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from cluster.runtime.certificates import CA_FILE, ROLES, cert_file, directory_security, key_file

from .helpers import HZZ, ROOT, hzz, hzz_ok, run_args, trickle_server

NOBODY = 65534
INTRUDER = ROOT / "tests" / "intruder.py"

needs_root = pytest.mark.skipif(
    os.geteuid() != 0, reason="becoming another user (uid 65534) needs root; CI runs as root"
)


def test_certificates_are_a_ca_and_one_pair_per_role_for_the_owner_only(tmp_path: Path) -> None:
    folder = tmp_path / "certs"
    hzz_ok("certificates", str(folder))
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    names = {CA_FILE, "ca-key.pem"} | {cert_file(r) for r in ROLES} | {key_file(r) for r in ROLES}
    assert {p.name for p in folder.iterdir()} == names
    for path in folder.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    for role in ROLES:  # each role's pair loads and chains to the CA
        context = ssl.create_default_context(cafile=str(folder / CA_FILE))
        context.load_cert_chain(folder / cert_file(role), folder / key_file(role))
    again = hzz("certificates", str(folder))  # never overwrites a CA in use
    assert again.returncode == 2 and "already holds certificates" in again.stderr


def test_a_tls_scheduler_without_certificates_is_a_clear_error(tmp_path: Path) -> None:
    result = hzz(*run_args(tmp_path, tmp_path / "out"), "--scheduler", "tls://127.0.0.1:1")
    assert result.returncode == 2, result.stderr
    assert "--certificates DIR" in result.stderr and "Traceback" not in result.stderr


@pytest.fixture
def nobody_home(tmp_path: Path) -> Path:
    home = tmp_path / "nobody"
    home.mkdir()
    os.chown(home, NOBODY, NOBODY)
    tmp_path.chmod(0o755)
    return home


def intrude(dashboard: str, home: Path, *files: Path) -> dict[str, str]:
    """What ``tests/intruder.py`` got as uid 65534 (it drops root itself, once loaded)."""
    url = dashboard.removesuffix("/status")
    result = subprocess.run(
        [sys.executable, str(INTRUDER), str(NOBODY), url, *map(str, files)],
        capture_output=True,
        text=True,
        cwd="/",
        env={"HOME": str(home), "PATH": "/usr/bin:/bin", "TMPDIR": str(home)},
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["uid"] == NOBODY
    return report


def assert_refused(report: dict[str, str]) -> None:
    attempts = {k: v for k, v in report.items() if k not in ("uid", "address")}
    assert len(attempts) >= 3
    for what, outcome in attempts.items():
        assert outcome.startswith("refused"), f"{what}: {outcome}"


@pytest.fixture
def stand_in(tmp_path: Path) -> Iterator[Path]:
    state = tmp_path / "stack"
    hzz_ok("cluster", "up", "--dir", str(state), "--workers", "1", "--no-plotter")
    try:
        yield state
    finally:
        hzz("cluster", "down", "--dir", str(state))


@needs_root
@pytest.mark.cluster
def test_another_user_cannot_run_code_through_hzz_cluster(
    stand_in: Path, nobody_home: Path
) -> None:
    from distributed import Client

    saved = json.loads((stand_in / "state.json").read_text())
    assert saved["scheduler"].startswith("tls://")
    certificates = stand_in / "certificates"
    report = intrude(
        saved["dashboard"], nobody_home, certificates / CA_FILE, certificates / key_file("client")
    )
    assert report["address"] == saved["scheduler"]
    assert_refused(report)
    # The owner, with the client certificate, does run code: the refusals are the TLS.
    security = directory_security(certificates, "client")
    with Client(saved["scheduler"], timeout="20s", security=security) as client:
        assert list(client.run(os.getuid).values()) == [os.getuid()]


@needs_root
@pytest.mark.cluster
def test_another_user_cannot_run_code_through_hzz_runs_scheduler(
    tmp_path: Path, nobody_home: Path
) -> None:
    with trickle_server() as base:  # the run waits on it, its cluster up, for two minutes
        args = run_args(tmp_path, tmp_path / "out", "--samples", "data_A", "--timeout", "120")
        args[args.index("--data") + 1] = base
        _intrude_while_running(args, nobody_home)


def _intrude_while_running(args: list[str], nobody_home: Path) -> None:
    run = subprocess.Popen(
        [*HZZ, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        start_new_session=True,
    )
    try:
        assert run.stdout is not None
        dashboard = ""
        for line in run.stdout:
            if line.startswith("Dask dashboard:"):
                dashboard = line.split()[-1]
                break
        assert dashboard, run.stderr.read() if run.stderr else ""
        report = intrude(dashboard, nobody_home)
        assert report["address"].startswith("tls://127.0.0.1:")
        assert_refused(report)
        assert run.poll() is None, "the run ended before the intruder was done: a longer run"
    finally:
        os.killpg(run.pid, signal.SIGINT)
        run.communicate(timeout=120)


@pytest.mark.cluster
def test_the_embedded_clusters_workers_do_not_hold_the_broker_password() -> None:
    probe = """
import os
os.environ["HZZ_BROKER"] = "amqp://hzz:s3cret@broker:5672/"
from cluster.runtime.clusters import close_client, open_client
from tests.worker_probes import current_environment, start_environment
client, local = open_client(workers=1, dashboard_address=":0")
try:
    names = ["HZZ_BROKER"]
    print(client.run(start_environment, names), client.run(current_environment, names))
finally:
    close_client(client, local)
"""
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, timeout=180
    )
    assert result.returncode == 0, result.stderr
    assert "'HZZ_BROKER': None" in result.stdout and "s3cret" not in result.stdout, result.stdout
