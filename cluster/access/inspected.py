"""Inspections of remote files kept between runs: a second run opens no file header.

What an inspection learns (entries, basket boundaries, the branches' form, the stand-in
mark, the recorded tree header) does not change while the file does not, so it is kept
here, one small JSON file per URL, with what identified the file then: its size, ETag
and Last-Modified from the HEAD every run makes anyway (``cluster.access.remote``). A
file whose answer differs, or whose server gives neither header, is inspected again; so
is one whose entry was changed on disk (each entry carries the SHA-256 of what it
keeps) or whose ROOT size is not the server's. The readers check that the file they
open is the one an entry describes (``analysis.inputs.reader.check_version``); an entry
they find wrong is forgotten (``forget``), and the next run inspects the file again.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path

from analysis.inputs.files import FileInfo

from .remote import RemoteFile

log = logging.getLogger(__name__)

#: Bumped when what an inspection records changes: older entries are then ignored.
FORMAT = 4


def _digest(info: dict) -> str:
    """The SHA-256 of an entry's ``info`` as written (canonical JSON)."""
    return hashlib.sha256(json.dumps(info, sort_keys=True).encode()).hexdigest()


class InspectionCache:
    """FileInfos of remote files under ``directory``, by URL and file identity."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    def _path(self, url: str) -> Path:
        return self.directory / (hashlib.sha256(url.encode()).hexdigest()[:32] + ".json")

    def known(self, files: Mapping[str, RemoteFile]) -> dict[str, FileInfo]:
        """The kept inspections of ``files`` (by URL) that are still current."""
        found: dict[str, FileInfo] = {}
        for url, remote in files.items():
            identity = remote.identity
            if identity is None:
                continue
            try:
                entry = json.loads(self._path(url).read_text())
            except (OSError, ValueError):
                continue
            if not isinstance(entry, dict) or not isinstance(entry.get("info"), dict):
                continue
            if entry.get("format") != FORMAT or entry.get("url") != url:
                continue
            if entry.get("identity") != identity:
                continue
            if entry.get("sha256") != _digest(entry.get("info")) or (
                entry["info"].get("size") != remote.size
            ):  # changed on disk, or not this file: inspected again
                log.warning("the kept inspection of %s does not hold: inspected again", url)
                self.forget(url)
                continue
            fields = dict(entry["info"])
            fields["boundaries"] = tuple(fields.get("boundaries", ()))
            try:
                if fields.get("header") is not None:
                    fields["header"] = base64.b64decode(fields["header"], validate=True)
                found[url] = FileInfo(**fields)
            except (TypeError, binascii.Error):  # written by another version of FileInfo
                continue
        return found

    def forget(self, url: str) -> None:
        """Drop the kept inspection of ``url`` (the next run inspects the file again)."""
        self._path(url).unlink(missing_ok=True)

    def keep(self, infos: Iterable[FileInfo], files: Mapping[str, RemoteFile]) -> int:
        """Keep the usable ``infos`` of identified remote files; how many were written."""
        written = 0
        for info in infos:
            remote = files.get(info.location)
            if not info.usable or remote is None or remote.identity is None:
                continue
            entry = {
                "format": FORMAT,
                "url": info.location,
                "identity": remote.identity,
                "info": dataclasses.asdict(info),
            }
            if info.header is not None:
                entry["info"]["header"] = base64.b64encode(info.header).decode("ascii")
            entry["sha256"] = _digest(entry["info"])
            try:
                self.directory.mkdir(parents=True, exist_ok=True)
                path = self._path(info.location)
                # Written whole, then renamed: a reader never sees half an entry.
                with tempfile.NamedTemporaryFile(
                    "w", dir=self.directory, suffix=".tmp", delete=False
                ) as tmp:
                    json.dump(entry, tmp)
                os.replace(tmp.name, path)
                written += 1
            except OSError as err:  # a read-only home: the run goes on, uncached
                log.warning("cannot keep the inspection of %s: %s", info.location, err)
                break
        return written
