"""The four-lepton selection and m4l, as one fused per-partition kernel on flat arrays.

The notebook slices the first four leptons out of jagged awkward arrays and adds four
``vector`` Momentum4D objects. Here the same arithmetic runs on flat NumPy columns:
the first four leptons are gathered from each branch's content buffer (all lepton
branches share their offsets), the sum-based cuts are fused into one mask, and the
four-vectors of the selected events are added with ``vector``'s own compute functions
on float32 NumPy arrays (its object layer and dispatch skipped; one slow step, the
azimuth wrap, done faster and bit for bit), so m4l agrees with the notebook bit for
bit. The kernel runs on the awkward arrays of one partition (``analysis.physics.summary``) or
of a whole file (tests, benchmarks).
"""

from __future__ import annotations

from typing import Any

import awkward as ak
import numpy as np
from vector._compute.lorentz import tau as _lorentz_tau
from vector._compute.spatial import eta as _spatial_eta
from vector._compute.spatial import z as _spatial_z

ELECTRON = 11
MUON = 13

#: Sums of lep_type over the first four leptons accepted by the notebook
#: (11 = electron, 13 = muon): eeee = 44, eeμμ = 48, μμμμ = 52.
ALLOWED_TYPE_SUMS = (44, 48, 52)

#: The lepton branches the kernel reads, in its argument order.
LEPTON_BRANCHES = ("lep_pt", "lep_eta", "lep_phi", "lep_E", "lep_charge", "lep_type")


def _offsets_and_content(array: Any) -> tuple[np.ndarray, np.ndarray]:
    """The offsets and flat content of a jagged array of numbers, without copying."""
    layout = ak.to_layout(array)
    if isinstance(layout, ak.contents.IndexedOptionArray | ak.contents.UnmaskedArray):
        layout = layout.project()
    if not isinstance(layout, ak.contents.ListOffsetArray):
        layout = layout.to_ListOffsetArray64(False)
    content = layout.content
    if not isinstance(content, ak.contents.NumpyArray):
        content = ak.to_layout(ak.to_packed(ak.Array(content)))
    return np.asarray(layout.offsets), np.asarray(content.data)


def _lepton_index(columns: tuple[Any, ...]) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """Offsets, per-event lepton starts and flat contents of the jagged lepton columns.

    Events with fewer than four leptons are flagged in ``complete`` and get start 0
    (harmless values), so that they can be gathered but never pass.
    """
    offsets, _ = _offsets_and_content(columns[0])
    contents = []
    for column in columns:
        column_offsets, content = _offsets_and_content(column)
        if column_offsets is not offsets and not np.array_equal(column_offsets, offsets):
            raise ValueError("lepton branches disagree on the number of leptons per event")
        contents.append(content if len(content) else np.zeros(1, dtype=content.dtype))
    starts = offsets[:-1]
    complete = (offsets[1:] - starts) >= 4
    safe = np.where(complete, starts, 0) if not complete.all() else starts
    return safe, complete, contents


def _first_four(
    columns: tuple[Any, ...],
) -> tuple[list[list[np.ndarray]], np.ndarray]:
    """The first four values of each jagged column (four flat arrays per column),
    and which events have four leptons at all."""
    starts, complete, contents = _lepton_index(columns)
    index = [starts + k for k in range(4)]
    return [[content[i] for i in index] for content in contents], complete


def _cuts(charges: list[np.ndarray], types: list[np.ndarray]) -> np.ndarray:
    type_sum = types[0] + types[1] + types[2] + types[3]
    charge_ok = charges[0] + charges[1] + charges[2] + charges[3] == 0
    return charge_ok & np.isin(type_sum, ALLOWED_TYPE_SUMS)


def passes_cuts(charge: Any, lepton_type: Any) -> np.ndarray:
    """The selection alone, from the jagged charge and type branches (events with
    fewer than four leptons fail)."""
    (q4, t4), complete = _first_four((charge, lepton_type))
    return _cuts(q4, t4) & complete


_PI = np.float32(np.pi)
_TWO_PI = np.float32(2 * np.pi)


def _rectify(phi: np.ndarray) -> np.ndarray:
    """vector's ``rectify``, ``(phi + π) % 2π - π`` in float32, bit for bit and faster.

    NumPy's float32 ``%`` is a scalar fmod loop (about 25× an addition here). For
    ``a = phi + π`` in [-2π, 4π), which covers a sum of two azimuths in (-π, π],
    ``a % 2π`` is exactly ``a - 2π`` (exact by Sterbenz's lemma), ``a + 2π`` (NumPy's
    sign correction) or ``a``; anything else (NaN, inf, far out of range) takes
    vector's own expression.
    """
    shifted = phi + _PI
    low, high = shifted < 0, shifted >= _TWO_PI
    if not ((shifted >= -_TWO_PI) & (shifted < 2 * _TWO_PI)).all():
        return (shifted % _TWO_PI) - _PI
    wrapped = np.where(high, shifted - _TWO_PI, np.where(low, shifted + _TWO_PI, shifted))
    return wrapped - _PI


