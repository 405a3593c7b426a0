"""``hzz run``: a Dask cluster started, the analysis computed on it, the result written.

The analysis itself (which files, what a missing or bad file means, the graph, the
result) is ``analysis.run``; this module is the command's run around it: the inputs
checked before anything starts, the cluster started in the background while the analysis
is imported, remote files checked or cached, a wait for a first worker, every compute
watched for lost workers and shown with a progress bar, and then either the figure and
the document written here or the document published to the plotting service.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import analysis
from analysis.errors import (
    MEMORY_LEVERS,
    FileChangedError,
    HZZError,
    InputError,
    MissingFileError,
    ResourceExhausted,
    RunFailure,
)
from analysis.inputs.partitions import DEFAULT_STEP_SIZE
from cluster.defaults import (
    DEFAULT_DASHBOARD,
    DEFAULT_LIVE_INTERVAL_S,
    DEFAULT_TIMEOUT_S,
    DEFAULT_WORKER_TIMEOUT_S,
    inspection_cache_dir,
)

from .inprocess import IN_PROCESS_MAX_BYTES, ThreadedCompute, local_input_bytes
from .live import LiveResults

if TYPE_CHECKING:
    from distributed import Client

    from analysis.inputs.catalogue import Release
    from analysis.results.document import HistogramDocument
    from analysis.results.fit import FitError, FitResult

log = logging.getLogger(__name__)

#: Threads of each local worker process when the data are remote (one otherwise).
REMOTE_THREADS_PER_WORKER = 2


@dataclass
class RunOptions:
    """What the analysis of ``hzz run`` was asked for; defaults are the command's."""

    locations: list[str]
    samples: list[str] | None = None
    groups: list[str] | None = None
    step_size: int = DEFAULT_STEP_SIZE
    allow_missing: bool = False
    skip_bad_files: bool = False  # leave bad files out (listed) instead of stopping
    show_progress: bool = True
    worker_timeout_s: float = DEFAULT_WORKER_TIMEOUT_S  # longest wait with no worker
    cache_dir: Path | None = None  # fetch remote files here first (--cache)
    timeout_s: float = DEFAULT_TIMEOUT_S  # wait for a remote server (--timeout)
    #: Inspections of remote files kept between runs (None: not kept); default from
    #: the environment (``cluster.defaults.inspection_cache_dir``).
    inspection_cache: Path | None = None
    #: Keep each computed partition here and reuse those kept (--checkpoint).
    checkpoint: Path | None = None
    #: Hand the result so far to ``on_partial`` while computing (--live), at most this often.
    live_interval_s: float = DEFAULT_LIVE_INTERVAL_S
    on_partial: Callable[[analysis.AnalysisResult], object] | None = None
    #: A live run's name (--live), in its partial documents and live figure; None: not live.
    run_id: str | None = None

    def __post_init__(self) -> None:
        if self.inspection_cache is None:
            chosen = inspection_cache_dir()
            self.inspection_cache = Path(chosen) if chosen else None


#: Hands a written document (its path and bytes) to the plotting service.
Publish = Callable[[Path, bytes], object]


@dataclass
class RunTarget:
    """Where ``hzz run`` computes and what it leaves behind."""

    out_dir: Path
    scheduler: str | None = None  # a running Dask scheduler; None: a local cluster
    certificates: Path | None = None  # the client certificate for it (hzz certificates)
    workers: int | None = None  # the local cluster's worker processes (None: one per core)
    dashboard: str = DEFAULT_DASHBOARD
    fit: bool = False  # the fit is made where the figure is drawn: here, or by the plotter
    publish: Publish | None = None  # None: draw the figure here
    #: With ``publish`` and --live: hands a partial document's JSON to the plotting service.
    publish_partial: Callable[[bytes], object] | None = None


