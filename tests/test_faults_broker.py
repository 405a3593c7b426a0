"""Publishing to a broker that blocks publishers: a RabbitMQ memory alarm, for real.

A broker low on memory or disk sends ``connection.blocked`` and stops reading from
publishing connections: a publish would wait for ever. The shared broker on port 5672
must never be alarmed, so each test here starts a private RabbitMQ node of its own
(own node name, ports, data, logs, Erlang cookie and no plugins, all under the test's
temporary directory), raises the alarm there and stops the node afterwards.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pika
import pytest

from analysis.results.outputs import outputs_in
from cluster.service.publisher import message_id_for

from .helpers import ROOT, free_port, hzz, make_document, pngs, wait_for

pytestmark = [pytest.mark.faults, pytest.mark.broker]

#: The broker's own scripts: Debian's /usr/sbin wrappers switch to the rabbitmq user and
#: write the shared node's startup log, so the private node runs them directly.
RABBITMQ_BIN = Path("/usr/lib/rabbitmq/bin")
#: A node starts in a few seconds; on a loaded two-core machine it can take a minute.
START_S = 90


def _tool(name: str) -> str | None:
    own = RABBITMQ_BIN / name
    return str(own) if own.exists() else shutil.which(name)


class PrivateBroker:
    """A RabbitMQ node of a test's own on 127.0.0.1 (guest/guest, loopback only)."""

    def __init__(self, base: Path) -> None:
        server, ctl = _tool("rabbitmq-server"), _tool("rabbitmqctl")
        if server is None or ctl is None:
            pytest.skip("rabbitmq-server is not installed")
        self.ctl_path = ctl
        self.node = f"hzz-blocked-{uuid.uuid4().hex[:8]}@localhost"
        self.port = free_port()
        self.url = f"amqp://guest:guest@127.0.0.1:{self.port}/"
        home = base / "home"  # its own Erlang cookie: no way to reach another node
        for folder in ("home", "mnesia", "log"):
            (base / folder).mkdir()
        (base / "rabbitmq.conf").write_text("loopback_users.guest = true\n")
        (base / "enabled_plugins").write_text("[].\n")  # no management listener on 15672
        (base / "rabbitmq-env.conf").write_text("")  # not the system's: it names rabbit@
        self.env = {
            **os.environ,
            "HOME": str(home),
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(free_port()),
            "RABBITMQ_MNESIA_BASE": str(base / "mnesia"),
            "RABBITMQ_LOG_BASE": str(base / "log"),
            "RABBITMQ_PID_FILE": str(base / "rabbitmq.pid"),
            "RABBITMQ_CONFIG_FILE": str(base / "rabbitmq.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(base / "enabled_plugins"),
            "RABBITMQ_CONF_ENV_FILE": str(base / "rabbitmq-env.conf"),
        }
        self.pid_file = base / "rabbitmq.pid"
        self.output = base / "server.log"
        with self.output.open("wb") as log:
            self.process = subprocess.Popen(
                [server],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                start_new_session=True,  # its own process group: stopped as one
            )
        try:
            self._await_startup()
        except BaseException:
            self.stop()
            raise

    def ctl(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run(
            [self.ctl_path, "-n", self.node, *args],
            capture_output=True,
            text=True,
            env=self.env,
            timeout=timeout,
        )

    def _await_startup(self) -> None:
        # await_startup fails at once until the node has registered its name: poll.
        deadline = time.monotonic() + START_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"the private broker exited: {self.output.read_text()}")
            if self.ctl("await_startup", "--timeout", "30").returncode == 0:
                return
            time.sleep(1)
        raise AssertionError(f"the private broker did not start in {START_S} s")

    def queue_depth(self, queue: str) -> int:
        connection = pika.BlockingConnection(pika.URLParameters(self.url))
        try:
            declared = connection.channel().queue_declare(queue, passive=True)
            return declared.method.message_count
        finally:
            connection.close()

    def drain(self, queue: str) -> list[str]:
        """The message ids of everything in ``queue``, taken out of it."""
        connection = pika.BlockingConnection(pika.URLParameters(self.url))
        try:
            channel = connection.channel()
            found = []
            while True:
                method, properties, _ = channel.basic_get(queue, auto_ack=True)
                if method is None:
                    return found
                found.append(properties.message_id)
        finally:
            connection.close()

    def stop(self) -> None:
        """Stop the node; kill whatever of it is left."""
        if self.process.poll() is None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.ctl("stop", timeout=60)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=30)
        with contextlib.suppress(ProcessLookupError):  # its process group holds the VM
            os.killpg(self.process.pid, signal.SIGKILL)
        with contextlib.suppress(OSError, ValueError):  # the VM, should it have left it
            os.kill(int(self.pid_file.read_text().strip()), signal.SIGKILL)
        self.process.wait()


@pytest.fixture
def private_broker(tmp_path: Path) -> Iterator[PrivateBroker]:
    base = tmp_path / "rabbitmq"
    base.mkdir()
    node = PrivateBroker(base)
    yield node
    node.stop()


