"""Checkpoints: each computed partition's record kept on disk, so a run that stopped
resumes where it was and a rerun computes nothing twice.

One small JSON file per partition, named by a key of everything that determines the
partition's row: the file's identity (ROOT UUID, size and, for a remote file, the
validator its inspection saw), the tree, the entry range, and the version of the
analysis (a hash of the code that reads, selects, weights and fills, the sample's
catalogue entry, the release's analysis settings and binning, and the versions of the
libraries that compute it). A changed cut, weight or binning gives new keys: an old row
is never reused for it. Files are written whole under a temporary name and renamed,
so a reader sees a whole entry or none; an entry that is torn, of another format or of
another key is ignored (the partition is computed again). Runs may share a directory:
equal keys mean equal contents, and ``prune`` takes a file lock.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import json
import logging
import os
import tempfile
import time
from dataclasses import dataclass
from functools import cache
from importlib import metadata, resources
from pathlib import Path

import numpy as np

from analysis.inputs.catalogue import Release, Sample
from analysis.inputs.files import FileInfo

log = logging.getLogger(__name__)

#: Bumped when an entry's layout changes: entries of another format are ignored.
FORMAT = 1
SUFFIX = ".json"
#: The modules whose code makes a partition's row (read, check, select, weight, fill).
ROW_CODE = (
    "inputs/binning.py",
    "inputs/headers.py",
    "inputs/reader.py",
    "inputs/sanity.py",
    "physics/selection.py",
    "physics/summary.py",
    "physics/systematics.py",
    "physics/weights.py",
)
#: The libraries whose arithmetic makes it.
ROW_LIBRARIES = ("awkward", "boost-histogram", "hist", "numba", "numpy", "uproot")


@cache
def code_version() -> str:
    """A hash of the code and library versions that compute a partition's row."""
    digest = hashlib.sha256()
    root = resources.files("analysis")
    for name in ROW_CODE:
        digest.update(name.encode() + b"\0" + (root / name).read_bytes() + b"\0")
    for library in ROW_LIBRARIES:
        try:
            version = metadata.version(library)
        except metadata.PackageNotFoundError:
            version = "-"
        digest.update(f"{library}={version}\0".encode())
    return digest.hexdigest()


def analysis_version(sample: Sample, release: Release) -> str:
    """The version of the analysis of one sample: the row's code, the sample's catalogue
    entry (normalisation), and the release's tree, luminosity and analysis settings
    (branches, units, weights, preselection, binning)."""
    described = repr((sample, release.name, release.tree, release.lumi_fb, release.analysis))
    return hashlib.sha256(f"{code_version()}\0{described}".encode()).hexdigest()


def file_identity(info: FileInfo) -> str:
    """What tells this version of a file from any other (its location only when the
    inspection found no ROOT UUID)."""
    return json.dumps([info.uuid or info.location, info.size, info.validator])


def partition_key(version: str, info: FileInfo, tree: str, start: int, stop: int) -> str:
    """The key of one partition's record: the analysis version, the file, the range."""
    text = json.dumps([FORMAT, version, file_identity(info), tree, start, stop])
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class StoredPartition:
    """A partition's record as kept: its row and how long its read took."""

    row: np.ndarray
    seconds: float


class CheckpointStore:
    """Partition records under ``directory``, one file per key."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)

    def _path(self, key: str) -> Path:
        return self.directory / f"{key}{SUFFIX}"

    def load(self, key: str, length: int) -> StoredPartition | None:
        """The record kept under ``key`` with a row of ``length`` numbers, or None
        (absent, torn, foreign: it is then computed again)."""
        path = self._path(key)
        try:
            entry = json.loads(path.read_bytes())
            if entry.get("format") != FORMAT or entry.get("key") != key:
                return None
            row = np.frombuffer(base64.b64decode(entry["row"], validate=True), dtype="<f8")
            seconds = float(entry.get("seconds", 0.0))
        except (OSError, ValueError, KeyError, TypeError, AttributeError, binascii.Error):
            return None
        if row.size != length:
            return None
        with contextlib.suppress(OSError):  # used: ``prune`` removes the least recently used
            os.utime(path)
        return StoredPartition(row.astype(np.float64), seconds)

    def save(self, key: str, row: np.ndarray, seconds: float = 0.0) -> bool:
        """Keep a record; False (and a warning, once) when the directory is not writable:
        the run goes on without it."""
        entry = {
            "format": FORMAT,
            "key": key,
            "row": base64.b64encode(np.asarray(row, dtype="<f8").tobytes()).decode("ascii"),
            "seconds": float(seconds),
        }
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(
                "w", dir=self.directory, prefix=".", suffix=".tmp", delete=False
            ) as tmp:
                json.dump(entry, tmp)
            os.replace(tmp.name, self._path(key))
        except OSError as err:
            log.warning("cannot keep a checkpoint in %s: %s", self.directory, err)
            return False
        return True


@dataclass(frozen=True)
class Pruned:
    """What ``prune`` removed and what it kept, in entries and bytes."""

    removed: int
    removed_bytes: int
    kept: int
    kept_bytes: int


#: Temporary files older than this are left over by a killed writer.
STALE_TMP_S = 3600.0


def prune(
    directory: str | os.PathLike[str],
    max_age_s: float | None = None,
    max_bytes: int | None = None,
) -> Pruned:
    """Remove entries unused for longer than ``max_age_s``, then the least recently used
    until the rest hold at most ``max_bytes``; and temporary files a killed run left.

    Under a file lock (``.prune.lock``): two prunes never race. A run reading meanwhile
    at worst computes a removed partition again."""
    from filelock import FileLock

    root = Path(directory)
    if not root.is_dir():
        return Pruned(0, 0, 0, 0)
    now = time.time()
    removed = removed_bytes = 0
    with FileLock(str(root / ".prune.lock")):
        entries: list[tuple[float, int, Path]] = []
        for path in root.iterdir():
            try:
                stat = path.stat()
            except OSError:
                continue
            if path.name.startswith(".") and path.name.endswith(".tmp"):
                if now - stat.st_mtime > STALE_TMP_S:
                    path.unlink(missing_ok=True)
                continue
            if path.suffix == SUFFIX and not path.name.startswith("."):
                entries.append((stat.st_mtime, stat.st_size, path))
        entries.sort()  # oldest use first
        total = sum(size for _, size, _ in entries)
        kept: list[tuple[float, int, Path]] = []
        for used, size, path in entries:
            too_old = max_age_s is not None and now - used > max_age_s
            too_big = max_bytes is not None and total > max_bytes
            if too_old or too_big:
                path.unlink(missing_ok=True)
                removed += 1
                removed_bytes += size
                total -= size
            else:
                kept.append((used, size, path))
    return Pruned(removed, removed_bytes, len(kept), sum(size for _, size, _ in kept))
