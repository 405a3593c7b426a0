"""The files a document turns into: the figure and, with a fit, the post-fit figure, the
fit results and the pyhf workspace. One function, so that ``hzz run``, ``hzz fit`` and the
plotting service make the same files under the same names and differ only in what a
document the model cannot fit means to them (``on_fit_error``)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from analysis.results.document import HistogramDocument
from analysis.results.fit import FitError, FitResult, Model

#: Name endings after the shared ``plot_…`` stem. The fit's files carry the model's name,
#: so that a document fitted with both models (or fitted again) keeps its stem.
PREFIT_PNG = ".png"


@dataclass(frozen=True)
class FitEndings:
    """The name endings of a fit's three files, after the document's stem."""

    postfit_png: str
    fit_json: str
    workspace_json: str


def fit_endings(model: Model = "systematics") -> FitEndings:
    """``.MODEL.postfit.png``, ``.MODEL.fit.json`` and ``.MODEL.workspace.json``."""
    return FitEndings(f".{model}.postfit.png", f".{model}.fit.json", f".{model}.workspace.json")


def fit_files_text(written: Mapping[str, Path], model: Model) -> str:
    """Where a fit's three files were written, one line each, for the console."""
    endings = fit_endings(model)
    return (
        f"post-fit figure: {written[endings.postfit_png]}\n"
        f"fit results:     {written[endings.fit_json]}\n"
        f"pyhf workspace:  {written[endings.workspace_json]}"
    )


def document_id(body: bytes) -> str:
    """A document's identity: the SHA-256 of its JSON, as sent (the message id)."""
    return hashlib.sha256(body).hexdigest()


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
    source: tuple[bytes, str | None] | None = None,
) -> Products:
    """The pre-fit figure (unless not ``prefit``; ``metadata``: its PNG text chunks) and,
    with ``fit`` (default: the document's ``figure.fit``), the fit of ``model``: the
    post-fit figure, the fit results and the workspace. The fit results name the
    document they come from: ``source`` is its JSON as read or sent and its file name
    (default: ``document.to_json()``, no file).

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
    body, file = source if source is not None else (document.to_json(), None)
    result.document = {"id": document_id(body), "file": file}
    endings = fit_endings(model)
    files[endings.postfit_png] = render_png(document, result)
    files[endings.fit_json] = result.to_json()
    files[endings.workspace_json] = json.dumps(spec, indent=1).encode("utf-8")
    return Products(files, result)
