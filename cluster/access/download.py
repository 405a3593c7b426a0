"""Fetching whole files: resumable, verified, never half-written.

Used by ``hzz download`` (mirror a release) and by ``hzz run --cache`` (local copies),
for the sources that can be copied (``analysis.inputs.sources``), through their
module's ``head`` and ``get``. A file is written to ``NAME.part`` and resumed from there
after an interruption; only a file whose size and, where the catalogue knows it, SHA-256
check out is renamed into place.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock
from tqdm import tqdm

from analysis.errors import RemoteAccessError
from analysis.inputs.catalogue import Release, Sample
from analysis.inputs.locations import join
from analysis.inputs.sources import described, source_for
from cluster.defaults import DEFAULT_RETRIES, DEFAULT_TIMEOUT_S

from .remote import access, version_stamp

log = logging.getLogger(__name__)

#: Bytes per read when hashing a file.
CHUNK_BYTES = 1 << 20
#: Hidden lock file in each folder written to: two runs never write one .part together.
LOCK_NAME = ".hzz-fetch.lock"


class RemoteFileMissing(RemoteAccessError):
    """The server says the file does not exist (HTTP 404)."""


class IntegrityError(RemoteAccessError):
    """A fetched or cached file does not match its expected size or SHA-256."""


@dataclass(frozen=True)
class Fetched:
    """One file fetched, or found already complete: where, how big, bytes moved."""

    url: str
    path: Path
    size: int
    transferred: int  # body bytes received by this call (0: the local copy was current)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(CHUNK_BYTES), b""):
            digest.update(block)
    return digest.hexdigest()


def is_current(path: Path, size: int, sha256: str | None) -> bool:
    """True when ``path`` holds the complete file: right size and, if known, checksum."""
    if not path.is_file() or path.stat().st_size != size:
        return False
    return sha256 is None or sha256_of(path) == sha256


def fetch(
    url: str,
    dest: Path,
    sha256: str | None = None,
    timeout: float = DEFAULT_TIMEOUT_S,
    retries: int = DEFAULT_RETRIES,
    show_progress: bool = False,
) -> Fetched:
    """Make ``dest`` a verified copy of ``url``, resuming a previous ``dest.part``.

    A current ``dest`` costs one HEAD request and no body bytes. Raises
    RemoteFileMissing (404), IntegrityError (size or SHA-256 mismatch; the bad .part
    is removed) or RemoteAccessError (unreachable, timed out, failed after ``retries``
    resumes; the .part is kept for the next call to resume).
    """
    source = source_for(url)
    if not (source.downloadable or source.cached):
        copied = described(lambda s: s.downloadable or s.cached)
        raise RemoteAccessError(url, f"only {copied} files can be downloaded")
    protocol = access(source)
    remote = protocol.head(url, timeout)
    size = remote.size
    if size is None:
        raise RemoteFileMissing(url, "not found on the server (HTTP 404)")
    dest.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(dest.with_name(LOCK_NAME)):
        if is_current(dest, size, sha256):
            return Fetched(url, dest, size, 0)
        part = dest.with_name(dest.name + ".part")
        transferred = 0
        for attempt in range(retries + 1):
            try:
                transferred += protocol.get(url, part, remote, timeout, show_progress)
                break
            except RemoteAccessError as err:
                if attempt == retries:
                    raise
                log.warning("%s; resuming (%d of %d)", err, attempt + 1, retries)
        _verify(url, part, size, sha256)
        with part.open("rb") as handle:
            os.fsync(handle.fileno())
        os.replace(part, dest)
        version_stamp(part).unlink(missing_ok=True)
    return Fetched(url, dest, size, transferred)


def _verify(url: str, part: Path, size: int, sha256: str | None) -> None:
    actual_size = part.stat().st_size
    if actual_size != size:
        raise RemoteAccessError(url, f"got {actual_size} of {size} bytes")
    if sha256 is not None:
        actual = sha256_of(part)
        if actual != sha256:
            part.unlink()
            version_stamp(part).unlink(missing_ok=True)
            raise IntegrityError(
                url, f"SHA-256 {actual} differs from the catalogue's {sha256}; not kept"
            )


def download_release(
    release: Release,
    samples: Sequence[Sample],
    base_url: str,
    out_dir: Path,
    timeout: float = DEFAULT_TIMEOUT_S,
    retries: int = DEFAULT_RETRIES,
    show_progress: bool = True,
) -> list[Fetched]:
    """Mirror the samples' files from ``base_url`` into ``out_dir`` in the server layout."""
    fetched: list[Fetched] = []
    for sample in tqdm(
        samples, desc=f"release {release.name}", unit="file", disable=not show_progress
    ):
        fetched.append(
            fetch(
                join(base_url, sample.path),
                out_dir / sample.path,
                sha256=sample.sha256,
                timeout=timeout,
                retries=retries,
                show_progress=show_progress,
            )
        )
    return fetched
