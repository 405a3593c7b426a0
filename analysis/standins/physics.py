"""Event generation for the stand-ins: H → ZZ* → 4ℓ and ZZ* → 4ℓ, then detector effects.

Everything is vectorised over events (numpy Generator, no per-event Python), so a
million events take seconds. Leptons come from isotropic two-body decays in rest
frames boosted into the lab, are smeared by a ~2 % momentum resolution and must be
inside a 4-lepton-skim-like acceptance. A tuned share of events is then spoiled
(charge flip, wrong flavour, hard extra lepton) so it fails the selection, and a few
passing events get a soft fifth lepton. Units: GeV here, MeV only in the writer.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from analysis.standins.kinematics import FourVectors, boost, from_pt_y_phi, two_body_decay
from analysis.standins.samples import StandinSpec

M_H = 125.0
M_Z, GAMMA_Z = 91.1876, 2.4952
M_ELECTRON, M_MUON = 0.000511, 0.10566
ELECTRON, MUON = 11, 13
MAX_LEPTONS = 5
PT_MIN_GEV = 5.0
ETA_MAX = {ELECTRON: 2.47, MUON: 2.5}
RESOLUTION = {ELECTRON: 0.02, MUON: 0.02}
BREM_PROBABILITY, BREM_MEAN = 0.10, 0.02  # electrons: a small radiative low tail

#: Shares of the ZZ* sample before acceptance: Z → 4ℓ (peak at 91 GeV), off-shell ZZ*,
#: on-shell ZZ; chosen so the 91 GeV peak and the ZZ continuum resemble the real figure.
ZZ_COMPONENTS = (0.35, 0.12, 0.53)


@dataclass
class Leptons:
    """Per-event lepton columns, padded to MAX_LEPTONS; ``n`` says how many are real.

    Rows are sorted by decreasing pT, as in the real files.
    """

    n: np.ndarray  # (events,) int
    pt: np.ndarray  # (events, MAX_LEPTONS) GeV; 0 where absent
    eta: np.ndarray
    phi: np.ndarray
    E: np.ndarray
    charge: np.ndarray  # ±1
    type: np.ndarray  # 11 or 13
    fake: np.ndarray  # bool: not from the hard process


def _breit_wigner(
    rng: np.random.Generator, n: int, low: float, high: float | np.ndarray
) -> np.ndarray:
    """Z line shape (Cauchy) truncated to [low, high], by inverting its CDF."""
    a = np.arctan(2.0 * (low - M_Z) / GAMMA_Z)
    b = np.arctan(2.0 * (np.asarray(high) - M_Z) / GAMMA_Z)
    return M_Z + 0.5 * GAMMA_Z * np.tan(a + (b - a) * rng.random(n))


def _propagator(m: np.ndarray) -> np.ndarray:
    return 1.0 / ((m**2 - M_Z**2) ** 2 + (M_Z * GAMMA_Z) ** 2)


def _offshell_mass(rng: np.random.Generator, high: np.ndarray, low: float = 12.0) -> np.ndarray:
    """m(Z*) in [low, high] with density ∝ m³·|propagator|², by vectorised accept-reject.

    ``high`` < m_Z, where the density rises monotonically, so its value at ``high``
    bounds it.
    """
    out = np.empty_like(high)
    todo = np.arange(len(high))
    while todo.size:
        hi = high[todo]
        m = rng.uniform(low, hi)
        accept = rng.random(todo.size) * hi**3 * _propagator(hi) < m**3 * _propagator(m)
        out[todo[accept]] = m[accept]
        todo = todo[~accept]
    return out


def _parents(rng: np.random.Generator, spec: StandinSpec, n: int) -> tuple[np.ndarray, ...]:
    """(M, m1, m2) of the four-lepton system and its two lepton pairs."""
    if spec.process == "higgs":
        m1 = _breit_wigner(rng, n, 50.0, M_H - 12.5)
        m2 = _offshell_mass(rng, M_H - m1)
        return np.full(n, M_H), m1, m2
    kind = rng.choice(3, size=n, p=ZZ_COMPONENTS)
    mass, m1, m2 = np.empty(n), np.empty(n), np.empty(n)
    # Z → 4ℓ: a Z decaying to ℓℓ plus a radiated virtual photon → ℓℓ.
    z4l = np.flatnonzero(kind == 0)
    mass[z4l] = _breit_wigner(rng, z4l.size, 80.0, 100.0)
    m1[z4l] = rng.uniform(35.0, mass[z4l] - 8.0)
    top = mass[z4l] - m1[z4l] - 1.0
    m2[z4l] = 4.0 * (top / 4.0) ** rng.random(z4l.size)
    # ZZ*: one on-shell Z and one off-shell; ZZ: both on shell. The pair momentum sets M.
    for code, low2, high2, shape, scale in (
        (1, 12.0, 80.0, 1.5, 25.0),
        (2, 60.0, 120.0, 1.8, 45.0),
    ):
        idx = np.flatnonzero(kind == code)
        m1[idx] = _breit_wigner(rng, idx.size, 60.0, 120.0)
        if code == 1:
            m2[idx] = rng.uniform(low2, high2, idx.size)
        else:
            m2[idx] = _breit_wigner(rng, idx.size, low2, high2)
        p = rng.gamma(shape, scale, idx.size)
        mass[idx] = np.sqrt(m1[idx] ** 2 + p**2) + np.sqrt(m2[idx] ** 2 + p**2)
    return mass, m1, m2


def _pair_decay(
    rng: np.random.Generator, z: FourVectors, flavour: np.ndarray
) -> tuple[FourVectors, FourVectors]:
    """Z(*) → ℓ⁻ℓ⁺, isotropic in the Z rest frame, boosted to the lab."""
    m_lep = np.where(flavour == ELECTRON, M_ELECTRON, M_MUON)
    rest = FourVectors(z.mass, np.zeros_like(z.E), np.zeros_like(z.E), np.zeros_like(z.E))
    minus, plus = two_body_decay(rng, rest, m_lep, m_lep)
    return boost(minus, z), boost(plus, z)


def _smear(rng: np.random.Generator, lepton: FourVectors, flavour: np.ndarray) -> FourVectors:
    """Momentum resolution, and a bremsstrahlung-like low tail for electrons."""
    electron = flavour == ELECTRON
    sigma = np.where(electron, RESOLUTION[ELECTRON], RESOLUTION[MUON])
    factor = 1.0 + sigma * rng.standard_normal(len(flavour))
    brem = electron & (rng.random(len(flavour)) < BREM_PROBABILITY)
    factor = factor * np.where(brem, np.exp(-rng.exponential(BREM_MEAN, len(flavour))), 1.0)
    return lepton.scaled(factor)


def _four_lepton_batch(
    rng: np.random.Generator, spec: StandinSpec, n: int
) -> tuple[np.ndarray, ...]:
    """n raw events: (pt, eta, phi, E, charge, type) of shape (n, 4), and acceptance."""
    mass, m1, m2 = _parents(rng, spec, n)
    parent = from_pt_y_phi(
        mass,
        rng.gamma(spec.pt_shape, spec.pt_scale_gev, n),
        spec.y_sigma * rng.standard_normal(n),
        rng.uniform(-np.pi, np.pi, n),
    )
    # The heavier pair is Z1 by convention; swap order at random so neither is "first".
    z1, z2 = two_body_decay(rng, parent, m1, m2)
    flavours = rng.choice(np.array([ELECTRON, MUON]), size=(n, 2))
    columns: list[list[np.ndarray]] = [[] for _ in range(4)]
    types, charges = [], []
    for z, flavour in ((z1, flavours[:, 0]), (z2, flavours[:, 1])):
        for lepton, charge in zip(_pair_decay(rng, z, flavour), (-1, 1), strict=True):
            measured = _smear(rng, lepton, flavour)
            for column, value in zip(
                columns, (measured.pt, measured.eta, measured.phi, measured.E), strict=True
            ):
                column.append(value)
            types.append(flavour)
            charges.append(np.full(n, charge))
    pt, eta, phi, energy = (np.stack(c, axis=1) for c in columns)
    type_ = np.stack(types, axis=1)
    charge = np.stack(charges, axis=1)
    eta_max = np.where(type_ == ELECTRON, ETA_MAX[ELECTRON], ETA_MAX[MUON])
    accepted = np.all((pt > PT_MIN_GEV) & (np.abs(eta) < eta_max), axis=1)
    return pt, eta, phi, energy, charge, type_, accepted


def _accepted_events(rng: np.random.Generator, spec: StandinSpec, n: int) -> tuple[np.ndarray, ...]:
    """Exactly n events with four leptons inside the acceptance (batches, not loops)."""
    parts: list[tuple[np.ndarray, ...]] = []
    have = 0
    while have < n:
        batch = max(2 * (n - have), 1000)
        *columns, accepted = _four_lepton_batch(rng, spec, batch)
        parts.append(tuple(c[accepted] for c in columns))
        have += int(accepted.sum())
    return tuple(np.concatenate(c)[:n] for c in zip(*parts, strict=True))


def _extra_lepton(rng: np.random.Generator, n: int, pt: np.ndarray) -> tuple[np.ndarray, ...]:
    """A fake or additional lepton of given pT: (pt, eta, phi, E, charge, type)."""
    type_ = rng.choice(np.array([ELECTRON, MUON]), size=n)
    eta = rng.uniform(-2.4, 2.4, n)
    phi = rng.uniform(-np.pi, np.pi, n)
    charge = rng.choice(np.array([-1, 1]), size=n)
    return pt, eta, phi, pt * np.cosh(eta), charge, type_


def generate_leptons(
    rng: np.random.Generator, spec: StandinSpec, n: int
) -> tuple[Leptons, np.ndarray]:
    """n events of ``spec`` and the per-event mask of those built to fail the selection."""
    pt, eta, phi, energy, charge, type_ = _accepted_events(rng, spec, n)
    order = np.argsort(-pt, axis=1)
    columns = [np.take_along_axis(c, order, axis=1) for c in (pt, eta, phi, energy, charge, type_)]
    pad = [np.zeros((n, 1), dtype=c.dtype) for c in columns]
    pt, eta, phi, energy, charge, type_ = (
        np.concatenate(pair, axis=1) for pair in zip(columns, pad, strict=True)
    )
    fake = np.zeros((n, MAX_LEPTONS), dtype=bool)
    count = np.full(n, 4)

    fails = rng.random(n) >= spec.pass_fraction
    modes = spec.fail_modes
    mode = rng.choice(3, size=n, p=[modes.charge, modes.flavour, modes.extra])
    rows = np.arange(n)
    # Charge flip (a mis-measured or fake lepton): the charge sum becomes ±2.
    flip = fails & (mode == 0)
    which = rng.integers(0, 4, n)
    charge[rows[flip], which[flip]] *= -1
    fake[rows[flip], which[flip]] = True
    # Wrong flavour (a fake of the other flavour): the type sum moves by ±2.
    swap = fails & (mode == 1)
    type_[rows[swap], which[swap]] = np.where(
        type_[rows[swap], which[swap]] == ELECTRON, MUON, ELECTRON
    )
    fake[rows[swap], which[swap]] = True

    # A fifth lepton: hard for the "extra" failures (it pushes the softest of the four
    # out, and carries the opposite charge of it, so the charge sum becomes ±2), soft
    # for some passing events (it stays fifth and changes nothing).
    hard = fails & (mode == 2)
    soft = ~fails & (rng.random(n) < spec.extra_rate)
    extra_pt = np.where(
        hard,
        pt[:, 3] + rng.exponential(20.0, n),
        PT_MIN_GEV + (pt[:, 3] - PT_MIN_GEV) * rng.uniform(0.05, 0.95, n),
    )
    x_pt, x_eta, x_phi, x_e, x_charge, x_type = _extra_lepton(rng, n, extra_pt)
    x_charge = np.where(hard, -charge[:, 3], x_charge)
    add = hard | soft
    for column, value in zip(
        (pt, eta, phi, energy, charge, type_),
        (x_pt, x_eta, x_phi, x_e, x_charge, x_type),
        strict=True,
    ):
        column[add, 4] = value[add]
    fake[add, 4] = True
    count[add] = 5
    # Re-sort the five (the absent fifth has pT 0 and stays last).
    order = np.argsort(-pt, axis=1, kind="stable")
    pt, eta, phi, energy, charge, type_, fake = (
        np.take_along_axis(c, order, axis=1) for c in (pt, eta, phi, energy, charge, type_, fake)
    )
    return Leptons(count, pt, eta, phi, energy, charge, type_, fake), fails


def scale_factors(rng: np.random.Generator, leptons: Leptons) -> dict[str, np.ndarray]:
    """Per-event scale factors shaped like the real ones (pile-up broad, lepton ones ≈ 1)."""
    n = len(leptons.n)
    present = np.arange(MAX_LEPTONS)[None, :] < leptons.n[:, None]
    electron = present & (leptons.type == ELECTRON)
    muon = present & (leptons.type == MUON)
    per_ele = np.where(electron, rng.normal(0.975, 0.02, electron.shape), 1.0)
    per_muon = np.where(muon, rng.normal(0.99, 0.01, muon.shape), 1.0)
    return {
        "scaleFactor_PILEUP": rng.gamma(8.0, 1.0 / 8.0, n),
        "scaleFactor_ELE": per_ele.prod(axis=1),
        "scaleFactor_MUON": per_muon.prod(axis=1),
        "scaleFactor_LepTRIGGER": np.clip(rng.normal(1.0, 0.005, n), 0.95, 1.05),
    }