def _add_momenta(a: tuple[np.ndarray, ...], b: tuple[np.ndarray, ...]) -> tuple[np.ndarray, ...]:
    """``a + b`` for (pt, phi, eta, E) four-vectors, as vector computes it (same float32
    operations in the same order: ``lorentz.add`` of two ``rhophi_eta_t`` vectors)."""
    rho1, phi1, eta1, t1 = a
    rho2, phi2, eta2, t2 = b
    # vector._compute.planar.add.rhophi_rhophi, with the faster exact rectify
    diff = phi2 - phi1
    u = rho2 * np.cos(diff)
    v = rho2 * np.sin(diff)
    rho = np.sqrt((rho1 + u) ** 2 + v**2)
    phi = _rectify(phi1 + np.arctan2(v, rho1 + u))
    # vector._compute.spatial.add.rhophi_eta_rhophi_eta, longitudinal part
    z1 = _spatial_z.rhophi_eta(np, rho1, phi1, eta1)
    z2 = _spatial_z.rhophi_eta(np, rho2, phi2, eta2)
    eta = _spatial_eta.rhophi_z(np, rho, phi, z1 + z2)
    return rho, phi, eta, t1 + t2


def select_four_leptons(
    pt: Any,
    eta: Any,
    phi: Any,
    energy: Any,
    charge: Any,
    lepton_type: Any,
    units_per_gev: float = 1000.0,
) -> ak.Array:
    """Per event: ``passed`` (the notebook's cuts) and ``m4l`` [GeV] of the first four leptons.

    Cuts: charges sum to zero; lepton types sum to 44, 48 or 52. These sum-based cuts
    are the notebook's proxies (e+e+μ-μ- passes); kept as they are. ``units_per_gev``
    is 1000 for files in MeV (2020; the notebook multiplies by 0.001) and 1 for GeV (2025).
    m4l is computed for the events that pass (as the notebook does) and is NaN for the
    others; its float32 arithmetic is vector's, operation for operation.
    """
    starts, complete, contents = _lepton_index((pt, eta, phi, energy, charge, lepton_type))
    q, t = contents[4], contents[5]
    q4 = [q[starts + k] for k in range(4)]
    t4 = [t[starts + k] for k in range(4)]
    passed = _cuts(q4, t4) & complete

    chosen = starts[passed]
    index = [chosen + k for k in range(4)]
    pt_, eta_, phi_, e_ = contents[:4]
    with np.errstate(all="ignore"):  # as vector computes
        total = (pt_[index[0]], phi_[index[0]], eta_[index[0]], e_[index[0]])
        for k in (1, 2, 3):
            total = _add_momenta(
                total, (pt_[index[k]], phi_[index[k]], eta_[index[k]], e_[index[k]])
            )
        mass = np.asarray(_lorentz_tau.rhophi_eta_t(np, *total), dtype=np.float32)
    if units_per_gev != 1.0:
        mass = mass * np.float32(1.0 / units_per_gev)
    m4l = np.full(len(passed), np.nan, dtype=np.float32)
    m4l[passed] = mass
    return ak.Array({"passed": passed, "m4l": m4l})


def passes_selection(events: Any) -> np.ndarray:
    """Per-event mask of the selection, for awkward arrays of events (eager use)."""
    return np.asarray(_kernel_on(events)["passed"])


def four_lepton_mass(events: Any) -> np.ndarray:
    """m4l in GeV of the first four leptons of selected events (NaN for the others),
    for awkward arrays of events (eager use)."""
    return np.asarray(_kernel_on(events)["m4l"])


def _kernel_on(events: Any) -> ak.Array:
    return select_four_leptons(*(events[branch] for branch in LEPTON_BRANCHES))


def trigger_pt_id_iso_2025(
    trig_e: Any,
    trig_m: Any,
    trig_matched: Any,
    pt: Any,
    lepton_type: Any,
    loose_id: Any,
    loose_iso: Any,
    medium_id: Any,
) -> Any:
    """The 2025 notebook's cuts before the sum-based ones (pt in GeV).

    An electron or muon trigger fired; at least one lepton is trigger-matched;
    lep_pt[0] > 20, lep_pt[1] > 15, lep_pt[2] > 10 GeV; each of the four leptons passes
    its identification and isolation (electrons loose ID and loose isolation, muons
    medium ID and loose isolation).
    """
    trigger = np.asarray(trig_e, dtype=bool) | np.asarray(trig_m, dtype=bool)
    matched = np.asarray(ak.any(trig_matched, axis=1), dtype=bool)
    (pt4, type4, lid4, liso4, mid4), complete = _first_four(
        (pt, lepton_type, loose_id, loose_iso, medium_id)
    )
    mask = trigger & matched & complete & (pt4[0] > 20) & (pt4[1] > 15) & (pt4[2] > 10)
    for k in range(4):
        electron_ok = (type4[k] == ELECTRON) & lid4[k] & liso4[k]
        muon_ok = (type4[k] == MUON) & mid4[k] & liso4[k]
        mask &= electron_ok | muon_ok
    return ak.Array(mask)


#: Preselections a release may name: the branches they read, in argument order.
PRESELECTIONS: dict[str, tuple[tuple[str, ...], Any]] = {
    "trigger_pt_id_iso_2025": (
        (
            "trigE",
            "trigM",
            "lep_isTrigMatched",
            "lep_pt",
            "lep_type",
            "lep_isLooseID",
            "lep_isLooseIso",
            "lep_isMediumID",
        ),
        trigger_pt_id_iso_2025,
    ),
}
