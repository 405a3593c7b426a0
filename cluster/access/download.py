"""Fetching whole files over HTTP(S): resumable, verified, never half-written.

Used by ``hzz download`` (mirror a release) and by ``hzz run --cache`` (local copies).
A file is written to ``NAME.part`` and resumed from there with an HTTP Range request
after an interruption; only a file whose size (Content-Length) and, where the catalogue
knows it, SHA-256 check out is renamed into place.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import requests
import urllib3
from filelock import FileLock
from tqdm import tqdm

from analysis.inputs.catalogue import Release, Sample, join
from cluster.defaults import DEFAULT_RETRIES, DEFAULT_TIMEOUT_S

from .progress import Progress, Stalled
from .remote import (
    RemoteAccessError,
    describe_network_error,
    is_http,
    remote_size,
)

log = logging.getLogger(__name__)

#: Bytes per read when hashing a file.
CHUNK_BYTES = 1 << 20
#: Bytes per read from the network: what a dropped connection can cost of the .part.
NETWORK_CHUNK_BYTES = 64 * 1024
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
    if not is_http(url):
        raise RemoteAccessError(url, "only http:// and https:// files can be downloaded")
    size = remote_size(url, timeout)
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
                transferred += _resume(url, part, size, timeout, show_progress)
                break
            except RemoteAccessError as err:
                if attempt == retries:
                    raise
                log.warning("%s; resuming (%d of %d)", err, attempt + 1, retries)
        _verify(url, part, size, sha256)
        with part.open("rb") as handle:
            os.fsync(handle.fileno())
        os.replace(part, dest)
    return Fetched(url, dest, size, transferred)


def _resume(url: str, part: Path, size: int, timeout: float, show_progress: bool) -> int:
    """Append the missing tail of the file to ``part``; the body bytes received."""
    offset = part.stat().st_size if part.exists() else 0
    if offset > size:  # a stale .part of another version of the file
        part.unlink()
        offset = 0
    if offset == size:
        return 0
    headers = {"Range": f"bytes={offset}-"} if offset else {}
    received = 0
    try:
        with requests.get(url, headers=headers, stream=True, timeout=timeout) as response:
            if response.status_code == 200:
                offset = 0  # the server ignored the range: start over
            elif response.status_code != 206:
                raise RemoteAccessError(
                    url, f"HTTP {response.status_code} {response.reason} for bytes {offset}-"
                )
            with (
                part.open("r+b" if offset else "wb") as out,
                tqdm(
                    total=size,
                    initial=offset,
                    unit="B",
                    unit_scale=True,
                    desc=Path(part.name).stem,
                    disable=not show_progress,
                    leave=False,
                ) as bar,
            ):
                out.seek(offset)
                out.truncate()
                progress = Progress(url, timeout, offset, end=size)
                while True:
                    # read1: what one socket read brings, so a trickle is seen as such
                    # (read() would wait for a whole chunk, for ever at one byte a second).
                    block = response.raw.read1(NETWORK_CHUNK_BYTES)
                    if not block:
                        break
                    out.write(block)
                    received += len(block)
                    bar.update(len(block))
                    progress.update(offset + received)
    except requests.RequestException as err:
        raise RemoteAccessError(
            url,
            f"interrupted after {offset + received} of {size} bytes: "
            f"{describe_network_error(err, timeout)}",
        ) from err
    except (urllib3.exceptions.HTTPError, OSError) as err:  # raw reads: a timeout, a reset
        if isinstance(err, Stalled):
            reason = err.detail
        elif isinstance(err, urllib3.exceptions.ReadTimeoutError | TimeoutError):
            reason = f"no bytes within {timeout:g} s (--timeout {timeout:g})"
        else:
            reason = f"{type(err).__name__}: {err}"
        raise RemoteAccessError(
            url, f"interrupted after {offset + received} of {size} bytes: {reason}"
        ) from err
    return received


def _verify(url: str, part: Path, size: int, sha256: str | None) -> None:
    actual_size = part.stat().st_size
    if actual_size != size:
        raise RemoteAccessError(url, f"got {actual_size} of {size} bytes")
    if sha256 is not None:
        actual = sha256_of(part)
        if actual != sha256:
            part.unlink()
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
