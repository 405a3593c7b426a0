"""What every ``hzz`` subcommand shares: exit codes, help format, argument types."""

from __future__ import annotations

import argparse
import functools
import math
from collections.abc import Callable, Sequence
from typing import Any

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports Ctrl-C

DEFAULT_OUT = "plots"

Handler = Callable[[argparse.Namespace], int]


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows "(default: …)" only where there is a default the help does not already give."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if action.default is None or action.default is False or "default" in text:
            return action.help
        return super()._get_help_string(action)


def step_size(text: str) -> int:
    """Entries per Dask partition: an integer (``200_000`` reads as 200000)."""
    try:
        return int(text.strip().replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"invalid step size {text!r}: give entries per partition, e.g. 200000"
        ) from None


def names(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


class _Positive(argparse.Action):
    """Stores a finite number once it is above zero (or zero, with ``zero``) and at most
    ``most``; otherwise the command stops naming the option (exit 2)."""

    def __init__(
        self,
        *args: Any,
        zero: bool = False,
        most: float | None = None,
        why: str = "",
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.zero = zero
        self.most = most
        self.why = why

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        value = float(values)  # type: ignore[arg-type]
        name = option_string or self.metavar or self.dest
        if not math.isfinite(value):  # nan, inf, or 1e400 (read as inf)
            parser.error(f"{name} must be a finite number, not {value:g}")
        if value < 0 or (value == 0 and not self.zero):
            parser.error(f"{name} must {'not be negative' if self.zero else 'be positive'}")
        if self.most is not None and value > self.most:
            parser.error(f"{name} must be at most {self.most:g}{self.why}")
        setattr(namespace, self.dest, values)


def positive(
    kind: Callable[[str], Any] = int,
    *,
    zero: bool = False,
    most: float | None = None,
    why: str = "",
) -> Any:
    """``add_argument(…, action=positive(float))``: a finite number that must be positive
    (with ``zero``: not negative) and at most ``most`` (``why`` says why, after it), else
    "OPTION must be positive" and exit 2. NaN and infinity are neither."""
    return functools.partial(_Positive, type=kind, zero=zero, most=most, why=why)


def add_seconds(
    parser: argparse.ArgumentParser, flag: str, default: float | None, help: str
) -> None:
    """An option of ``SECONDS``: a positive number (``positive(float)``)."""
    parser.add_argument(flag, metavar="SECONDS", action=positive(float), default=default, help=help)


def local_workers() -> Any:
    """``action=`` of a count of local worker processes: positive, and no more than this
    machine can start (``cluster.defaults.most_local_workers``)."""
    from cluster.defaults import most_local_workers

    most, why = most_local_workers()
    return positive(most=most, why=why)
