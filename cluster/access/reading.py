"""The uproot ``Source`` class of a path, picked by its source (``analysis.inputs.sources``).

uproot opens every path of a call with the one ``handler`` class it is given; this one
hands each path to the ``Reader`` of its source's module where the source is ``retried``
(http: retries, the real cause of a failure), and to uproot's own fsspec source otherwise
(local files, XRootD): uproot's own mapping from a path to its Source class
(``uproot._util.file_path_to_source_class``), one entry of the table deeper.
"""

from __future__ import annotations

from typing import Any

import uproot.source.chunk
from uproot.source.coalesce import CoalesceConfig
from uproot.source.fsspec import FSSpecSource

from analysis.inputs.sources import source_for
from cluster.defaults import DEFAULT_TIMEOUT_S

from .remote import access


def reader_class(file_path: str) -> type[uproot.source.chunk.Source]:
    """The uproot Source class that reads ``file_path``."""
    source = source_for(file_path)
    return access(source).Reader if source.retried else FSSpecSource


class SourceReader(uproot.source.chunk.Source):
    """Given to ``uproot.open`` as ``handler``: each path is read by ``reader_class``'s."""

    def __new__(cls, file_path: str, **options: Any) -> uproot.source.chunk.Source:
        reader = reader_class(file_path)
        if reader is FSSpecSource:  # a version is pinned by the source's own Reader only
            options.pop("validator", None)
        return reader(file_path, **options)


def uproot_open_options(timeout: float = DEFAULT_TIMEOUT_S) -> dict[str, Any]:
    """Options for ``uproot.open`` of remote files (reader, inspection), sent to the workers.

    ``timeout``: a server that stops answering fails the read instead of hanging it.
    ``handler``: the ``Reader`` of each file's source where it has one (retries, the
    cause of a failure), else uproot's own. ``coalesce_config``: uproot merges byte
    ranges less than 32 KiB apart into one request by default; the baskets of the few
    branches read are interleaved with those of the ~100 others, so the merged requests
    fetch most of the file (1.71 MB of 2.22 MB for two branches of the 2025
    data15_periodD file, against 128 kB without merging).
    """
    return {
        "timeout": timeout,
        "handler": SourceReader,
        "coalesce_config": CoalesceConfig(max_range_gap=0),
    }
