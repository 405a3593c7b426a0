"""The RabbitMQ link against the real broker on 127.0.0.1:5672, with real plotter processes.

Every test has its own exchange and queue names (deleted afterwards), so tests never
see each other's messages nor the production ``hzz.plots`` queue.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import pickle
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from analysis.results.outputs import outputs_in, write_new
from cluster.service.ledger import PNG_KEY, Ledger, png_message_id
from cluster.service.plotter import PAUSE_ENV, REASON_HEADER
from cluster.service.publisher import GZIP_ABOVE_BYTES, message_id_for, publish

from .helpers import (
    UNREACHABLE,
    URL,
    Broker,
    Plotter,
    hzz,
    make_document,
    pngs,
    run_args,
    wait_for,
)

# --------------------------------------------------------------------------- tests


@pytest.mark.faults
@pytest.mark.broker
def test_publish_plot_resend_and_sigterm(tmp_path: Path, broker: Broker, plotters: list) -> None:
    """One PNG per document (gzip or not), none for a resend; SIGTERM exits 0; queue empty."""
    out = tmp_path / "plots"
    plotter = Plotter(out, broker)
    plotters.append(plotter)

    small = make_document()
    first = publish(small.to_json(), URL, broker.topology, timeout_s=30)
    assert first.encoding == "identity"
    assert first.message_id == message_id_for(small.to_json())
    wait_for(lambda: len(pngs(out)) == 1, "the first PNG")
    assert png_message_id(pngs(out)[0]) == first.message_id

    again = publish(small.to_json(), URL, broker.topology, timeout_s=30)  # e.g. `hzz publish`
    large = make_document(n_samples=40, seed=1)
    assert len(large.to_json()) > GZIP_ABOVE_BYTES
    second = publish(large.to_json(), URL, broker.topology, timeout_s=30)
    assert second.encoding == "gzip"
    assert second.wire_bytes < len(large.to_json())
    wait_for(lambda: len(pngs(out)) == 2, "the PNG of the gzipped document")

    wait_for(lambda: f"already plotted as {pngs(out)[0]}" in plotter.text(), "the resend's ack")
    assert f"message {again.message_id}: samples sample_0,sample_1: already" in plotter.text()
    assert png_message_id(pngs(out)[1]) == second.message_id
    assert broker.counts() == 0
    assert broker.counts(broker.topology.dead_letter_queue) == 0

    plotter.process.send_signal(signal.SIGTERM)
    assert plotter.wait() == 0
    assert "stopped" in plotter.text()
    assert len(pngs(out)) == 2
    assert broker.counts() == 0


class _Marker:
    """A pickle that creates a file when unpickled: proof of execution."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple:
        return (open, (str(self.path), "w"))


@pytest.mark.faults
@pytest.mark.broker
def test_bad_messages_are_dead_lettered_with_reason(
    tmp_path: Path, broker: Broker, plotters: list
) -> None:
    out = tmp_path / "plots"
    marker = tmp_path / "pwned"
    limit = 200_000
    plotter = Plotter(out, broker, "--max-bytes", str(limit))
    plotters.append(plotter)

    # The pickle is live: loading it elsewhere does create its file.
    probe = tmp_path / "probe"
    pickle.loads(pickle.dumps(_Marker(probe)))
    assert probe.exists()
    evil = pickle.dumps({"schema": "hzz.histograms/1", "x": _Marker(marker)})

    good = make_document()
    wrong_schema = json.loads(good.to_json())
    wrong_schema["schema"] = "hzz.histograms/9"
    padded = good.to_json() + b" " * (limit + 1)  # valid JSON, too big on the wire
    bomb = gzip.compress(good.to_json() + b" " * (5 * limit))  # small on the wire only
    json_type = {"content_type": "application/json"}
    cases = [
        ("garbage", os.urandom(300), json_type, "invalid document: not JSON"),
        ("bad json", b'{"schema": "hzz.histograms/1", ', json_type, "invalid document: not JSON"),
        ("wrong schema", json.dumps(wrong_schema).encode(), json_type, "invalid document: schema"),
        ("oversized", padded, json_type, f"exceeds the limit of {limit} bytes"),
        ("gzip bomb", bomb, {**json_type, "content_encoding": "gzip"}, "decompressed size"),
        ("bad gzip", b"\x1f\x8b not gzip", {**json_type, "content_encoding": "gzip"}, "corrupt"),
        ("pickle type", evil, {"content_type": "application/python-pickle"}, "content type"),
        ("pickle as json", evil, json_type, "invalid document: not JSON"),
        ("no type", good.to_json(), {}, "content type None"),
        ("deep nesting", b"[" * 100_000, json_type, "JSON nested too deeply"),
        ("bad encoding", good.to_json(), {**json_type, "content_encoding": "br"}, "encoding 'br'"),
    ]
    for name, body, properties, _ in cases:
        broker.send_raw(body, message_id=f"bad-{name.replace(' ', '-')}", **properties)
    publish(good.to_json(), URL, broker.topology, timeout_s=30)

    # One queue, one consumer: when the valid one is plotted, all bad ones are handled.
    wait_for(lambda: len(pngs(out)) == 1, "the valid message's PNG")
    assert plotter.process.poll() is None, "the service must keep going"
    dead = wait_for(
        lambda: broker.counts(broker.topology.dead_letter_queue) == len(cases), "dead letters"
    )
    assert dead
    dead = broker.dead_letters()
    assert [p.message_id for p, _ in dead] == [f"bad-{n.replace(' ', '-')}" for n, *_ in cases]
    for (properties, body), (name, sent, _, reason) in zip(dead, cases, strict=True):
        assert reason in properties.headers[REASON_HEADER], name
        assert body == sent, f"{name}: the dead letter keeps the original body"
        assert properties.headers["x-hzz-original-exchange"] == broker.topology.exchange
    log = plotter.text()
    assert log.count("dead-lettered:") == len(cases)
    assert not marker.exists(), "nothing from the network is ever executed"
    assert broker.counts() == 0
    assert len(pngs(out)) == 1


