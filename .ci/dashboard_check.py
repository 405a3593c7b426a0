"""CI check of the Dask dashboard in a real browser, while the analysis runs.

Usage: python dashboard_check.py DASHBOARD_URL [--workers N] [--task NAME]...
                                 [--screenshot FILE.png]

Headless Chromium (Debian's ``chromium``) loads DASHBOARD_URL/status, the page a user
watches; once the page has drawn the workers and the analysis's tasks, a screenshot is
saved. What the page shows is read from the page itself, over the DevTools protocol:
Bokeh draws on canvases, so the check reads the data the page's Bokeh document draws
(worker addresses in the task stream, task names in the progress bars). The dashboard's
JSON route (/json/counts.json) is the cross-check for the number of workers. Exits
non-zero naming what a user would not have seen.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import aiohttp
import psutil

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",  # root in CI
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",  # this machine's network is closed
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--window-size=1600,1000",
    "--remote-debugging-port=0",
]

#: Run in the page: every string column of the Bokeh document's data sources, by name.
READ_PAGE = """
(() => {
  const docs = (window.Bokeh && window.Bokeh.documents) || [];
  const columns = {};
  for (const doc of docs) {
    for (const model of doc.all_models) {
      if (!model.data) continue;
      const data = model.data instanceof Map ? model.data : new Map(Object.entries(model.data));
      for (const [name, values] of data) {
        if (!values || typeof values[0] !== "string") continue;
        (columns[name] = columns[name] || []).push(...Array.from(values).slice(0, 5000));
      }
    }
  }
  const titles = Array.from(document.querySelectorAll(".bk-tab, .bk-Title, title"))
    .map((node) => node.textContent.trim()).filter((text) => text);
  return JSON.stringify({documents: docs.length, columns: columns, titles: titles});
})()
"""

WORKER_ADDRESS = re.compile(r"^(tcp|tls)://[\w.:\[\]-]+:\d+$")


class DevTools:
    """The few DevTools protocol calls this check needs, over one page's websocket."""

    def __init__(self, socket: aiohttp.ClientWebSocketResponse) -> None:
        self.socket = socket
        self.next_id = 0

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        await self.socket.send_json({"id": self.next_id, "method": method, "params": params})
        while True:
            message = await self.socket.receive_json(timeout=60)
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})


