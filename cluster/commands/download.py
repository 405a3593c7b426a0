"""``hzz download``: mirror a release's files into a local directory, verified."""

from __future__ import annotations

import argparse
from pathlib import Path

from .common import EXIT_OK, HelpFormatter, add_seconds, names, positive


def add_download_parser(subparsers: argparse._SubParsersAction) -> None:
    from analysis.inputs.sources import described
    from cluster.defaults import DEFAULT_RETRIES, DEFAULT_TIMEOUT_S

    parser = subparsers.add_parser(
        "download",
        help="mirror a release's files into a directory (resumable, verified)",
        description=(
            "Download a release's files into --out in the server's layout, so that the "
            "directory can be passed to 'hzz run --data'. Each file is written to NAME.part "
            "and resumed from there (HTTP Range) after an interruption; it is kept only when "
            "its size matches the server's and, where the catalogue knows it, its SHA-256. "
            "Files already complete are not downloaded again."
        ),
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--release", default="2020", help="release catalogue (2020, 2025)")
    parser.add_argument("--out", metavar="DIR", required=True, help="mirror directory")
    parser.add_argument("--samples", type=names, metavar="A,B,…", help="only these samples")
    parser.add_argument("--groups", type=names, metavar="A,B,…", help="only these groups")
    parser.add_argument(
        "--data",
        metavar="BASE_URL",
        help=f"{described(lambda s: s.downloadable)} base URL to download from (default: the "
        "release's HTTPS server)",
    )
    add_seconds(
        parser,
        "--timeout",
        DEFAULT_TIMEOUT_S,
        "how long to wait for the server to connect or send data",
    )
    parser.add_argument(
        "--retries",
        metavar="N",
        action=positive(zero=True),
        default=DEFAULT_RETRIES,
        help="resumes of a dropped transfer before giving up",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.set_defaults(handler=download_command)


def download_command(args: argparse.Namespace) -> int:
    from analysis.errors import InputError
    from analysis.inputs.catalogue import load_release
    from analysis.inputs.sources import described, source_for
    from cluster.access.download import download_release

    try:
        release = load_release(args.release)
    except ValueError as err:
        raise InputError(f"--release {args.release}: {err}") from err
    chosen = release.select(args.samples, args.groups)
    base_url = args.data or release.default_location
    if not source_for(base_url).downloadable:
        raise InputError(
            f"--data {base_url}: give a {described(lambda s: s.downloadable)} base URL"
        )
    out_dir = Path(args.out)
    try:
        fetched = download_release(
            release,
            chosen,
            base_url,
            out_dir,
            timeout=args.timeout,
            retries=args.retries,
            show_progress=not args.no_progress,
        )
    except OSError as err:  # RemoteAccessError too
        err.add_note("run the same command again to resume")
        raise
    moved = sum(f.transferred for f in fetched)
    current = sum(1 for f in fetched if f.transferred == 0)
    print(
        f"{len(fetched)} files in {out_dir} verified ({current} already complete), "
        f"{moved} bytes downloaded"
    )
    return EXIT_OK
