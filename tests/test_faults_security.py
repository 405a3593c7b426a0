"""Security faults against the real broker and real `hzz` processes.

* amqps:// works end to end through a TLS-terminating proxy with a throwaway CA, and
  an unverifiable broker certificate or an unreadable CA file is a clear failure;
* a broker password given on the command line or in the environment is never printed,
  also not in the errors for a wrong password or an unreachable broker, nor with -v;
* whatever a document holds (``../``, absolute paths, NUL bytes, times far in the past
  or future), the plotter writes only ``plot_….png`` files inside ``--out``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from analysis.results.document import DocumentError, from_json
from analysis.results.outputs import is_output_name
from cluster.service.ledger import png_message_id
from cluster.service.plotter import REASON_HEADER
from cluster.service.publisher import message_id_for, publish

from .helpers import URL, Broker, hzz, make_document, pngs, wait_for
from .tls_proxy import Certificates, TlsProxy, make_certificates

pytestmark = pytest.mark.faults

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def tls_proxy(certificates: Certificates) -> Iterator[TlsProxy]:
    proxy = TlsProxy(certificates, ("127.0.0.1", 5672))
    yield proxy
    proxy.close()


def saved_document(directory: Path) -> Path:
    path = directory / "document.json"
    path.write_bytes(make_document().to_json())
    return path


# --------------------------------------------------------------------------- TLS


@pytest.mark.broker
def test_amqps_publish_and_plot_through_tls(
    tmp_path: Path, broker: Broker, certificates: Certificates, tls_proxy: TlsProxy
) -> None:
    """publish and plotter over amqps://, the broker verified against HZZ_BROKER_CA."""
    url = f"amqps://guest:guest@localhost:{tls_proxy.port}/"
    env = {"HZZ_BROKER_CA": str(certificates.ca)}
    document = saved_document(tmp_path)
    sent = hzz("publish", str(document), "--broker", url, *broker.names, env=env)
    assert sent.returncode == 0, sent.stderr
    assert f"published: {message_id_for(document.read_bytes())}" in sent.stdout
    assert broker.counts() == 1

    out = tmp_path / "plots"
    plotter = hzz(
        *["plotter", "--once", "--timeout", "60", "--out", str(out), "--broker", url],
        *broker.names,
        env=env,
    )
    assert plotter.returncode == 0, plotter.stderr
    assert "connected to amqps://guest:***@localhost" in plotter.stderr
    assert [png_message_id(p) for p in pngs(out)] == [message_id_for(document.read_bytes())]
    assert broker.counts() == 0
    assert tls_proxy.handshakes == 2  # both went through TLS


@pytest.mark.broker
def test_amqps_refuses_an_unverified_broker_and_names_a_bad_ca_file(
    tmp_path: Path, broker: Broker, tls_proxy: TlsProxy
) -> None:
    url = f"amqps://guest:guest@localhost:{tls_proxy.port}/"
    document = saved_document(tmp_path)
    # The system CAs do not know the test CA: the handshake fails, nothing is sent.
    untrusted = hzz(
        "publish", str(document), "--broker", url, "--broker-timeout", "2", *broker.names
    )
    assert untrusted.returncode == 1
    assert "certificate verify failed" in untrusted.stderr
    assert "resend with: hzz publish" in untrusted.stderr
    missing = tmp_path / "no-such-ca.pem"
    bad_ca = hzz(
        *["publish", str(document), "--broker", url, *broker.names],
        env={"HZZ_BROKER_CA": str(missing)},
    )
    assert bad_ca.returncode == 1
    assert f"HZZ_BROKER_CA={missing}: cannot load the CA" in bad_ca.stderr
    assert broker.counts() == 0


# --------------------------------------------------------------------------- secrets


