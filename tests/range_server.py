"""Local HTTP servers for the data-access tests: a file server with Range support that
counts what it serves, and a TCP server that accepts connections and never answers.

Python's http.server ignores Range headers, so uproot (which reads byte ranges) and the
resuming download could not be tested against it; this one implements single ranges.
"""

from __future__ import annotations

import json
import os
import re
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.utils import formatdate, parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
_CHUNK = 64 * 1024


@dataclass
class Traffic:
    """What the server sent: body bytes per path, requests per (method, path), ranges."""

    body_bytes: Counter[str] = field(default_factory=Counter)
    requests: Counter[tuple[str, str]] = field(default_factory=Counter)
    ranges: list[tuple[str, str]] = field(default_factory=list)  # (path, Range header)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def total_bytes(self) -> int:
        with self.lock:
            return sum(self.body_bytes.values())

    def gets(self) -> int:
        with self.lock:
            return sum(n for (method, _), n in self.requests.items() if method == "GET")

    def header_reads(self) -> int:
        """Range requests from byte 0: each is a client opening a file (uproot reads a
        ROOT file's header, its first 403 bytes, before anything else)."""
        with self.lock:
            return sum(1 for _, requested in self.ranges if requested.startswith("bytes=0-"))

    def reset(self) -> None:
        with self.lock:
            self.body_bytes.clear()
            self.requests.clear()
            self.ranges.clear()


class RangeFileServer(ThreadingHTTPServer):
    """Serves files under ``root`` with HEAD, GET and single-range GET (206)."""

    daemon_threads = True
    # uproot sends hundreds of concurrent range requests; socketserver's default listen
    # backlog of 5 drops connection attempts, which then stall for seconds in TCP retries.
    request_queue_size = 1024

    def __init__(self, root: Path, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__((host, port), _Handler)
        self.root = root.resolve()
        self.traffic = Traffic()
        # path -> bytes after which the first GET of that path drops the connection
        self.cut_first_get: dict[str, int] = {}
        # Every Nth range request fails, in turn with a connection reset and a 503
        # (0: none; 1: every one, always a 503).
        self.fail_every = 0
        self._ranges_seen = 0
        self.failures_sent = 0
        # Body bytes per second of each answer (0: as fast as it goes): a slow link.
        self.bytes_per_second = 0
        # path -> (N, other file): after N range requests of the path, the server has
        # another version of the file (served from the other file, with its own ETag).
        self.new_version: dict[str, tuple[int, Path]] = {}
        # Whether If-Match / If-Unmodified-Since are honoured (412), as real servers do,
        # and whether ETag and Last-Modified are sent at all.
        self.honour_conditions = True
        self.send_validators = True
        self.refused = 0  # answers of 412 to a condition on another version

    def ranges_of(self, path: str) -> int:
        with self.traffic.lock:
            return sum(1 for served, _ in self.traffic.ranges if served == path)

    def next_range_fails(self) -> str | None:
        """None, or how the range request just received fails: "reset" or "503"."""
        if self.fail_every <= 0:
            return None
        with self.traffic.lock:
            self._ranges_seen += 1
            if self._ranges_seen % self.fail_every:
                return None
            self.failures_sent += 1
            if self.fail_every == 1:
                return "503"
            return "reset" if self.failures_sent % 2 else "503"

    @property
    def url(self) -> str:
        return f"http://{self.server_address[0]}:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    server: RangeFileServer
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes: without this, delayed ACKs stall
        # every small response by ~40 ms, and uproot sends hundreds of them.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: object) -> None:  # quiet tests
        pass

    def _file(self) -> Path | None:
        path = urlsplit(self.path).path
        switch = self.server.new_version.get(path)
        if switch is not None and self.server.ranges_of(path) > switch[0]:
            return switch[1]
        relative = unquote(path).lstrip("/")
        candidate = (self.server.root / relative).resolve()
        if self.server.root not in candidate.parents or not candidate.is_file():
            return None
        return candidate

    def _count_request(self) -> str:
        path = urlsplit(self.path).path
        with self.server.traffic.lock:
            self.server.traffic.requests[(self.command, path)] += 1
        return path

    def do_HEAD(self) -> None:
        self._count_request()
        target = self._file()
        if target is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(target.stat().st_size))
        self._send_identity(target)
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Type", "application/octet-stream")
        self.end_headers()

    def _send_identity(self, target: Path) -> None:
        """ETag and Last-Modified, as a real file server sends them (they change with
        the file; clients keep what they learnt of a file while they stay the same)."""
        if not self.server.send_validators:
            return
        self.send_header("ETag", _etag(target))
        self.send_header("Last-Modified", formatdate(target.stat().st_mtime, usegmt=True))

    def _refuses(self, target: Path) -> bool:
        """Answer 412 to a condition the file's current version does not meet."""
        if not self.server.honour_conditions:
            return False
        wanted = self.headers.get("If-Match")
        since = self.headers.get("If-Unmodified-Since")
        stale = (wanted is not None and wanted.strip() not in ("*", _etag(target))) or (
            wanted is None
            and since is not None
            and int(target.stat().st_mtime) > parsedate_to_datetime(since).timestamp()
        )
        if stale:
            with self.server.traffic.lock:
                self.server.refused += 1
            self.send_response(412)
            self.send_header("Content-Length", "0")
            self.end_headers()
        return stale

    def do_GET(self) -> None:
        path = self._count_request()
        target = self._file()
        if target is None:
            self.send_error(404)
            return
        size = target.stat().st_size
        start, stop = 0, size
        header = self.headers.get("Range")
        match = _RANGE.match(header.strip()) if header else None
        if header:
            with self.server.traffic.lock:
                self.server.traffic.ranges.append((path, header))
        failure = self.server.next_range_fails() if match else None
        if failure == "reset":
            self.close_connection = True
            self.connection.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
            )  # closed with a RST, as a server or proxy that drops the request
            return
        if failure == "503":
            self.send_error(503, "Service Unavailable")
            return
        if self._refuses(target):
            return
        if match and (match.group(1) or match.group(2)):
            first, last = match.group(1), match.group(2)
            if first:
                start = int(first)
                stop = min(size, int(last) + 1) if last else size
            else:  # suffix range: the last N bytes
                start = max(0, size - int(last))
            if start >= size:
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{size}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{stop - 1}/{size}")
        else:  # no Range, or a multi-range request: the whole file is a valid answer
            self.send_response(200)
            # A client that wanted a multipart answer may drop this body unread; on a
            # kept-alive connection its next request would wait behind it until timeout.
            self.send_header("Connection", "close")
            self.close_connection = True
        self.send_header("Content-Length", str(stop - start))
        self._send_identity(target)
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Type", "application/octet-stream")
        self.end_headers()
        cut = self.server.cut_first_get.pop(path, None)
        self._send_body(target, path, start, stop, cut)

    def _send_body(self, target: Path, path: str, start: int, stop: int, cut: int | None) -> None:
        sent = 0
        rate = self.server.bytes_per_second
        piece = max(1, rate // 8) if rate else _CHUNK
        with target.open("rb") as source:
            source.seek(start)
            while start + sent < stop:
                if rate:
                    time.sleep(piece / rate)
                want = min(piece, stop - start - sent)
                if cut is not None:
                    want = min(want, cut - sent)
                    if want <= 0:
                        self.close_connection = True
                        self.connection.shutdown(socket.SHUT_RDWR)
                        return
                data = source.read(want)
                self.wfile.write(data)
                sent += len(data)
                with self.server.traffic.lock:
                    self.server.traffic.body_bytes[path] += len(data)


def _etag(target: Path) -> str:
    """A strong ETag that changes with the file, as real file servers make them."""
    stat = target.stat()
    return f'"{stat.st_size:x}-{stat.st_mtime_ns:x}"'


@contextmanager
def serve_files(root: Path) -> Iterator[RangeFileServer]:
    """A RangeFileServer on a free port of 127.0.0.1, stopped on exit."""
    server = RangeFileServer(root)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@contextmanager
def silent_server() -> Iterator[str]:
    """A TCP port that accepts connections and never answers: a remote URL that hangs.

    Yields its ``http://127.0.0.1:PORT`` base URL.
    """
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            accepted.append(connection)  # keep it open, read nothing, say nothing

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(timeout=5)
        for connection in accepted:
            connection.close()
        listener.close()


def file_size(path: Path) -> int:
    return os.stat(path).st_size


class _TrafficHandler(_Handler):
    """Also answers ``GET /__traffic__`` with the bytes served and requests so far (JSON),
    and ``GET /__faults__?every=N`` by failing every Nth range request from then on."""

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        if path == "/__faults__":
            every = parse_qs(urlsplit(self.path).query).get("every", ["0"])[0]
            self.server.fail_every = int(every)
            self.send_response(204)
            self.end_headers()
            return
        if path != "/__traffic__":
            super().do_GET()
            return
        traffic = self.server.traffic
        requests: Counter[str] = Counter()
        with traffic.lock:
            for (method, _), n in traffic.requests.items():
                requests[method] += n
        counts = {
            "total_bytes": traffic.total_bytes(),
            "requests": dict(requests),
            "header_reads": traffic.header_reads(),
        }
        body = json.dumps(counts).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)


