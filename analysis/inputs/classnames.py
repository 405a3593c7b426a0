"""uproot's class-name normalisation, memoised for every file this process opens.

Opening a tree reads each of its objects' class names through
``uproot.model.classname_regularize``: two regular expressions per object, about 640
calls per open of a 2020 file (81 branches) for 15 distinct names, a tenth to a fifth of
the open's time. uproot caches only ``classname_decode``. The function is pure (a
string, or None, in; a string, or None, out), so a process-wide cache of its results
gives the same names; uproot's modules call it through ``uproot.model``, so replacing
the attribute reaches them all.
"""

from __future__ import annotations

import functools

import uproot.model

#: Distinct class names kept (a 2020 file has 15; a file of many custom classes more).
CACHED_NAMES = 4096


def memoise_classname_regularize() -> None:
    """Replace ``uproot.model.classname_regularize`` by a cached copy (once per process)."""
    current = uproot.model.classname_regularize
    if hasattr(current, "cache_info"):
        return
    uproot.model.classname_regularize = functools.lru_cache(maxsize=CACHED_NAMES)(current)
