"""The files a document turns into: the figure and, with a fit, the post-fit figure, the
fit results and the pyhf workspace. One function, so that ``hzz run``, ``hzz fit`` and the
plotting service make the same files under the same names and differ only in what a
document the model cannot fit means to them (``on_fit_error``)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from analysis.results.document import HistogramDocument
from analysis.results.fit import FitError, FitResult, Model

#: Name endings after the shared ``plot_…`` stem.
PREFIT_PNG = ".png"
POSTFIT_PNG = ".postfit.png"
FIT_JSON = ".fit.json"
WORKSPACE_JSON = ".workspace.json"


@dataclass(frozen=True)
class Products:
    """The files by name ending, and the fit result (None without a fit)."""

    files: dict[str, bytes]
    fit: FitResult | None

    def __iter__(self) -> Iterator[Any]:  # files, fit = render_products(...)
        return iter((self.files, self.fit))


def render_products(
    document: HistogramDocument,
    *,
    fit: bool | None = None,
    model: Model = "systematics",
    prefit: bool = True,
    metadata: dict[str, str] | None = None,
    on_fit_error: Callable[[FitError], None] | None = None,
) -> Products:
    """The pre-fit figure (unless not ``prefit``; ``metadata``: its PNG text chunks) and,
    with ``fit`` (default: the document's ``figure.fit``), the fit of ``model``: the
    post-fit figure, the fit results and the workspace.

    A document the model cannot fit raises FitError, unless ``on_fit_error`` is given:
    it is then handed the error and the files are made without the fit.
    """
    from analysis.results.fit import fit_document
    from analysis.results.plot import render_png

    files = {PREFIT_PNG: render_png(document, metadata=metadata)} if prefit else {}
    if not (document.figure.fit if fit is None else fit):
        return Products(files, None)
    try:
        result, spec = fit_document(document, model)
    except FitError as err:
        if on_fit_error is None:
            raise
        on_fit_error(err)
        return Products(files, None)
    files[POSTFIT_PNG] = render_png(document, result)
    files[FIT_JSON] = result.to_json()
    files[WORKSPACE_JSON] = json.dumps(spec, indent=1).encode("utf-8")
    return Products(files, result)
