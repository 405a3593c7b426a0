"""Which messages already have a figure, on disk next to the figures.

The plotter acks a message only after its PNG is written, so a crash between the
two redelivers a message whose figure exists. The ledger makes that a no-op:
``begin ID`` is recorded before the PNG is written, ``done ID NAME`` after it, and
the PNG itself carries the id in a text chunk (written by matplotlib, read by
Pillow). A redelivered id with ``done`` is acked at once; one with only ``begin`` is
looked for among the PNGs, so even a crash between writing the PNG and recording
``done`` gives one figure, not two. An exclusive file lock (``filelock``) makes
check-write-record atomic across plotters sharing DIR.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock
from PIL import Image

from analysis.results.outputs import outputs_in

LEDGER_NAME = ".hzz-plotted"
#: The PNG text chunk holding the id of the message a figure was drawn for.
PNG_KEY = "hzz-message-id"


def png_message_id(path: Path) -> str | None:
    """The ``hzz-message-id`` text of a PNG written by the plotter; None if it has none."""
    try:
        with Image.open(path) as image:
            value = image.info.get(PNG_KEY)  # text chunks before the image data
    except (OSError, ValueError):  # not a PNG, or unreadable
        return None
    return value if isinstance(value, str) else None


class Ledger:
    """The ``.hzz-plotted`` file of one output directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.path = directory / LEDGER_NAME

    @contextmanager
    def locked(self) -> Iterator[Ledger]:
        """Hold the directory's lock for a check-write-record sequence."""
        self.directory.mkdir(parents=True, exist_ok=True)
        with FileLock(self.directory / f"{LEDGER_NAME}.lock"):
            yield self

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
            for png in outputs_in(self.directory, ".png"):
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
