"""``hzz run``: its options; the run itself is ``cluster.runtime.run``."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path

from cluster.defaults import (
    DEFAULT_DASHBOARD,
    DEFAULT_LIVE_INTERVAL_S,
    DEFAULT_TIMEOUT_S,
    DEFAULT_WORKER_TIMEOUT_S,
    IN_PROCESS_MAX_BYTES,
    setting,
)

from .broker import add_broker_arguments, publish_partial, publish_saved
from .common import (
    DEFAULT_OUT,
    EXIT_INTERRUPTED,
    EXIT_OK,
    HelpFormatter,
    add_seconds,
    local_workers,
    names,
    positive,
    step_size,
)


def add_run_parser(subparsers: argparse._SubParsersAction) -> None:
    from analysis.inputs.catalogue import RELEASES, load_release
    from analysis.inputs.partitions import DEFAULT_STEP_SIZE
    from analysis.inputs.sources import described

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
            "Without --scheduler or --workers (and without --fit, --broker, --live, "
            "--checkpoint, --cache), a local input of at most "
            f"{IN_PROCESS_MAX_BYTES // 2**20} MB is computed in this process with Dask's "
            "threaded scheduler (no dashboard), and a larger or remote one on an embedded "
            "local cluster of worker processes."
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
            f"base URL ({described(lambda s: s.remote)}) or local directory laid out like the "
            "server (2020: "
            "Data/ and MC/; 2025: flat); repeat to search several locations in order (env "
            f"HZZ_DATA, several separated by ','; default: the release's HTTPS server, for 2020 "
            f"{release.default_location})"
        ),
    )
    parser.add_argument("--out", metavar="DIR", default=DEFAULT_OUT, help="output directory")
    parser.add_argument(
        "--workers",
        metavar="N",
        action=local_workers(),
        default=None,
        help="start a local cluster of N worker processes, whatever the input's size "
        "(default: one per core, for an input too large or remote to compute in this process)",
    )
    parser.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        default=setting("HZZ_SCHEDULER"),
        help="address of a running Dask scheduler, e.g. tls://scheduler:8786 "
        "(env HZZ_SCHEDULER); default: start a local cluster (mutual TLS, certificates "
        "made for it)",
    )
    parser.add_argument(
        "--certificates",
        metavar="DIR",
        type=Path,
        default=setting("HZZ_CERTIFICATES"),
        help="with --scheduler: the directory of the cluster's certificates (hzz "
        "certificates; hzz cluster up prints it) whose client certificate and CA this run "
        "presents and trusts (env HZZ_CERTIFICATES; default: Dask's config "
        "distributed.comm.tls)",
    )
    parser.add_argument(
        "--step-size",
        action=positive(step_size),
        default=DEFAULT_STEP_SIZE,
        help="entries per Dask partition",
    )
    parser.add_argument(
        "--samples",
        type=names,
        metavar="A,B,…",
        help=f"only these samples (2020: {', '.join(release.samples)}; 2025: the names in "
        "analysis/data/release_2025.json, e.g. data15_periodD: docs/user-guide.md, "
        "'Releases and data access')",
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
        default=DEFAULT_DASHBOARD,
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
        help=f"copy remote {described(lambda s: s.cached)} files into DIR first (verified; "
        "reused by later runs, "
        "which then read nothing from the server) and run on the copies",
    )
    add_seconds(
        parser,
        "--timeout",
        DEFAULT_TIMEOUT_S,
        "how long to wait for a remote server before failing with the URL tried",
    )
    add_seconds(
        parser,
        "--worker-timeout",
        DEFAULT_WORKER_TIMEOUT_S,
        "fail (exit 1) after this long without a --scheduler to connect to, or without "
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
    parser.add_argument(
        "--checkpoint",
        metavar="DIR",
        default=setting("HZZ_CHECKPOINT"),
        help="keep each computed partition in DIR as it finishes and reuse those kept: a "
        "run that stopped resumes where it was, a rerun computes only what changed (kept "
        "by file identity, entry range and analysis version); prints 'checkpoint: K of N "
        "partitions reused' (env HZZ_CHECKPOINT; bound it with hzz checkpoint prune)",
    )
    parser.add_argument(
        "--live",
        action="store_true",
        help="show the result while the workers compute: with --broker, partial documents "
        "go to the plotting service, which draws them into one live figure; without, the "
        "live figure is written here, in OUT/live/",
    )
    add_seconds(
        parser,
        "--live-interval",
        DEFAULT_LIVE_INTERVAL_S,
        "with --live: at most one partial result this often",
    )
    add_broker_arguments(parser, run=True)
    parser.set_defaults(handler=run_command)


def _locations(args: argparse.Namespace) -> list[str]:
    """--data, else HZZ_DATA, else the release's own server."""
    if args.data:
        return list(args.data)
    env = setting("HZZ_DATA")
    if env:
        return [part.strip() for part in env.split(",") if part.strip()]
    from analysis.inputs.catalogue import load_release

    return [load_release(args.release).default_location]


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


def run_command(args: argparse.Namespace) -> int:
    signal.signal(signal.SIGINT, _stop_on_interrupt)
    # Stopped at once, the run leaves the semaphores of its local cluster to
    # multiprocessing's resource tracker, which removes them and then warns about each
    # "leak" on the terminal: the tracker (started later, with this interpreter's -W
    # options) cleans up without the warning, so Ctrl-C prints its one line only.
    sys.warnoptions.append("ignore:resource_tracker:UserWarning")
    from cluster.runtime.live import new_run_id
    from cluster.runtime.run import RunOptions, RunTarget, run

    publishing = bool(args.broker or setting("HZZ_BROKER") or setting("HZZ_BROKER_FILE"))
    if publishing:  # imported now: not while the cluster shuts down (runtime.run)
        import cluster.service.publisher  # noqa: F401
    options = RunOptions(
        locations=_locations(args),
        samples=args.samples,
        groups=args.groups,
        step_size=args.step_size,
        allow_missing=args.allow_missing,
        skip_bad_files=args.skip_bad_files,
        show_progress=not args.no_progress,
        worker_timeout_s=args.worker_timeout,
        cache_dir=Path(args.cache) if args.cache else None,
        timeout_s=args.timeout,
        checkpoint=Path(args.checkpoint) if args.checkpoint else None,
        live_interval_s=args.live_interval,
        run_id=new_run_id() if args.live else None,
    )
    target = RunTarget(
        out_dir=Path(args.out),
        scheduler=args.scheduler,
        certificates=args.certificates,
        workers=args.workers,
        dashboard=args.dashboard,
        fit=args.fit,
        publish=(
            (lambda path, body: publish_saved(path, body, args, options.run_id))
            if publishing
            else None
        ),
        publish_partial=(
            (lambda body: publish_partial(body, args, options.run_id)) if publishing else None
        ),
    )
    from analysis.errors import MissingFileError, SampleFileError

    try:
        run(args.release, options, target)
    except SampleFileError as err:
        if not isinstance(err, MissingFileError):
            err.add_note("to leave bad files out, each listed with its cause: --skip-bad-files")
        raise
    return EXIT_OK
