"""``hzz fit``: fit the statistical model of a saved histogram document."""

from __future__ import annotations

import argparse
from pathlib import Path

from .common import EXIT_OK, HelpFormatter


def add_fit_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "fit",
        help="fit the signal strength and systematics of a histogram document (pyhf)",
        description=(
            "Build the binned likelihood of a histogram document (plot_….json of hzz run) "
            "with pyhf: signal strength mu in [0, 10], the scale-factor and m4l-scale "
            "shape+normalisation systematics, the ZZ* normalisation (±10 %) and per-bin MC "
            "statistics (docs/fit.md). Prints mu ± error, the observed and expected discovery "
            "significance, CLs at mu = 1 and the pulls, and writes beside the document, "
            "named by the model: STEM.MODEL.postfit.png, STEM.MODEL.fit.json (naming the "
            "document fitted) and STEM.MODEL.workspace.json (refit it with pyhf alone). "
            "Fitting the same document with the same model again replaces these three "
            "files; nothing else is touched."
        ),
        formatter_class=HelpFormatter,
    )
    parser.add_argument("document", metavar="DOCUMENT", help="a histogram document (JSON)")
    parser.add_argument(
        "--model",
        choices=("systematics", "templates"),
        default="systematics",
        help="systematics: the model above; templates: three free normalisations (signal, "
        "ZZ*, Z+tt̄ in [0, 10]) and per-bin MC statistics, no systematics",
    )
    parser.set_defaults(handler=fit_command)


def fit_command(args: argparse.Namespace) -> int:
    from analysis.errors import InputError
    from analysis.results.document import DocumentError, from_json
    from analysis.results.outputs import replace_beside
    from analysis.results.products import fit_files_text, render_products

    path = Path(args.document)
    try:
        body = path.read_bytes()
        document = from_json(body)
    except OSError as err:
        raise InputError(f"{path}: {err.strerror or err}") from err
    except DocumentError as err:
        raise InputError(f"{path}: {err}") from err
    contents, result = render_products(
        document, fit=True, prefit=False, model=args.model, source=(body, path.name)
    )
    try:
        written = replace_beside(path, contents)
    except OSError as err:
        raise OSError(f"cannot write beside {path}: {err}") from err
    print(result.table())
    print(fit_files_text(written, args.model))
    return EXIT_OK
