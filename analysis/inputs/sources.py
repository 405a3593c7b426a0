"""Every kind of place data can be read from, and what hzz can do with each: one table.

A data location is a local path or a URL, and its scheme picks its entry here
(``source_for``), the way uproot picks the class that reads a path
(``uproot._util.file_path_to_source_class``); a scheme that is not here is an InputError
naming the location. The catalogue, the inspection, the command line, the check before a
run, the readers' retries, ``--cache`` and ``hzz download`` ask this table instead of
testing schemes themselves. Adding a source is one entry here plus, for what it can do
beyond being read by uproot, one module of ``cluster/access`` (docs/architecture.md).
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Callable
from dataclasses import dataclass

from analysis.errors import InputError


@dataclass(frozen=True)
class Source:
    """One kind of data location: the schemes of its URLs and what its files support."""

    name: str
    schemes: tuple[str, ...]  # "" for a plain path
    remote: bool = True  # read over a network: inspection records each file's tree header
    #: Each file is asked before a run whether it exists and which version it is (size,
    #: ETag, Last-Modified): a missing one is reported as missing, and an inspection kept
    #: from an earlier run is reused while the version stays the same.
    checked: bool = False
    retried: bool = False  # requests retried with back-off; a failure says its cause
    cached: bool = False  # ``hzz run --cache DIR`` copies its files and reads the copies
    downloadable: bool = False  # ``hzz download`` mirrors it
    extra: str | None = None  # the package extra that installs its client
    modules: tuple[str, ...] = ()  # what that extra makes importable
    #: Its module in ``cluster.access``: the requests behind ``checked``, ``retried``,
    #: ``cached`` and ``downloadable``. None: uproot reads its files, nothing more.
    access: str | None = None

    def missing_client(self) -> str | None:
        """Why its files cannot be read in this installation, or None when they can."""
        if all(importlib.util.find_spec(module) is not None for module in self.modules):
            return None
        return (
            f"reading {self.schemes[0]}:// URLs needs the {self.name} client, which is not "
            f"installed: pip install 'hzz-cluster[{self.extra}]' (for "
            f"{' and '.join(self.modules)}), or use the https:// base URL"
        )


LOCAL = Source("local", ("", "file"), remote=False)

SOURCES: tuple[Source, ...] = (
    LOCAL,
    Source(
        "http",
        ("https", "http"),
        checked=True,
        retried=True,
        cached=True,
        downloadable=True,
        access="http",
    ),
    Source("XRootD", ("root",), extra="xrootd", modules=("fsspec_xrootd", "XRootD")),
)

_BY_SCHEME = {scheme: source for source in SOURCES for scheme in source.schemes}
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


def scheme_of(location: str) -> str:
    """The scheme of a URL, lower case (``https``); ``""`` for a plain path."""
    found = _SCHEME.match(location)
    return found.group(1).lower() if found else ""


def source_for(location: str) -> Source:
    """The source that reads ``location``; InputError naming it if no source knows it."""
    source = _BY_SCHEME.get(scheme_of(location))
    if source is None:
        from analysis.redaction import redact_urls

        raise InputError(
            redact_urls(
                f"{location}: no data source reads {scheme_of(location)}:// URLs; "
                f"known: a local directory, {described(lambda s: s.remote)}"
            )
        )
    return source


def described(chosen: Callable[[Source], bool]) -> str:
    """The URL schemes of the sources ``chosen`` picks, in words: ``https:// or http://``."""
    schemes = [f"{s}://" for source in SOURCES if chosen(source) for s in source.schemes if s]
    return ", ".join(schemes[:-1]) + (" or " if len(schemes) > 1 else "") + schemes[-1]


def is_remote(location: str) -> bool:
    """True for a URL read over a network; InputError for a scheme no source knows."""
    return source_for(location).remote


def readable(location: str) -> Source:
    """``location``'s source, once its client is known to be installed (InputError if not)."""
    source = source_for(location)
    problem = source.missing_client()
    if problem is not None:
        raise InputError(f"{location}: {problem}")
    return source