def run(release_name: str, options: RunOptions, target: RunTarget) -> None:
    """``hzz run``: check the inputs, start the cluster, compute, then write the figure
    and the document, or write the document and publish it."""
    from analysis.inputs.catalogue import load_release

    release = load_release(release_name)
    remote = check_inputs(release, options, target.out_dir)
    in_process = _in_process(release, options, target)
    if in_process is not None:
        _run_in_process(release, options, target, in_process)
        return
    from .clusters import BackgroundClient

    # The worker processes boot while this process imports the analysis; a first,
    # throw-away figure is drawn while the workers compute (the real one then costs
    # only its own drawing); the cluster shuts down while the figure is written.
    cluster = BackgroundClient(
        target.scheduler,
        target.workers,
        # Reading remote files, a worker's second thread computes one partition while the
        # first waits for the next one's bytes: the link and the cores are busy together.
        threads_per_worker=REMOTE_THREADS_PER_WORKER if remote else 1,
        dashboard_address=target.dashboard,
        connect_timeout_s=options.worker_timeout_s,
        certificates=target.certificates,
    )
    live = _live_results(options.run_id, target)
    if live is not None:
        options = replace(options, on_partial=live)
    # A live run drawing here warms the figure up with its first partial result.
    warm = target.publish is None and live is None
    warming = threading.Thread(target=_warm_up_figure, args=(release,), daemon=True)
    try:

        def connect() -> Client:
            client = cluster.client()
            print(f"Dask dashboard: {client.dashboard_link}", flush=True)
            return client

        if warm:
            warming.start()
        result = run_analysis(connect, release, options)  # remote files checked meanwhile
        _import_what_follows(target)
    except MissingFileError as err:
        err.add_note(
            "--allow-missing goes on without the samples whose file is absent; "
            "'hzz generate' writes simulated stand-ins for the large MC samples"
        )
        err.add_note("nothing written")
        raise
    except (HZZError, OSError, RuntimeError, TimeoutError) as err:
        err.add_note("nothing written")
        raise
    finally:
        if live is not None:
            live.close()
        cluster.close()
    document = _validated(result.document)
    print(result.yields_table())
    if target.fit:
        document.figure = replace(document.figure, fit=True)
    if target.publish is not None:
        saved = write_document(document, target.out_dir)
        print(f"document: {saved}")
        target.publish(saved, document.to_json())
        return
    if warm:
        warming.join()  # one figure at a time: matplotlib's settings are the process's
    fit_failed: list[FitError] = []
    try:
        written, fitted = write_outputs(result, target.out_dir, on_fit_error=fit_failed.append)
    except HZZError as err:  # the figure could not be drawn: nothing is written
        err.add_note("nothing written")
        raise
    if options.run_id is not None:  # the live figure ends as the result
        from analysis.results.outputs import replace_live

        replace_live(target.out_dir, options.run_id, written[".png"].read_bytes())
    if fit_failed:  # the figure and the document are kept; the fit's failure is the exit
        error = fit_failed[0]
        error.add_note(f"figure:   {written['.png']}")
        error.add_note(f"document: {written['.json']} (hzz fit DOCUMENT fits it again)")
        raise error
    if fitted is not None:
        print(fitted.table())
    print(f"figure:   {written['.png']}")
    print(f"document: {written['.json']}")
    if fitted is not None:
        from analysis.results.products import fit_files_text

        print(fit_files_text(written, fitted.model))


def _in_process(release: Release, options: RunOptions, target: RunTarget) -> int | None:
    """The input's size if this run computes in this process (``cluster.runtime.inprocess``):
    no --scheduler or --workers, local files of at most ``IN_PROCESS_MAX_BYTES``, the
    figure drawn here (no broker, no fit), computed at once (no --checkpoint, no
    --live); else None."""
    if target.scheduler or target.workers or target.publish is not None or target.fit:
        return None
    if options.cache_dir is not None or options.checkpoint is not None:
        return None
    if options.on_partial is not None or options.run_id is not None:
        return None
    chosen = release.select(options.samples, options.groups)
    size = local_input_bytes(release, options.locations, chosen)
    return size if size is not None and size <= IN_PROCESS_MAX_BYTES else None


def _run_in_process(release: Release, options: RunOptions, target: RunTarget, size: int) -> None:
    """``run`` for a small local input: Dask's threaded scheduler here, the figure drawn
    meanwhile warm in a process of its own (``cluster.runtime.drawer``)."""
    from .drawer import Drawer

    drawer = Drawer(release)
    try:
        compute = ThreadedCompute(options.show_progress)
        print(compute.describe(size), flush=True)
        result = run_analysis(compute, release, options)
        document = _validated(result.document)
    except BaseException as err:
        drawer.close()
        if isinstance(err, MissingFileError):
            err.add_note(
                "--allow-missing goes on without the samples whose file is absent; "
                "'hzz generate' writes simulated stand-ins for the large MC samples"
            )
        if isinstance(err, HZZError | OSError | RuntimeError | TimeoutError):
            err.add_note("nothing written")
        raise
    print(result.yields_table())
    written, _ = write_outputs(result, target.out_dir, drawer.draw(document))
    print(f"figure:   {written['.png']}")
    print(f"document: {written['.json']}")


