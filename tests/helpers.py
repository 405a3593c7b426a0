"""What the tests share: where things are, the published numbers, running ``hzz``,
waiting for something, a small document, a corner of the real broker and a real plotter
process, a file server that trickles. Fixtures built on these are in ``conftest.py``."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import hist
import numpy as np
import pika

from analysis.inputs.binning import m4l_axis
from analysis.results.document import GroupStyle, HistogramDocument, SampleResult
from analysis.results.outputs import outputs_in
from cluster.service.amqp import Topology

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
MIRROR_2020 = SHARED_DATA / "atlas-opendata-2020" / "4lep"


def checkout_in(tmp_path: Path) -> Path:
    """A directory laid out as README and the docs assume: .venv in it, ``../shared`` beside it."""
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    (checkout / ".venv").symlink_to(ROOT / ".venv")
    (tmp_path / "shared").symlink_to(SHARED_DATA.parent)
    return checkout


#: The notebook's published numbers, shared with ``.ci/check_document.py``.
PUBLISHED = json.loads((ROOT / "tests" / "published.json").read_text(encoding="utf-8"))
PUBLISHED_COUNTS: dict[str, tuple[int, int]] = {
    name: (n_in, n_out) for name, (n_in, n_out) in PUBLISHED["counts"].items()
}
PUBLISHED_YIELDS: dict[str, float] = dict(PUBLISHED["yields"])
#: How close a yield must be to the published one (they are given to 7 digits).
YIELD_REL_TOL: float = PUBLISHED["yields_rel_tol"]
#: The samples whose files are in the shared mirror.
ON_DISK = list(PUBLISHED_COUNTS)

HZZ = [sys.executable, "-m", "cluster.cli"]
URL = "amqp://guest:guest@127.0.0.1:5672/"
UNREACHABLE = "amqp://guest:guest@127.0.0.1:1/"
WAIT_S = 120  # a generous bound for polls; tests never assert on timing


def hzz(
    *args: str, timeout: float = 300, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``hzz ARGS`` run from the repository root, as a user runs it, in this process's
    environment less its broker variables (a test names its broker) plus ``env``."""
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("HZZ_BROKER")}
    return subprocess.run(
        [*HZZ, *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**inherited, **(env or {})},
        timeout=timeout,
        check=False,
    )


def hzz_ok(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """``hzz`` that must exit 0: fails the test with the command's output otherwise."""
    result = hzz(*args, timeout=timeout)
    assert result.returncode == 0, f"hzz {' '.join(args)}: {result.stdout}\n{result.stderr}"
    return result


def run_args(data: Path, out: Path, *extra: str) -> list[str]:
    """``hzz run`` on ``data`` into ``out`` with one local worker and no progress bar."""
    return [
        "run",
        "--data",
        str(data),
        "--out",
        str(out),
        "--workers",
        "1",
        "--dashboard",
        ":0",
        "--no-progress",
        *extra,
    ]


def wait_for(
    predicate: Callable[[], object], what: str, timeout: float = WAIT_S, poll: float = 0.1
) -> object:
    """Poll until ``predicate()`` is truthy; fail with ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(poll)
    raise AssertionError(f"timed out waiting for {what}")


def free_port() -> int:
    """A TCP port free on loopback now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def make_document(n_samples: int = 2, seed: int = 0) -> HistogramDocument:
    """A small but real document; every call is unique (``created`` has microseconds)."""
    rng = np.random.default_rng(seed)
    groups = [
        GroupStyle("Data", "black", "data"),
        GroupStyle("Background $Z,t\\bar{t}$", "#6b59d3", "background"),
        GroupStyle("Signal ($m_H$ = 125 GeV)", "#00cdff", "signal"),
    ]
    samples = {}
    for i in range(n_samples):
        group = groups[i % 3].label
        h = hist.Hist(m4l_axis(), storage=hist.storage.Weight())
        weight = 1.0 if i % 3 == 0 else 0.2
        h.fill(rng.normal(125, 20, 50), weight=weight)
        samples[f"sample_{i}"] = SampleResult(group, 100, 50, float(h.sum().value), h)
    return HistogramDocument(
        release="2020", lumi_fb=10.0, groups=groups, samples=samples, created=datetime.now(UTC)
    )


def pngs(directory: Path) -> list[Path]:
    """The figures in ``directory``, by name."""
    return outputs_in(directory, ".png")


class Broker:
    """A test's own corner of the real broker: its exchange and queue, deleted after."""

    def __init__(self, topology: Topology | None = None) -> None:
        tag = uuid.uuid4().hex[:10]
        self.topology = topology or Topology(
            exchange=f"hzz-test-{tag}.x", queue=f"hzz-test-{tag}.q"
        )
        # No heartbeats on the test's own connection: it sits idle while a test waits
        # (minutes for a burst on a loaded machine) and must not be dropped meanwhile.
        self.connection = pika.BlockingConnection(pika.URLParameters(f"{URL}?heartbeat=0"))
        self.channel = self.connection.channel()
        self.channel.confirm_delivery()
        self.topology.declare(self.channel)

    @property
    def names(self) -> list[str]:
        """``--exchange`` and ``--queue`` of this corner, for an ``hzz`` command."""
        return ["--exchange", self.topology.exchange, "--queue", self.topology.queue]

    def counts(self, queue: str | None = None) -> int:
        """Messages ready in the queue (the main one by default)."""
        result = self.channel.queue_declare(queue or self.topology.queue, passive=True)
        return result.method.message_count

    def send_raw(self, body: bytes, **properties: object) -> None:
        """Publish anything, as a hostile or broken sender could."""
        self.channel.basic_publish(
            self.topology.exchange,
            self.topology.routing_key,
            body,
            pika.BasicProperties(delivery_mode=2, **properties),
            mandatory=True,
        )

    def dead_letters(self) -> list[tuple[pika.BasicProperties, bytes]]:
        found = []
        while True:
            method, properties, body = self.channel.basic_get(
                self.topology.dead_letter_queue, auto_ack=True
            )
            if method is None:
                return found
            found.append((properties, body))

    def close(self) -> None:
        t = self.topology
        for queue in (t.queue, t.dead_letter_queue):
            self.channel.queue_delete(queue)
        for exchange in (t.exchange, t.dead_letter_exchange):
            self.channel.exchange_delete(exchange)
        self.connection.close()


class Plotter:
    """A real ``hzz plotter`` process with its log in a file."""

    def __init__(self, out: Path, broker: Broker, *extra: str, env: dict | None = None) -> None:
        self.log = out.parent / f"plotter-{uuid.uuid4().hex[:6]}.log"
        command = [*HZZ, "plotter", "--out", str(out), "--broker", URL, *broker.names, *extra]
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
                env={**os.environ, **(env or {})},
            )

    def text(self) -> str:
        return self.log.read_text()

    def wait(self) -> int:
        return self.process.wait(timeout=WAIT_S)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


