"""Release catalogues: which samples exist, where their files live, how MC is normalised.

The catalogue is package data (``analysis/data/release_<name>.json``) so that a run
needs no metadata service and no copy of the outreach tables at run time.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from functools import cache
from importlib import resources
from typing import Literal

from analysis.errors import InputError
from analysis.inputs.binning import DEFAULT_BINNING, Binning

Role = Literal["data", "background", "signal"]


@dataclass(frozen=True)
class Group:
    """A legend entry of the figure: samples drawn together in one colour."""

    key: str
    label: str
    colour: str
    role: Role
    samples: tuple[str, ...]


@dataclass(frozen=True)
class Sample:
    """One file of the release, with the numbers that normalise it if it is simulation."""

    name: str
    group: str
    path: str  # relative to a base location, e.g. "MC/mc_361106.Zee.4lep.root"
    dsid: int | None = None
    xsec_pb: float | None = None
    sumw: float | None = None
    red_eff: float | None = None
    sha256: str | None = None  # of the published file, where known: downloads are verified

    @property
    def is_data(self) -> bool:
        return self.dsid is None


@dataclass(frozen=True)
class AnalysisSettings:
    """How a release is analysed: branch names, units, weights, extra cuts, binning, figure.

    A release is a description that the same code runs, not a copy of the code.
    """

    lepton_branches: tuple[str, ...]  # pt, eta, phi, E, charge, type: the kernel's order
    weight_branches: tuple[str, ...]  # per-event MC factors
    units_per_gev: float = 1000.0  # 2020 files are in MeV, 2025 files in GeV
    normalisation: Literal["metadata", "in_file"] = "metadata"
    normalisation_branches: tuple[str, ...] = ()  # in_file: per-event xsec, filteff, kfac
    sum_of_weights_branch: str | None = None  # in_file: per-event sum of weights
    absolute_weights: bool = False  # 2025: |·| of every factor
    preselection: str | None = None  # a name in analysis.physics.selection.PRESELECTIONS
    binning: Binning = DEFAULT_BINNING
    y_headroom: float = 1.6  # the figure's y axis: this × the highest data bin


@dataclass(frozen=True)
class Release:
    """A published release: its luminosity, tree name, servers, groups and samples."""

    name: str
    lumi_fb: float
    tree: str
    base_urls: dict[str, str]
    groups: tuple[Group, ...]
    samples: dict[str, Sample]
    analysis: AnalysisSettings

    @property
    def default_location(self) -> str:
        return self.base_urls["https"]

    def for_sample(self, sample: Sample) -> Release:
        """This release narrowed to ``sample`` (its group alone, holding it alone): all
        a task of that sample needs. Dask walks and hashes every argument of every task
        it builds, so the whole catalogue given to each sample's tasks made a graph's
        build grow with the square of the number of samples (200: 5 s)."""
        groups = tuple(
            replace(group, samples=(sample.name,))
            for group in self.groups
            if group.key == sample.group
        )
        return replace(self, samples={sample.name: sample}, groups=groups)

    def group(self, key: str) -> Group:
        for group in self.groups:
            if group.key == key:
                return group
        raise KeyError(key)

    def select(
        self, samples: list[str] | None = None, groups: list[str] | None = None
    ) -> list[Sample]:
        """The samples to run, in catalogue order, or an InputError naming an unknown name."""
        chosen: list[Sample] = list(self.samples.values())
        if groups:
            keys = {g.key for g in self.groups}
            unknown = [g for g in groups if g not in keys]
            if unknown:
                raise InputError(
                    f"unknown group(s) {', '.join(unknown)}; known: {', '.join(sorted(keys))}"
                )
            chosen = [s for s in chosen if s.group in groups]
        if samples:
            unknown = [s for s in samples if s not in self.samples]
            if unknown:
                raise InputError(
                    f"unknown sample(s) {', '.join(unknown)}; known: {', '.join(self.samples)}"
                )
            chosen = [s for s in chosen if s.name in samples]
        return chosen


RELEASES = ("2020", "2025")


@cache
def load_release(name: str = "2020") -> Release:
    """The catalogue of release ``name``, read from the package data."""
    source = resources.files("analysis") / "data" / f"release_{name}.json"
    if not source.is_file():
        raise ValueError(f"no catalogue for release {name!r}")
    raw = json.loads(source.read_text(encoding="utf-8"))
    groups = tuple(
        Group(g["key"], g["label"], g["colour"], g["role"], tuple(g["samples"]))
        for g in raw["groups"]
    )
    samples = {
        name: Sample(
            name=name,
            group=s["group"],
            path=s["path"],
            dsid=s.get("dsid"),
            xsec_pb=s.get("xsec_pb"),
            sumw=s.get("sumw"),
            red_eff=s.get("red_eff"),
            sha256=s.get("sha256"),
        )
        for name, s in raw["samples"].items()
    }
    settings = raw["analysis"]
    analysis = AnalysisSettings(
        lepton_branches=tuple(settings["lepton_branches"]),
        weight_branches=tuple(settings["weight_branches"]),
        units_per_gev=float(settings.get("units_per_gev", 1000.0)),
        normalisation=settings.get("normalisation", "metadata"),
        normalisation_branches=tuple(settings.get("normalisation_branches", ())),
        sum_of_weights_branch=settings.get("sum_of_weights_branch"),
        absolute_weights=bool(settings.get("absolute_weights", False)),
        preselection=settings.get("preselection"),
        binning=Binning(**settings.get("binning", {})),
        y_headroom=float(settings.get("y_headroom", 1.6)),
    )
    return Release(
        name=raw["release"],
        lumi_fb=float(raw["lumi_fb"]),
        tree=raw["tree"],
        base_urls=dict(raw["base_urls"]),
        groups=groups,
        samples=samples,
        analysis=analysis,
    )
