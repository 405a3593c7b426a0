"""The H → ZZ* → 4ℓ analysis: catalogue, selection, weights, lazy graph, document, figure.

Knows nothing of brokers or deployment; ``cluster`` runs it.
"""

from typing import Any

#: The statistical model and its products, imported on first use (pyhf is not needed
#: to compute histograms: the workers never load it).
_LAZY = {
    "FitError": "analysis.fit",
    "FitResult": "analysis.fit",
    "fit_document": "analysis.fit",
    "workspace_spec": "analysis.fit",
    "products": "analysis.products",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'analysis' has no attribute {name!r}")
