"""Which messages the plotter started handling and never finished: the crash limit.

A message that kills the plotter process itself is never acked and comes back after
every restart. The plotter counts each start of handling in ``DIR/.hzz-in-hand/KEY``
(KEY: the SHA-256 of the body, known before anything of it is parsed) and removes the
count once the message is settled; a delivery found with ``limit`` unfinished starts is
dead-lettered instead of handled. A count is written whole and renamed, removed with an
unlink (a full disk cannot keep one), under a file lock shared by the plotters of DIR.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock

IN_HAND_NAME = ".hzz-in-hand"


def body_key(body: bytes) -> str:
    """The key of a message's record: the SHA-256 (hex) of its body on the wire."""
    return hashlib.sha256(body).hexdigest()


class InHand:
    """The ``.hzz-in-hand`` records of one output directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory / IN_HAND_NAME
        self._lock_path = directory / f"{IN_HAND_NAME}.lock"

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.directory.mkdir(parents=True, exist_ok=True)
        with FileLock(self._lock_path):
            yield

    def _read(self, key: str) -> int:
        try:
            text = (self.directory / key).read_text("ascii")
        except FileNotFoundError:
            return 0
        try:
            return max(int(text.strip()), 0)
        except ValueError:  # cannot happen with atomic writes; count it as one stop
            return 1

    def start(self, key: str) -> int:
        """Record that handling ``key`` starts; return how many earlier starts never
        finished (the times the plotter stopped while handling it). OSError if the
        record cannot be written."""
        with self._locked():
            earlier = self._read(key)
            part = self.directory / f".{key}.{os.getpid()}.part"
            try:
                fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
                try:
                    os.write(fd, f"{earlier + 1}\n".encode("ascii"))
                    os.fsync(fd)  # the count must outlive the process
                finally:
                    os.close(fd)
                part.replace(self.directory / key)
            except BaseException:
                part.unlink(missing_ok=True)
                raise
        return earlier

    def finish(self, key: str) -> None:
        """Forget ``key``: its message was settled and the process is alive."""
        with self._locked():
            (self.directory / key).unlink(missing_ok=True)

    def pending(self) -> dict[str, int]:
        """Every key with a count (tests and inspection)."""
        if not self.directory.is_dir():
            return {}
        return {
            path.name: self._read(path.name)
            for path in self.directory.iterdir()
            if not path.name.startswith(".")
        }
