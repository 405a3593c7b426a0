"""The http(s) source: HEAD before a run, whole files for downloads, retried range reads.

Everything hzz says to a file server over HTTP, as the source table
(``analysis.inputs.sources``) promises it: ``head`` (does the file exist, which version
is it), ``get`` (the rest of a file, appended to a partial copy: downloads and
``--cache``) and ``Reader``, uproot's fsspec source with retries for the workers' range
reads. uproot's own http source (fsspec) has no retries, hands a failed range's exception
to uproot as if it were the bytes (``'ClientResponseError' object is not subscriptable``,
scikit-hep/uproot5#1450) and turns any failed size lookup into ``FileNotFoundError``;
``Reader`` retries each request with back-off on transient failures and raises what
outlasts them as RemoteAccessError naming the URL, the cause and the attempts. Bodies are
bounded by their progress (``cluster.access.progress``), not by their duration.
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import time
from pathlib import Path
from typing import Any

import aiohttp
import requests
import uproot.source.chunk
import uproot.source.futures
import urllib3
from tqdm import tqdm
from uproot.source.coalesce import coalesce_requests
from uproot.source.fsspec import FSSpecSource

from analysis.errors import FileChangedError, RemoteAccessError, file_changed
from cluster.defaults import DEFAULT_TIMEOUT_S

from .progress import Progress, Stalled
from .remote import RemoteFile, version_stamp
from .retry import RETRY_ATTEMPTS, TRANSIENT_STATUS, backoff_s, reason, should_retry

log = logging.getLogger(__name__)

#: URLs already warned about in this process: a server that ignores ranges.
_WARNED: set[str] = set()


def _warn_whole_file(url: str) -> None:
    """Say once per file and process that its server answers ranges with the whole file
    (``python -m http.server`` does): the run stays correct (the range is cut out of the
    answer), but every read moves the whole file."""
    if url in _WARNED:
        return
    _WARNED.add(url)
    from analysis.redaction import redact_urls

    log.warning(
        "%s: the server ignores byte ranges (HTTP 200 to a range request): every read "
        "transfers the whole file; --cache DIR downloads it once",
        redact_urls(url),
    )


#: Bytes per read from the network: what a dropped connection can cost of a partial copy.
NETWORK_CHUNK_BYTES = 64 * 1024

_sessions = threading.local()


def _session() -> requests.Session:
    """One session per thread: its connections are kept alive between requests."""
    session = getattr(_sessions, "session", None)
    if session is None:
        session = _sessions.session = requests.Session()
    return session


def describe_network_error(err: BaseException, timeout: float) -> str:
    """The reason in words: a timeout says how long was waited."""
    if isinstance(err, requests.ConnectionError) and not isinstance(err, requests.Timeout):
        return f"cannot connect: {err}"
    return reason(err, timeout)


def head(url: str, timeout: float = DEFAULT_TIMEOUT_S) -> RemoteFile:
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


def get(url: str, part: Path, remote: RemoteFile, timeout: float, show_progress: bool) -> int:
    """Append the missing tail of the file (the version ``remote`` describes) to ``part``;
    the body bytes received.

    One GET with a Range from where ``part`` ends (the whole file if the server ignores
    it, or if the file is no longer that version: If-Range); RemoteAccessError naming the
    URL and the bytes so far if it is cut short. ``part`` is resumed only if it was begun
    on that version (``PART.version`` says which): never two versions in one copy.
    """
    size = remote.size or 0
    stamp = version_stamp(part)
    offset = part.stat().st_size if part.exists() else 0
    begun = stamp.read_text() if stamp.exists() else None
    if offset > size or (offset and begun != remote.version):  # a .part of another version
        part.unlink()
        offset = 0
    if offset == size:
        return 0
    if not offset:
        stamp.write_text(remote.version or "")
    headers = {"Range": f"bytes={offset}-", **remote.if_range()} if offset else {}
    received = 0
    try:
        with requests.get(url, headers=headers, stream=True, timeout=timeout) as response:
            if response.status_code == 200:  # the range ignored, or another version now
                offset = 0  # start over
                now = RemoteFile.answered(url, 200, response.headers)
                stamp.write_text((now.version if now else None) or "")
            elif response.status_code != 206:
                raise RemoteAccessError(
                    url, f"HTTP {response.status_code} {response.reason} for bytes {offset}-"
                )
            with (
                part.open("r+b" if offset else "wb") as out,
                tqdm(
                    total=size,
                    initial=offset,
                    unit="B",
                    unit_scale=True,
                    desc=Path(part.name).stem,
                    disable=not show_progress,
                    leave=False,
                ) as bar,
            ):
                out.seek(offset)
                out.truncate()
                progress = Progress(url, timeout, offset, end=size)
                while True:
                    # read1: what one socket read brings, so a trickle is seen as such
                    # (read() would wait for a whole chunk, for ever at one byte a second).
                    block = response.raw.read1(NETWORK_CHUNK_BYTES)
                    if not block:
                        break
                    out.write(block)
                    received += len(block)
                    bar.update(len(block))
                    progress.update(offset + received)
    except requests.RequestException as err:
        raise RemoteAccessError(
            url,
            f"interrupted after {offset + received} of {size} bytes: "
            f"{describe_network_error(err, timeout)}",
        ) from err
    except (urllib3.exceptions.HTTPError, OSError) as err:  # raw reads: a timeout, a reset
        if isinstance(err, Stalled):
            cause = err.detail
        elif isinstance(err, urllib3.exceptions.ReadTimeoutError | TimeoutError):
            cause = f"no bytes within {timeout:g} s (--timeout {timeout:g})"
        else:
            cause = f"{type(err).__name__}: {err}"
        raise RemoteAccessError(
            url, f"interrupted after {offset + received} of {size} bytes: {cause}"
        ) from err
    return received


class Reader(FSSpecSource):
    """``FSSpecSource`` whose http(s) requests are retried and fail with their cause."""

    def __init__(self, file_path: str, **options: Any) -> None:
        self._attempts = int(options.pop("retries", RETRY_ATTEMPTS))
        # The version of the file the run inspected (``RemoteFile.version``): every
        # range is asked of that version only, and an answer from another one fails.
        version = options.pop("validator", None)
        self._pinned = RemoteFile.from_version(file_path, version) if version else None
        timeout = options.get("timeout")
        self._timeout = float(timeout) if timeout else DEFAULT_TIMEOUT_S
        self._url = file_path
        self._info: dict[str, Any] | None = None
        super().__init__(file_path, **options)

    # ---------------------------------------------------------- the readers' requests

    async def _attempts_of(self, what: str, make: Any, bounded: bool = True) -> Any:
        """``await make()``, retried on transient failures; RemoteAccessError at the end.

        ``bounded``: each try must finish within the timeout (a HEAD); otherwise ``make``
        bounds itself (a range body, by its progress).
        """
        for attempt in range(1, self._attempts + 1):
            try:
                return await (asyncio.wait_for(make(), self._timeout) if bounded else make())
            except (FileNotFoundError, FileChangedError):
                raise
            except Exception as err:
                if not should_retry(err, attempt) or attempt >= self._attempts:
                    tries = f" (after {attempt} attempts)" if attempt > 1 else ""
                    cause = reason(err, self._timeout)
                    raise RemoteAccessError(self._url, f"{what}: {cause}{tries}") from err
                await asyncio.sleep(backoff_s(attempt, random.random()))
        raise AssertionError("unreachable")  # pragma: no cover

    async def _range(self, start: int, stop: int) -> bytes:
        return await self._attempts_of(
            f"bytes {start}–{stop}", lambda: self._get(start, stop), bounded=False
        )

    async def _get(self, start: int, stop: int) -> bytes:
        """One GET of bytes ``start``–``stop``: the answer's first bytes within the
        timeout, then the body as long as each timeout window brings enough of it (fsspec's
        ``_cat_file`` reads the body in one await that only a bound on the whole
        request could end)."""
        if start >= stop:
            return b""
        session = await self._fs.set_session()
        options = dict(self._fs.kwargs)
        # fsspec hands uproot's ``timeout`` to aiohttp as a bound on the whole request.
        # Here: connecting and each read from the socket within the timeout; no bound on
        # the wait for a free connection of the pool (the requests ahead of this one are
        # bounded themselves) nor on the whole body (its progress is, below).
        options["timeout"] = aiohttp.ClientTimeout(
            total=None, sock_connect=self._timeout, sock_read=self._timeout
        )
        headers = dict(options.pop("headers", None) or {})
        headers["Range"] = f"bytes={start}-{stop - 1}"
        if self._pinned is not None:
            headers.update(self._pinned.conditions())
        url = self._fs.encode_url(self._file_path)
        response = await session.get(url, headers=headers, **options)
        try:
            if response.status == 404:
                raise FileNotFoundError(self._url)
            if self._pinned is not None:
                changed = self._pinned.change_in(response.status, response.headers)
                if changed:
                    raise file_changed(self._url, changed)
            response.raise_for_status()
            if self._pinned is None:  # the first answer names the version read from now on
                self._pinned = RemoteFile.answered(self._url, response.status, response.headers)
            whole = response.status == 200  # the server ignored the range
            if whole:
                _warn_whole_file(self._url)
            body = bytearray()
            progress = Progress(self._url, self._timeout, 0, None if whole else stop - start)
            while True:
                try:
                    block = await asyncio.wait_for(response.content.readany(), progress.wait_s())
                except TimeoutError:
                    raise progress.stalled(len(body)) from None
                if not block:
                    break
                body += block
                progress.update(len(body))
        finally:
            response.release()
        return bytes(body[start:stop]) if whole else bytes(body)

    async def _ranges(self, ranges: list[tuple[int, int]]) -> list[bytes]:
        # Any range failing for good fails the whole request with its cause (fsspec would
        # hand its exception to uproot as if it were the bytes).
        return list(await asyncio.gather(*(self._range(a, b) for a, b in ranges)))

    async def _head(self) -> dict[str, Any]:
        from fsspec.implementations.http import _file_info

        session = await self._fs.set_session()
        url = self._fs.encode_url(self._file_path)

        async def head() -> dict[str, Any]:
            try:
                return await _file_info(url, session=session, **self._fs.kwargs)
            except Exception as err:
                if getattr(err, "status", None) == 404:
                    raise FileNotFoundError(self._url) from err
                raise

        return await self._attempts_of("HEAD", head)

    # --------------------------------------------------------------- uproot's Source

    def chunk(self, start: int, stop: int) -> uproot.source.chunk.Chunk:
        if self.closed:
            raise OSError(f"file {self._file_path!r} is closed")
        self._num_requests += 1
        self._num_requested_chunks += 1
        self._num_requested_bytes += stop - start
        data = self._executor.submit(self._range(start, stop)).result()
        future = uproot.source.futures.TrivialFuture(data)
        return uproot.source.chunk.Chunk(self, start, stop, future)

    def chunks(self, ranges: list[tuple[int, int]], notifications: Any) -> list[Any]:
        if self.closed:
            raise OSError(f"file {self._file_path!r} is closed")
        self._num_requests += 1
        self._num_requested_chunks += len(ranges)
        self._num_requested_bytes += sum(stop - start for start, stop in ranges)

        def submit(request_ranges: list[tuple[int, int]]) -> Any:
            return self._executor.submit(self._ranges(list(request_ranges)))

        return coalesce_requests(ranges, submit, self, notifications, config=self._coalesce_config)

    @property
    def info(self) -> dict[str, Any]:
        """The server's answer to HEAD (size, ETag, Last-Modified), asked once."""
        if self._info is None:
            self._info = self._executor.submit(self._head()).result()
        return self._info

    @property
    def version(self) -> str | None:
        """The version of the file this source reads (``RemoteFile.version``): the one
        it was given, else the one its first answer named."""
        return self._pinned.version if self._pinned is not None else None

    @property
    def num_bytes(self) -> int:
        if self._pinned is not None and self._pinned.size is not None:
            return self._pinned.size  # the version read (its ranges are checked against it)
        size = self.info.get("size")
        if size is None:
            raise RemoteAccessError(self._url, "the server gives no Content-Length")
        return int(size)
