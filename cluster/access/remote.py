"""Remote file locations: is a URL reachable, how big is its file, can root:// be read.

A run fails early and clearly (the URL tried, the timeout) instead of hanging in the
middle of building the graph: every remote file a run will read gets one HEAD request
before the graph is built, all at once and while the cluster starts. Its answer (size,
ETag, Last-Modified) identifies the file, so that an inspection made before is reused.
The workers then read byte ranges directly, with retries (``cluster.access.httpsource``).
"""

from __future__ import annotations

import importlib.util
import json
import random
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests

from analysis.inputs.catalogue import Sample, is_remote, locate
from cluster.defaults import DEFAULT_TIMEOUT_S

from .retry import RETRY_ATTEMPTS, TRANSIENT_STATUS, backoff_s, reason, should_retry

#: HEAD requests in flight at once before a run (one connection each, kept alive).
HEAD_CONCURRENCY = 64

XROOTD_HINT = (
    "reading root:// URLs needs the XRootD client, which is not installed: "
    "pip install 'hzz-cluster[xrootd]' (installs fsspec-xrootd and xrootd), "
    "or use the https:// base URL"
)


class RemoteAccessError(OSError):
    """A remote file could not be reached or read; the message names the URL."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"{url}: {reason}")
        self.url = url
        self.detail = reason


def uproot_open_options(timeout: float = DEFAULT_TIMEOUT_S) -> dict[str, Any]:
    """Options for ``uproot.open`` of remote files (reader, inspection), sent to the workers.

    ``timeout``: a server that stops answering fails the read instead of hanging it.
    ``handler``: uproot's fsspec source with each http(s) request retried with back-off
    on transient failures, and a failure that outlasts them raised with its cause
    (``cluster.access.httpsource``). ``coalesce_config``: uproot merges byte ranges
    less than 32 KiB apart into one request by default; the baskets of the few branches
    read are interleaved with those of the ~100 others, so the merged requests fetch
    most of the file (1.71 MB of 2.22 MB for two branches of the 2025 data15_periodD
    file, against 128 kB without merging: their 76 kB of baskets plus the tree metadata).
    """
    from uproot.source.coalesce import CoalesceConfig  # uproot only when files are read

    from .httpsource import RetryingSource

    return {
        "timeout": timeout,
        "handler": RetryingSource,
        "coalesce_config": CoalesceConfig(max_range_gap=0),
    }


def scheme(url: str) -> str:
    return urlsplit(url).scheme.lower()


def is_http(url: str) -> bool:
    return scheme(url) in ("http", "https")


def xrootd_available() -> bool:
    """True when uproot can open root:// URLs (through fsspec-xrootd and XRootD)."""
    return all(importlib.util.find_spec(name) is not None for name in ("fsspec_xrootd", "XRootD"))


def require_xrootd(url: str) -> None:
    if scheme(url) == "root" and not xrootd_available():
        raise RemoteAccessError(url, XROOTD_HINT)


def describe_network_error(err: BaseException, timeout: float) -> str:
    """The reason in words: a timeout says how long was waited."""
    if isinstance(err, requests.ConnectionError) and not isinstance(err, requests.Timeout):
        return f"cannot connect: {err}"
    return reason(err, timeout)


@dataclass(frozen=True)
class RemoteFile:
    """What a HEAD request says of a remote file: its size (None: the server says 404)
    and the headers that tell one version of it from another."""

    url: str
    size: int | None
    etag: str | None = None
    last_modified: str | None = None

    @property
    def identity(self) -> str | None:
        """Size, ETag and Last-Modified in one string; None when the server gives
        neither header (then nothing tells a changed file from the one seen before)."""
        if self.size is None or not (self.etag or self.last_modified):
            return None
        return json.dumps([self.size, self.etag, self.last_modified])


_sessions = threading.local()


def _session() -> requests.Session:
    """One session per thread: its connections are kept alive between requests."""
    session = getattr(_sessions, "session", None)
    if session is None:
        session = _sessions.session = requests.Session()
    return session


def remote_file(url: str, timeout: float = DEFAULT_TIMEOUT_S) -> RemoteFile:
    """HEAD ``url``, retried with back-off on transient failures (``cluster.access.retry``).

    Raises RemoteAccessError naming the URL (and the timeout) when the server does not
    answer in time, refuses the connection, or answers with another error.
    """
    for attempt in range(1, RETRY_ATTEMPTS + 1):
        try:
            response = _session().head(url, timeout=timeout, allow_redirects=True)
            if response.status_code in TRANSIENT_STATUS:
                response.raise_for_status()
            break
        except requests.RequestException as err:
            if not should_retry(err, attempt):
                tries = f" (after {attempt} attempts)" if attempt > 1 else ""
                cause = describe_network_error(err, timeout)
                raise RemoteAccessError(url, cause + tries) from err
            time.sleep(backoff_s(attempt, random.random()))
    if response.status_code == 404:
        return RemoteFile(url, None)
    if response.status_code >= 400:
        raise RemoteAccessError(url, f"HTTP {response.status_code} {response.reason}")
    length = response.headers.get("Content-Length")
    if length is None or not length.isdigit():
        raise RemoteAccessError(url, "the server gives no Content-Length for the file")
    headers = response.headers
    return RemoteFile(url, int(length), headers.get("ETag"), headers.get("Last-Modified"))


def remote_size(url: str, timeout: float = DEFAULT_TIMEOUT_S) -> int | None:
    """The file's size from a HEAD request (Content-Length); None if the server says 404.

    Raises RemoteAccessError as ``remote_file``.
    """
    return remote_file(url, timeout).size


def remote_files(samples: Sequence[Sample], locations: Sequence[str]) -> list[str]:
    """The remote URLs a run over these locations will read (local files win)."""
    urls: list[str] = []
    for sample in samples:
        where = locate(sample, list(locations))
        if where is not None and is_remote(where):
            urls.append(where)
    return urls


def head_all(
    urls: Sequence[str], timeout: float = DEFAULT_TIMEOUT_S, concurrency: int = HEAD_CONCURRENCY
) -> dict[str, RemoteFile]:
    """``remote_file`` of every URL, ``concurrency`` at a time (a second of 100 ms round
    trips for a thousand files, not a hundred seconds one after another). The first
    failure in URL order is raised."""
    if not urls:
        return {}
    with ThreadPoolExecutor(min(concurrency, len(urls)), "hzz-head") as pool:
        futures = [pool.submit(remote_file, url, timeout) for url in urls]
        return {url: future.result() for url, future in zip(urls, futures, strict=True)}


def check_reachable(
    samples: Sequence[Sample], locations: Sequence[str], timeout: float = DEFAULT_TIMEOUT_S
) -> dict[str, RemoteFile]:
    """One HEAD per remote http(s) file, all at once; root:// only needs the XRootD
    client installed. The answers, by URL: what identifies each file (its inspection
    is reused while that stays the same, ``cluster.access.inspected``).

    A file the server says is absent (404) is left to the graph builder, which reports
    it as missing (so ``--allow-missing`` behaves as for local files).
    """
    urls = remote_files(samples, locations)
    for url in urls:
        require_xrootd(url)
    return head_all([url for url in urls if is_http(url)], timeout)
