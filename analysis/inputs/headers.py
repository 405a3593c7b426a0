"""A remote file's tree header, recorded once at inspection and replayed by the readers.

Opening a tree over HTTP is three dependent round trips (file header, keys, tree
metadata). The inspection records the ranges uproot reads while it does so
(``HeaderFile(…, record=True)``) and keeps them with its result (``FileInfo.header``,
kept between runs too); each reader opens the file from them (``HeaderFile(…,
header=…)``), with no request until it asks for baskets; a range not covered still
goes to the server (requests, never results). uproot has no public way to open a file
from metadata read before (scikit-hep/uproot5#1137): ``ReadOnlyFile``'s documented hook
``hook_before_get_chunks`` puts the recorded ranges in front of its source.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from typing import Any

import uproot
import uproot.source.chunk
from uproot.reading import ReadOnlyFile

from analysis.inputs.classnames import memoise_classname_regularize

memoise_classname_regularize()  # every file the inspection or a reader opens

#: Headers larger than this are not kept (the reader opens the file itself): every
#: partition task of the file carries its header through the scheduler. The 2020
#: files' headers are 11–520 kB (their few baskets are stored inside the tree's
#: metadata); a large file's is its branches' basket tables.
HEADER_LIMIT = 1 << 20

_RANGE = struct.Struct("<QQ")


def encode(ranges: Sequence[tuple[int, bytes]]) -> bytes:
    """Ranges ``(start, data)`` as one byte string: for each, start and length, then data."""
    return b"".join(_RANGE.pack(start, len(data)) + data for start, data in ranges)


def decode(header: bytes) -> list[tuple[int, bytes]]:
    """The ranges ``encode`` was given (ValueError if ``header`` is not one)."""
    ranges: list[tuple[int, bytes]] = []
    at = 0
    while at < len(header):
        if at + _RANGE.size > len(header):
            raise ValueError("truncated header record")
        start, length = _RANGE.unpack_from(header, at)
        at += _RANGE.size
        if at + length > len(header):
            raise ValueError("truncated header record")
        ranges.append((start, header[at : at + length]))
        at += length
    return ranges


class _HeaderSource:
    """In front of uproot's source: ``chunk`` answered from known ranges when they cover
    it, else asked of the source (and recorded when recording); all else is the source's.
    """

    def __init__(self, inner: Any, known: Sequence[tuple[int, bytes]], record: bool) -> None:
        self._inner = inner
        self._known = list(known)
        self._record = record
        self.recorded: list[tuple[int, bytes]] = []
        self.asked = 0  # chunk requests the known ranges did not cover

    def chunk(self, start: int, stop: int) -> uproot.source.chunk.Chunk:
        for begin, data in self._known:
            if begin <= start and stop <= begin + len(data):
                return uproot.source.chunk.Chunk.wrap(
                    self, data[start - begin : stop - begin], start
                )
        self.asked += 1
        chunk = self._inner.chunk(start, stop)
        if self._record:
            data = bytes(chunk.raw_data)
            self.recorded.append((start, data))
            self._known.append((start, data))  # asked twice (uproot does): recorded once
        return chunk

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class HeaderFile(ReadOnlyFile):
    """``uproot.ReadOnlyFile`` that records the ranges it reads with ``chunk`` (``record``)
    or answers them from a recorded ``header`` (``encode``'s bytes) without a request."""

    def __init__(
        self, file_path: str, header: bytes | None = None, record: bool = False, **options: Any
    ) -> None:
        self._header_known = decode(header) if header else []
        self._header_record = record
        super().__init__(file_path, **options)

    def hook_before_get_chunks(self, **kwargs: Any) -> None:
        super().hook_before_get_chunks(**kwargs)
        self._source = _HeaderSource(self._source, self._header_known, self._header_record)

    @property
    def header(self) -> bytes | None:
        """The ranges recorded so far, encoded; None beyond ``HEADER_LIMIT`` or if none."""
        recorded = self._source.recorded if isinstance(self._source, _HeaderSource) else []
        if not recorded or sum(len(data) for _, data in recorded) > HEADER_LIMIT:
            return None
        return encode(recorded)

    @property
    def requests_not_covered(self) -> int:
        """``chunk`` requests the header did not answer (went to the file's source)."""
        return self._source.asked if isinstance(self._source, _HeaderSource) else 0


def open_tree(location: str, tree: str, header: bytes | None, options: Mapping[str, Any]) -> Any:
    """``tree`` of the file at ``location``, opened from its recorded ``header`` if given
    (no request for the header), else with ``uproot.open``."""
    if header is None:
        return uproot.open(location, **options)[tree]
    return HeaderFile(location, header=header, **options).root_directory[tree]
