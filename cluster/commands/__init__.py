"""The ``hzz`` subcommands, one module each. Each module's ``add_*_parser`` adds a
parser whose default ``handler`` returns an exit code; REGISTRARS sets the --help order.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from .broker import add_plotter_parser, add_publish_parser
from .certificates import add_certificates_parser
from .checkpoint import add_checkpoint_parser
from .cluster import add_cluster_parser
from .download import add_download_parser
from .fit import add_fit_parser
from .generate import add_generate_parser
from .health import add_health_parser
from .run import add_run_parser
from .selftest import add_selftest_parser

REGISTRARS: list[Callable[[argparse._SubParsersAction], None]] = [
    add_run_parser,
    add_fit_parser,
    add_publish_parser,
    add_plotter_parser,
    add_generate_parser,
    add_download_parser,
    add_checkpoint_parser,
    add_cluster_parser,
    add_certificates_parser,
    add_health_parser,
    add_selftest_parser,
]