@pytest.mark.faults
@pytest.mark.broker
def test_killed_before_ack_gives_one_png(tmp_path: Path, broker: Broker, plotters: list) -> None:
    """SIGKILL after the PNG is written and before the ack: redelivered, not re-plotted."""
    out = tmp_path / "plots"
    first = Plotter(out, broker, env={PAUSE_ENV: "300"})
    plotters.append(first)
    sent = publish(make_document().to_json(), URL, broker.topology, timeout_s=30)
    wait_for(lambda: "pausing" in first.text(), "the plotter to reach the pause before ack")
    assert len(pngs(out)) == 1
    assert broker.counts() == 0  # delivered, unacked
    first.process.kill()
    first.process.wait()

    wait_for(lambda: broker.counts() == 1, "the broker to requeue the unacked message")
    second = Plotter(out, broker, "--once", "--timeout", "60")
    plotters.append(second)
    assert second.wait() == 0
    assert f"message {sent.message_id}" in second.text()
    assert "already plotted" in second.text()
    assert len(pngs(out)) == 1
    assert broker.counts() == 0


@pytest.mark.faults
def test_crash_between_png_and_ledger_record(tmp_path: Path) -> None:
    """Only ``begin`` in the ledger but the PNG written: the tagged PNG is found."""
    ledger = Ledger(tmp_path)
    from PIL import Image, PngImagePlugin

    text = PngImagePlugin.PngInfo()
    text.add_text(PNG_KEY, "id-1")
    buffer = io.BytesIO()
    Image.new("RGB", (2, 2)).save(buffer, format="png", pnginfo=text)
    png = buffer.getvalue()
    with ledger.locked():
        assert ledger.plotted("id-1") is None
        ledger.begin("id-1")
        written = write_new(tmp_path, {".png": png})[".png"]  # crash here: no `done`
    assert Ledger(tmp_path).plotted("id-1") == written
    assert Ledger(tmp_path).plotted("id-2") is None
    assert "done\tid-1\t" in ledger.path.read_text()


def _plotter_connection(queue: str) -> str | None:
    """The broker's pid of the plotter's connection (what ``close_connection`` takes)."""
    listing = subprocess.run(
        ["rabbitmqctl", "list_connections", "pid", "client_properties", "-q"],
        capture_output=True,
        text=True,
        check=True,
    )
    for line in listing.stdout.splitlines():
        if f"hzz-plotter {queue} pid" in line:
            return line.split("\t", 1)[0]
    return None


@pytest.mark.faults
@pytest.mark.broker
def test_reconnects_after_connection_dropped(
    tmp_path: Path, broker: Broker, plotters: list
) -> None:
    out = tmp_path / "plots"
    plotter = Plotter(out, broker)
    plotters.append(plotter)
    publish(make_document().to_json(), URL, broker.topology, timeout_s=30)
    wait_for(lambda: len(pngs(out)) == 1, "the first PNG")

    pid = _plotter_connection(broker.topology.queue)
    assert pid, "the plotter's connection is listed by the broker"
    subprocess.run(["rabbitmqctl", "close_connection", pid, "test: dropped"], check=True)
    wait_for(lambda: "broker link lost" in plotter.text(), "the plotter to notice")

    publish(make_document(seed=2).to_json(), URL, broker.topology, timeout_s=30)
    wait_for(lambda: len(pngs(out)) == 2, "the second PNG after reconnecting")
    assert plotter.text().count("connected to") == 2
    new_pid = wait_for(lambda: _plotter_connection(broker.topology.queue), "new connection")
    assert new_pid != pid
    assert broker.counts() == 0


