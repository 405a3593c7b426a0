"""``hzz run``: its options, and the command that computes, reports and writes or publishes."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

from cluster.defaults import setting

from .broker import add_broker_arguments, publish_saved
from .common import DEFAULT_OUT, EXIT_INTERRUPTED, EXIT_OK, HelpFormatter, names, step_size

log = logging.getLogger(__name__)

#: Threads of each local worker process when the data are remote (one otherwise).
REMOTE_THREADS_PER_WORKER = 2


def add_run_parser(subparsers: argparse._SubParsersAction) -> None:
    from analysis.inputs.catalogue import RELEASES, load_release
    from analysis.inputs.partitions import DEFAULT_STEP_SIZE

    release = load_release("2020")
    groups = ", ".join(g.key for g in release.groups)
    parser = subparsers.add_parser(
        "run",
        help="compute the analysis on Dask and write the figure and histogram document",
        description=(
            "Compute the ATLAS Open Data H→ZZ*→4ℓ analysis (release 2020 or 2025) on a Dask "
            "cluster and write "
            "plot_dd_mm_yy-HH-MM.png (UTC time) and the histogram document "
            "plot_dd_mm_yy-HH-MM.json side by side in --out. An existing file is never "
            "overwritten: a second result in the same minute gets a _2, _3, … suffix. "
            "Without --scheduler an embedded local cluster of worker processes is started."
        ),
        formatter_class=HelpFormatter,
    )
    parser.add_argument(
        "--release",
        choices=RELEASES,
        default="2020",
        help="2020: 13 TeV, 10 fb⁻¹, skim 4lep (MeV), the notebook of the spec; 2025: "
        "2015+2016 data, 36.6 fb⁻¹, skim exactly4lep (GeV), flat file layout",
    )
    parser.add_argument(
        "--data",
        metavar="LOCATION",
        action="append",
        help=(
            "base URL (https://, root://) or local directory laid out like the server (2020: "
            "Data/ and MC/; 2025: flat); repeat to search several locations in order (env "
            f"HZZ_DATA, several separated by ','; default: the release's HTTPS server, for 2020 "
            f"{release.default_location})"
        ),
    )
    parser.add_argument("--out", metavar="DIR", default=DEFAULT_OUT, help="output directory")
    parser.add_argument(
        "--workers",
        metavar="N",
        type=int,
        default=None,
        help="worker processes of the local cluster (default: one per core)",
    )
    parser.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        default=setting("HZZ_SCHEDULER"),
        help="address of a running Dask scheduler, e.g. tcp://scheduler:8786 "
        "(env HZZ_SCHEDULER); default: start a local cluster",
    )
    parser.add_argument(
        "--step-size",
        type=step_size,
        default=DEFAULT_STEP_SIZE,
        help="entries per Dask partition",
    )
    parser.add_argument(
        "--samples",
        type=names,
        metavar="A,B,…",
        help=f"only these samples (2020: {', '.join(release.samples)}; 2025: see README)",
    )
    parser.add_argument(
        "--groups", type=names, metavar="A,B,…", help=f"only these groups ({groups})"
    )
    parser.add_argument(
        "--allow-missing",
        action="store_true",
        help="go on without samples whose files are absent (listed in the document and "
        "noted on the figure); without it a missing file is an error and nothing is written",
    )
    parser.add_argument(
        "--dashboard",
        metavar="ADDRESS",
        default="127.0.0.1:8787",
        help="dashboard address of the local cluster: loopback unless a host is given "
        "(':0' any free port on loopback; '0.0.0.0:8787' every interface)",
    )
    parser.add_argument(
        "--skip-bad-files",
        action="store_true",
        help="leave out files that cannot be read or are wrong (not ROOT, truncated, no tree "
        "or branch, read errors, branches of another type, lepton branches that disagree, NaN "
        "or infinite values), each listed with its cause on the console, in the document and "
        "on the figure; a file with any unreadable part is left out whole. Without it a bad file "
        "stops the run with its name and cause, exit code 2, nothing written",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument(
        "--cache",
        metavar="DIR",
        help="copy remote http(s) files into DIR first (verified; reused by later runs, "
        "which then read nothing from the server) and run on the copies",
    )
    parser.add_argument(
        "--timeout",
        metavar="SECONDS",
        type=float,
        default=30.0,
        help="how long to wait for a remote server before failing with the URL tried",
    )
    parser.add_argument(
        "--worker-timeout",
        metavar="SECONDS",
        type=float,
        default=60.0,
        help="fail (exit 1) after this long without a --scheduler to connect to, or without "
        "any Dask worker before or during the computation; a lost worker's tasks are rerun "
        "on the others",
    )
    parser.add_argument(
        "--fit",
        action="store_true",
        help="also fit the statistical model (signal strength, systematics; see docs/fit.md) "
        "where the figure is drawn (here, or by the plotting service with --broker): writes "
        "the post-fit figure, the fit results and the pyhf workspace beside the document and "
        "prints the fit table",
    )
    add_broker_arguments(parser, run=True)
    parser.set_defaults(handler=run_command)


def _locations(args: argparse.Namespace, default: str) -> list[str]:
    if args.data:
        return list(args.data)
    env = setting("HZZ_DATA")
    if env:
        return [part.strip() for part in env.split(",") if part.strip()]
    return [default]


def _stop_on_interrupt(signum: int, frame: object) -> None:
    """Ctrl-C during a run: one line, exit 130, at once.

    Python's own KeyboardInterrupt lands in whatever code runs at that instant, and
    inside a garbage-collection callback or a finaliser it is printed as "Exception
    ignored" and lost: the run then went on computing. Files are written whole or not at
    all (a temporary name, then a link), so stopping here writes nothing; the local
    cluster's processes end with this one.
    """
    os.write(2, b"hzz run: interrupted, nothing written\n")
    os._exit(EXIT_INTERRUPTED)


def _warm_up_figure(release: Any) -> None:
    """``analysis.results.plot.warm_up``; a failure here is the real figure's to report."""
    try:
        from analysis.results.plot import warm_up

        warm_up(release)
    except Exception as err:  # the real figure is drawn (and fails, if it must) anyway
        log.debug("figure warm-up failed: %s", err)


