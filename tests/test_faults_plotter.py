"""The plotting service against messages that would stop it and surroundings that fail.

Real ``hzz plotter`` processes on the real broker (each test its own queue): poison
documents of every kind in one queue ahead of a good one, a drawing process that hangs
or dies, a document that kills the plotter process itself (again and again), and an
output directory that is full or not a directory. Whatever follows from a message
dead-letters it with a reason; a fault of the surroundings keeps the
message, and the service stays up, says so in its health file, and goes on once the
fault is gone.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from cluster.defaults import DEFAULT_CRASH_LIMIT
from cluster.service.inhand import InHand, body_key
from cluster.service.ledger import png_message_id
from cluster.service.plotter import REASON_HEADER
from cluster.service.publisher import message_id_for, publish

from .helpers import ROOT, URL, Broker, Plotter, make_document, pngs, wait_for

pytestmark = [pytest.mark.faults, pytest.mark.broker]


def variant(base: dict, **changes: object) -> bytes:
    return json.dumps({**base, **changes}).encode()


def relabel(base: dict, label: str) -> bytes:
    """The document with its background group renamed to ``label``."""
    old = base["groups"][1]["label"]
    groups = [{**g, "label": label} if g["label"] == old else g for g in base["groups"]]
    samples = {
        n: {**s, "group": label} if s["group"] == old else s for n, s in base["samples"].items()
    }
    return variant(base, groups=groups, samples=samples)


def poison_documents() -> list[tuple[str, bytes, str]]:
    """(name, body, what the dead-letter reason must say) for each kind of poison."""
    base = json.loads(make_document(n_samples=3).to_json())
    huge = json.loads(make_document(n_samples=3).to_json())
    first = next(iter(huge["samples"].values()))
    first["hist"]["storage"]["values"] = [1e308] * len(first["hist"]["storage"]["values"])
    for sample in huge["samples"].values():
        sample["group"] = huge["groups"][1]["label"]
    second = list(huge["samples"].values())[1]
    second["hist"]["storage"]["values"] = [1e308] * len(second["hist"]["storage"]["values"])
    bad_colour = [{**g, "colour": "not-a-colour"} for g in base["groups"]]
    forged = "x\n2030-01-01 00:00:00 INFO forged: all good"
    orphan = {**next(iter(base["samples"].values())), "group": "no such group"}
    return [
        # Drawn, these names took minutes and then failed: now capped before drawing.
        (
            "20000 generated names",
            variant(base, generated=[f"stand-in {i:05d}" for i in range(20000)], groups=[
                {**g, "colour": "not-a-colour"} for g in base["groups"]
            ]),
            "invalid document: generated: 20000 entries",
        ),
        ("a 5000-character label", relabel(base, "L" * 5000), "characters, at most"),
        ("broken mathtext", relabel(base, r"$\frac$"), "rendering failed: ValueError"),
        ("an unknown colour", variant(base, groups=bad_colour), "rendering failed"),
        ("a stack summing to infinity", json.dumps(huge).encode(), "rendering failed"),
        ("a forged log line", variant(base, samples={**base["samples"], forged: orphan}), "x\\n"),
        ("a lone surrogate", variant(base, samples={"\ud800": orphan}), "\\ud800"),
    ]  # fmt: skip


def test_poison_documents_are_dead_lettered_and_the_good_one_drawn(
    tmp_path: Path,
    broker: Broker,
    plotters: list,
) -> None:
    out = tmp_path / "plots"
    plotter = Plotter(out, broker)
    plotters.append(plotter)
    poison = poison_documents()
    for _, body, _ in poison:
        publish(body, URL, broker.topology, timeout_s=30)
    good = publish(make_document(seed=7).to_json(), URL, broker.topology, timeout_s=30)
    wait_for(lambda: any(png_message_id(p) == good.message_id for p in pngs(out)), "the good PNG")
    assert plotter.process.poll() is None, "no message may stop the service"
    assert len(pngs(out)) == 1
    dead = {p.message_id: p.headers.get(REASON_HEADER, "") for p, _ in broker.dead_letters()}
    for name, body, reason in poison:
        key = message_id_for(body)
        assert key in dead, f"{name}: not dead-lettered"
        assert reason in dead[key], f"{name}: {dead[key]!r}"
        assert "\n" not in dead[key]
    assert broker.counts() == 0
    # Text a message brings never starts a log line of its own.
    assert "forged" in plotter.text()
    assert not [line for line in plotter.text().splitlines() if line.startswith("2030-01-01")]


def _render_child(plotter: Plotter) -> psutil.Process:
    """The plotter's drawing process, caught while it draws."""

    def child() -> psutil.Process | None:
        try:
            found = psutil.Process(plotter.process.pid).children()
        except psutil.NoSuchProcess:
            return None
        return found[0] if found else None

    return wait_for(child, "a drawing process", timeout=120)  # type: ignore[return-value]