def _live_results(run_id: str | None, target: RunTarget) -> LiveResults | None:
    """The ``on_partial`` of a live run: its partial documents published to the
    plotting service, or drawn here into ``OUT/live/<run>.png``."""
    if run_id is None:
        return None
    from analysis.results.outputs import live_path, replace_live

    if target.publish is not None:
        if target.publish_partial is None:
            raise ValueError("a live run that publishes needs publish_partial")
        send = target.publish_partial
        print(f"live: partial documents of run {run_id} go to the plotting service", flush=True)
        return LiveResults(lambda document: send(document.to_json()))

    def draw(document: HistogramDocument) -> None:
        from analysis.results.plot import render_png

        replace_live(target.out_dir, run_id, render_png(document))

    print(f"live figure: {live_path(target.out_dir, run_id)}", flush=True)
    return LiveResults(draw)


def check_inputs(release: Release, options: RunOptions, out_dir: Path) -> bool:
    """Before anything starts: each data location readable (a local one a directory),
    the samples and groups known, the output directory writable. Whether any location
    is remote."""
    from analysis.inputs.locations import local_path, unusable_path
    from analysis.inputs.sources import readable
    from analysis.results.outputs import check_writable

    remote = False
    for location in options.locations:
        try:
            source = readable(location)  # a scheme no source reads, a client not installed
        except InputError as err:
            raise InputError(f"--data {err}") from err
        remote = remote or source.remote
        problem = None if source.remote else unusable_path(local_path(location), directory=True)
        if problem is not None:  # e.g. "No such file or directory", a symbolic-link loop
            raise InputError(f"--data {location}: {problem}")
    release.select(options.samples, options.groups)  # an unknown name: InputError
    check_writable(out_dir)  # before the cluster starts, not after the computation
    return remote


def _import_what_follows(target: RunTarget) -> None:
    """Import what the run needs after its cluster starts shutting down, before it does.

    The local scheduler removes its directory from ``sys.path`` when it closes, in the
    background while the figure is written: an import running then can iterate past
    site-packages and fail with ModuleNotFoundError (it happened to pika, publishing)."""
    import analysis.results.outputs
    import analysis.results.products
    import analysis.results.validation  # noqa: F401

    if target.fit:
        from analysis.results.fit import require_pyhf

        require_pyhf()


def _warm_up_figure(release: Release) -> None:
    """``analysis.results.plot.warm_up``; a failure here is the real figure's to report."""
    try:
        from analysis.results.plot import warm_up

        warm_up(release)
    except Exception as err:  # the real figure is drawn (and fails, if it must) anyway
        log.debug("figure warm-up failed: %s", err)


def _validated(document: HistogramDocument) -> HistogramDocument:
    """The run's own document checked as the plotting service will check it: what it
    would reject is neither written nor published."""
    from analysis.results.document import DocumentError
    from analysis.results.validation import validate_document

    try:
        validate_document(document)
    except DocumentError as err:
        failure = InputError(f"the run's histogram document is not valid: {err}")
        failure.add_note("nothing written")
        raise failure from err
    return document


def compute_failure(err: Exception) -> HZZError:
    """What a failed compute means: an error of the analysis as it was raised (a worker
    out of memory names the file and the lever); workers killed under a task (the
    system's OOM killer, a memory limit) say so; anything else named as it is."""
    from distributed import KilledWorker

    if isinstance(err, HZZError):
        return err
    if isinstance(err, KilledWorker):
        tries = getattr(err, "allowed_failures", None)
        workers = "workers" if tries is None else f"{tries + 1} workers"
        return ResourceExhausted(
            f"the {workers} that ran task {getattr(err, 'task', '?')!r} died, one after another "
            f"(killed, as by the system's out-of-memory killer or the Dask worker memory "
            f"limit): the file is not at fault; {MEMORY_LEVERS}"
        )
    return RunFailure(f"computing the analysis failed: {type(err).__name__}: {err}")


