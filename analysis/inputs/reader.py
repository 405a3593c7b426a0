"""The graph's dask-awkward IO function: a sample's partitions read on the workers.

``uproot.dask`` re-parses a file's TTree header in every partition task;
``PartitionReader`` keeps the trees it opened for the current graph in a small cache in
each worker process, and opens a remote file from the header its inspection recorded
(``analysis.inputs.headers``), so a worker asks a server for baskets only. A read error
of the file never raises out of a task (one of the machine, such as memory, raises
ResourceExhausted): the partition comes back empty with how its read went in
its ``attrs`` (``read_outcome``), riding with the events so that Dask fuses the read and
its summary into one task (``python -m bench``).
"""

from __future__ import annotations

import functools
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import awkward as ak
import uproot
from dask_awkward.lib.io.columnar import ColumnProjectionMixin

from analysis.errors import file_changed, run_failure_in
from analysis.inputs.files import FileInfo
from analysis.inputs.headers import open_tree

#: Open trees kept per worker process (a few files in flight; headers are small).
TREE_CACHE_SIZE = 8

#: The ``attrs`` key of a partition's read outcome.
READ_OUTCOME = "hzz.read"


def use_inflate(library: str) -> None:
    """Inflate the ZLIB baskets this process reads with ``"zlib"`` or ``"isal"``.

    uproot reads every ZLIB basket through one module-level decompressor; only that
    object is switched (``uproot.ZLIB.library``, the documented switch, would also
    change how files are *written* in this process, e.g. by ``hzz generate``).
    """
    if library not in ("zlib", "isal"):
        raise ValueError(f"unknown inflate library {library!r}: zlib or isal")
    uproot.compression._decompress_ZLIB.library = library


def use_fast_inflate() -> str:
    """Decompress ZLIB baskets with ISA-L (``isal``) when it is installed; the library used.

    ISA-L's inflate gives the same bytes as zlib's at about twice the speed, and the
    ZLIB baskets of the ATLAS Open Data files are most of the reading time.
    """
    try:
        import isal.isal_zlib  # noqa: F401
    except ImportError:
        return "zlib"
    use_inflate("isal")
    return "isal"


class _TreeCache:
    """Trees opened by this process, by (run, location): least recently used go first.

    A worker computes with several threads: two partitions of one file asking at once
    get one open (the second waits for the first's), not two.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self._trees: OrderedDict[tuple[str, str, str], Any] = OrderedDict()
        self._lock = threading.Lock()
        self._opening: dict[tuple[str, str, str], threading.Lock] = {}
        self.opens = 0  # files opened by this process (for tests and benchmarks)

    def _cached(self, key: tuple[str, str, str]) -> Any | None:
        with self._lock:
            if key in self._trees:
                self._trees.move_to_end(key)
                return self._trees[key]
        return None

    def get(
        self,
        run: str,
        location: str,
        tree: str,
        options: Mapping[str, Any],
        header: bytes | None = None,
        validator: str | None = None,
    ) -> Any:
        key = (run, location, tree)
        found = self._cached(key)
        if found is not None:
            return found
        with self._lock:
            opening = self._opening.setdefault(key, threading.Lock())
        with opening:
            found = self._cached(key)
            if found is not None:
                return found
            try:
                # No array cache: a run reads each basket once, and uproot's default
                # (100 MB per open file) would only hold memory in the cached trees.
                options = {"array_cache": None, **options}
                if validator is not None:  # read the version inspected, none other
                    options["validator"] = validator
                opened = _open(location, tree, header, options)
            finally:
                with self._lock:
                    self._opening.pop(key, None)
            with self._lock:
                self.opens += 1
                self._trees[key] = opened
                while len(self._trees) > self.size:
                    self._trees.popitem(last=False)  # closed when its last reader lets go
        return opened

    def clear(self) -> None:
        with self._lock:
            self._trees.clear()


def _open(location: str, tree: str, header: bytes | None, options: Mapping[str, Any]) -> Any:
    """``open_tree``; a recorded header that no longer parses (kept from an earlier run)
    is not the file's fault: the file is then opened from its source."""
    try:
        return open_tree(location, tree, header, options)
    except Exception as error:
        if header is None or run_failure_in(error, location) is not None:
            raise
    return open_tree(location, tree, None, options)


#: This process's open trees (on a worker: shared by all its tasks).
OPEN_TREES = _TreeCache(TREE_CACHE_SIZE)


class Inspected(NamedTuple):
    """The version of a file its inspection saw, which every partition read must find:
    the ROOT file's UUID, size and the tree's entries, and its server's validator (an
    opaque string for the file's source: the reader asks for that version only)."""

    uuid: str | None
    size: int | None
    entries: int
    validator: str | None


def inspected(info: FileInfo) -> Inspected:
    """What a reader of ``info``'s file checks it reads."""
    return Inspected(info.uuid, info.size, info.entries, info.validator)


