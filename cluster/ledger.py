"""Which messages already have a figure, on disk next to the figures.

The plotter acks a message only after its PNG is written, so a crash between the
two redelivers a message whose figure exists. The ledger makes that a no-op:
``begin ID`` is recorded before the PNG is written, ``done ID NAME`` after it, and
the PNG itself carries the id in a ``tEXt`` chunk. A redelivered id with ``done``
is acked at once; one with only ``begin`` is looked for among the PNGs, so even a
crash between writing the PNG and recording ``done`` gives one figure, not two.
An exclusive ``flock`` makes check-write-record atomic across plotters sharing DIR.
"""

from __future__ import annotations

import fcntl
import os
import struct
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

LEDGER_NAME = ".hzz-plotted"
PNG_KEY = b"hzz-message-id"
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def tag_png(png: bytes, message_id: str) -> bytes:
    """``png`` with a ``tEXt`` chunk ``hzz-message-id`` right after the header chunk."""
    if not png.startswith(_PNG_SIGNATURE):
        raise ValueError("not a PNG")
    (ihdr_length,) = struct.unpack(">I", png[8:12])
    end_of_ihdr = 8 + 12 + ihdr_length
    data = PNG_KEY + b"\0" + message_id.encode("latin-1")
    chunk = b"tEXt" + data
    packed = struct.pack(">I", len(data)) + chunk + struct.pack(">I", zlib.crc32(chunk))
    return png[:end_of_ihdr] + packed + png[end_of_ihdr:]


def png_message_id(path: Path) -> str | None:
    """The ``hzz-message-id`` of a PNG written by the plotter; None if it has none."""
    try:
        with path.open("rb") as handle:
            if handle.read(8) != _PNG_SIGNATURE:
                return None
            while header := handle.read(8):
                length, kind = struct.unpack(">I4s", header)
                if kind == b"IDAT" or len(header) < 8:
                    return None
                data = handle.read(length)
                handle.read(4)
                if kind == b"tEXt" and data.startswith(PNG_KEY + b"\0"):
                    return data[len(PNG_KEY) + 1 :].decode("latin-1")
    except (OSError, struct.error):
        return None
    return None


class Ledger:
    """The ``.hzz-plotted`` file of one output directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.path = directory / LEDGER_NAME

    @contextmanager
    def locked(self) -> Iterator[Ledger]:
        """Hold the directory's lock for a check-write-record sequence."""
        self.directory.mkdir(parents=True, exist_ok=True)
        with (self.directory / f"{LEDGER_NAME}.lock").open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield self
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _entries(self) -> Iterator[list[str]]:
        try:
            text = self.path.read_text("utf-8")
        except FileNotFoundError:
            return
        for line in text.splitlines():
            parts = line.split("\t")
            if len(parts) >= 2:
                yield parts

    def plotted(self, message_id: str) -> Path | None:
        """The figure already made for ``message_id``, or None."""
        begun = False
        for parts in self._entries():
            if parts[1] != message_id:
                continue
            if parts[0] == "done" and len(parts) == 3:
                return self.directory / parts[2]
            begun = begun or parts[0] == "begin"
        if begun:  # crashed after begin: the PNG may or may not exist
            for png in sorted(self.directory.glob("plot_*.png")):
                if png_message_id(png) == message_id:
                    self._append("done", message_id, png.name)
                    return png
        return None

    def begin(self, message_id: str) -> None:
        self._append("begin", message_id)

    def done(self, message_id: str, figure: Path) -> None:
        self._append("done", message_id, figure.name)

    def _append(self, *fields: str) -> None:
        line = ("\t".join(fields) + "\n").encode("utf-8")
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)
