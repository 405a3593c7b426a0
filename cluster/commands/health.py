"""``hzz health FILE``: the container health check of a service that keeps a heartbeat file."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .common import EXIT_FAILED, EXIT_OK, HelpFormatter, add_seconds

#: A heartbeat older than this fails the check (the plotter refreshes it every second
#: while it waits for messages, and after each figure).
DEFAULT_MAX_AGE_S = 60.0


def add_health_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "health",
        help="check a service's heartbeat file (a container HEALTHCHECK)",
        description="Exit 0 when FILE says the service is consuming and was refreshed "
        "within --max-age seconds, else print why and exit 1. The plotting service keeps "
        "the file with `hzz plotter --health-file FILE`.",
        formatter_class=HelpFormatter,
    )
    parser.add_argument("file", metavar="FILE", help="the service's heartbeat file")
    add_seconds(
        parser,
        "--max-age",
        DEFAULT_MAX_AGE_S,
        "oldest heartbeat still counted as healthy",
    )
    parser.set_defaults(handler=health_command)


def health_command(args: argparse.Namespace) -> int:
    from cluster.service.heartbeat import check

    health = check(Path(args.file), args.max_age)
    print(f"hzz health: {health.reason}", file=sys.stdout if health.healthy else sys.stderr)
    return EXIT_OK if health.healthy else EXIT_FAILED
