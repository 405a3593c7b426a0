"""The benchmark suite: the pipeline against the notebook and the read limit.

``python -m bench`` measures, in one run on one machine and the same files, the read
limit (decompress the 11 branches, compute nothing), the notebook's algorithm (one
process, ``uproot.iterate``), and the pipeline on a local Dask cluster of 1 and 2
worker processes; it prints a table and writes every figure as JSON.
"""
