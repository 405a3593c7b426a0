"""The analysis as Python calls: ``run``, and the steps it is made of.

``run`` inspects the files, builds the lazy graph, computes it once and collects the
result, on the active Dask scheduler; ``inspect`` → ``build`` → your own
``dask.compute(graph.outputs())`` → ``collect`` are the same steps for those who compute
themselves (docs/notebook.md). ``hzz run`` makes the same calls with a ``compute`` that
adds a progress bar and a watchdog for lost workers.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import dask

from analysis.errors import SampleFileError
from analysis.graph import AnalysisGraph, graph_from_files, optimising
from analysis.inputs.catalogue import Release, load_release
from analysis.inputs.files import FileInfo, as_sample, inspect_files
from analysis.inputs.locations import Inspection, locate_samples, resolve_locations, sort_inspected
from analysis.inputs.partitions import DEFAULT_STEP_SIZE
from analysis.physics.summary import branches_for
from analysis.results.accounting import assemble_document, leave_out, read_failures
from analysis.results.checkpoint import CheckpointStore
from analysis.results.incremental import (
    DEFAULT_PARTIAL_INTERVAL_S,
    OnPartial,
    compute_by_partition,
)
from analysis.results.result import AnalysisResult

log = logging.getLogger(__name__)

#: How Dask collections are computed: given a list of them, their results in order.
Compute = Callable[[Sequence[Any]], Sequence[Any]]


def dask_compute(collections: Sequence[Any]) -> list[Any]:
    """Compute on the active Dask scheduler (a ``distributed.Client``, else Dask's default)."""
    return list(dask.compute(*collections))


def dask_compute_each(collections: Sequence[Any]) -> Iterator[tuple[int, Any]]:
    """Each collection's result as it finishes, on the active distributed client; with
    no client, all at once on Dask's default scheduler (then in order, at the end)."""
    try:
        from distributed import as_completed, default_client

        client = default_client()
    except (ImportError, ValueError):
        yield from enumerate(dask_compute(collections))
        return
    futures = client.compute(list(collections))
    index = {future.key: k for k, future in enumerate(futures)}
    for future, result in as_completed(futures, with_results=True):
        yield index[future.key], result


def active_threads() -> int:
    """Threads the active scheduler computes with: a distributed client's workers', else
    the local cores (used to spread the partitions of several files over the readers)."""
    try:
        from distributed import default_client

        return max(1, sum(default_client().nthreads().values()))
    except (ImportError, ValueError):  # no distributed, or no client made
        return os.cpu_count() or 1


def _release(release: str | Release) -> Release:
    return load_release(release) if isinstance(release, str) else release


def inspect(
    data: str | os.PathLike[str] | Iterable[str | os.PathLike[str]] | None = None,
    release: str | Release = "2020",
    samples: Sequence[str] | None = None,
    groups: Sequence[str] | None = None,
    allow_missing: bool = False,
    skip_bad_files: bool = False,
    open_options: Mapping[str, Any] | None = None,
    compute: Compute | None = None,
    known: Mapping[str, FileInfo] | None = None,
    readers: int | None = None,
    validators: Mapping[str, str] | None = None,
) -> Inspection:
    """Find each chosen sample's file and open its header (entries, branches, basket
    boundaries, stand-in mark), as Dask tasks: many files in parallel, each task
    several files at once (``analysis.inputs.files.inspect_files``).

    ``data``: base URLs or local directories laid out like the release's server,
    searched in order (default: the release's HTTPS server). ``samples`` and ``groups``
    narrow the run (default: every sample). A file found nowhere raises
    MissingFileError unless ``allow_missing``; an unusable file raises SampleFileError
    unless ``skip_bad_files`` (it is then listed in the result with its cause).
    ``open_options`` go to ``uproot.open`` here and when the events are read.
    ``known``: inspections made before, by location, taken as they are (the caller
    knows the files did not change): their headers are not opened again. ``readers``:
    the threads the tasks run on (default: the active scheduler's). ``validators``: by
    location, the version of a remote file its server named (``FileInfo.validator``):
    the file is inspected and read as that version only, and a change fails the run
    with FileChangedError.
    """
    rel = _release(release)
    if data is None:
        data = [rel.default_location]
    elif isinstance(data, str | os.PathLike):
        data = [data]
    locations = resolve_locations(data)
    chosen = rel.select(list(samples) if samples else None, list(groups) if groups else None)
    located, missing = locate_samples(chosen, locations, allow_missing)
    options = dict(open_options or {})
    known = known or {}
    todo = [(s, loc) for s, loc in located if loc not in known]
    # Two tasks per reader thread: files spread evenly, a slow file holds few others.
    tasks_wanted = 2 * (active_threads() if readers is None else max(1, readers))
    per_task = max(1, -(-len(todo) // tasks_wanted))
    tasks = [
        dask.delayed(inspect_files, pure=False)(
            [(s.name, loc) for s, loc in batch],
            rel.tree,
            [branches_for(s, rel) for s, _ in batch],
            options,
            [(validators or {}).get(loc) for _, loc in batch],
        )
        for batch in (todo[i : i + per_task] for i in range(0, len(todo), per_task))
    ]
    batches = (compute or dask_compute)(tasks) if tasks else []
    fresh = iter([info for batch in batches for info in batch])  # in the order of todo
    inspected = [
        as_sample(known[loc], s.name) if loc in known else next(fresh) for s, loc in located
    ]
    return sort_inspected(
        rel, inspected, missing, allow_missing, skip_bad_files, options, locations
    )


def build(
    inspection: Inspection, step_size: int = DEFAULT_STEP_SIZE, readers: int | None = None
) -> AnalysisGraph:
    """The lazy graph of the inspected files: one task per partition of ``step_size``
    entries, each reading its events and summarising them (selection, weights, m4l
    histogram). Computes nothing. ``readers``: the threads that will compute it
    (default: the active scheduler's), over which the files' partitions are spread."""
    return graph_from_files(
        inspection.release,
        inspection.files,
        int(step_size),
        inspection.open_options,
        inspection.missing,
        inspection.skipped,
        active_threads() if readers is None else readers,
    )


def collect(
    graph: AnalysisGraph, computed: Sequence[tuple[Any, ...]], skip_bad_files: bool = False
) -> AnalysisResult:
    """The result from the computed ``graph.outputs()``.

    A file with a partition that failed to read raises SampleFileError naming it,
    unless ``skip_bad_files``: then the file is left out whole (none of its events
    counted, no second compute) and listed. Raises EventsLostError if fewer events
    were read than the files hold.
    """
    result = graph.computed(computed)
    failures = read_failures(result)
    if failures and not skip_bad_files:
        first = failures[0]
        raise SampleFileError(first.sample, first.location, first.cause)
    for failure in failures:
        log.warning("skipping %s (%s): %s", failure.location, failure.sample, failure.cause)
    return AnalysisResult(assemble_document(leave_out(result, failures)))


def run(
    data: str | os.PathLike[str] | Iterable[str | os.PathLike[str]] | None = None,
    release: str | Release = "2020",
    samples: Sequence[str] | None = None,
    groups: Sequence[str] | None = None,
    allow_missing: bool = False,
    skip_bad_files: bool = False,
    step_size: int = DEFAULT_STEP_SIZE,
    open_options: Mapping[str, Any] | None = None,
    compute: Compute | None = None,
    readers: int | None = None,
    checkpoint: str | os.PathLike[str] | None = None,
    on_partial: OnPartial | None = None,
    partial_interval_s: float = DEFAULT_PARTIAL_INTERVAL_S,
) -> AnalysisResult:
    """The whole analysis: ``inspect``, ``build``, one compute of every sample
    together, ``collect``. Arguments as for those steps; ``compute`` replaces the
    active Dask scheduler's compute (it gets a list of collections, returns their
    results in order).

    ``checkpoint``: a directory where each computed partition is kept as it arrives;
    a later run with the same directory computes only the partitions not kept there
    (``analysis.results.checkpoint``: kept by file, entry range and the version of the
    analysis). ``on_partial``: called with the ``AnalysisResult`` of the partitions
    done so far, at the first and then at most every ``partial_interval_s`` seconds
    while a distributed client computes. Either way the result is the same, to the
    last bit, as without them.
    """
    compute = compute or dask_compute
    inspection = inspect(
        data, release, samples, groups, allow_missing, skip_bad_files, open_options, compute
    )
    graph = build(inspection, step_size, readers)
    if checkpoint is None and on_partial is None:
        return collect(graph, compute_graph(graph, compute), skip_bad_files)
    store = CheckpointStore(Path(checkpoint)) if checkpoint is not None else None
    computed, reused = compute_by_partition(
        graph, dask_compute_each, store, on_partial, partial_interval_s
    )
    if store is not None:
        log.info("%s", reused)
    return collect(graph, computed, skip_bad_files)


def compute_graph(graph: AnalysisGraph, compute: Compute | None = None) -> list[tuple[Any]]:
    """``graph.outputs()`` computed, one tuple per sample, as ``collect`` takes them.

    One list, one compute: Dask optimises the whole graph together and every file is
    read once.
    """
    with optimising():
        computed = (compute or dask_compute)([sample.summaries for sample in graph.samples])
    return [(summaries,) for summaries in computed]
