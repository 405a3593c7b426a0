"""The H → ZZ* → 4ℓ analysis: catalogue, selection, weights, lazy graph, document, figure.

Knows nothing of brokers or deployment; ``cluster`` runs it.
"""
