"""The ``hzz`` command line: one entry point; each subcommand lives in ``cluster.commands``."""

from __future__ import annotations

import argparse
import atexit
import contextlib
import logging
import os
import sys
import threading
from collections.abc import Sequence

from cluster.commands import REGISTRARS
from cluster.commands.common import Handler


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hzz",
        description=(
            "ATLAS Open Data H→ZZ*→4ℓ analysis on Dask: compute the m4l histograms, "
            "write the ATLAS-style figure, or ship the histograms to a plotting service."
        ),
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for register in REGISTRARS:
        register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.verbose:
        # Read by distributed when it is imported: here (dask's config is already
        # loaded) and in the worker processes it spawns (from the environment).
        import dask

        os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "warning")
        dask.config.set({"logging.distributed": "warning"})
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not args.verbose:
        for noisy in ("distributed", "bokeh", "tornado", "asyncio", "pika", "matplotlib", "pyhf"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
    handler: Handler = args.handler
    return handler(args)


def entry() -> None:
    """The ``hzz`` console script: ``main``, then exit without the interpreter's teardown.

    When a command returns, its files are written and closed. What remains is what the
    interpreter does at exit: wait for threads (a cluster shutting down), run the
    ``atexit`` handlers, flush the streams (all done here, in that order), then free
    every imported module one by one: Dask, bokeh, matplotlib, … about 0.4 s of a
    3 s ``hzz run`` (``python -m bench``), skipped by ``os._exit``.
    """
    code = main()
    for thread in threading.enumerate():
        if thread is not threading.current_thread() and not thread.daemon:
            thread.join()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # closed, or a broken pipe
            stream.flush()
    os._exit(code)


if __name__ == "__main__":
    entry()
