"""Which files a run reads, and what a missing or bad file means for it.

A sample's file is looked for in each data location in turn (``locate``). A file
found nowhere stops the run unless missing samples are allowed; a file found but
unusable (not ROOT, truncated, no tree or branch) stops the run unless bad files are
skipped, in which case it is listed with its cause. The inspection itself
(``analysis.inputs.files.inspect_file``) never raises: it runs as Dask tasks, many files in
parallel, and the decisions are taken here, once, for every way of running.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from analysis.errors import InputError, MissingFileError, RemoteReadError, SampleFileError
from analysis.inputs.catalogue import Release, Sample
from analysis.inputs.files import FileInfo, SkippedFile
from analysis.inputs.sanity import branch_kind_problem
from analysis.inputs.sources import is_remote, readable
from analysis.redaction import redact_urls

log = logging.getLogger(__name__)


@dataclass
class Inspection:
    """The usable files of each sample, and the samples and files left out.

    What the lazy graph is built from (``analysis.build``); ``open_options`` are the
    ``uproot.open`` options the files were inspected with, and will be read with.
    """

    release: Release
    files: dict[str, list[FileInfo]]
    missing: list[str] = field(default_factory=list)
    skipped: list[SkippedFile] = field(default_factory=list)
    open_options: dict[str, Any] = field(default_factory=dict)

    @property
    def entries(self) -> dict[str, int]:
        """Events in each sample's usable files."""
        return {name: sum(f.entries for f in files) for name, files in self.files.items()}


def resolve_locations(locations: Iterable[str | os.PathLike[str]]) -> list[str]:
    """Data locations as the workers must see them: local directories made absolute.

    Dask workers run in their own directories (on other machines, in containers), so
    a relative path resolved there would point elsewhere; URLs are kept as given. A
    location no source reads, or whose client is not installed, is an InputError.
    """
    resolved: list[str] = []
    for location in locations:
        text = os.fspath(location)
        if readable(text).remote:
            resolved.append(text)
        else:
            resolved.append(str(Path(local_path(text)).expanduser().resolve()))
    return resolved


def local_path(location: str) -> str:
    """A local location as a path (``file://`` taken off)."""
    return location.removeprefix("file://")


def join(location: str, path: str) -> str:
    """The address of ``path`` under a base URL or local directory."""
    if is_remote(location):
        return location.rstrip("/") + "/" + path
    return os.path.join(local_path(location), path)


def locate(sample: Sample, locations: list[str]) -> str | None:
    """The first location that holds the sample's file; remote bases are assumed to.

    Local directories are searched in order, so a mirror of the real files and a
    directory of generated stand-ins can be given together.
    """
    for location in locations:
        candidate = join(location, sample.path)
        if is_remote(location) or os.path.isfile(candidate):
            return candidate
    return None


def layout_hint(sample: Sample, locations: Sequence[str]) -> str:
    """Where the file would be if a local location were one level above the release
    layout (e.g. ``…/atlas-opendata-2020`` instead of ``…/atlas-opendata-2020/4lep``)."""
    for location in locations:
        if is_remote(location) or not os.path.isdir(location):
            continue
        for child in sorted(os.scandir(location), key=lambda entry: entry.name):
            if _is_dir(child.path) and os.path.isfile(join(child.path, sample.path)):
                return (
                    f"; {sample.path} is in {child.path}: the data location is the "
                    f"directory that holds the release layout, so use {child.path}"
                )
    return ""


def _is_dir(path: str) -> bool:
    """Whether ``path`` is a directory; False for a symbolic-link loop (ELOOP), which
    ``os.DirEntry.is_dir`` raises instead."""
    try:
        return os.path.isdir(path)
    except OSError:
        return False