@pytest.mark.broker
@pytest.mark.cluster
def test_the_broker_password_is_never_printed(tmp_path: Path, broker: Broker, mirror: Path) -> None:
    secret = f"S3cret-{uuid.uuid4().hex[:12]}"
    wrong_password = f"amqp://guest:{secret}@127.0.0.1:5672/"
    unreachable = f"amqp://guest:{secret}@127.0.0.1:1/"
    document = str(saved_document(tmp_path))
    quick = ["--broker-timeout", "1", *broker.names]
    plotter = ["plotter", "--once", "--timeout", "2", "--out", str(tmp_path / "p"), *broker.names]
    run = [
        *["run", "--data", str(mirror), "--samples", "data_A", "--out", str(tmp_path / "r")],
        *["--workers", "1", "--dashboard", ":0", "--no-progress", *quick],
    ]
    cases: list[tuple[str, list[str], dict[str, str], str]] = [
        ("publish, wrong password", ["publish", document, "--broker", wrong_password, *quick], {},
         "ACCESS_REFUSED"),
        ("publish -v, wrong password",
         ["-v", "publish", document, "--broker", wrong_password, *quick], {}, "ACCESS_REFUSED"),
        ("publish, unreachable", ["publish", document, "--broker", unreachable, *quick], {},
         "failed for 1 s"),
        ("publish, env", ["publish", document, *quick], {"HZZ_BROKER": wrong_password},
         "ACCESS_REFUSED"),
        ("plotter, wrong password", [*plotter, "--broker", wrong_password], {}, "ACCESS_REFUSED"),
        ("plotter -v, unreachable", ["-v", *plotter, "--broker", unreachable], {},
         "failed for 2 s"),
        ("plotter, env", plotter, {"HZZ_BROKER": unreachable}, "failed for 2 s"),
        ("run, unreachable", [*run, "--broker", unreachable], {}, "document kept at"),
        ("run --help, env", ["run", "--help"], {"HZZ_BROKER": wrong_password}, "--broker"),
        ("plotter --help, env", ["plotter", "--help"], {"HZZ_BROKER": wrong_password},
         "--broker"),
    ]  # fmt: skip
    for name, args, env, expected in cases:
        result = hzz(*args, env=env)
        printed = result.stdout + result.stderr
        assert expected in printed, f"{name}: {printed}"
        assert secret not in printed, f"{name}: the password was printed"
        if "help" not in name:
            assert result.returncode == 1, name
            assert "guest:***@127.0.0.1" in printed, name
    assert broker.counts() == 0


# --------------------------------------------------------------------------- file names


def hostile_documents(tmp_path: Path) -> list[tuple[str, bytes]]:
    """Valid-looking documents whose strings try to steer a file name out of --out."""
    base = json.loads(make_document().to_json())
    outside = str(tmp_path / "escaped")

    def variant(**changes: object) -> bytes:
        return json.dumps({**base, **changes}).encode()

    sample = base["samples"]["sample_0"]
    group = base["groups"][1]["label"]
    evil_label = "../../escaped-group/\x00"
    relabelled = [{**g, "label": evil_label} if g["label"] == group else g for g in base["groups"]]
    samples_relabelled = {
        n: {**s, "group": evil_label} if s["group"] == group else s
        for n, s in base["samples"].items()
    }
    return [
        ("sample names", variant(samples={
            "../../escaped-sample": sample, outside: sample, "nul\x00byte": sample,
            "/etc/passwd": sample, "a/../../b\\..\\c": sample})),
        ("release ../", variant(release="../../../escaped-release")),
        ("release absolute", variant(release=outside)),
        ("release NUL", variant(release="2020\x00../x")),
        ("group label", variant(groups=relabelled, samples=samples_relabelled)),
        ("missing/generated", variant(missing=["../../x", outside], generated=["/etc/x"])),
        ("created year 1", variant(created="0001-01-01T00:00:00Z")),
        ("created year 9999", variant(created="9999-12-31T23:59:59Z")),
        ("created 1970", variant(created="1970-01-01T00:00:00Z")),
        ("created before year 1 in UTC", variant(created="0001-01-01T00:00:00+05:00")),
        ("created after 9999 in UTC", variant(created="9999-12-31T23:59:59-05:00")),
        ("created with a path", variant(created="2026-01-01T00:00:00/../../escaped")),
        ("created with NUL", variant(created="2026-01-01T00:00:00\x00")),
        ("created absolute", variant(created=outside)),
    ]  # fmt: skip


