"""What makes a readable file wrong: branch types and event content the analysis cannot use.

A weight stored as an integer, charges as floats, lepton branches of different lengths,
NaN or infinite values: such a file is a bad file like an unreadable one (the run stops
naming it, or ``--skip-bad-files`` leaves it out whole). ``branch_kind_problem`` checks
the types from the headers at inspection, before any event is read; ``check_events`` the
content of each partition on the worker that reads it, its error becoming the
partition's read outcome.
"""

from __future__ import annotations

import json
from typing import Any

import awkward as ak
import numpy as np

from analysis.errors import InputError
from analysis.inputs.catalogue import Release

#: What each role's branches must hold: a list per event (leptons) or one value, and
#: floating-point or integer numbers.
FLOAT, INTEGER = "floating-point", "integer"


class BadEventsError(InputError):
    """A partition whose events the analysis cannot use (non-finite values,
    lepton branches of different lengths); the message says which branch and entry."""


def expected_kinds(release: Release) -> dict[str, tuple[bool, str]]:
    """Branch name → (a list per event?, number kind) for the branches whose types the
    analysis relies on: lepton kinematics, charge and type; weights and normalisation."""
    settings = release.analysis
    kinds: dict[str, tuple[bool, str]] = {}
    leptons = settings.lepton_branches  # pt, eta, phi, E, charge, type
    for name in leptons[:4]:
        kinds[name] = (True, FLOAT)
    for name in leptons[4:6]:
        kinds[name] = (True, INTEGER)
    scalars = [*settings.weight_branches, *settings.normalisation_branches]
    if settings.sum_of_weights_branch:
        scalars.append(settings.sum_of_weights_branch)
    for name in scalars:
        kinds[name] = (False, FLOAT)
    return kinds


def _describe(form: dict[str, Any]) -> tuple[bool, str | None]:
    """(a list per event?, the primitive type) of one branch's awkward form."""
    jagged = form.get("class") in ("ListOffsetArray", "ListArray", "RegularArray")
    inner = form.get("content", {}) if jagged else form
    if inner.get("class") != "NumpyArray" or inner.get("inner_shape"):
        return jagged, None
    return jagged, inner.get("primitive")


def _kind(primitive: str | None) -> str | None:
    if primitive is None:
        return None
    if primitive.startswith("float"):
        return FLOAT
    if primitive.startswith(("int", "uint")):
        return INTEGER
    return None


def branch_kind_problem(release: Release, form_json: str | None) -> str | None:
    """Why the inspected branches' types are not the release's, or None if they are."""
    if not form_json:
        return None
    form = json.loads(form_json)
    wrong = []
    for name, content in zip(form.get("fields", []), form.get("contents", []), strict=False):
        expected = expected_kinds(release).get(name)
        if expected is None:
            continue
        jagged, primitive = _describe(content)
        want_list, want_kind = expected
        if jagged != want_list or _kind(primitive) != want_kind:
            shape = "a list of " if jagged else ""
            want = f"{'a list of ' if want_list else ''}{want_kind} numbers"
            wrong.append(f"{name} holds {shape}{primitive or content.get('class')}, not {want}")
    if wrong:
        return "wrong branch type: " + "; ".join(wrong)
    return None


def check_events(events: Any, release: Release, entry_start: int = 0) -> None:
    """BadEventsError unless every lepton branch has one value per lepton of each event
    and every floating-point value the analysis reads is finite."""
    fields = set(events.fields)
    leptons = [b for b in release.analysis.lepton_branches if b in fields]
    if leptons:
        counts = np.asarray(ak.num(events[leptons[0]], axis=1))
        for name in leptons[1:]:
            other = np.asarray(ak.num(events[name], axis=1))
            differ = np.flatnonzero(other != counts)
            if differ.size:
                i = int(differ[0])
                raise BadEventsError(
                    f"entry {entry_start + i}: {leptons[0]} has {counts[i]} values but "
                    f"{name} has {other[i]} ({differ.size} such entries)"
                )
    for name, (_, kind) in expected_kinds(release).items():
        if kind != FLOAT or name not in fields:
            continue
        values = np.asarray(ak.flatten(events[name], axis=None))
        if values.dtype.kind != "f":
            continue
        bad = ~np.isfinite(values)
        if bad.any():
            raise BadEventsError(
                f"{name}: {int(bad.sum())} non-finite value(s) ({values[bad][0]}) "
                f"in entries {entry_start}–{entry_start + len(events)}"
            )