def run_command(args: argparse.Namespace) -> int:
    from analysis.errors import HZZError, InputError, MissingFileError
    from analysis.inputs.catalogue import load_release
    from analysis.inputs.locations import local_path
    from analysis.inputs.sources import readable

    signal.signal(signal.SIGINT, _stop_on_interrupt)

    release = load_release(args.release)
    locations = _locations(args, release.default_location)
    remote = False
    for location in locations:
        try:
            source = readable(location)  # a scheme no source reads, a client not installed
        except InputError as err:
            raise InputError(f"--data {err}") from err
        remote = remote or source.remote
        if not source.remote and not Path(local_path(location)).is_dir():
            raise InputError(f"--data {location}: no such directory")
    if args.workers is not None and args.workers < 1:
        raise InputError("--workers must be at least 1")
    if not args.worker_timeout > 0:
        raise InputError("--worker-timeout must be positive")
    if not args.timeout > 0:
        raise InputError("--timeout must be positive")
    release.select(args.samples, args.groups)  # an unknown name: InputError
    from analysis.results.outputs import check_writable

    check_writable(Path(args.out))  # before the cluster starts, not after the computation

    # The worker processes boot while this process imports the analysis; a first,
    # throw-away figure is drawn while the workers compute (the real one then costs
    # only its own drawing); the cluster shuts down while the figure is written.
    publishing = bool(args.broker or setting("HZZ_BROKER") or setting("HZZ_BROKER_FILE"))
    from cluster.runtime.clusters import BackgroundClient

    # Reading remote files, a worker's second thread computes one partition while the
    # first waits for the next one's bytes: the link and the cores are busy together.
    threads = REMOTE_THREADS_PER_WORKER if remote else 1
    cluster = BackgroundClient(
        args.scheduler,
        args.workers,
        threads_per_worker=threads,
        dashboard_address=args.dashboard,
        connect_timeout_s=args.worker_timeout,
    )
    try:
        from cluster.runtime.run import RunOptions, run_analysis

        options = RunOptions(
            locations=locations,
            samples=args.samples,
            groups=args.groups,
            step_size=args.step_size,
            allow_missing=args.allow_missing,
            skip_bad_files=args.skip_bad_files,
            show_progress=not args.no_progress,
            worker_timeout_s=args.worker_timeout,
            cache_dir=Path(args.cache) if args.cache else None,
            timeout_s=args.timeout,
        )
        try:

            def connect() -> Any:
                client = cluster.client()
                print(f"Dask dashboard: {client.dashboard_link}", flush=True)
                return client

            warming = threading.Thread(target=_warm_up_figure, args=(release,), daemon=True)
            if not publishing:
                warming.start()
            # Remote files are checked while the cluster starts.
            result = run_analysis(connect, release, options)
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
        cluster.close()

    from analysis.results.document import DocumentError
    from analysis.results.validation import validate_document
    from cluster.runtime.run import write_document, write_outputs

    document = result.document
    try:  # what the plotting service would reject is neither written nor published
        validate_document(document)
    except DocumentError as err:
        failure = InputError(f"the run's histogram document is not valid: {err}")
        failure.add_note("nothing written")
        raise failure from err
    print(result.yields_table())
    if args.fit:  # the fit is made where the figure is drawn: here, or by the plotter
        document.figure = replace(document.figure, fit=True)
    if publishing:
        saved = write_document(document, Path(args.out))
        print(f"document: {saved}")
        return publish_saved(saved, document.to_json(), args)
    warming.join()  # one figure at a time: matplotlib's settings are the process's
    try:
        written, fitted = write_outputs(result, Path(args.out))
    except HZZError as err:  # a document the model cannot fit: nothing is written
        err.add_note("nothing written")
        raise
    if fitted is not None:
        print(fitted.table())
    print(f"figure:   {written['.png']}")
    print(f"document: {written['.json']}")
    if fitted is not None:
        print(f"post-fit figure: {written['.postfit.png']}")
        print(f"fit results:     {written['.fit.json']}")
        print(f"pyhf workspace:  {written['.workspace.json']}")
    return EXIT_OK