def start_chromium(profile: str) -> tuple[subprocess.Popen[str], str]:
    """Chromium with a fresh profile, in a process group of its own (``stop_chromium``);
    returns it and its DevTools HTTP address."""
    browser = subprocess.Popen(
        ["chromium", *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "about:blank"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert browser.stderr is not None
    deadline = time.monotonic() + 60
    for line in browser.stderr:
        found = re.search(r"DevTools listening on ws://([\d.]+:\d+)/", line)
        if found:
            return browser, f"http://{found.group(1)}"
        if time.monotonic() > deadline:
            break
    stop_chromium(browser)
    raise RuntimeError("chromium did not start its DevTools server")


def stop_chromium(browser: subprocess.Popen[str]) -> None:
    """Kill Chromium's whole process group and wait until none of it is left.

    ``browser.kill()`` ends only the main process: its zygote, GPU and renderer children
    go on writing into the profile directory, whose removal then fails with "Directory
    not empty". They were started in the browser's own session, so they share its group.
    """
    with contextlib.suppress(ProcessLookupError):
        os.killpg(browser.pid, signal.SIGKILL)
    browser.wait()
    deadline = time.monotonic() + 30
    while _group_alive(browser.pid):
        if time.monotonic() > deadline:
            raise RuntimeError(f"chromium's processes (group {browser.pid}) did not stop")
        time.sleep(0.1)


def _group_alive(group: int) -> bool:
    """Whether a process of ``group`` still runs (a zombie writes nothing: not counted)."""
    for process in psutil.process_iter():
        with contextlib.suppress(psutil.Error, ProcessLookupError):
            if os.getpgid(process.pid) == group and process.status() != psutil.STATUS_ZOMBIE:
                return True
    return False


async def look(
    dashboard: str, devtools: str, workers: int, tasks: list[str], screenshot: Path
) -> dict[str, Any]:
    """Load /status, wait until it shows ``workers`` workers and ``tasks``, screenshot."""
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{devtools}/json/list") as response:
            pages = [t for t in await response.json() if t["type"] == "page"]
        async with session.ws_connect(pages[0]["webSocketDebuggerUrl"], max_msg_size=0) as ws:
            page = DevTools(ws)
            await page.call("Page.enable")
            await page.call("Page.navigate", url=f"{dashboard}/status")
            seen: dict[str, Any] = {}
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                await asyncio.sleep(2)
                result = await page.call(
                    "Runtime.evaluate", expression=READ_PAGE, returnByValue=True
                )
                seen = json.loads(result["result"]["value"])
                if len(shown_workers(seen)) >= workers and missing_tasks(seen, tasks) == []:
                    break
            await asyncio.sleep(1)  # let the last data arrive on the canvas
            shot = await page.call("Page.captureScreenshot", format="png")
            screenshot.write_bytes(base64.b64decode(shot["data"]))
            return seen


def shown_workers(seen: dict[str, Any]) -> set[str]:
    columns = seen.get("columns", {})
    values = [v for name in ("worker", "escaped_worker") for v in columns.get(name, [])]
    return {value for value in values if WORKER_ADDRESS.match(value)}


def shown_tasks(seen: dict[str, Any], tasks: list[str]) -> set[str]:
    """The task names on the page that start with one of ``tasks``."""
    names = seen.get("columns", {}).get("name", [])
    return {name for name in names if name.startswith(tuple(tasks))}


def missing_tasks(seen: dict[str, Any], tasks: list[str]) -> list[str]:
    shown = shown_tasks(seen, tasks)
    return [task for task in tasks if not any(name.startswith(task) for name in shown)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dashboard", help="e.g. http://127.0.0.1:8787")
    parser.add_argument("--workers", type=int, default=1, help="workers the page must show")
    parser.add_argument(
        "--task",
        action="append",
        help="a task name (prefix) the page must show; repeatable "
        "(default: select-and-fill, the analysis's partition tasks)",
    )
    parser.add_argument("--screenshot", type=Path, default=Path("dashboard-status.png"))
    args = parser.parse_args()
    dashboard = args.dashboard.rstrip("/")
    task_names = args.task or ["select-and-fill"]
    with tempfile.TemporaryDirectory(prefix="hzz-chromium-") as profile:
        browser, devtools = start_chromium(profile)
        try:
            seen = asyncio.run(look(dashboard, devtools, args.workers, task_names, args.screenshot))
        finally:
            stop_chromium(browser)
    with urllib.request.urlopen(f"{dashboard}/json/counts.json", timeout=10) as response:
        counts = json.load(response)
    workers, tasks = shown_workers(seen), shown_tasks(seen, task_names)
    problems = []
    if not seen.get("documents"):
        problems.append("the page has no Bokeh document: the dashboard did not render")
    if len(workers) < args.workers:
        problems.append(f"the page shows {len(workers)} workers, not {args.workers}")
    if counts.get("workers", 0) < args.workers:
        problems.append(f"/json/counts.json says {counts.get('workers')} workers")
    missing = missing_tasks(seen, task_names)
    if missing:
        names = sorted(set(seen.get("columns", {}).get("name", [])))[:10]
        problems.append(f"no task {missing} on the page (task names seen: {names})")
    size = args.screenshot.stat().st_size if args.screenshot.exists() else 0
    if size < 10_000:
        problems.append(f"screenshot {args.screenshot} is {size} bytes")
    for problem in problems:
        print(f"dashboard_check: {problem}", file=sys.stderr)
    if problems:
        return 1
    print(
        f"    /status in headless Chromium: {len(workers)} workers in the task stream "
        f"({', '.join(sorted(workers))}); analysis tasks shown: {', '.join(sorted(tasks))}; "
        f"/json/counts.json: {counts['workers']} workers, {counts.get('processing')} tasks "
        f"processing; screenshot {args.screenshot} ({size} bytes)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
