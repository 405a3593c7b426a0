"""``hzz run --cache DIR``: local copies of remote files, reused by later runs.

The cache mirrors URLs: ``https://host/a/b/`` + ``MC/x.root`` is kept at
``DIR/host/a/b/MC/x.root``, so each remote base URL has a mirror directory in the
server layout, and runs against different servers or releases never collide. Files are
fetched before the graph is built (resumable, size- and checksum-verified, see
``cluster.access.download``); a later run finds them current with one HEAD request each and
reads no file body from the server.
"""

from __future__ import annotations

import logging
import os
import posixpath
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import unquote, urlsplit

from analysis.inputs.catalogue import Sample
from analysis.inputs.locations import join
from analysis.inputs.sources import source_for
from cluster.defaults import DEFAULT_TIMEOUT_S

from .download import RemoteFileMissing, fetch
from .remote import check_reachable

log = logging.getLogger(__name__)


def mirror_dir(cache_dir: Path, base_url: str) -> Path:
    """The directory of ``cache_dir`` that mirrors the remote ``base_url``."""
    parts = urlsplit(base_url)
    # Host and port only: credentials in the URL never become a directory name.
    host = (parts.hostname or "") + (f"_{parts.port}" if parts.port else "")
    path = posixpath.normpath("/" + unquote(parts.path)).strip("/")
    if not host or host.startswith(".") or "/" in host:
        raise ValueError(f"cannot cache {base_url!r}: no host name")
    return cache_dir / host / path if path else cache_dir / host


def cached_locations(
    locations: Sequence[str],
    samples: Sequence[Sample],
    cache_dir: Path,
    timeout: float = DEFAULT_TIMEOUT_S,
    show_progress: bool = False,
) -> list[str]:
    """Fetch the samples' remote files into the cache; the locations with each remote
    http(s) base preceded by its mirror directory.

    Search order is kept: a sample found in a local location before the first remote
    one is not fetched. A file the server does not have (404) is not fetched and its URL
    stays in the list, so the run reports it missing as without the cache. Bases of a
    source that is not ``cached`` (root://) are read directly.
    """
    cache_dir = Path(cache_dir)
    sources = {location: source_for(location) for location in locations}
    mirrors = {loc: mirror_dir(cache_dir, loc) for loc in locations if sources[loc].cached}
    for location, source in sources.items():
        if source.remote and not source.cached:
            log.warning(
                "--cache: %s is read directly (%s files are not cached)", location, source.name
            )
    for sample in samples:
        for location in locations:
            if not sources[location].remote:
                if os.path.isfile(join(location, sample.path)):
                    break
                continue
            if location not in mirrors:
                break
            url = join(location, sample.path)
            try:
                got = fetch(
                    url,
                    mirrors[location] / sample.path,
                    sha256=sample.sha256,
                    timeout=timeout,
                    show_progress=show_progress,
                )
            except RemoteFileMissing:
                log.warning("--cache: %s is not on the server", url)
                break
            verb = "fetched" if got.transferred else "current"
            log.info("cache %s: %s (%d bytes)", verb, got.path, got.size)
            break
    expanded: list[str] = []
    for location in locations:
        if location in mirrors:
            expanded.append(str(mirrors[location]))
        expanded.append(location)
    return expanded


def prepare_locations(
    samples: Sequence[Sample],
    locations: Sequence[str],
    cache_dir: Path | None = None,
    timeout: float = DEFAULT_TIMEOUT_S,
    show_progress: bool = False,
) -> list[str]:
    """The locations to build the graph from: checked, or with remote files cached."""
    if cache_dir is None:
        check_reachable(samples, locations, timeout)
        return list(locations)
    return cached_locations(locations, samples, cache_dir, timeout, show_progress)
