"""An emulated wide-area link on this machine: bandwidth from the kernel, latency from a proxy.

The file server runs in a network namespace of its own, behind a veth pair whose two
ends are shaped with a token bucket (``tc qdisc … tbf``, both directions): the kernel
limits the bandwidth as a real link does. This kernel has no ``netem``, so the latency
comes from ``DelayProxy``, a TCP proxy on 127.0.0.1 that hands every chunk on half a
round-trip time after it arrived, in each direction, and holds a new connection's first
request one more round trip (the TCP handshake). Clients use the proxy's address; what
they see is the server's bandwidth and the link's round-trip time.

What it does not emulate: packet loss, and TCP's slow start against a long round trip
(the proxy's legs are short, so a new connection is at full speed at once; the one round
trip charged per connection stands for the handshake only). Both make real links slower
than this one, so figures measured here are lower bounds for a real WAN of these numbers.

Needs root (``ip netns``, ``tc``). ``python -m bench.link proxy`` runs one proxy.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
_CHUNK = 256 * 1024


@dataclass(frozen=True)
class LinkSpec:
    """A link: bandwidth in Mbit/s and round-trip time in ms."""

    mbit_s: float
    rtt_ms: float

    @property
    def name(self) -> str:
        return f"{self.mbit_s:g} Mbit/s, {self.rtt_ms:g} ms RTT"

    @property
    def bytes_per_s(self) -> float:
        return self.mbit_s * 1e6 / 8


def _run(*command: str) -> None:
    subprocess.run(command, check=True, capture_output=True, text=True, timeout=30)


#: The network namespaces' names start with this (env HZZ_BENCH_NETNS_PREFIX): on a
#: machine shared by several users, each can tell (and clean up) its own.
NAMESPACE_PREFIX = os.environ.get("HZZ_BENCH_NETNS_PREFIX", "hzzlink")


class ShapedNamespace:
    """A network namespace reached over a veth pair shaped to ``mbit_s`` each way."""

    def __init__(self, mbit_s: float, subnet: int | None = None) -> None:
        tag = uuid.uuid4().hex[:6]
        self.name = f"{NAMESPACE_PREFIX}-{tag}"
        self.host_end, self.ns_end = f"hzzh{tag}", f"hzzn{tag}"
        octet = subnet if subnet is not None else 200 + os.getpid() % 50
        self.host_address, self.ns_address = f"10.203.{octet}.1", f"10.203.{octet}.2"
        self.mbit_s = mbit_s

    def __enter__(self) -> ShapedNamespace:
        try:
            _run("ip", "netns", "add", self.name)
            _run("ip", "link", "add", self.host_end, "type", "veth", "peer", "name", self.ns_end)
            _run("ip", "link", "set", self.ns_end, "netns", self.name)
            _run("ip", "addr", "add", f"{self.host_address}/30", "dev", self.host_end)
            _run("ip", "link", "set", self.host_end, "up")
            ns = ("ip", "-n", self.name)
            _run(*ns, "addr", "add", f"{self.ns_address}/30", "dev", self.ns_end)
            _run(*ns, "link", "set", self.ns_end, "up")
            _run(*ns, "link", "set", "lo", "up")
            # A bucket as deep as one 64 KiB segment (veth hands over GSO segments that
            # large; a smaller bucket would drop them), a queue of 200 ms at most.
            shape = ["root", "tbf", "rate", f"{self.mbit_s:g}mbit", "burst", "128kb"]
            shape += ["latency", "200ms"]
            _run("tc", "qdisc", "add", "dev", self.host_end, *shape)
            _run("tc", "-n", self.name, "qdisc", "add", "dev", self.ns_end, *shape)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        # Deleting the namespace deletes its veth end, and with it the host's end.
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True, check=False)
        subprocess.run(["ip", "link", "del", self.host_end], capture_output=True, check=False)

    def command(self, *argv: str) -> list[str]:
        """``argv`` run inside the namespace."""
        return ["ip", "netns", "exec", self.name, *argv]


# ------------------------------------------------------------------------ the delay proxy


async def _pump(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay_s: float, hold_s: float
) -> None:
    """Copy ``reader`` to ``writer``, each chunk ``delay_s`` after it arrived (the first
    ``hold_s`` more): a queue keeps the order, the reader never waits for the writer."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()
    extra = hold_s

    async def read() -> None:
        nonlocal extra
        try:
            while data := await reader.read(_CHUNK):
                await queue.put((loop.time() + delay_s + extra, data))
                extra = 0.0
        except (ConnectionError, OSError):
            pass
        await queue.put((loop.time() + delay_s, b""))

    reading = asyncio.create_task(read())
    try:
        while True:
            due, data = await queue.get()
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            if not data:
                if writer.can_write_eof():
                    writer.write_eof()
                break
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        reading.cancel()


