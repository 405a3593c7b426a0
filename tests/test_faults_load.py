"""Load: a burst of 200 documents to one real `hzz plotter` process.

Every document is plotted exactly once, into its own file (all 200 fall in the same
minute, so the names are plot_…, plot_…_2 … plot_…_200), nothing is lost or
dead-lettered. The plotter's resident memory after 20 and after 200 figures is
printed (run with -s to see it); nothing asserts on it or on time.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cluster.service.ledger import png_message_id
from cluster.service.publisher import publish

from .helpers import URL, Broker, Plotter, make_document, pngs, wait_for

pytestmark = [pytest.mark.faults, pytest.mark.broker]

BURST = 200
STEM = "plot_01_01_26-12-00"  # every document's `created` is in 2026-01-01 12:00 UTC


def memory_kib(pid: int) -> dict[str, int]:
    """VmRSS (now) and VmHWM (peak) of a process, from /proc, in KiB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0])
    return fields


def same_minute_documents(count: int) -> list[bytes]:
    """``count`` distinct documents, all created within one minute."""
    bodies = []
    for i in range(count):
        raw = json.loads(make_document(seed=i).to_json())
        raw["created"] = f"2026-01-01T12:00:{i % 60:02d}.{i:06d}Z"
        bodies.append(json.dumps(raw).encode())
    return bodies


def test_a_burst_of_200_documents_is_plotted_once_each(tmp_path: Path, broker: Broker) -> None:
    out = tmp_path / "plots"
    plotter = Plotter(out, broker)
    try:
        sent = [
            publish(b, URL, broker.topology, timeout_s=30) for b in same_minute_documents(BURST)
        ]
        assert len({s.message_id for s in sent}) == BURST

        # the test's own broker link idles meanwhile: keep servicing its heartbeats
        def plotted(n: int) -> bool:
            broker.connection.process_data_events(time_limit=0)
            return len(pngs(out)) >= n

        wait_for(lambda: plotted(20), "20 figures", timeout=600)
        after_20 = memory_kib(plotter.process.pid)
        wait_for(lambda: plotted(BURST), f"{BURST} figures", timeout=1200)
        wait_for(lambda: broker.counts() == 0, "the queue to drain")
        after_200 = memory_kib(plotter.process.pid)
        assert plotter.process.poll() is None
    finally:
        plotter.stop()

    print(
        f"\nplotter memory: VmRSS after 20 figures {after_20['VmRSS']} KiB, "
        f"after {BURST} {after_200['VmRSS']} KiB; peak VmHWM {after_200['VmHWM']} KiB"
    )
    names = sorted(p.name for p in pngs(out))
    expected = [f"{STEM}.png"] + [f"{STEM}_{n}.png" for n in range(2, BURST + 1)]
    assert names == sorted(expected)
    tags = [png_message_id(p) for p in pngs(out)]
    assert sorted(tags) == sorted(s.message_id for s in sent), "each document exactly once"
    log = plotter.text()
    assert log.count(": wrote ") == BURST
    assert "dead-lettered" not in log
    assert broker.counts(broker.topology.dead_letter_queue) == 0
    done = [line for line in (out / ".hzz-plotted").read_text().splitlines() if line[:4] == "done"]
    assert len(done) == BURST
