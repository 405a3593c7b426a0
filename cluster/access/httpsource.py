"""uproot's HTTP source with request-level retries, the real cause of a failure, and the
file's identity.

uproot reads http(s) files through fsspec (``uproot.source.fsspec.FSSpecSource``), which
has no retries: one connection reset or ``503`` in the thousands of range requests of a
run fails the file. Worse, fsspec's ``_cat_ranges`` returns a failed range's exception in
place of its bytes, and uproot slices it, so the error a user sees is
``'ClientResponseError' object is not subscriptable`` instead of the cause
(scikit-hep/uproot5#1450). And fsspec's size lookup turns any failure of its HEAD and
GET into ``FileNotFoundError``: a transient ``503`` would make a file look missing.

``RetryingSource`` is ``FSSpecSource`` (given to ``uproot.open`` as ``handler``, see
``cluster.access.remote.uproot_open_options``) with each of those requests retried with
exponential back-off on transient failures (connection refused or reset, a body cut
short, ``5xx``/``429``/``408``, no answer within the timeout, a body that stalls), and a
failure that outlasts its retries raised as ``RemoteAccessError`` naming the URL, the
cause and the attempts. A range's body is bounded by progress, not by its duration
(``cluster.access.progress``): a large range on a slow link that keeps moving is read to
the end; a server that trickles bytes fails it within a few ``--timeout`` windows.

Range merging, concurrency and the event loop are fsspec's and uproot's; local
files and other protocols go through ``FSSpecSource`` unchanged.
"""

from __future__ import annotations

import asyncio
import logging
import random
from typing import Any

import aiohttp
import uproot.source.chunk
import uproot.source.futures
from uproot.source.coalesce import coalesce_requests
from uproot.source.fsspec import FSSpecSource

from cluster.defaults import DEFAULT_TIMEOUT_S

from .progress import Progress
from .retry import RETRY_ATTEMPTS, backoff_s, reason, should_retry

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


#: HTTP answer headers that identify one version of a file (with its size).
IDENTITY_HEADERS = ("ETag", "Last-Modified")


class RetryingSource(FSSpecSource):
    """``FSSpecSource`` whose http(s) requests are retried and fail with their cause."""

    def __init__(self, file_path: str, **options: Any) -> None:
        self._attempts = int(options.pop("retries", RETRY_ATTEMPTS))
        timeout = options.get("timeout")
        self._timeout = float(timeout) if timeout else DEFAULT_TIMEOUT_S
        self._url = file_path
        self._info: dict[str, Any] | None = None
        super().__init__(file_path, **options)
        self._retrying = self._fs.protocol in ("http", "https") or (
            isinstance(self._fs.protocol, tuple) and "http" in self._fs.protocol
        )

    # ------------------------------------------------------------------ the requests

    async def _attempts_of(self, what: str, make: Any, bounded: bool = True) -> Any:
        """``await make()``, retried on transient failures; RemoteAccessError at the end.

        ``bounded``: each try must finish within the timeout (a HEAD); otherwise ``make``
        bounds itself (a range body, by its progress).
        """
        from .remote import RemoteAccessError

        for attempt in range(1, self._attempts + 1):
            try:
                return await (asyncio.wait_for(make(), self._timeout) if bounded else make())
            except FileNotFoundError:
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
        url = self._fs.encode_url(self._file_path)
        response = await session.get(url, headers=headers, **options)
        try:
            if response.status == 404:
                raise FileNotFoundError(self._url)
            response.raise_for_status()
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
        if not self._retrying:
            return super().chunk(start, stop)
        if self.closed:
            raise OSError(f"file {self._file_path!r} is closed")
        self._num_requests += 1
        self._num_requested_chunks += 1
        self._num_requested_bytes += stop - start
        data = self._executor.submit(self._range(start, stop)).result()
        future = uproot.source.futures.TrivialFuture(data)
        return uproot.source.chunk.Chunk(self, start, stop, future)

    def chunks(self, ranges: list[tuple[int, int]], notifications: Any) -> list[Any]:
        if not self._retrying:
            return super().chunks(ranges, notifications)
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
    def num_bytes(self) -> int:
        if not self._retrying:
            return super().num_bytes
        size = self.info.get("size")
        if size is None:
            from .remote import RemoteAccessError

            raise RemoteAccessError(self._url, "the server gives no Content-Length")
        return int(size)
