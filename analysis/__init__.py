"""The ATLAS Open Data H → ZZ* → 4ℓ analysis, as Python calls.

::

    import analysis

    result = analysis.run(data=["/data/atlas-opendata-2020/4lep"], allow_missing=True)
    result.samples["Zee"].hist       # a sample's m4l histogram (hist.Hist)
    result["zz"]                     # a group's histogram, by key
    print(result.yields_table())
    result.plot(ax=ax)               # the figure, into your matplotlib axes

``run`` computes on whatever Dask scheduler is active (a ``distributed.Client`` you
made, or Dask's default). ``inspect`` → ``build`` → your own compute → ``collect``
are the same steps one at a time. The package knows nothing of brokers or
deployment; ``cluster`` runs it. Names load on first use, so that importing the
package (as the command line does to show its options) imports no Dask or NumPy.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from analysis.api import build, collect, inspect, run
    from analysis.errors import (
        EventsLostError,
        FileChangedError,
        HZZError,
        InputError,
        MissingFileError,
        RemoteReadError,
        RunFailure,
        SampleFileError,
    )
    from analysis.graph import AnalysisGraph
    from analysis.inputs.catalogue import Release, load_release
    from analysis.inputs.locations import Inspection
    from analysis.results.document import HistogramDocument, SampleResult, from_json
    from analysis.results.fit import FitError, FitResult, fit_document, workspace_spec
    from analysis.results.products import render_products
    from analysis.results.result import AnalysisResult
    from analysis.results.validation import validate_document

#: Each public name and the module it lives in.
_WHERE = {
    "run": "api",
    "inspect": "api",
    "build": "api",
    "collect": "api",
    "AnalysisResult": "results.result",
    "Inspection": "inputs.locations",
    "AnalysisGraph": "graph",
    "HistogramDocument": "results.document",
    "SampleResult": "results.document",
    "from_json": "results.document",
    "Release": "inputs.catalogue",
    "load_release": "inputs.catalogue",
    "HZZError": "errors",
    "InputError": "errors",
    "RunFailure": "errors",
    "SampleFileError": "errors",
    "MissingFileError": "errors",
    "EventsLostError": "errors",
    "FileChangedError": "errors",
    "RemoteReadError": "errors",
    # The statistical model (pyhf): loaded on first use only, never on the workers.
    "FitError": "results.fit",
    "FitResult": "results.fit",
    "fit_document": "results.fit",
    "workspace_spec": "results.fit",
    "render_products": "results.products",
    "validate_document": "results.validation",
}

__all__ = [
    "AnalysisGraph",
    "AnalysisResult",
    "EventsLostError",
    "FileChangedError",
    "FitError",
    "FitResult",
    "HZZError",
    "HistogramDocument",
    "InputError",
    "Inspection",
    "MissingFileError",
    "Release",
    "RemoteReadError",
    "RunFailure",
    "SampleFileError",
    "SampleResult",
    "build",
    "collect",
    "fit_document",
    "from_json",
    "inspect",
    "load_release",
    "render_products",
    "run",
    "validate_document",
    "workspace_spec",
]


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'analysis' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
