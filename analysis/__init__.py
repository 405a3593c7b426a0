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
    from .api import build, collect, inspect, run
    from .catalogue import Release, load_release
    from .document import HistogramDocument, SampleResult, from_json
    from .errors import (
        EventsLostError,
        HZZError,
        InputError,
        MissingFileError,
        RemoteReadError,
        RunFailure,
        SampleFileError,
    )
    from .fit import FitError, FitResult, fit_document, workspace_spec
    from .graph import AnalysisGraph
    from .inputs import Inspection
    from .products import products
    from .result import AnalysisResult
    from .validation import validate_document

#: Each public name and the module it lives in.
_WHERE = {
    "run": "api",
    "inspect": "api",
    "build": "api",
    "collect": "api",
    "AnalysisResult": "result",
    "Inspection": "inputs",
    "AnalysisGraph": "graph",
    "HistogramDocument": "document",
    "SampleResult": "document",
    "from_json": "document",
    "Release": "catalogue",
    "load_release": "catalogue",
    "HZZError": "errors",
    "InputError": "errors",
    "RunFailure": "errors",
    "SampleFileError": "errors",
    "MissingFileError": "errors",
    "EventsLostError": "errors",
    "RemoteReadError": "errors",
    # The statistical model (pyhf): loaded on first use only, never on the workers.
    "FitError": "fit",
    "FitResult": "fit",
    "fit_document": "fit",
    "workspace_spec": "fit",
    "products": "products",
    "validate_document": "validation",
}

__all__ = [
    "AnalysisGraph",
    "AnalysisResult",
    "EventsLostError",
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
    "products",
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
