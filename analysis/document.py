"""The histogram document: the reduced result of a run, as versioned JSON.

It is all that leaves the Dask cluster and all the figure needs: per-sample counts,
weighted sums and m4l histograms (UHI JSON, weighted storage), the group labels and
colours in drawing order, and which samples were missing or simulated stand-ins.
Loading validates everything, so a document from a file or a network is safe to plot.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import hist
import numpy as np
import uhi.schema
from uhi.io.json import default as uhi_default

from .binning import Binning, m4l_axis
from .catalogue import RELEASES, load_release
from .errors import InputError

SCHEMA = "hzz.histograms/1"
ROLES = ("data", "background", "signal")


class DocumentError(InputError):
    """A document that is not a valid ``hzz.histograms/1`` document; says which part."""


@dataclass(frozen=True)
class GroupStyle:
    """How a group is drawn: legend label, colour, and whether it is data, background or signal."""

    label: str
    colour: str
    role: str


@dataclass
class SampleResult:
    """One sample's numbers: events read, events passing, weighted yield and histogram."""

    group: str
    n_in: int
    n_out: int
    sumw: float
    hist: hist.Hist


@dataclass(frozen=True)
class SkippedFile:
    """A bad input file left out of the run (``--skip-bad-files``), and why."""

    sample: str
    file: str
    cause: str


@dataclass
class HistogramDocument:
    """A run's result. ``groups`` is in drawing order (stack bottom first)."""

    release: str
    lumi_fb: float
    groups: list[GroupStyle]
    samples: dict[str, SampleResult]
    missing: list[str] = field(default_factory=list)
    generated: list[str] = field(default_factory=list)
    skipped: list[SkippedFile] = field(default_factory=list)
    created: datetime = field(default_factory=lambda: datetime.now(UTC))

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "release": self.release,
            "lumi_fb": self.lumi_fb,
            "created": self.created.astimezone(UTC).isoformat().replace("+00:00", "Z"),
            "groups": [{"label": g.label, "colour": g.colour, "role": g.role} for g in self.groups],
            "samples": {
                name: {
                    "group": s.group,
                    "n_in": s.n_in,
                    "n_out": s.n_out,
                    "sumw": s.sumw,
                    "hist": json.loads(json.dumps(s.hist, default=uhi_default)),
                }
                for name, s in self.samples.items()
            },
            "missing": list(self.missing),
            "generated": list(self.generated),
            "skipped": [
                {"sample": f.sample, "file": f.file, "cause": f.cause} for f in self.skipped
            ],
        }

    def to_json(self) -> bytes:
        """UTF-8 JSON bytes: what is written to disk and published."""
        return json.dumps(self.to_dict(), indent=1).encode("utf-8")

    @property
    def binning(self) -> Binning:
        """The m4l binning of the document's release."""
        return load_release(self.release).analysis.binning

    def group_histogram(self, label: str) -> hist.Hist:
        """The sum of the histograms of the group's samples (empty if none ran)."""
        total = hist.Hist(m4l_axis(self.binning), storage=hist.storage.Weight())
        for s in self.samples.values():
            if s.group == label:
                total += s.hist
        return total

    def samples_of(self, label: str) -> list[str]:
        return [name for name, s in self.samples.items() if s.group == label]


