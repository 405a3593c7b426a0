"""Live results: partial documents while a run computes, the final one unchanged; the
plotting service draws them into one live figure per run."""

from __future__ import annotations

import json
import re
import shutil
import urllib.error
import urllib.request
from dataclasses import replace
from pathlib import Path

import pytest
from distributed import Client

import analysis
from analysis.results.document import DocumentError, Progress, from_json
from analysis.results.outputs import LIVE_DIR, live_path, outputs_in
from analysis.results.plot import notes
from cluster.service.ledger import Ledger
from cluster.service.publisher import publish

from .helpers import (
    URL,
    Broker,
    Chromium,
    Plotter,
    hzz_ok,
    make_document,
    pngs,
    run_args,
    wait_for,
)


def timeless(raw: dict) -> dict:
    return {k: v for k, v in raw.items() if k != "created"}


@pytest.fixture(scope="module")
def standins(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """200 000 simulated llll events: 20 partitions of 10 000, a run of seconds."""
    out = tmp_path_factory.mktemp("standins")
    hzz_ok("generate", "--samples", "llll", "--events", "200000", "--out", str(out))
    return out


# --- the partial document ----------------------------------------------------------------


def test_a_partial_document_says_how_far_the_run_is() -> None:
    document = replace(make_document(), partial=Progress(3, 40, 1234, "20261202-120000-abc123"))
    raw = json.loads(document.to_json())
    assert raw["partial"] == {
        "done": 3,
        "total": 40,
        "events": 1234,
        "run": "20261202-120000-abc123",
    }
    assert from_json(document.to_json()).partial == document.partial
    assert "partial" not in json.loads(make_document().to_json())
    assert notes(document)[0] == "partial: 3/40 partitions (1,234 events read so far)"


@pytest.mark.parametrize(
    ("partial", "error"),
    [
        ({"done": 41, "total": 40, "events": 0}, "partial.done: must not exceed total"),
        ({"done": 1, "total": 0, "events": 0}, "partial.total"),
        ({"done": 1, "total": 2, "events": 0, "run": "../../etc"}, "partial.run"),
        ({"done": 1, "total": 2}, "partial.events: is required"),
        ({"done": 1, "total": 2, "events": 0, "extra": 1}, "partial"),
    ],
)
def test_a_wrong_partial_object_is_refused(partial: dict, error: str) -> None:
    raw = json.loads(make_document().to_json())
    raw["partial"] = partial
    with pytest.raises(DocumentError, match=re.escape(error)):
        from_json(json.dumps(raw))


def test_a_live_figure_is_named_by_its_run_only(tmp_path: Path) -> None:
    assert live_path(tmp_path, "run-1") == tmp_path / LIVE_DIR / "run-1.png"
    for bad in ("../x", "a/b", "", "x" * 65, "a.png"):
        with pytest.raises(ValueError):
            live_path(tmp_path, bad)


# --- runs --------------------------------------------------------------------------------


@pytest.mark.cluster
def test_on_partial_sees_the_run_grow_and_the_result_is_unchanged(
    client: Client, mirror: Path
) -> None:
    samples = ["data_A", "data_B", "Zee", "Zmumu"]
    batch = analysis.run(mirror, samples=samples, step_size=100)
    seen: list[analysis.AnalysisResult] = []
    live = analysis.run(
        mirror, samples=samples, step_size=100, on_partial=seen.append, partial_interval_s=0
    )
    assert timeless(live.document.to_dict()) == timeless(batch.document.to_dict())
    assert len(seen) >= 2
    progress = [r.document.partial for r in seen]
    total = progress[0].total
    assert [p.done for p in progress] == sorted({p.done for p in progress})
    assert all(0 < p.done < p.total == total for p in progress)
    for p, result in zip(progress, seen, strict=True):
        assert p.events == sum(s.n_in for s in result.samples.values())
    assert progress[-1].events <= sum(s.n_in for s in batch.samples.values())


@pytest.mark.broker
@pytest.mark.cluster
def test_a_live_run_publishes_partial_documents_then_the_same_final(
    tmp_path: Path, broker: Broker, mirror: Path, standins: Path
) -> None:
    samples = ["--samples", "data_A,Zee,llll", "--step-size", "10000", "--data", str(standins)]
    hzz_ok(*run_args(mirror, tmp_path / "batch", *samples))
    (batch,) = outputs_in(tmp_path / "batch", ".json")

    live = tmp_path / "live"
    run = hzz_ok(
        *run_args(mirror, live, *samples, "--live", "--live-interval", "0.1"),
        *["--broker", URL, *broker.names],
    )
    (run_id,) = re.findall(r"^live: partial documents of run (\S+) go to", run.stdout, re.M)
    (final_path,) = outputs_in(live, ".json")
    messages = []
    while True:
        method, properties, body = broker.channel.basic_get(broker.topology.queue, auto_ack=True)
        if method is None:
            break
        messages.append((properties, body))
    *partials, (_, final_body) = messages
    assert len(partials) >= 2
    assert all(p.correlation_id == run_id for p, _ in messages)
    documents = [from_json(body) for _, body in partials]
    assert all(d.partial is not None and d.partial.run == run_id for d in documents)
    done = [d.partial.done for d in documents]
    assert done == sorted(done) and done[-1] < documents[0].partial.total
    assert final_body == final_path.read_bytes()  # the final is the one written
    final = json.loads(final_body)
    assert "partial" not in final
    assert timeless(final) == timeless(json.loads(batch.read_bytes()))


@pytest.mark.cluster
def test_a_live_run_without_a_broker_draws_its_live_figure_here(
    tmp_path: Path, mirror: Path
) -> None:
    out = tmp_path / "plots"
    run = hzz_ok(*run_args(mirror, out, "--samples", "data_A,Zee", "--live"))
    (line,) = re.findall(r"^live figure: (\S+)$", run.stdout, re.M)
    (figure,) = pngs(out)
    assert Path(line).parent == out / LIVE_DIR
    assert Path(line).read_bytes() == figure.read_bytes()  # it ends as the result


# --- the plotting service ----------------------------------------------------------------


def partial_document(done: int, total: int, run: str, seed: int = 0) -> bytes:
    document = make_document(seed=seed)
    return replace(document, partial=Progress(done, total, 100 * done, run)).to_json()


@pytest.mark.broker
def test_the_plotter_keeps_one_live_figure_per_run_and_one_png(
    tmp_path: Path, broker: Broker, plotters: list
) -> None:
    out = tmp_path / "plots"
    # A burst queued before the plotter starts: only the newest of each run is drawn.
    for done in range(1, 6):
        publish(partial_document(done, 10, "run-a"), URL, broker.topology, run="run-a")
    publish(partial_document(2, 10, "run-b"), URL, broker.topology, run="run-b")
    plotter = Plotter(out, broker)
    plotters.append(plotter)
    wait_for(lambda: "run run-b: partial 2/10" in plotter.text(), "run-b's live figure")
    wait_for(lambda: "run run-a: partial 5/10" in plotter.text(), "run-a's live figure")
    assert len(re.findall(r"run run-a: partial \d+/10 partitions: drew", plotter.text())) == 1
    assert sorted(p.name for p in (out / LIVE_DIR).iterdir()) == ["run-a.png", "run-b.png"]
    assert pngs(out) == []
    assert not Ledger(out).path.exists() or Ledger(out).path.read_text() == ""

    # An older partial document changes nothing; the final makes the one PNG.
    drawn = (out / LIVE_DIR / "run-a.png").read_bytes()
    publish(partial_document(4, 10, "run-a"), URL, broker.topology, run="run-a")
    final = make_document(seed=7)
    publish(final.to_json(), URL, broker.topology, run="run-a")
    wait_for(lambda: len(pngs(out)) == 1, "the final figure")
    (figure,) = pngs(out)
    wait_for(
        lambda: (out / LIVE_DIR / "run-a.png").read_bytes() == figure.read_bytes(),
        "the live figure replaced by the result",
    )
    assert drawn != figure.read_bytes()
    # A partial document after the final one is not drawn over the result.
    publish(partial_document(9, 10, "run-a"), URL, broker.topology, run="run-a")
    wait_for(lambda: broker.counts() == 0, "the late partial document taken")
    wait_for(lambda: "run run-a: an older partial document" in plotter.text(), "its log line")
    assert (out / LIVE_DIR / "run-a.png").read_bytes() == figure.read_bytes()
    assert "partial 9/10" not in plotter.text()
    assert len(pngs(out)) == 1
    assert broker.counts(broker.topology.dead_letter_queue) == 0


PAGE_STATE = """JSON.stringify(Array.from(document.querySelectorAll("figure")).map((f) => ({
  id: f.id,
  updated: f.querySelector(".updated").textContent,
  src: f.querySelector("img").getAttribute("src"),
  width: f.querySelector("img").naturalWidth,
})))"""


@pytest.mark.broker
def test_the_live_page_shows_the_live_figure_in_a_browser(
    tmp_path: Path, broker: Broker, plotters: list
) -> None:
    if shutil.which("chromium") is None:
        pytest.skip("Debian's chromium is not installed here (.ci/run installs it as root)")
    out = tmp_path / "plots"
    plotter = Plotter(out, broker, "--live-port", "0")
    plotters.append(plotter)
    found = wait_for(
        lambda: re.search(r"live page: (http://127\.0\.0\.1:\d+/)", plotter.text()),
        "the live page's address",
    )
    url = found.group(1)
    publish(partial_document(3, 10, "run-page"), URL, broker.topology, run="run-page")
    wait_for(lambda: (out / LIVE_DIR / "run-page.png").exists(), "the live figure")

    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.headers["Content-Security-Policy"].startswith("default-src 'none'")
        assert "run-page" in response.read().decode()
    for path in ("/../plots/live/run-page.png", "/run-page.json", "/live/", "/.hzz-plotted"):
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(url.rstrip("/") + path, timeout=10)
        assert refused.value.code == 404, path
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(urllib.request.Request(url, data=b"x", method="POST"), timeout=10)
    assert refused.value.code == 501

    browser = Chromium(tmp_path / "profile")
    try:
        browser.call("Page.navigate", url=url)

        def shown() -> list[dict]:
            state = json.loads(browser.evaluate(PAGE_STATE) or "[]")
            return state if state and all(f["width"] > 0 for f in state) else []

        (first,) = wait_for(shown, "the live figure drawn in the page")
        assert first["id"] == "run-run-page"
        shot = browser.screenshot(tmp_path / "live-page.png")
        print(f"live page screenshot: {shot}")
        assert shot.stat().st_size > 10_000

        # The page reloads itself: a newer partial document shows without a navigation.
        publish(partial_document(6, 10, "run-page"), URL, broker.topology, run="run-page")
        wait_for(lambda: "partial 6/10" in plotter.text(), "the newer live figure")
        (newer,) = wait_for(
            lambda: [f for f in shown() if f["src"] != first["src"]], "the page reloaded"
        )
        assert newer["id"] == "run-run-page"
        browser.screenshot(tmp_path / "live-page-reloaded.png")
        print(f"live page screenshot after reload: {tmp_path / 'live-page-reloaded.png'}")
    finally:
        browser.close()


def test_partial_results_sum_each_file_and_keep_its_failures() -> None:
    import awkward as ak
    import numpy as np

    from analysis.inputs.catalogue import load_release
    from analysis.physics.summary import row_length, rows_total, summary_record
    from analysis.results.incremental import _per_file

    release = load_release("2020")
    rng = np.random.default_rng(1)
    rows = rng.random((5, row_length(release)))
    records = [
        summary_record(row, {"location": where}) for row, where in zip(rows, "aabab", strict=True)
    ]
    failed = summary_record(np.zeros(row_length(release)), {"location": "b", "exception": "E"})
    merged = _per_file(ak.concatenate([*records, failed]), release)
    assert sorted(merged["location"].to_list()) == ["a", "b", "b"]
    assert ak.sum(~ak.is_none(merged["exception"])) == 1
    ok = merged[ak.is_none(merged["exception"])]
    for where, picked in (("a", [0, 1, 3]), ("b", [2, 4])):
        (row,) = ok[ok["location"] == where]["row"].to_list()
        assert np.allclose(row, rows[picked].sum(axis=0), rtol=1e-15, atol=0)
    assert np.allclose(rows_total(ok, release), rows.sum(axis=0), rtol=1e-15, atol=0)