def unusable_path(path: str | os.PathLike[str], directory: bool = False) -> str | None:
    """Why a local file (or, with ``directory``, a directory) cannot be used: the system's
    reason (a symbolic-link loop, a dangling link, no permission, …) or "not a
    directory"/"not a file"; None if it can be."""
    try:
        mode = os.stat(path).st_mode
    except OSError as err:
        return err.strerror or str(err)
    if directory and not stat.S_ISDIR(mode):
        return "not a directory"
    if not directory and not stat.S_ISREG(mode):
        return "not a file"
    return None


def searched(locations: Sequence[str]) -> str:
    """The locations searched, for a message: a local one that is no directory says so."""
    return ", ".join(
        location
        if is_remote(location) or os.path.isdir(location)
        else f"{location} (no such directory)"
        for location in locations
    )


def missing_file_error(sample: Sample, locations: Sequence[str]) -> MissingFileError:
    """A sample's file found in no location: the locations searched, and a layout hint;
    where the name is there but unusable (a symbolic-link loop, a dangling link), why."""
    reasons = []
    for location in locations:
        candidate = join(location, sample.path)
        if not is_remote(location) and os.path.lexists(candidate):
            reasons.append(f"; {candidate}: {unusable_path(candidate)}")
    return MissingFileError(
        sample.name,
        sample.path,
        f"not found in {searched(locations)}{''.join(reasons)}{layout_hint(sample, locations)}",
    )


def locate_samples(
    samples: Sequence[Sample], locations: Sequence[str], allow_missing: bool = False
) -> tuple[list[tuple[Sample, str]], list[str]]:
    """Each sample's file, from the first location that holds it; and the samples
    whose file is nowhere (MissingFileError for the first unless ``allow_missing``)."""
    located: list[tuple[Sample, str]] = []
    missing: list[str] = []
    for sample in samples:
        location = locate(sample, list(locations))
        if location is not None:
            located.append((sample, location))
        elif allow_missing:
            missing.append(sample.name)
        else:
            raise missing_file_error(sample, locations)
    return located, missing


def sort_inspected(
    release: Release,
    inspected: Sequence[FileInfo],
    missing: Sequence[str] = (),
    allow_missing: bool = False,
    skip_bad_files: bool = False,
    open_options: Mapping[str, Any] | None = None,
    locations: Sequence[str] = (),
) -> Inspection:
    """The inspected files sorted into usable, missing and skipped, or the error that
    stops the run: a missing file (unless ``allow_missing``), a bad file (unless
    ``skip_bad_files``), or no usable file at all (naming the ``locations`` searched)."""
    inspection = Inspection(release, {}, list(missing), [], dict(open_options or {}))
    for info in inspected:
        if info.usable:  # a readable file can still hold branches of the wrong type
            problem = branch_kind_problem(release, info.form)
            if problem is not None:
                info = replace(info, error=problem)
        if info.missing and allow_missing:
            inspection.missing.append(info.sample)
        elif info.missing:
            raise MissingFileError(info.sample, info.location, info.error or "file not found")
        elif info.error is not None and skip_bad_files:
            inspection.skipped.append(
                SkippedFile(info.sample, redact_urls(info.location), redact_urls(info.error))
            )
        elif info.error is not None and info.unreachable:
            raise RemoteReadError(info.sample, redact_urls(info.location), redact_urls(info.error))
        elif info.error is not None:
            raise SampleFileError(info.sample, info.location, info.error)
        else:
            inspection.files.setdefault(info.sample, []).append(info)
    if inspection.missing:
        log.warning(
            "%d sample(s) without a file, left out: %s",
            len(inspection.missing),
            ", ".join(inspection.missing),
        )
    for skipped in inspection.skipped:
        log.warning("skipping %s (%s): %s", skipped.file, skipped.sample, skipped.cause)
    if not inspection.files:
        left_out = [*inspection.missing, *(f"{f.file} ({f.cause})" for f in inspection.skipped)]
        where = f" in {searched(locations)}" if locations else ""
        raise InputError(
            f"no readable file for any sample chosen{where}; left out: "
            + (", ".join(left_out) or "none")
        )
    return inspection
