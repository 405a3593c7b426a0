"""What a run learns about each input file before reading any event.

``inspect_file`` opens one file's tree (headers only): its entry count, whether every
branch the analysis needs is there, and whether it is a marked simulated stand-in.
It never raises for a bad file (one comes back with the cause, so that a cluster can inspect
many files in parallel and the run decides what a bad file means: stop or skip); a machine
that runs out of memory or file handles raises ResourceExhausted, the run's failure.
Knowing the entries up front lets the graph be partitioned without opening files on
the client, and lets every run check that no event was lost.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

import awkward as ak
import uproot

from analysis.errors import run_failure_in
from analysis.inputs.headers import HeaderFile
from analysis.inputs.sources import is_remote


def tree_form(tree: Any, branches: Sequence[str]) -> ak.forms.Form:
    """The awkward form ``tree.arrays(branches)`` returns, from the branch headers only."""
    contents = [tree[name].interpretation.awkward_form(tree.file) for name in branches]
    return ak.forms.RecordForm(contents, list(branches))


@dataclass(frozen=True)
class FileInfo:
    """One input file of a sample, as inspected."""

    sample: str
    location: str
    entries: int = 0
    generated: bool = False  # a simulated stand-in (marked inside the file)
    missing: bool = False  # the file does not exist at that location
    error: str | None = None  # why the file cannot be used, if it cannot
    #: Entries at which every needed branch starts a new basket (0 … entries): where
    #: partitions can be cut without reading and decompressing a basket twice.
    boundaries: tuple[int, ...] = ()
    #: The awkward form of the needed branches (JSON), from the branch headers.
    form: str | None = None
    #: The error is the server's, not the file's (an access error that names its URL,
    #: raised after the retries ran out): the file may be fine.
    unreachable: bool = False
    #: A remote file's tree header as the inspection read it (``analysis.inputs.headers``):
    #: the readers open the file from it without asking the server for it again.
    header: bytes | None = field(default=None, repr=False)
    #: What tells this version of the file from another: the ROOT file's UUID and size
    #: (from its header), and for a remote file the server's validator (size, ETag,
    #: Last-Modified) when it was inspected, set by whoever checked it. Checkpoints
    #: (``analysis.results.checkpoint``) are keyed by them.
    uuid: str | None = None
    size: int | None = None
    validator: str | None = None

    @property
    def usable(self) -> bool:
        return self.error is None and not self.missing


@dataclass(frozen=True)
class SkippedFile:
    """A bad input file left out of the run (``--skip-bad-files``), and why."""

    sample: str
    file: str
    cause: str


#: The key of the mark ``hzz generate`` writes into each simulated stand-in file.
MARK_KEY = "hzz_standin"


def read_mark(location: str | uproot.ReadOnlyDirectory) -> dict[str, Any] | None:
    """The stand-in mark of a file (a path or an open file), or None for a real file.

    Reads the directory only."""
    if isinstance(location, uproot.ReadOnlyDirectory):
        return _mark_in(location)
    with uproot.open(location) as file:
        return _mark_in(file)


def _mark_in(file: uproot.ReadOnlyDirectory) -> dict[str, Any] | None:
    if MARK_KEY not in file.keys(cycle=False):
        return None
    return json.loads(str(file[MARK_KEY]))


def inspect_file(
    sample: str,
    location: str,
    tree: str,
    branches: Sequence[str],
    options: Mapping[str, Any] | None = None,
    validator: str | None = None,
) -> FileInfo:
    """Entries, needed branches and stand-in mark of one file; the cause if it is bad.

    A remote file's header is recorded on the way (``FileInfo.header``): the readers
    then open the file without requests. A local file's is not (opening it is cheap).
    ``validator``: the version of a remote file its server named before (opaque, for
    the file's source): only that version is read, and it is kept with the result."""
    options = dict(options or {})
    if validator is not None:
        options["validator"] = validator
    try:
        opened = (
            HeaderFile(location, record=True, **options).root_directory
            if is_remote(location)
            else uproot.open(location, **options)
        )
        with opened as file:
            if tree not in file:
                trees = ", ".join(k for k, c in file.classnames().items() if c == "TTree")
                return FileInfo(
                    sample, location, error=f"no tree {tree!r} (trees: {trees or 'none'})"
                )
            events = file[tree]
            absent = [b for b in branches if b not in events]
            if absent:
                return FileInfo(
                    sample, location, error=f"tree {tree!r} lacks branch(es) {', '.join(absent)}"
                )
            entries = int(events.num_entries)
            # The tree's count is what partitions are cut from: a count its branches do
            # not hold (forged or corrupt) would make millions of partitions of nothing.
            held = {b: int(events[b].num_entries) for b in branches}
            wrong = {b: n for b, n in held.items() if n != entries}
            if wrong:
                branch, count = next(iter(wrong.items()))
                return FileInfo(
                    sample,
                    location,
                    error=f"tree {tree!r} says {entries} entries but branch {branch} holds {count}",
                )
            boundaries = tuple(int(b) for b in events.common_entry_offsets(filter_name=branches))
            generated = read_mark(file) is not None
            form = tree_form(events, branches).to_json()
            header = file.file.header if isinstance(file.file, HeaderFile) else None
            uuid, size = str(file.file.uuid), int(file.file.fEND)
            # The version read: the one given, else the one the source's first answer
            # named (a remote source that pins versions: ``version``); None for the rest.
            validator = validator or getattr(file.file.source, "version", None)
        return FileInfo(
            sample,
            location,
            entries=entries,
            generated=generated,
            boundaries=boundaries,
            form=form,
            header=header,
            uuid=uuid,
            size=size,
            validator=validator,
        )
    except FileNotFoundError:
        return FileInfo(sample, location, missing=True, error="file not found")
    except Exception as err:  # uproot raises many types for bad files; keep the cause
        failure = run_failure_in(err, location)
        if failure is not None:  # the machine's fault, or a changed file: the run fails
            raise failure from err
        server = isinstance(err, OSError) and getattr(err, "url", None) is not None
        # A server's failure comes with its URL (named already) and the cause in words.
        detail = getattr(err, "detail", None) if server else None
        error = detail if isinstance(detail, str) and detail else f"{type(err).__name__}: {err}"
        return FileInfo(sample, location, error=error, unreachable=server)


#: Files one inspection task opens at once. Opening a remote file is a chain of three
#: dependent requests: a worker waits on round trips, not on its CPU, so it keeps many
#: files' chains in flight (1,000 files at 100 ms: seconds, not minutes).
INSPECT_CONCURRENCY = 32


def inspect_files(
    files: Sequence[tuple[str, str]],
    tree: str,
    branches: Sequence[Sequence[str]],
    options: Mapping[str, Any] | None = None,
    validators: Sequence[str | None] | None = None,
) -> list[FileInfo]:
    """``inspect_file`` of each ``(sample, location)`` with its ``branches`` (and
    ``validators``), up to ``INSPECT_CONCURRENCY`` at once; results in order. One task
    for many files."""
    pinned = list(validators) if validators is not None else [None] * len(files)
    if len(files) == 1:
        (sample, location), (needed,) = files[0], branches
        return [inspect_file(sample, location, tree, needed, options, pinned[0])]
    with ThreadPoolExecutor(min(INSPECT_CONCURRENCY, len(files)), "hzz-inspect") as pool:
        futures = [
            pool.submit(inspect_file, sample, location, tree, needed, options, validator)
            for (sample, location), needed, validator in zip(files, branches, pinned, strict=True)
        ]
        return [future.result() for future in futures]


def as_sample(info: FileInfo, sample: str) -> FileInfo:
    """``info`` (inspected before, perhaps for another sample name) for ``sample``."""
    return info if info.sample == sample else replace(info, sample=sample)