@contextmanager
def serve_files_in_subprocess(root: Path) -> Iterator[str]:
    """A RangeFileServer in its own process (no GIL shared with the test's Dask client,
    whose threads can starve an in-process server); yields its base URL. The bytes it
    has served: ``served_bytes(url)``."""
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.range_server", str(root)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    try:
        assert process.stdout is not None
        yield process.stdout.readline().strip()
    finally:
        process.terminate()
        process.wait(timeout=10)


def served_bytes(url: str) -> int:
    with urllib.request.urlopen(f"{url}/__traffic__", timeout=10) as response:
        return int(json.load(response)["total_bytes"])


def fail_every(url: str, every: int) -> None:
    """Make the server in a subprocess fail every ``every``-th range request (0: none)."""
    with urllib.request.urlopen(f"{url}/__faults__?every={every}", timeout=10):
        pass


def traffic(url: str) -> dict:
    """What the server in a subprocess has served: total_bytes, requests by method,
    header_reads (files opened)."""
    with urllib.request.urlopen(f"{url}/__traffic__", timeout=10) as response:
        return json.load(response)


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="serve a directory with HTTP ranges")
    parser.add_argument("root", type=Path)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--fail-every", type=int, default=0, help="every Nth range fails")
    args = parser.parse_args()
    server = RangeFileServer(args.root, args.host, args.port)
    server.fail_every = args.fail_every
    server.RequestHandlerClass = _TrafficHandler
    print(server.url, flush=True)
    server.serve_forever()