@pytest.mark.faults
@pytest.mark.broker
@pytest.mark.cluster
def test_unreachable_broker_keeps_document_then_publish(
    tmp_path: Path, broker: Broker, plotters: list, mirror: Path
) -> None:
    """`hzz run --broker` to nowhere: clear error, JSON kept; `hzz publish` then delivers it."""
    out = tmp_path / "run"
    run = hzz(
        *run_args(mirror, out, "--samples", "data_A,Zee"),
        *["--broker", UNREACHABLE, "--broker-timeout", "2", *broker.names],
    )
    assert run.returncode == 1, run.stderr
    kept = outputs_in(out, ".json")
    assert len(kept) == 1
    assert not outputs_in(out, ".png"), "with --broker the figure is drawn by the service"
    assert "publishing to amqp://guest:***@127.0.0.1:1/ failed for 2 s" in run.stderr
    assert f"document kept at {kept[0]}; resend with: hzz publish {kept[0]}" in run.stderr

    bad = tmp_path / "bad.json"
    bad.write_text('{"schema": "nope"}')
    refused = hzz("publish", str(bad), "--broker", URL, *broker.names)
    assert refused.returncode == 2
    assert "schema" in refused.stderr

    sent = hzz("publish", str(kept[0]), "--broker", URL, *broker.names)
    assert sent.returncode == 0, sent.stderr
    assert message_id_for(kept[0].read_bytes()) in sent.stdout
    assert broker.counts() == 1

    plots = tmp_path / "plots"
    plotter = Plotter(plots, broker, "--once", "--timeout", "60")
    plotters.append(plotter)
    assert plotter.wait() == 0
    assert "samples data_A,Zee" in plotter.text()
    assert len(pngs(plots)) == 1
    assert pngs(plots)[0].stem == kept[0].stem  # named after the run's time
    assert broker.counts() == 0


@pytest.mark.broker
@pytest.mark.cluster
def test_run_with_broker_sends_the_figure_to_the_service(
    tmp_path: Path, broker: Broker, plotters: list, mirror: Path
) -> None:
    """`hzz run --broker`: the run writes only the JSON, the plotter writes the one PNG."""
    plots = tmp_path / "plots"
    plotter = Plotter(plots, broker, "--once", "--timeout", "120")
    plotters.append(plotter)
    out = tmp_path / "run"
    run = hzz(
        *["run", "--data", str(mirror), "--samples", "data_A,Zee", "--out", str(out)],
        *["--workers", "1", "--dashboard", ":0", "--no-progress", "--broker", URL],
        *broker.names,
    )
    assert run.returncode == 0, run.stderr
    kept = list(out.iterdir())
    assert [p.suffix for p in kept] == [".json"]
    assert f"published: {message_id_for(kept[0].read_bytes())}" in run.stdout
    assert plotter.wait() == 0
    assert [p.stem for p in pngs(plots)] == [kept[0].stem]
    assert broker.counts() == 0


@pytest.mark.broker
def test_health_check_passes_only_while_the_plotter_consumes(
    tmp_path: Path, broker: Broker, plotters: list
) -> None:
    beat = tmp_path / "plotter.alive"
    out = tmp_path / "plots"
    before = hzz("health", str(beat))
    assert before.returncode == 1 and "no heartbeat" in before.stderr
    plotter = Plotter(out, broker, "--health-file", str(beat))
    plotters.append(plotter)
    wait_for(lambda: hzz("health", str(beat)).returncode == 0, "the plotter's health check")
    assert json.loads(beat.read_text())["queue"] == broker.topology.queue
    # Healthy means consuming: a document sent now is drawn, and it stays healthy.
    assert (
        hzz(
            "publish",
            str(write_new(tmp_path, {".json": make_document().to_json()})[".json"]),
            "--broker",
            URL,
            *broker.names,
        ).returncode
        == 0
    )
    wait_for(lambda: pngs(out), "the figure")
    healthy = hzz("health", str(beat), "--max-age", "5")
    assert healthy.returncode == 0, healthy.stderr
    assert "consuming" in healthy.stdout
    plotter.process.send_signal(signal.SIGTERM)
    assert plotter.wait() == 0
    after = hzz("health", str(beat))
    assert after.returncode == 1 and "no heartbeat" in after.stderr


@pytest.mark.broker
def test_health_check_fails_while_the_broker_cannot_be_reached(
    tmp_path: Path, broker: Broker, plotters: list
) -> None:
    beat = tmp_path / "plotter.alive"
    plotter = Plotter(
        tmp_path / "plots", broker, "--broker", UNREACHABLE, "--health-file", str(beat)
    )
    plotters.append(plotter)
    wait_for(beat.exists, "the heartbeat file")
    result = hzz("health", str(beat))
    assert result.returncode == 1
    assert "state 'connecting'" in result.stderr
    assert plotter.process.poll() is None  # it keeps trying; the health check says why


def test_health_check_fails_on_a_stale_heartbeat(tmp_path: Path) -> None:
    beat = tmp_path / "plotter.alive"
    beat.write_text(json.dumps({"state": "consuming", "pid": 1}))
    assert hzz("health", str(beat), "--max-age", "30").returncode == 0
    old = time.time() - 120
    os.utime(beat, (old, old))
    stale = hzz("health", str(beat), "--max-age", "30")
    assert stale.returncode == 1
    assert re.search(r"last heartbeat 12\d s ago \(limit 30 s\)", stale.stderr), stale.stderr