def test_a_broker_in_a_memory_alarm_fails_the_publish_within_the_broker_timeout(
    tmp_path: Path, private_broker: PrivateBroker, mirror: Path
) -> None:
    broker = private_broker
    alarm = broker.ctl("set_vm_memory_high_watermark", "0.000001")
    assert alarm.returncode == 0, alarm.stderr
    listed = broker.ctl("list_queues")  # any command: the alarm is raised when set
    assert listed.returncode == 0
    tag = uuid.uuid4().hex[:8]
    names = ["--exchange", f"hzz-blocked-{tag}.x", "--queue", f"hzz-blocked-{tag}.q"]

    out = tmp_path / "run"
    run = hzz(
        *["run", "--data", str(mirror), "--samples", "data_A,Zee", "--out", str(out)],
        *["--workers", "1", "--dashboard", ":0", "--no-progress"],
        *["--broker", broker.url, "--broker-timeout", "5", *names],
        timeout=300,  # a cluster's start and the computation, then at most 5 s blocked
    )
    assert run.returncode == 1, run.stderr
    assert "guest:guest" not in run.stdout + run.stderr
    assert f"publishing to amqp://guest:***@127.0.0.1:{broker.port}/ failed for 5 s" in run.stderr
    assert (
        "the broker blocked publishing (connection.blocked: a memory or disk alarm on the "
        "broker) and did not unblock within" in run.stderr
    ), run.stderr
    kept = outputs_in(out, ".json")
    assert len(kept) == 1, "the document is kept"
    assert f"document kept at {kept[0]}; resend with: hzz publish {kept[0]}" in run.stderr

    # The resend, still blocked: the same bounded failure, the file untouched.
    before = kept[0].read_bytes()
    again = hzz("publish", str(kept[0]), "--broker", broker.url, "--broker-timeout", "5", *names,
                timeout=60)  # fmt: skip
    assert again.returncode == 1, again.stderr
    assert "blocked publishing" in again.stderr and "guest:guest" not in again.stderr
    assert f"document kept at {kept[0]}" in again.stderr
    assert kept[0].read_bytes() == before
    assert broker.queue_depth(names[-1]) == 0, "nothing was taken while blocked"

    # Once the alarm is gone the resend delivers it.
    cleared = broker.ctl("set_vm_memory_high_watermark", "0.9")
    assert cleared.returncode == 0, cleared.stderr
    sent = hzz("publish", str(kept[0]), "--broker", broker.url, "--broker-timeout", "30", *names,
               timeout=60)  # fmt: skip
    assert sent.returncode == 0, sent.stderr
    assert message_id_for(before) in sent.stdout
    # A publish given up while blocked was already on its way: the broker may still take
    # it once the alarm clears. Every copy is the same document (one message id), which
    # the plotter draws once and acks as "already plotted" after that.
    time.sleep(2)  # the unblocked connections' last frames
    queued = broker.drain(names[-1])
    assert 1 <= len(queued) <= 3 and set(queued) == {message_id_for(before)}, queued


def test_a_plotter_rides_out_a_broker_restart(
    tmp_path: Path, private_broker: PrivateBroker
) -> None:
    """The broker's application stops under a running plotter and starts again: the
    plotter says it lost the link, never exits, reconnects, and draws what comes next;
    a document queued before the stop (durable queue, persistent message) is not lost."""

    broker = private_broker
    tag = uuid.uuid4().hex[:8]
    names = ["--exchange", f"hzz-restart-{tag}.x", "--queue", f"hzz-restart-{tag}.q"]
    out, log_path = tmp_path / "plots", tmp_path / "plotter.log"
    documents = []
    for seed in (1, 2, 3):
        path = tmp_path / f"document-{seed}.json"
        path.write_bytes(make_document(seed=seed).to_json())
        documents.append(path)

    def publish(path: Path) -> None:
        sent = hzz("publish", str(path), "--broker", broker.url, *names, timeout=60)
        assert sent.returncode == 0, sent.stderr

    with log_path.open("wb") as log:
        plotter = subprocess.Popen(
            [sys.executable, "-m", "cluster.cli", "plotter", "--out", str(out),
             "--broker", broker.url, *names],
            stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
        )  # fmt: skip
    try:
        publish(documents[0])
        wait_for(lambda: len(pngs(out)) == 1, "the first PNG")

        plotter.send_signal(signal.SIGSTOP)  # a document waits in the queue meanwhile
        publish(documents[1])
        stopped = broker.ctl("stop_app")
        assert stopped.returncode == 0, stopped.stderr
        plotter.send_signal(signal.SIGCONT)
        wait_for(lambda: "broker link lost" in log_path.read_text(), "the lost link logged")
        assert plotter.poll() is None, "a broker restart must not stop the service"

        started = broker.ctl("start_app")
        assert started.returncode == 0, started.stderr
        wait_for(lambda: len(pngs(out)) == 2, "the document queued before the stop", 120)
        publish(documents[2])
        wait_for(lambda: len(pngs(out)) == 3, "a document sent after the restart", 120)
        assert plotter.poll() is None
        assert broker.queue_depth(names[-1]) == 0
    finally:
        plotter.kill()
        plotter.wait()
