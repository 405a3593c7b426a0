"""``hzz selftest``: run the project's own tests (with --faults: only the fault suite).

The tests live in the repository, not in the installed package: they are looked for
beside the package (an editable or source install) and then in the current directory.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from .common import HelpFormatter


def add_selftest_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "selftest",
        help="run the test suite (with --faults: the fault and bad-input tests)",
        description="Run the repository's pytest suite against this installation. "
        "--faults runs only the tests marked 'faults': worker loss, broker outages, "
        "hostile messages and documents, bad ROOT files, TLS, secrets and load. They need "
        "the real data in ../shared/data and a RabbitMQ on 127.0.0.1:5672 (guest/guest). "
        "Arguments after '--' go to pytest, e.g. hzz selftest --faults -- -x -k tls.",
        formatter_class=HelpFormatter,
    )
    parser.add_argument(
        "--faults", action="store_true", help="only the tests marked 'faults' (pytest -m faults)"
    )
    parser.add_argument("pytest_args", nargs="*", metavar="PYTEST_ARG", help=argparse.SUPPRESS)
    parser.set_defaults(handler=selftest_command)


def find_tests() -> Path | None:
    """The repository's ``tests`` directory: beside the package, else under the CWD."""
    package_root = Path(__file__).resolve().parents[2]
    for root in (package_root, Path.cwd()):
        if (root / "tests" / "conftest.py").is_file() and (root / "pyproject.toml").is_file():
            return root / "tests"
    return None


def selftest_command(args: argparse.Namespace) -> int:
    from analysis.errors import InputError

    tests = find_tests()
    if tests is None:
        raise InputError(
            "no tests found: they are in the repository's tests/ directory, "
            f"looked beside the installed package ({Path(__file__).resolve().parents[2]}) and "
            f"in the current directory ({Path.cwd()}); run it from a checkout"
        )
    try:
        import pytest  # noqa: F401  (only to say clearly when it is missing)
    except ImportError as err:
        raise InputError("pytest is not installed: pip install 'hzz-cluster[test]'") from err
    command = [sys.executable, "-m", "pytest", str(tests)]
    if args.faults:
        command += ["-m", "faults"]
    command += args.pytest_args
    print("hzz selftest:", " ".join(command), flush=True)
    return subprocess.run(command, cwd=tests.parent, check=False).returncode