class WatchedCompute:
    """The ``compute`` given to ``analysis.run``: one compute call on ``client`` once it
    has a worker, shown with a progress bar and cancelled by the watchdog once no
    worker is left."""

    readers = None  # the partitions are spread over the client's worker threads

    def __init__(self, client: Client, worker_timeout_s: float, show_progress: bool) -> None:
        self.client = client
        self.worker_timeout_s = worker_timeout_s
        self.show_progress = show_progress
        self.label = "inspecting the files"  # what the next progress bar counts

    def __call__(self, collections: Sequence[Any]) -> list[Any]:
        from distributed import progress

        from .watchdog import WorkerWatchdog, wait_for_a_worker

        wait_for_a_worker(self.client, self.worker_timeout_s)
        futures = self.client.compute(list(collections))
        # A lost worker's tasks are rerun elsewhere; with none left the watchdog cancels.
        with WorkerWatchdog(self.client, futures, self.worker_timeout_s) as watchdog:
            try:
                if self.show_progress:
                    print(f"{self.label}:", flush=True)
                    progress(futures, notebook=False)
                    print(flush=True)
                return list(self.client.gather(futures))
            except Exception as err:
                watchdog.raise_if_tripped()
                raise compute_failure(err) from err

    def each(self, collections: Sequence[Any]) -> Iterator[tuple[int, Any]]:
        """Each collection's result as it finishes (``analysis.results.incremental``),
        watched and shown as ``__call__`` computes; the progress bar draws itself from
        a thread of its own meanwhile."""
        from distributed import as_completed, progress

        from .watchdog import WorkerWatchdog, wait_for_a_worker

        wait_for_a_worker(self.client, self.worker_timeout_s)
        futures = self.client.compute(list(collections))
        index = {future.key: k for k, future in enumerate(futures)}
        bar = None
        if self.show_progress:
            print(f"{self.label}:", flush=True)
            bar = threading.Thread(
                target=progress, args=(futures,), kwargs={"notebook": False}, daemon=True
            )
            bar.start()
        with WorkerWatchdog(self.client, futures, self.worker_timeout_s) as watchdog:
            try:
                for future, result in as_completed(futures, with_results=True):
                    yield index[future.key], result
            except Exception as err:
                watchdog.raise_if_tripped()
                raise compute_failure(err) from err
        if bar is not None:
            bar.join()
            print(flush=True)


def run_analysis(
    client: Client | Callable[[], Client] | ThreadedCompute, release: Release, options: RunOptions
) -> analysis.AnalysisResult:
    """``analysis.run`` on ``client``: remote files checked (or cached) first, then the
    files inspected and every event read on the workers, watched for lost workers.
    The partitions are spread over the threads of ``client`` (the default client).

    ``client`` may be a ``ThreadedCompute`` (a run in this process), or a function that
    waits for the client (a cluster starting): the
    remote files are checked meanwhile, their HEAD requests all at once, so that the
    round trips cost nothing while the workers boot. A remote file whose size, ETag and
    Last-Modified are those of an inspection kept from an earlier run is not opened to
    be inspected again (``cluster.access.inspected``).
    """
    from analysis.api import compute_graph

    inspection, compute = inspect_inputs(client, release, options)
    graph = analysis.build(inspection, options.step_size, compute.readers)
    began = time.monotonic()
    compute.label = "reading the events and filling the histograms"
    try:
        if options.checkpoint is None and options.on_partial is None:
            computed = compute_graph(graph, compute)
        else:
            computed = _compute_by_partition(graph, compute, options)
    except FileChangedError as err:  # the next run inspects that file afresh
        if options.inspection_cache and err.location:
            from cluster.access.inspected import InspectionCache

            InspectionCache(options.inspection_cache).forget(err.location)
        raise
    log.info("computed in %.2f s", time.monotonic() - began)
    return analysis.collect(graph, computed, options.skip_bad_files)


def _compute_by_partition(
    graph: analysis.AnalysisGraph, compute: WatchedCompute, options: RunOptions
) -> list[tuple[Any]]:
    """The graph computed partition by partition: kept ones reused (--checkpoint), the
    result so far handed to ``options.on_partial`` (--live)."""
    from analysis.results.checkpoint import CheckpointStore
    from analysis.results.incremental import compute_by_partition

    store = CheckpointStore(options.checkpoint) if options.checkpoint is not None else None
    computed, reused = compute_by_partition(
        graph, compute.each, store, options.on_partial, options.live_interval_s, options.run_id
    )
    if store is not None:
        print(reused, flush=True)
    return computed