async def _serve_proxy(upstream: tuple[str, int], rtt_s: float, ready: asyncio.Future) -> None:
    async def handle(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            server_r, server_w = await asyncio.open_connection(*upstream)
        except OSError:
            client_w.close()
            return
        half = rtt_s / 2
        try:
            await asyncio.gather(
                _pump(client_r, server_w, half, rtt_s),  # the handshake's round trip
                _pump(server_r, client_w, half, 0.0),
            )
        finally:
            for writer in (client_w, server_w):
                writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=1024)
    ready.set_result(server.sockets[0].getsockname()[1])
    async with server:
        await server.serve_forever()


def run_proxy(upstream: str, rtt_ms: float) -> None:
    """Serve until killed; print the port first."""
    host, port = upstream.rsplit(":", 1)

    async def main() -> None:
        ready: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        task = asyncio.create_task(_serve_proxy((host, int(port)), rtt_ms / 1000, ready))
        print(await ready, flush=True)
        await task

    asyncio.run(main())


# ------------------------------------------------------------------- the link, end to end


@dataclass
class Link:
    """A file server behind an emulated link; ``url`` is where clients connect."""

    spec: LinkSpec
    url: str
    server_url: str  # the server itself, past the shaping (for its traffic counters)


def _read_line(process: subprocess.Popen[str], what: str, timeout_s: float = 60) -> str:
    assert process.stdout is not None
    deadline = time.monotonic() + timeout_s
    line = process.stdout.readline().strip()
    if not line or time.monotonic() > deadline:
        raise RuntimeError(f"{what} did not start (exit {process.poll()})")
    return line


@contextlib.contextmanager
def emulated_link(root: Path, spec: LinkSpec) -> Iterator[Link]:
    """Serve ``root`` (HTTP with ranges) behind a link of ``spec``; everything is removed
    on exit. Clients use ``Link.url``."""
    if os.geteuid() != 0:
        raise PermissionError("an emulated link needs root (ip netns, tc)")
    with ShapedNamespace(spec.mbit_s) as namespace:
        port = 8080
        server = subprocess.Popen(
            namespace.command(
                sys.executable,
                "-m",
                "tests.range_server",
                str(root),
                "--host",
                namespace.ns_address,
                "--port",
                str(port),
            ),
            stdout=subprocess.PIPE,
            text=True,
            cwd=REPO,
        )
        proxy = None
        try:
            server_url = _read_line(server, "the file server in the namespace")
            upstream = f"{namespace.ns_address}:{port}"
            proxy = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "bench.link",
                    "proxy",
                    upstream,
                    "--rtt-ms",
                    str(spec.rtt_ms),
                ],
                stdout=subprocess.PIPE,
                text=True,
                cwd=REPO,
            )
            proxy_port = _read_line(proxy, "the delay proxy")
            yield Link(spec, f"http://127.0.0.1:{proxy_port}", server_url)
        finally:
            for process in (proxy, server):
                if process is not None and process.poll() is None:
                    process.terminate()
                    try:
                        process.wait(timeout=10)
                    except subprocess.TimeoutExpired:
                        process.kill()
                        process.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.link", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    proxy = sub.add_parser("proxy", help="run a delay proxy to HOST:PORT; prints its port")
    proxy.add_argument("upstream", metavar="HOST:PORT")
    proxy.add_argument("--rtt-ms", type=float, required=True)
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        run_proxy(args.upstream, args.rtt_ms)
    return 0


if __name__ == "__main__":
    sys.exit(main())
