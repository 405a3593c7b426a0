"""The live figures' page: ``OUT/live/`` served read-only over HTTP by the plotter.

One page lists the live figure of each run (newest first) and reloads itself every few
seconds; ``/<run>.png`` is a figure. Nothing else is served: no directory listing, no
other file, no method but GET and HEAD, no script. Off unless ``hzz plotter
--live-port`` asks for it, and on loopback unless ``--live-host`` says otherwise.
"""

from __future__ import annotations

import html
import logging
import socket
import threading
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from analysis.results.outputs import LIVE_DIR, RUN_PATTERN, live_path

log = logging.getLogger(__name__)

#: Seconds between two reloads of the page (a live run sends at most one partial
#: document every two seconds by default).
REFRESH_S = 2
#: What the page may load: its own figures, its inline style; nothing else.
POLICY = "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'"
STYLE = (
    "body{font-family:sans-serif;margin:1em 2em;background:#fff;color:#222}"
    "figure{margin:0 0 2em 0}img{max-width:100%;border:1px solid #ddd}"
    "figcaption{margin:.3em 0;color:#555}"
)


def page(directory: Path) -> bytes:
    """The HTML page of the live figures under ``directory`` (the plotter's --out)."""
    figures = []
    folder = directory / LIVE_DIR
    try:
        found = [p for p in folder.iterdir() if p.suffix == ".png"]
    except OSError:
        found = []
    for path in found:
        run = path.stem
        if RUN_PATTERN.fullmatch(run) is None:
            continue
        try:
            stat = path.stat()
        except OSError:
            continue
        figures.append((stat.st_mtime_ns, run))
    figures.sort(reverse=True)
    items = []
    for mtime_ns, run in figures:
        updated = datetime.fromtimestamp(mtime_ns / 1e9, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        name = html.escape(run)
        items.append(
            f'<figure id="run-{name}"><figcaption>run <b>{name}</b>, updated '
            f'<span class="updated">{updated}</span></figcaption>'
            f'<img src="/{name}.png?v={mtime_ns}" alt="live figure of run {name}"></figure>'
        )
    body = "".join(items) or "<p>No live figure yet: start a run with hzz run --live.</p>"
    return (
        "<!doctype html><html><head><meta charset=utf-8>"
        f'<meta http-equiv="refresh" content="{REFRESH_S}">'
        f"<title>hzz live figures</title><style>{STYLE}</style></head>"
        f"<body><h1>Live figures</h1>{body}</body></html>"
    ).encode()


class _Handler(BaseHTTPRequestHandler):
    directory: Path  # set on the subclass the server makes
    server_version = "hzz-live"
    sys_version = ""

    def log_message(self, format: str, *args: object) -> None:
        log.debug("live page: " + format, *args)

    def _send(self, status: HTTPStatus, body: bytes, content_type: str, head: bool) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("Content-Security-Policy", POLICY)
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _answer(self, head: bool) -> None:
        path = self.path.split("?", 1)[0]
        if path in ("/", "/index.html"):
            self._send(HTTPStatus.OK, page(self.directory), "text/html; charset=utf-8", head)
            return
        run = path[1:].removesuffix(".png") if path.endswith(".png") else ""
        if RUN_PATTERN.fullmatch(run):
            try:
                figure = live_path(self.directory, run).read_bytes()
            except OSError:
                figure = None
            if figure is not None:
                self._send(HTTPStatus.OK, figure, "image/png", head)
                return
        self._send(HTTPStatus.NOT_FOUND, b"not found\n", "text/plain; charset=utf-8", head)

    def do_GET(self) -> None:
        self._answer(head=False)

    def do_HEAD(self) -> None:
        self._answer(head=True)


class LivePage:
    """The page's HTTP server, on a thread of its own."""

    def __init__(self, directory: Path, host: str, port: int) -> None:
        handler = type("LiveHandler", (_Handler,), {"directory": Path(directory)})
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        server = type("LiveServer", (ThreadingHTTPServer,), {"address_family": family})
        self.server = server((host, port), handler)
        self.server.daemon_threads = True
        self._thread = threading.Thread(
            target=self.server.serve_forever, name="hzz-live-page", daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        shown = f"[{host}]" if ":" in str(host) else host
        return f"http://{shown}:{port}/"

    def start(self) -> LivePage:
        self._thread.start()
        log.info("live page: %s", self.url)
        return self

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join()
