"""Which messages the plotter started handling and never finished, on disk next to the figures.

A message that kills the plotter process itself (SIGKILL, the kernel's OOM killer, a
crash in native code) is never acked, so the broker redelivers it to the restarted
service, which could die on it again, for ever. Before handling a message the plotter
counts the start in ``DIR/.hzz-in-hand/KEY`` and removes that file once the message
is settled (acked, dead-lettered or handed back while the process lives on); only a
process that dies while handling leaves its count behind. A delivery whose file says
the plotter already stopped ``limit`` times while handling it is dead-lettered
instead of handled.

KEY is the SHA-256 of the message body as it came off the wire: known before anything
of the message is parsed (parsing could be what kills the process), and the same for a
redelivery and for a resend of the same document. One small file per key, written to a
temporary name and renamed (a reader never sees half a count), and removed with an
unlink, which needs no free space: a full disk cannot leave a count behind for a
message the service survived. An exclusive file lock (``filelock``, as the ledger's)
makes read-count-write atomic across plotters sharing DIR. A count left by a message
that was deleted from the queue is harmless; delete the directory to forget them all.
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