def inspect_inputs(
    client: Client | Callable[[], Client] | ThreadedCompute, release: Release, options: RunOptions
) -> tuple[analysis.Inspection, WatchedCompute | ThreadedCompute]:
    """The first half of ``run_analysis`` (the HEAD pass, kept inspections, the
    inspection of the others, which are then kept), and the compute it used: on its
    own so that the benchmark times what a run spends before it reads any event."""
    from analysis.inputs.locations import resolve_locations
    from cluster.access.cache import prepare_locations
    from cluster.access.inspected import InspectionCache
    from cluster.access.reading import uproot_open_options
    from cluster.access.remote import check_reachable

    chosen = release.select(options.samples, options.groups)
    locations = resolve_locations(options.locations)
    began = time.monotonic()
    remote: dict = {}
    if options.cache_dir is None:
        # One HEAD per remote file, all at once; never hung on (--timeout).
        remote = check_reachable(chosen, locations, options.timeout_s)
    else:  # --cache: remote files fetched first, then read as local files
        locations = prepare_locations(
            chosen, locations, options.cache_dir, options.timeout_s, options.show_progress
        )
    if remote:
        log.info("remote files checked: %d in %.2f s", len(remote), time.monotonic() - began)
    kept = InspectionCache(options.inspection_cache) if options.inspection_cache else None
    known = kept.known(remote) if kept is not None else {}
    compute: WatchedCompute | ThreadedCompute
    if isinstance(client, ThreadedCompute):
        compute = client
    else:
        from distributed import Client

        if callable(client) and not isinstance(client, Client):
            client = client()
        compute = WatchedCompute(client, options.worker_timeout_s, options.show_progress)
    open_options = uproot_open_options(options.timeout_s)
    began = time.monotonic()
    inspection = analysis.inspect(
        data=locations,
        release=release,
        samples=options.samples,
        groups=options.groups,
        allow_missing=options.allow_missing,
        skip_bad_files=options.skip_bad_files,
        open_options=open_options,
        compute=compute,
        known=known,
        readers=compute.readers,
        # Each remote file inspected and read as the version its HEAD named, none other.
        validators={url: r.version for url, r in remote.items() if r.version is not None},
    )
    if kept is not None:
        fresh = [f for files in inspection.files.values() for f in files if f.location not in known]
        kept.keep(fresh, remote)
    reused = f" ({len(known)} kept from earlier runs, not opened)" if known else ""
    log.info(
        "files inspected: %d%s in %.2f s",
        sum(len(files) for files in inspection.files.values()),
        reused,
        time.monotonic() - began,
    )
    return inspection, compute


def write_outputs(
    result: analysis.AnalysisResult,
    out_dir: Path,
    drawn: bytes | None = None,
    on_fit_error: Callable[[FitError], None] | None = None,
) -> tuple[dict[str, Path], FitResult | None]:
    """The PNG and the JSON document side by side, with one timestamped stem; when the
    document asks for a fit (``hzz run --fit``), also the post-fit PNG, the fit results
    and the pyhf workspace. Returns the paths by name ending, and the fit result.
    ``drawn``: the pre-fit PNG, already drawn (by a ``Drawer``), for a document without
    a fit. A fit that fails is handed to ``on_fit_error`` (the figure and document are
    still written), or raised as FitError before anything is written."""
    from analysis.results.products import PREFIT_PNG, render_products

    if drawn is not None and not result.document.figure.fit:
        return _write(
            out_dir, {PREFIT_PNG: drawn, ".json": result.to_json()}, result.document
        ), None
    try:
        contents, fitted = render_products(result.document, on_fit_error=on_fit_error)
    except InputError:
        raise  # a document the model cannot fit: said as it is
    except Exception as err:  # the figure code on a validated document: say so, no traceback
        raise RunFailure(f"drawing the figure failed: {type(err).__name__}: {err}") from err
    return _write(out_dir, {**contents, ".json": result.to_json()}, result.document), fitted


def write_document(document: HistogramDocument, out_dir: Path) -> Path:
    """Only the JSON document: with ``--broker`` the plotting service draws the PNG."""
    return _write(out_dir, {".json": document.to_json()}, document)[".json"]


def _write(
    out_dir: Path, contents: dict[str, bytes], document: HistogramDocument
) -> dict[str, Path]:
    """``write_new``; an OS error (full, read-only) names the directory, nothing is left."""
    from analysis.results.outputs import write_new

    try:
        return write_new(out_dir, contents, when=document.created)
    except OSError as err:
        raise RunFailure(f"writing to --out {out_dir}: {err.strerror or err}") from err