def _require(condition: bool, where: str, message: str) -> None:
    if not condition:
        raise DocumentError(f"{where}: {message}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _load_hist(raw: Any, where: str, binning: Binning) -> hist.Hist:
    _require(isinstance(raw, dict), where, "must be a UHI JSON histogram object")
    try:
        uhi.schema.validate_histogram(raw)
    except Exception as err:
        raise DocumentError(f"{where}: not a valid UHI histogram: {err}") from err
    axes = raw["axes"]
    _require(len(axes) == 1, where, f"must have 1 axis, has {len(axes)}")
    axis = axes[0]
    layout_ok = (
        axis.get("type") == "regular"
        and axis.get("bins") == binning.bins
        and axis.get("lower") == binning.low
        and axis.get("upper") == binning.high
    )
    _require(
        layout_ok,
        where,
        f"axis must be regular, {binning.bins} bins from {binning.low:g} to {binning.high:g} GeV",
    )
    _require(raw["storage"].get("type") == "weighted", where, "storage must be 'weighted'")
    storage = {
        key: np.asarray(value, dtype=float) if isinstance(value, list) else value
        for key, value in raw["storage"].items()
    }
    for key in ("values", "variances"):
        array = storage[key]
        _require(np.all(np.isfinite(array)), where, f"storage {key} must be finite")
    try:
        return hist.Hist({**raw, "storage": storage})
    except Exception as err:
        raise DocumentError(f"{where}: cannot build histogram: {err}") from err


def from_dict(raw: Any) -> HistogramDocument:
    """A validated document, or DocumentError saying which field is wrong."""
    _require(isinstance(raw, dict), "document", "must be a JSON object")
    _require(
        raw.get("schema") == SCHEMA,
        "schema",
        f"expected {SCHEMA!r}, got {raw.get('schema')!r}",
    )
    _require(
        raw.get("release") in RELEASES,
        "release",
        f"must be one of {', '.join(RELEASES)}, got {raw.get('release')!r}",
    )
    binning = load_release(raw["release"]).analysis.binning
    _require(_is_number(raw.get("lumi_fb")), "lumi_fb", "must be a number")
    try:
        created = datetime.fromisoformat(str(raw.get("created")))
    except ValueError as err:
        raise DocumentError(f"created: not an ISO 8601 time: {raw.get('created')!r}") from err
    if created.tzinfo is None:
        created = created.replace(tzinfo=UTC)
    try:  # file names are UTC: a time outside years 1-9999 there would crash writing them
        created = created.astimezone(UTC)
    except OverflowError as err:
        raise DocumentError(f"created: out of range in UTC: {raw.get('created')!r}") from err

    groups_raw = raw.get("groups")
    _require(isinstance(groups_raw, list) and groups_raw, "groups", "must be a non-empty list")
    groups: list[GroupStyle] = []
    for i, g in enumerate(groups_raw):
        where = f"groups[{i}]"
        _require(isinstance(g, dict), where, "must be an object")
        for key in ("label", "colour", "role"):
            _require(isinstance(g.get(key), str), f"{where}.{key}", "must be a string")
        _require(g["role"] in ROLES, f"{where}.role", f"must be one of {', '.join(ROLES)}")
        groups.append(GroupStyle(g["label"], g["colour"], g["role"]))
    labels = {g.label for g in groups}

    samples_raw = raw.get("samples")
    _require(isinstance(samples_raw, dict), "samples", "must be an object")
    samples: dict[str, SampleResult] = {}
    for name, s in samples_raw.items():
        where = f"samples.{name}"
        _require(isinstance(s, dict), where, "must be an object")
        _require(s.get("group") in labels, f"{where}.group", "must be a label of 'groups'")
        for key in ("n_in", "n_out"):
            _require(
                _is_int(s.get(key)) and s[key] >= 0, f"{where}.{key}", "must be an integer ≥ 0"
            )
        _require(s["n_out"] <= s["n_in"], f"{where}.n_out", "must not exceed n_in")
        _require(_is_number(s.get("sumw")), f"{where}.sumw", "must be a finite number")
        samples[name] = SampleResult(
            group=s["group"],
            n_in=s["n_in"],
            n_out=s["n_out"],
            sumw=float(s["sumw"]),
            hist=_load_hist(s.get("hist"), f"{where}.hist", binning),
        )

    lists: dict[str, list[str]] = {}
    for key in ("missing", "generated"):
        value = raw.get(key, [])
        _require(
            isinstance(value, list) and all(isinstance(v, str) for v in value),
            key,
            "must be a list of sample names",
        )
        lists[key] = value

    skipped_raw = raw.get("skipped", [])
    _require(isinstance(skipped_raw, list), "skipped", "must be a list")
    skipped: list[SkippedFile] = []
    for i, entry in enumerate(skipped_raw):
        where = f"skipped[{i}]"
        _require(isinstance(entry, dict), where, "must be an object")
        for key in ("sample", "file", "cause"):
            _require(isinstance(entry.get(key), str), f"{where}.{key}", "must be a string")
        skipped.append(SkippedFile(entry["sample"], entry["file"], entry["cause"]))

    return HistogramDocument(
        release=raw["release"],
        lumi_fb=float(raw["lumi_fb"]),
        groups=groups,
        samples=samples,
        missing=lists["missing"],
        generated=lists["generated"],
        skipped=skipped,
        created=created,
    )


def from_json(data: bytes | str) -> HistogramDocument:
    """Parse and validate JSON text; never evaluates anything it contains."""
    try:
        raw = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DocumentError(f"not JSON: {err}") from err
    except RecursionError as err:
        raise DocumentError("not a document: JSON nested too deeply") from err
    return from_dict(raw)
