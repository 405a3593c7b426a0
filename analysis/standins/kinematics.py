"""Vectorised four-vector helpers for the stand-in generator (numpy, GeV).

Plain numpy on (E, px, py, pz) column arrays: millions of decays per second, which
the per-object ``vector`` library would not give us. Only what the generator needs:
isotropic two-body decays, boosts, and the (pt, eta, phi) of the detector branches.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FloatArray = np.ndarray


@dataclass
class FourVectors:
    """Column arrays of four-momenta in GeV; all of one length."""

    E: FloatArray
    px: FloatArray
    py: FloatArray
    pz: FloatArray

    @property
    def pt(self) -> FloatArray:
        return np.hypot(self.px, self.py)

    @property
    def phi(self) -> FloatArray:
        return np.arctan2(self.py, self.px)

    @property
    def eta(self) -> FloatArray:
        return np.arcsinh(self.pz / np.maximum(self.pt, 1e-12))

    @property
    def mass(self) -> FloatArray:
        m2 = self.E**2 - self.px**2 - self.py**2 - self.pz**2
        return np.sqrt(np.maximum(m2, 0.0))

    def scaled(self, factor: FloatArray) -> FourVectors:
        """Every component times ``factor``: a momentum mis-measurement along the flight."""
        return FourVectors(self.E * factor, self.px * factor, self.py * factor, self.pz * factor)


def from_pt_y_phi(mass: FloatArray, pt: FloatArray, y: FloatArray, phi: FloatArray) -> FourVectors:
    """A resonance of given mass, transverse momentum, rapidity and azimuth."""
    mt = np.sqrt(mass**2 + pt**2)
    return FourVectors(mt * np.cosh(y), pt * np.cos(phi), pt * np.sin(phi), mt * np.sinh(y))


def breakup_momentum(m: FloatArray, m1: FloatArray, m2: FloatArray) -> FloatArray:
    """Daughter momentum of m → m1 m2 in the rest frame of m (0 below threshold)."""
    lam = (m**2 - (m1 + m2) ** 2) * (m**2 - (m1 - m2) ** 2)
    return np.sqrt(np.maximum(lam, 0.0)) / (2.0 * m)


def boost(v: FourVectors, parent: FourVectors) -> FourVectors:
    """``v`` given in the rest frame of ``parent``, boosted into the frame ``parent`` is in."""
    bx, by, bz = parent.px / parent.E, parent.py / parent.E, parent.pz / parent.E
    b2 = bx**2 + by**2 + bz**2
    gamma = 1.0 / np.sqrt(1.0 - b2)
    bp = bx * v.px + by * v.py + bz * v.pz
    safe = np.where(b2 > 0, b2, 1.0)
    g2 = np.where(b2 > 0, (gamma - 1.0) / safe, 0.0)
    along = g2 * bp + gamma * v.E
    return FourVectors(gamma * (v.E + bp), v.px + along * bx, v.py + along * by, v.pz + along * bz)


def two_body_decay(
    rng: np.random.Generator, parent: FourVectors, m1: FloatArray, m2: FloatArray
) -> tuple[FourVectors, FourVectors]:
    """Isotropic decay of ``parent`` into masses m1, m2; daughters in the parent's frame."""
    n = len(parent.E)
    p = breakup_momentum(parent.mass, m1, m2)
    cos_theta = rng.uniform(-1.0, 1.0, n)
    sin_theta = np.sqrt(1.0 - cos_theta**2)
    phi = rng.uniform(-np.pi, np.pi, n)
    px, py, pz = p * sin_theta * np.cos(phi), p * sin_theta * np.sin(phi), p * cos_theta
    first = FourVectors(np.sqrt(m1**2 + p**2), px, py, pz)
    second = FourVectors(np.sqrt(m2**2 + p**2), -px, -py, -pz)
    return boost(first, parent), boost(second, parent)
