"""Remote files before and during a run: each asked once whether it is there, and read
through its source's module.

A run fails early and clearly (the URL tried, the timeout) instead of hanging in the
middle of building the graph: every remote file of a ``checked`` source (the source
table, ``analysis.inputs.sources``) gets one HEAD request before the graph is built,
all at once and while the cluster starts; its answer (size, ETag, Last-Modified)
identifies the file, so that an inspection made before is reused. The workers then read
byte ranges with the ``Reader`` of the file's source (``cluster.access.reading``).
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from analysis.inputs.catalogue import Sample
from analysis.inputs.locations import locate
from analysis.inputs.sources import Source, readable, source_for
from cluster.defaults import DEFAULT_TIMEOUT_S

#: HEAD requests in flight at once before a run (one connection each, kept alive).
HEAD_CONCURRENCY = 64


@dataclass(frozen=True)
class RemoteFile:
    """What a HEAD request says of a remote file: its size (None: the server says 404)
    and the headers that tell one version of it from another."""

    url: str
    size: int | None
    etag: str | None = None
    last_modified: str | None = None

    @property
    def version(self) -> str | None:
        """Size, ETag and Last-Modified in one string (None for an absent file): the
        version of the file a reader is pinned to (``FileInfo.validator``)."""
        if self.size is None:
            return None
        return json.dumps([self.size, self.etag, self.last_modified])

    @property
    def identity(self) -> str | None:
        """``version`` when the server names one beyond the size; None when it gives
        neither ETag nor Last-Modified (then nothing tells a changed file of the same
        size from the one seen before, and no inspection is kept for it)."""
        return self.version if self.etag or self.last_modified else None

    @classmethod
    def from_version(cls, url: str, version: str) -> RemoteFile:
        """The file ``version`` describes (ValueError if it is not one)."""
        size, etag, last_modified = json.loads(version)
        return cls(url, int(size), etag, last_modified)

    @classmethod
    def answered(cls, url: str, status: int, headers: Mapping[str, str]) -> RemoteFile | None:
        """The version an answer to a read names (its total size, ETag, Last-Modified);
        None if it does not even give the size."""
        found = cls(
            url, _total_size(status, headers), headers.get("ETag"), headers.get("Last-Modified")
        )
        return found if found.size is not None else None

    @property
    def strong_etag(self) -> str | None:
        """The ETag, if a strong one: a weak one (``W/…``) never matches a condition."""
        return self.etag if self.etag and not self.etag.startswith("W/") else None

    def conditions(self) -> dict[str, str]:
        """Request headers that make the server refuse (HTTP 412) to answer from another
        version of the file: If-Match with a strong ETag (a weak one never matches), else
        If-Unmodified-Since."""
        if self.strong_etag:
            return {"If-Match": self.strong_etag}
        if self.last_modified:
            return {"If-Unmodified-Since": self.last_modified}
        return {}

    def if_range(self) -> dict[str, str]:
        """The If-Range header of a resumed download: the rest of this version, or the
        whole file (HTTP 200) if it is another version now."""
        value = self.strong_etag or self.last_modified
        return {"If-Range": value} if value else {}

    def change_in(self, status: int, headers: Mapping[str, str]) -> str | None:
        """How an answer to a read of this file shows another version, in words; None if
        nothing does: a 412 to ``conditions``, the file's total size (Content-Range, or
        the length of a whole-file answer), its ETag, else its Last-Modified. A server
        that honours no condition and sends none of these headers can change a file of
        the same size unseen (docs/faults.md)."""
        if status == 412:
            return "HTTP 412: the version inspected is gone"
        total = _total_size(status, headers)
        if total is not None and self.size is not None and total != self.size:
            return f"{total} bytes, inspected at {self.size}"
        etag = headers.get("ETag")
        if etag and self.etag:
            if _opaque(etag) != _opaque(self.etag):
                return f"ETag {etag}, inspected as {self.etag}"
            return None
        modified = headers.get("Last-Modified")
        if modified and self.last_modified and modified != self.last_modified:
            return f"Last-Modified {modified}, inspected as {self.last_modified}"
        return None


def _opaque(etag: str) -> str:
    """An ETag without its weakness mark: the weak comparison of RFC 9110."""
    return etag[2:] if etag.startswith("W/") else etag


def _total_size(status: int, headers: Mapping[str, str]) -> int | None:
    """The file's size an answer states: a 206's Content-Range total, a 200's length."""
    if status == 206:
        total = headers.get("Content-Range", "").rpartition("/")[2].strip()
        return int(total) if total.isdigit() else None
    if status == 200:
        length = headers.get("Content-Length", "")
        return int(length) if length.isdigit() else None
    return None


def version_stamp(part: Path) -> Path:
    """Beside a partial copy ``NAME.part``, the file naming the version it was begun on:
    it is resumed on that version only."""
    return part.with_name(part.name + ".version")


def access(source: Source) -> ModuleType:
    """The module of ``cluster.access`` that makes ``source``'s requests (``Source.access``):
    ``head`` (checked), ``Reader`` (retried), ``get`` (cached, downloadable)."""
    if source.access is None:
        raise ValueError(f"the {source.name} source has no access module")
    return importlib.import_module(f"{__package__}.{source.access}")


def remote_file(url: str, timeout: float = DEFAULT_TIMEOUT_S) -> RemoteFile:
    """What ``url``'s server says of it (``head`` of its source's module): RemoteAccessError
    naming the URL when it does not answer in time or answers with an error."""
    return access(source_for(url)).head(url, timeout)


def remote_files(samples: Sequence[Sample], locations: Sequence[str]) -> list[str]:
    """The remote URLs a run over these locations will read (local files win)."""
    urls: list[str] = []
    for sample in samples:
        where = locate(sample, list(locations))
        if where is not None and source_for(where).remote:
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
    """One HEAD per remote file of a ``checked`` source, all at once; the others only need
    their client installed. The answers, by URL: what identifies each file (its
    inspection is reused while that stays the same, ``cluster.access.inspected``).

    A file the server says is absent (404) is left to the graph builder, which reports
    it as missing (so ``--allow-missing`` behaves as for local files).
    """
    urls = remote_files(samples, locations)
    checked = [url for url in urls if readable(url).checked]
    return head_all(checked, timeout)
