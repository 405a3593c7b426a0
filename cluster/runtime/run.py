"""``hzz run`` on a Dask client: the analysis API with a progress bar and a worker watchdog.

The analysis itself (which files, what a missing or bad file means, the graph, the
result) is ``analysis.run``; this module adds what a command run needs: remote files
checked or cached first, a wait for a first worker, every compute watched for lost
workers and shown with a progress bar, and the result written to disk.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from distributed import Client, progress

import analysis
from analysis.api import compute_graph
from analysis.errors import RunFailure
from analysis.inputs.catalogue import Release
from analysis.inputs.locations import resolve_locations
from analysis.results.document import HistogramDocument
from analysis.results.outputs import write_new
from cluster.access.cache import prepare_locations
from cluster.access.inspected import InspectionCache
from cluster.access.reading import uproot_open_options
from cluster.access.remote import check_reachable
from cluster.defaults import DEFAULT_TIMEOUT_S, inspection_cache_dir

from .watchdog import DEFAULT_WORKER_TIMEOUT_S, WorkerWatchdog, wait_for_a_worker

if TYPE_CHECKING:
    from analysis.results.fit import FitResult

log = logging.getLogger(__name__)


@dataclass
class RunOptions:
    """What ``hzz run`` was asked for; defaults are the CLI's."""

    locations: list[str]
    samples: list[str] | None = None
    groups: list[str] | None = None
    step_size: int = 200_000
    allow_missing: bool = False
    skip_bad_files: bool = False  # leave bad files out (listed) instead of stopping
    show_progress: bool = True
    worker_timeout_s: float = DEFAULT_WORKER_TIMEOUT_S  # longest wait with no worker
    cache_dir: Path | None = None  # fetch remote files here first (--cache)
    timeout_s: float = DEFAULT_TIMEOUT_S  # wait for a remote server (--timeout)
    #: Inspections of remote files kept between runs (None: not kept); default from
    #: the environment (``cluster.defaults.inspection_cache_dir``).
    inspection_cache: Path | None = None

    def __post_init__(self) -> None:
        if self.inspection_cache is None:
            chosen = inspection_cache_dir()
            self.inspection_cache = Path(chosen) if chosen else None


class WatchedCompute:
    """The ``compute`` given to ``analysis.run``: one compute call on ``client`` once it
    has a worker, shown with a progress bar and cancelled by the watchdog once no
    worker is left."""

    def __init__(self, client: Client, worker_timeout_s: float, show_progress: bool) -> None:
        self.client = client
        self.worker_timeout_s = worker_timeout_s
        self.show_progress = show_progress

    def __call__(self, collections: Sequence[Any]) -> list[Any]:
        wait_for_a_worker(self.client, self.worker_timeout_s)
        futures = self.client.compute(list(collections))
        # A lost worker's tasks are rerun elsewhere; with none left the watchdog cancels.
        with WorkerWatchdog(self.client, futures, self.worker_timeout_s) as watchdog:
            try:
                if self.show_progress:
                    progress(futures, notebook=False)
                    print(flush=True)
                return list(self.client.gather(futures))
            except Exception as err:
                watchdog.raise_if_tripped()
                raise RunFailure(
                    f"computing the analysis failed: {type(err).__name__}: {err}"
                ) from err


def run_analysis(
    client: Client | Callable[[], Client], release: Release, options: RunOptions
) -> analysis.AnalysisResult:
    """``analysis.run`` on ``client``: remote files checked (or cached) first, then the
    files inspected and every event read on the workers, watched for lost workers.
    The partitions are spread over the threads of ``client`` (the default client).

    ``client`` may be a function that waits for the client (a cluster starting): the
    remote files are checked meanwhile, their HEAD requests all at once, so that the
    round trips cost nothing while the workers boot. A remote file whose size, ETag and
    Last-Modified are those of an inspection kept from an earlier run is not opened to
    be inspected again (``cluster.access.inspected``).
    """
    inspection, compute = inspect_inputs(client, release, options)
    graph = analysis.build(inspection, options.step_size)
    began = time.monotonic()
    computed = compute_graph(graph, compute)
    log.info("computed in %.2f s", time.monotonic() - began)
    return analysis.collect(graph, computed, options.skip_bad_files)


def inspect_inputs(
    client: Client | Callable[[], Client], release: Release, options: RunOptions
) -> tuple[analysis.Inspection, WatchedCompute]:
    """The first half of ``run_analysis`` (the HEAD pass, kept inspections, the
    inspection of the others, which are then kept), and the compute it used: on its
    own so that the benchmark times what a run spends before it reads any event."""
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
    result: analysis.AnalysisResult, out_dir: Path
) -> tuple[dict[str, Path], FitResult | None]:
    """The PNG and the JSON document side by side, with one timestamped stem; when the
    document asks for a fit (``hzz run --fit``), also the post-fit PNG, the fit results
    and the pyhf workspace. Returns the paths by name ending, and the fit result."""
    from analysis.errors import InputError
    from analysis.results.products import render_products

    try:
        contents, fitted = render_products(result.document)
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
    try:
        return write_new(out_dir, contents, when=document.created)
    except OSError as err:
        raise RunFailure(f"writing to --out {out_dir}: {err.strerror or err}") from err