@pytest.mark.broker
def test_hostile_documents_never_write_outside_out(tmp_path: Path, broker: Broker) -> None:
    sandbox = tmp_path / "sandbox"
    out = sandbox / "plots"
    sandbox.mkdir()
    log = tmp_path / "plotter.log"
    command = [sys.executable, "-m", "cluster.cli", "plotter", "--out", str(out)]
    command += ["--broker", URL, *broker.names]
    with log.open("wb") as handle:
        plotter = subprocess.Popen(
            command,
            stdout=handle,
            stderr=subprocess.STDOUT,
            cwd=sandbox,  # relative names would land here
        )
    try:
        documents = hostile_documents(tmp_path)
        for _, body in documents:
            publish(body, URL, broker.topology, timeout_s=30)
        sentinel = publish(make_document(seed=5).to_json(), URL, broker.topology, timeout_s=30)
        # One consumer, one queue, in order: once the sentinel is plotted all are handled.
        wait_for(
            lambda: any(png_message_id(p) == sentinel.message_id for p in pngs(out)),
            "the sentinel's PNG",
        )
        assert plotter.poll() is None, "no document may stop the service"
    finally:
        plotter.kill()
        plotter.wait()

    written = {png_message_id(p) for p in pngs(out)}
    dead = {p.message_id: p.headers[REASON_HEADER] for p, _ in broker.dead_letters()}
    for name, body in documents:
        key = message_id_for(body)
        assert (key in written) != (key in dead), f"{name}: plotted once or dead-lettered"
    assert len(written) + len(dead) == len(documents) + 1
    for name in (
        "created with a path",
        "created absolute",
        "created before year 1 in UTC",
        "created after 9999 in UTC",
    ):
        assert "invalid document: created" in dead[message_id_for(dict(documents)[name])], name
    # Python reads a trailing NUL as the end of the time: the name is the time's alone.
    plotted = ("created year 1", "created year 9999", "created 1970", "created with NUL")
    for name in (*plotted, "sample names", "missing/generated"):
        assert message_id_for(dict(documents)[name]) in written, name
    # Only plot_….png files (and the ledger and in-hand records) inside --out; nothing else.
    inside = sorted(p.name for p in out.iterdir())
    ledger = {".hzz-plotted", ".hzz-plotted.lock", ".hzz-in-hand", ".hzz-in-hand.lock"}
    assert all(is_output_name(n, ".png") for n in inside if n not in ledger), inside
    assert len([n for n in inside if n.endswith(".png")]) == len(written)
    assert {p.name for p in out.glob("plot_01_01_01-00-00*.png")}
    assert {p.name for p in out.glob("plot_31_12_99-23-59*.png")}
    assert {p.name for p in out.glob("plot_01_01_26-00-00*.png")}
    everything = {p.relative_to(tmp_path) for p in tmp_path.rglob("*")}
    assert everything == {Path("plotter.log"), Path("sandbox"), Path("sandbox/plots")} | {
        Path("sandbox/plots") / n for n in inside
    }
    assert broker.counts() == 0


@pytest.mark.parametrize(
    "created", ["0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-05:00", "../../x", "/tmp/x"]
)
def test_a_created_time_no_file_name_can_hold_is_a_document_error(created: str) -> None:
    raw = json.loads(make_document().to_json())
    raw["created"] = created
    with pytest.raises(DocumentError, match="created"):
        from_json(json.dumps(raw))


def test_selftest_names_where_it_looked_when_the_tests_are_absent(tmp_path: Path) -> None:
    """An installation without the repository's tests/ says so (exit 2), it does not crash."""
    script = (
        "import sys, cluster.commands.selftest as selftest\n"
        "selftest.__file__ = sys.argv[1]\n"
        "from cluster.cli import main\n"
        "sys.exit(main(['selftest', '--faults']))\n"
    )
    fake = tmp_path / "site" / "cluster" / "commands" / "selftest.py"
    result = subprocess.run(
        [sys.executable, "-c", script, str(fake)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert result.returncode == 2
    assert "no tests found" in result.stderr
    assert str(tmp_path / "site") in result.stderr
