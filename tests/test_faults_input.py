"""Bad input that must stop at once with one line and exit 2 (never a traceback, a hang
or a retry for ever), and documents that must never be lost: each against the real
command, the real broker and real files."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from analysis.results.document import from_json
from cluster.service.ledger import png_message_id

from .helpers import URL, Broker, Plotter, hzz, make_document, pngs, run_args, wait_for


def _error_lines(stderr: str) -> list[str]:
    """The lines of an error, less argparse's usage block."""
    return [
        line
        for line in stderr.splitlines()
        if line.strip() and not line.startswith(("usage:", " "))
    ]


# --------------------------------------------------------------------------- options


@pytest.mark.faults
@pytest.mark.parametrize(
    ("option", "value", "expected"),
    [
        ("--worker-timeout", "inf", "--worker-timeout must be a finite number, not inf"),
        ("--worker-timeout", "1e400", "--worker-timeout must be a finite number, not inf"),
        ("--broker-timeout", "nan", "--broker-timeout must be a finite number, not nan"),
        ("--timeout", "-inf", "--timeout must be a finite number, not -inf"),
        ("--timeout", "-3", "--timeout must be positive"),
        ("--worker-timeout", "-0.5", "--worker-timeout must be positive"),
        ("--workers", "10000", "--workers must be at most"),
    ],
)
def test_an_option_out_of_range_is_one_line_exit_2(
    tmp_path: Path, mirror: Path, option: str, value: str, expected: str
) -> None:
    """Checked by the parser, before anything starts (before, ``inf`` failed deep in
    Dask, ``nan`` made the publisher retry for ever, 10000 workers were started)."""
    result = hzz(*run_args(mirror, tmp_path / "out"), f"{option}={value}", timeout=60)
    assert result.returncode == 2, result.stderr
    (line,) = _error_lines(result.stderr)
    assert line.startswith(f"hzz run: error: {expected}"), result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.faults
def test_too_many_workers_says_what_the_machine_can_start(tmp_path: Path) -> None:
    from cluster.defaults import most_local_workers

    most, _ = most_local_workers()
    for command in (["run", "--out", str(tmp_path)], ["cluster", "up", "--dir", str(tmp_path)]):
        result = hzz(*command, "--workers", str(most + 1), timeout=60)
        assert result.returncode == 2, result.stderr
        (line,) = _error_lines(result.stderr)
        assert f"--workers must be at most {most} on this machine" in line
        assert "per core" in line


# --------------------------------------------------------------------------- documents


def _document_with_a_huge_integer(tmp_path: Path) -> Path:
    """A valid document but for one count of 5000 digits (Python converts at most 4300)."""
    raw = json.loads(make_document().to_json())
    first = next(iter(raw["samples"]))
    text = json.dumps(raw).replace(
        f'"n_in": {raw["samples"][first]["n_in"]}', '"n_in": ' + "9" * 5000, 1
    )
    assert "9" * 5000 in text
    path = tmp_path / "huge.json"
    path.write_text(text)
    return path


@pytest.mark.faults
@pytest.mark.parametrize("command", ["publish", "fit"])
def test_a_5000_digit_integer_in_a_document_is_bad_input(tmp_path: Path, command: str) -> None:
    path = _document_with_a_huge_integer(tmp_path)
    extra = ["--broker", "amqp://guest:guest@127.0.0.1:1/"] if command == "publish" else []
    result = hzz(command, str(path), *extra, timeout=120)
    assert result.returncode == 2, result.stderr
    (line,) = _error_lines(result.stderr)
    assert line.startswith(f"hzz {command}: {path}: not a document: Exceeds the limit")
    assert "Traceback" not in result.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["huge.json"]  # nothing written


# --------------------------------------------------------------------------- data directory