def check_version(tree: Any, location: str, expected: Inspected) -> None:
    """FileChangedError if the opened ``tree`` is not the version inspected (a file
    replaced on disk or on its server, or a kept inspection that does not describe it)."""
    file = tree.file
    found = [
        ("UUID", expected.uuid, str(file.uuid)),
        ("size", expected.size, int(file.fEND)),
        ("entries", expected.entries, int(tree.num_entries)),
    ]
    for what, was, now in found:
        if was is not None and was != now:
            raise file_changed(location, f"ROOT file {what} {now}, inspected as {was}", False)


def _outcome(
    location: str, start: int, stop: int, error: BaseException | None, seconds: float
) -> dict[str, Any]:
    return {
        "location": location,
        "entry_start": start,
        "entry_stop": stop,
        "exception": None if error is None else type(error).__name__,
        "message": None if error is None else str(error),
        "seconds": seconds,
    }


def read_outcome(events: Any) -> dict[str, Any] | None:
    """How a partition's read went (file, entry range, exception and message or None,
    seconds), for events read by ``PartitionReader``; None for any other array."""
    attrs = getattr(events, "attrs", None) or {}
    return attrs.get(READ_OUTCOME)


@functools.lru_cache(maxsize=64)
def _typetracer_of(form: str) -> ak.Array:
    return ak.Array(ak.forms.from_json(form).length_zero_array().to_typetracer(forget_length=True))


class PartitionReader(ColumnProjectionMixin):
    """Reads ``(location, entry_start, entry_stop[, header[, inspected]])`` partitions of
    one tree (``header``: the file's header recorded at inspection, or None;
    ``inspected``: the version of the file the inspection saw, an ``Inspected``).

    ``run`` scopes the per-process tree cache: a new graph never reuses a tree opened
    for an earlier one (the file may have changed in between).
    """

    behavior: Mapping | None = None
    attrs: Mapping | None = None
    use_optimization = True
    return_report = False  # the outcome travels in the partition's attrs instead

    def __init__(
        self,
        tree: str,
        form: ak.forms.Form,
        options: Mapping[str, Any] | None = None,
        run: str | None = None,
    ) -> None:
        self.tree = tree
        self._form = form
        self.options = dict(options or {})
        self.run = run or uuid.uuid4().hex

    @property
    def form(self) -> ak.forms.Form:
        return self._form

    def mock(self) -> ak.Array:
        """The typetracer of a partition, for dask-awkward: one per form, made once
        (10 ms each, for every sample of every graph built)."""
        return _typetracer_of(self._form.to_json())

    @property
    def columns(self) -> list[str]:
        return list(self._form.fields)

    def project_columns(self, columns: frozenset[str]) -> PartitionReader:
        keep = [name for name in self._form.fields if name in columns]
        return PartitionReader(self.tree, self._form.select_columns(keep), self.options, self.run)

    def __call__(self, partition: tuple[Any, ...]) -> ak.Array:
        location, start, stop, *rest = partition
        header = rest[0] if rest else None
        expected = Inspected(*rest[1]) if len(rest) > 1 and rest[1] is not None else None
        validator = expected.validator if expected is not None else None
        began = time.monotonic()
        try:
            use_fast_inflate()
            tree = OPEN_TREES.get(self.run, location, self.tree, self.options, header, validator)
            if expected is not None:
                check_version(tree, location, expected)
            if self.columns:
                arrays = tree.arrays(self.columns, entry_start=start, entry_stop=stop)
            else:  # nothing but the event count is used
                arrays = ak.Array(ak.contents.RecordArray([], fields=[], length=stop - start))
            if len(arrays) != stop - start:
                raise OSError(f"read {len(arrays)} of entries {start}–{stop}")
        except Exception as error:  # any read error: an empty partition that says why
            failure = run_failure_in(error, f"{location} entries {start}–{stop}")
            if failure is None:
                outcome = _outcome(location, start, stop, error, time.monotonic() - began)
                return ak.Array(self._form.length_zero_array(), attrs={READ_OUTCOME: outcome})
        else:
            failure = None
        if failure is not None:
            # The machine's fault, or a file changed since its inspection, not the file's:
            # the run fails. Raised here, outside the handler, so that the error's
            # traceback (and the buffers its frames hold) is freed before the worker has
            # to send this one.
            raise failure
        outcome = _outcome(location, start, stop, None, time.monotonic() - began)
        return ak.Array(arrays, attrs={READ_OUTCOME: outcome})


def read_partitions(
    tree: str,
    form: ak.forms.Form,
    partitions: Sequence[tuple[Any, ...]],
    options: Mapping[str, Any] | None = None,
    label: str = "read-tree",
) -> Any:
    """The lazy events of ``partitions``, each partition with its ``read_outcome``.

    No divisions are declared, on purpose: dask-awkward would answer event counts from
    them instead of from what was actually read, and the run's accounting would be blind.
    """
    import dask_awkward as dak

    reader = PartitionReader(tree, form, options)
    # The reader's run id names the collection: a graph's keys need only be unique, and
    # hashing every partition's header (tens of kB each) to make them cost milliseconds.
    return dak.from_map(reader, [tuple(p) for p in partitions], label=label, token=reader.run)
