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
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
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
    def identity(self) -> str | None:
        """Size, ETag and Last-Modified in one string; None when the server gives
        neither header (then nothing tells a changed file from the one seen before)."""
        if self.size is None or not (self.etag or self.last_modified):
            return None
        return json.dumps([self.size, self.etag, self.last_modified])


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