@pytest.mark.parametrize("fault", ["hangs", "dies"])
def test_a_drawing_that_hangs_or_dies_is_dead_lettered(
    tmp_path: Path,
    broker: Broker,
    plotters: list,
    fault: str,
) -> None:
    out = tmp_path / "plots"
    plotter = Plotter(out, broker, "--render-timeout", "20")
    plotters.append(plotter)
    stuck = publish(make_document(seed=1).to_json(), URL, broker.topology, timeout_s=30)
    child = _render_child(plotter)
    child.send_signal(signal.SIGSTOP if fault == "hangs" else signal.SIGKILL)
    after = publish(make_document(seed=2).to_json(), URL, broker.topology, timeout_s=30)
    wait_for(lambda: any(png_message_id(p) == after.message_id for p in pngs(out)), "next PNG")
    dead = {p.message_id: p.headers[REASON_HEADER] for p, _ in broker.dead_letters()}
    expected = "rendering took longer than 20 s" if fault == "hangs" else "killed by signal 9"
    assert expected in dead[stuck.message_id]
    assert plotter.process.poll() is None
    assert not psutil.pid_exists(child.pid) or child.status() == psutil.STATUS_ZOMBIE


def test_the_drawing_process_dies_with_a_killed_plotter(
    tmp_path: Path,
    broker: Broker,
    plotters: list,
) -> None:
    """A plotter SIGKILLed while it draws leaves no drawing process behind, not even a
    hung one."""
    out = tmp_path / "plots"
    plotter = Plotter(out, broker)
    plotters.append(plotter)
    publish(make_document(seed=8).to_json(), URL, broker.topology, timeout_s=30)
    child = _render_child(plotter)
    child.suspend()  # a drawing that hangs
    plotter.process.kill()
    plotter.process.wait()

    def gone() -> bool:
        try:
            return child.status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return True

    wait_for(gone, "the orphaned drawing process to end")
    assert not pngs(out)


def _kill_while_handling(plotter: Plotter, in_hand: InHand, key: str, start: int) -> None:
    """SIGKILL the plotter process itself (as the OOM killer would) while it handles the
    message ``key`` for the ``start``-th time (its record says so)."""
    wait_for(lambda: in_hand.pending().get(key) == start, f"start {start}", timeout=120)
    parent = psutil.Process(plotter.process.pid)
    parent.suspend()  # no new drawing process from here on
    drawing = parent.children(recursive=True)
    parent.kill()
    plotter.process.wait()
    for child in drawing:  # an orphaned drawing process is no part of the fault
        with contextlib.suppress(psutil.NoSuchProcess):
            child.kill()