@pytest.mark.faults
@pytest.mark.cluster
def test_a_symbolic_link_loop_in_data_is_named(tmp_path: Path, mirror: Path) -> None:
    """A loop where the run looks for a sample's file, and beside it: exit 2 naming the
    file and the loop (before: ``[Errno 40] Too many levels of symbolic links`` escaped
    the missing-file hint, exit 1)."""
    data = tmp_path / "data"
    (data / "Data").mkdir(parents=True)
    (data / "Data" / "data_A.4lep.root").symlink_to(mirror / "Data" / "data_A.4lep.root")
    (data / "MC").mkdir()
    (data / "MC" / "a").symlink_to("b")
    (data / "MC" / "b").symlink_to("a")
    (data / "MC" / "mc_361106.Zee.4lep.root").symlink_to("a")
    (data / "self").symlink_to("self")  # looked into for the layout hint
    out = tmp_path / "out"
    result = hzz(*run_args(data, out, "--samples", "data_A,Zee"))
    assert result.returncode == 2, result.stderr
    zee = data / "MC" / "mc_361106.Zee.4lep.root"
    assert f"{zee}: Too many levels of symbolic links" in result.stderr
    assert "Traceback" not in result.stderr
    assert not out.exists() or not any(out.iterdir())

    loop = tmp_path / "loop"
    loop.symlink_to("loop")
    result = hzz(*run_args(loop, out, "--samples", "data_A"), timeout=60)
    assert result.returncode == 2, result.stderr
    assert f"--data {loop}: Too many levels of symbolic links" in result.stderr


# --------------------------------------------------------------------------- broker


@pytest.fixture
def conflicting_queue(broker: Broker) -> Broker:
    """The test's queue deleted and declared again with other arguments, as another
    application might have: every later declaration with hzz's arguments is refused."""
    broker.channel.queue_delete(broker.topology.queue)
    broker.channel.queue_declare(broker.topology.queue, durable=True, arguments={"x-max-length": 7})
    broker.channel.queue_bind(
        broker.topology.queue, broker.topology.exchange, routing_key=broker.topology.routing_key
    )
    return broker


@pytest.mark.faults
@pytest.mark.broker
def test_a_queue_declared_with_other_arguments_stops_at_once(
    tmp_path: Path, conflicting_queue: Broker, mirror: Path
) -> None:
    """``PRECONDITION_FAILED`` is permanent: exit 2 on the first refusal, never a retry
    (before: ``hzz publish`` and ``hzz run --broker`` retried for the whole
    --broker-timeout, the plotter for ever)."""
    broker = conflicting_queue
    document = tmp_path / "doc.json"
    document.write_bytes(make_document().to_json())
    long_wait = ["--broker-timeout", "600"]  # the test would time out if it were retried
    publish = hzz("publish", str(document), "--broker", URL, *broker.names, *long_wait)
    assert publish.returncode == 2, publish.stderr
    assert "PRECONDITION_FAILED" in publish.stderr
    assert "retrying" not in publish.stderr
    assert f"document kept at {document}" in publish.stderr

    out = tmp_path / "run"
    run = hzz(*run_args(mirror, out, "--samples", "data_A", "--broker", URL), *broker.names,
              *long_wait)  # fmt: skip
    assert run.returncode == 2, run.stderr
    assert "PRECONDITION_FAILED" in run.stderr
    assert "retrying" not in run.stderr
    assert "document kept at" in run.stderr

    plotter = Plotter(tmp_path / "plots", broker)
    try:
        assert plotter.wait() == 2
    finally:
        plotter.stop()
    assert "PRECONDITION_FAILED" in plotter.text()
    assert "retrying" not in plotter.text()
    assert broker.counts() == 0


@pytest.mark.faults
@pytest.mark.broker
def test_a_different_document_under_a_used_message_id_is_drawn(
    tmp_path: Path, broker: Broker, plotters: list
) -> None:
    """The ledger knows a figure by the document's content: a second document sent under
    the first one's message id is drawn (before: acked as "already plotted", lost);
    the same document again is still recognised."""
    out = tmp_path / "plots"
    plotter = Plotter(out, broker)
    plotters.append(plotter)
    first, second = make_document(seed=1).to_json(), make_document(seed=2).to_json()
    assert first != second
    properties = {"content_type": "application/json", "message_id": "same-id"}
    for body in (first, second, first):
        broker.send_raw(body, **properties)
    wait_for(lambda: "already plotted" in plotter.text(), "the repeat of the first")
    wait_for(lambda: len(pngs(out)) == 2, "two figures")
    drawn = {png_message_id(png) for png in pngs(out)}
    assert drawn == {_sha256(first), _sha256(second)}
    assert plotter.text().count("already plotted") == 1
    assert broker.counts() == 0
    assert broker.counts(broker.topology.dead_letter_queue) == 0
    assert from_json(second)  # a valid document: drawn, not dead-lettered


def _sha256(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()
