"""The ``hzz`` command line: one entry point; each subcommand lives in ``cluster.commands``.

A command raises; this module turns what it raised into a message and an exit code,
in one place: ``analysis.errors.InputError`` (bad input: fix it and run again) is
exit code 2, any other error the project raises on purpose, and an OS or runtime
error, exit code 1. A traceback is printed only with ``--verbose``.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import difflib
import logging
import os
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any

from cluster.commands import REGISTRARS
from cluster.commands.common import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_INTERRUPTED, Handler

log = logging.getLogger("hzz")


def version() -> str:
    """The installed package's version."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed("hzz-cluster")
    except PackageNotFoundError:
        return "unknown (not installed)"


class Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose mistakes name the command they are in: an unknown
    option or command is reported with that (sub)command's usage and, when a known one
    is close, "did you mean …?". Subcommands' parsers are of this class too."""

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        namespace, extras = super().parse_known_args(args, namespace)
        if extras:
            # The innermost parser sees the unknown words first: its usage is the one wanted.
            known = [o for action in self._actions for o in action.option_strings]
            hint = _did_you_mean(next((w for w in extras if w.startswith("-")), ""), known)
            self.error(f"unrecognized arguments: {' '.join(extras)}{hint}")
        return namespace, extras

    def _check_value(self, action: argparse.Action, value: Any) -> None:
        if action.choices is not None and value not in action.choices:
            choices = ", ".join(map(repr, action.choices))
            hint = _did_you_mean(str(value), [str(c) for c in action.choices])
            raise argparse.ArgumentError(
                action, f"invalid choice: {value!r} (choose from {choices}){hint}"
            )


def _did_you_mean(word: str, known: Sequence[str]) -> str:
    """The hint "; did you mean 'run'?" for the closest of ``known`` to ``word`` (an
    option without its value), or nothing."""
    close = difflib.get_close_matches(word.split("=", 1)[0], known, n=1) if word else []
    return f"; did you mean {close[0]!r}?" if close else ""


def _verbose_everywhere(parser: argparse.ArgumentParser) -> None:
    """``-v`` accepted after every subcommand too (``hzz run -v``), as well as before."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in set(action.choices.values()):
                sub.add_argument(
                    "-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                    help="debug logging, with tracebacks",
                )  # fmt: skip
                _verbose_everywhere(sub)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="hzz",
        description=(
            "ATLAS Open Data H→ZZ*→4ℓ analysis on Dask: compute the m4l histograms, "
            "write the ATLAS-style figure, or ship the histograms to a plotting service."
        ),
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="debug logging, with tracebacks"
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for register in REGISTRARS:
        register(subparsers)
    _verbose_everywhere(parser)
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
    for root_handler in logging.getLogger().handlers:
        root_handler.setFormatter(SafeFormatter(root_handler.formatter._fmt))  # type: ignore[union-attr]
    if not args.verbose:
        for noisy in ("distributed", "bokeh", "tornado", "asyncio", "pika", "matplotlib", "pyhf"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
    handler: Handler = args.handler
    prog = f"hzz {args.command}"
    from analysis.errors import HZZError, InputError

    try:
        return handler(args)
    except InputError as err:
        _report(prog, err, args.verbose)
        return EXIT_BAD_INPUT
    except (HZZError, OSError, RuntimeError, TimeoutError) as err:
        _report(prog, err, args.verbose)
        return EXIT_FAILED
    except KeyboardInterrupt:
        # Files are written whole or not at all (temporary name, then a link).
        print(f"{prog}: interrupted, nothing written", file=sys.stderr)
        return EXIT_INTERRUPTED


def _report(prog: str, err: BaseException, verbose: bool) -> None:
    """The error's message and its notes (what to do about it), one line each."""
    from analysis.redaction import redact_urls

    if verbose:
        log.exception("%s failed", prog)
    print(redact_urls(f"{prog}: {err}"), file=sys.stderr)
    for note in getattr(err, "__notes__", ()):
        print(redact_urls(f"{prog}: {note}"), file=sys.stderr)


def _one_line(text: str) -> str:
    """Unprintable characters (a newline in a sample name, …) written as escapes."""
    if text.isprintable():
        return text
    return "".join(
        c if c.isprintable() else c.encode("unicode_escape", "backslashreplace").decode("ascii")
        for c in text
    )


class SafeFormatter(logging.Formatter):
    """Every log line is one line with no password: the message's control characters
    are escaped (text from a message or a file cannot forge a line of its own) and URL
    passwords replaced by ``***``. A traceback (``-v``) follows as usual."""

    def format(self, record: logging.LogRecord) -> str:
        from analysis.redaction import redact_urls

        safe = logging.makeLogRecord(record.__dict__)
        safe.msg, safe.args = _one_line(redact_urls(record.getMessage())), None
        return super().format(safe)


#: After Ctrl-C, how long the cluster may take to shut down before the command exits.
INTERRUPTED_SHUTDOWN_S = 10.0


def entry() -> None:
    """The ``hzz`` console script: ``main``, then exit without the interpreter's teardown.

    When a command returns, its files are written and closed. What remains is what the
    interpreter does at exit: wait for threads (a cluster shutting down), run the
    ``atexit`` handlers, flush the streams (all done here, in that order), then free
    every imported module one by one: Dask, bokeh, matplotlib, … about 0.4 s of a
    3 s ``hzz run`` (``python -m bench``), skipped by ``os._exit``.
    """
    code = main()
    # After Ctrl-C the user wants the prompt back: the cluster gets a few seconds to shut
    # down, not for ever (an interrupted client can leave it waiting on a reply that
    # never comes). Local workers and the server they were forked from end with this
    # process either way.
    interrupted = code == EXIT_INTERRUPTED
    deadline = time.monotonic() + INTERRUPTED_SHUTDOWN_S
    stuck = False
    for thread in threading.enumerate():
        if thread is threading.current_thread() or thread.daemon:
            continue
        thread.join(max(deadline - time.monotonic(), 0.0) if interrupted else None)
        stuck = stuck or thread.is_alive()
    if not stuck:  # the exit handlers could wait on what is stuck
        atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # closed, or a broken pipe
            stream.flush()
    os._exit(code)


if __name__ == "__main__":
    entry()