class _Trickle(BaseHTTPRequestHandler):
    """Answers HEAD at once; on GET sends one byte every half second, for ever."""

    size = 1_000_000

    def log_message(self, *args: object) -> None:  # quiet
        pass

    def _head(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(self.size))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()

    def do_HEAD(self) -> None:
        self._head()

    def do_GET(self) -> None:
        self._head()
        try:
            for _ in range(600):  # bounded: 5 minutes at most
                self.wfile.write(b"x")
                self.wfile.flush()
                time.sleep(0.5)
        except OSError:
            return


@contextmanager
def trickle_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Trickle)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


#: Headless Debian chromium, as ``.ci/dashboard_check.py`` runs it.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",  # root in CI
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--window-size=1200,1000",
    "--remote-debugging-port=0",
]


class Chromium:
    """A real headless Chromium with one page, driven over the DevTools protocol."""

    def __init__(self, profile: Path) -> None:
        import re

        self.process = subprocess.Popen(
            ["chromium", *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "about:blank"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.process.stderr is not None
        self.devtools = ""
        for line in self.process.stderr:
            found = re.search(r"DevTools listening on ws://([\d.]+:\d+)/", line)
            if found:
                self.devtools = f"http://{found.group(1)}"
                break
        if not self.devtools:
            self.close()
            raise RuntimeError("chromium did not start its DevTools server")
        self._id = 0

    def call(self, method: str, **params: object) -> dict:
        """One DevTools call on the first page, its result."""
        import asyncio

        import aiohttp

        async def call() -> dict:
            async with aiohttp.ClientSession() as session:
                async with session.get(f"{self.devtools}/json/list") as response:
                    pages = [t for t in await response.json() if t["type"] == "page"]
                async with session.ws_connect(
                    pages[0]["webSocketDebuggerUrl"], max_msg_size=0
                ) as socket_:
                    self._id += 1
                    await socket_.send_json({"id": self._id, "method": method, "params": params})
                    while True:
                        message = await socket_.receive_json(timeout=60)
                        if message.get("id") == self._id:
                            if "error" in message:
                                raise RuntimeError(f"{method}: {message['error']}")
                            return message.get("result", {})

        return asyncio.run(call())

    def evaluate(self, expression: str) -> object:
        """The value of a JavaScript expression in the page."""
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result.get("result", {}).get("value")

    def screenshot(self, path: Path) -> Path:
        import base64

        shot = self.call("Page.captureScreenshot", format="png")
        path.write_bytes(base64.b64decode(shot["data"]))
        return path

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        if self.process.stderr is not None:
            self.process.stderr.close()
