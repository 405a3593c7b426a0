"""The files a document turns into: the figure, and with a fit the post-fit figure, the
fit results and the pyhf workspace. One place, so that ``hzz run``, ``hzz fit`` and the
plotting service write the same things under the same names."""

from __future__ import annotations

import json

from analysis.results.document import HistogramDocument
from analysis.results.fit import FitResult

#: Name endings after the shared ``plot_…`` stem.
PREFIT_PNG = ".png"
POSTFIT_PNG = ".postfit.png"
FIT_JSON = ".fit.json"
WORKSPACE_JSON = ".workspace.json"


def fit_products(
    document: HistogramDocument, model: str = "systematics"
) -> tuple[dict[str, bytes], FitResult]:
    """The post-fit figure, the fit results and the workspace (FitError if it cannot fit)."""
    from analysis.results.fit import fit_document
    from analysis.results.plot import render_png

    result, spec = fit_document(document, model)  # type: ignore[arg-type]
    return {
        POSTFIT_PNG: render_png(document, result),
        FIT_JSON: result.to_json(),
        WORKSPACE_JSON: json.dumps(spec, indent=1).encode("utf-8"),
    }, result


def products(
    document: HistogramDocument, fit: bool | None = None
) -> tuple[dict[str, bytes], FitResult | None]:
    """The pre-fit figure, and with ``fit`` (default: the document's ``figure.fit``) the
    fit's products; the fit result, if any."""
    from analysis.results.plot import render_png

    contents = {PREFIT_PNG: render_png(document)}
    if not (document.figure.fit if fit is None else fit):
        return contents, None
    fitted, result = fit_products(document)
    return {**contents, **fitted}, result