def test_a_document_that_keeps_killing_the_plotter_is_dead_lettered(
    tmp_path: Path,
    broker: Broker,
    plotters: list,
) -> None:
    """Each delivery of the poison document kills the plotter process itself; each restart
    gets it again. After DEFAULT_CRASH_LIMIT such stops the next plotter dead-letters it
    unhandled, with the reason, draws the document behind it and stays up."""
    out = tmp_path / "plots"
    in_hand = InHand(out)
    body = make_document(seed=5).to_json()
    poison = publish(body, URL, broker.topology, timeout_s=30)
    key = body_key(body)
    for stop in range(1, DEFAULT_CRASH_LIMIT + 1):
        plotter = Plotter(out, broker)
        plotters.append(plotter)
        _kill_while_handling(plotter, in_hand, key, stop)
        assert not pngs(out), "killed before its figure was written"
        wait_for(lambda: broker.counts() == 1, "the broker to requeue the unacked message")
    good = publish(make_document(seed=6).to_json(), URL, broker.topology, timeout_s=30)
    plotter = Plotter(out, broker)
    plotters.append(plotter)
    wait_for(lambda: any(png_message_id(p) == good.message_id for p in pngs(out)), "the good PNG")
    dead = {p.message_id: p.headers.get(REASON_HEADER, "") for p, _ in broker.dead_letters()}
    reason = f"the plotter stopped while handling this message {DEFAULT_CRASH_LIMIT} times"
    assert dead == {poison.message_id: reason}
    assert f"message {poison.message_id}: dead-lettered: {reason}" in plotter.text()
    assert plotter.process.poll() is None, "the service stays up"
    assert len(pngs(out)) == 1
    assert broker.counts() == 0
    assert in_hand.pending() == {}, "every settled message's count is cleared"


def health(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "cluster.cli", "health", str(path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )


def test_an_output_that_is_not_a_directory_keeps_the_message_and_the_service_up(
    tmp_path: Path,
    broker: Broker,
    plotters: list,
) -> None:
    out = tmp_path / "plots"
    out.write_text("a file where the figures should go\n")
    beat = tmp_path / "health"
    plotter = Plotter(out, broker, "--health-file", str(beat))
    plotters.append(plotter)
    sent = publish(make_document(seed=3).to_json(), URL, broker.topology, timeout_s=30)
    wait_for(lambda: "not consuming" in plotter.text(), "the fault in the log")
    wait_for(lambda: beat.exists() and "not consuming" in beat.read_text(), "the health state")
    status = health(beat)
    assert status.returncode == 1 and "not consuming" in status.stdout + status.stderr
    wait_for(lambda: broker.counts() == 1, "the message kept in the queue")
    assert plotter.process.poll() is None
    out.unlink()
    wait_for(lambda: any(png_message_id(p) == sent.message_id for p in pngs(out)), "the PNG")
    wait_for(lambda: health(beat).returncode == 0, "healthy again")
    assert broker.counts(broker.topology.dead_letter_queue) == 0


@pytest.fixture
def small_disk(tmp_path: Path):
    """A 4 MiB tmpfs of its own (root only), unmounted afterwards."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(directory: Path) -> Path:
    """Fill the file system of ``directory`` up to the last few KiB."""
    ballast = directory / "ballast"
    fd = os.open(ballast, os.O_WRONLY | os.O_CREAT)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError:
        pass
    finally:
        os.close(fd)
    return ballast


def test_a_full_disk_keeps_the_message_and_the_service_up(
    tmp_path: Path,
    small_disk: Path,
    broker: Broker,
    plotters: list,
) -> None:
    out = small_disk / "plots"
    beat = tmp_path / "health"
    plotter = Plotter(out, broker, "--health-file", str(beat))
    plotters.append(plotter)
    wait_for(lambda: beat.exists() and "consuming" in beat.read_text(), "consuming")
    ballast = fill(small_disk)
    sent = publish(make_document(seed=4).to_json(), URL, broker.topology, timeout_s=30)
    wait_for(lambda: "No space left on device" in plotter.text(), "the full disk in the log")
    wait_for(lambda: "not consuming" in beat.read_text(), "the health state")
    assert plotter.process.poll() is None
    assert not list(out.glob(".tmp-*")), "no partial file left"
    wait_for(lambda: broker.counts() == 1, "the message back in the queue")
    ballast.unlink()
    wait_for(lambda: any(png_message_id(p) == sent.message_id for p in pngs(out)), "the PNG")
    assert broker.counts(broker.topology.dead_letter_queue) == 0
    assert len(pngs(out)) == 1
    assert plotter.process.poll() is None
    os.sync()
