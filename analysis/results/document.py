"""The histogram document: the reduced result of a run, as versioned JSON.

It is all that leaves the Dask cluster and all the figure and the statistical model
need: per-sample counts, weighted sums and m4l histograms (UHI JSON, weighted storage),
the systematic variations of the simulation, the groups (key, label, colour, role,
samples) in drawing order, the figure settings, and which samples were missing or
simulated stand-ins. The binning is that of the histograms. Version 2 is described by
the JSON Schema ``analysis/schema/histograms-2.schema.json`` (validated with it on
load); version 1 documents (no variations, binning and figure settings from the release
catalogue) still load. Loading validates everything, so a document from a file or a
network is safe to plot.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from importlib import resources
from typing import Any

import hist
import numpy as np
import uhi.schema
from uhi.io.json import default as uhi_default

from analysis.errors import InputError
from analysis.inputs.binning import Binning, m4l_axis
from analysis.inputs.catalogue import RELEASES, load_release
from analysis.inputs.files import SkippedFile

SCHEMA = "hzz.histograms/2"
SCHEMA_V1 = "hzz.histograms/1"
#: Every version this code reads; it writes ``SCHEMA``.
SCHEMAS = (SCHEMA_V1, SCHEMA)
ROLES = ("data", "background", "signal")
SCHEMA_FILE = "histograms-2.schema.json"


class DocumentError(InputError):
    """A document that is not a valid histogram document; says which part."""


@dataclass(frozen=True)
class GroupStyle:
    """How a group is drawn: legend label, colour, and whether it is data, background or
    signal; its key and the samples of the release that belong to it."""

    label: str
    colour: str
    role: str
    key: str = ""
    samples: tuple[str, ...] = ()


@dataclass(frozen=True)
class FigureSettings:
    """How the figure is drawn; ``fit``: fit the model and draw the post-fit figure too."""

    sqrt_s_tev: float = 13.0
    y_headroom: float = 1.6
    x_label: str = r"4-lepton invariant mass $\mathrm{m_{4l}}$ [GeV]"
    process: str = r"$H \rightarrow ZZ^* \rightarrow 4\ell$"
    fit: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "sqrt_s_tev": self.sqrt_s_tev,
            "y_headroom": self.y_headroom,
            "x_label": self.x_label,
            "process": self.process,
            "fit": self.fit,
        }


@dataclass
class SampleResult:
    """One sample's numbers: events read, events passing, weighted yield and histogram."""

    group: str
    n_in: int
    n_out: int
    sumw: float
    hist: hist.Hist
    #: Simulation's systematic variations by name (``analysis.physics.systematics``); none for data.
    variations: dict[str, hist.Hist] = field(default_factory=dict)


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
    figure: FigureSettings = field(default_factory=FigureSettings)

    def to_dict(self) -> dict[str, Any]:
        completed = _complete(self.release, self.groups)
        return {
            "schema": SCHEMA,
            "release": self.release,
            "lumi_fb": self.lumi_fb,
            "created": self.created.astimezone(UTC).isoformat().replace("+00:00", "Z"),
            "figure": self.figure.to_dict(),
            "groups": [
                {
                    "key": key,
                    "label": g.label,
                    "colour": g.colour,
                    "role": g.role,
                    "samples": list(members),
                }
                for (key, members), g in zip(completed, self.groups, strict=True)
            ],
            "samples": {
                name: {
                    "group": s.group,
                    "n_in": s.n_in,
                    "n_out": s.n_out,
                    "sumw": s.sumw,
                    "hist": _hist_json(s.hist),
                    **(
                        {"variations": {k: _hist_json(h) for k, h in s.variations.items()}}
                        if s.variations
                        else {}
                    ),
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
        """The m4l binning: that of the histograms (the release's when there are none)."""
        for s in self.samples.values():
            axis = s.hist.axes[0]
            return Binning(len(axis), float(axis.edges[0]), float(axis.edges[-1]))
        return load_release(self.release).analysis.binning

    def group_histogram(self, label: str, variation: str | None = None) -> hist.Hist:
        """The sum of the histograms of the group's samples (empty if none ran); with
        ``variation``, of that variation (a sample without it counts as nominal)."""
        total = hist.Hist(m4l_axis(self.binning), storage=hist.storage.Weight())
        for s in self.samples.values():
            if s.group == label:
                total += s.variations.get(variation, s.hist) if variation else s.hist
        return total

    def group_has(self, label: str, *variations: str) -> bool:
        """True when every sample of the group carries each of ``variations``."""
        return all(
            set(variations) <= set(s.variations) for s in self.samples.values() if s.group == label
        )

    def group_of(self, sample: str) -> GroupStyle | None:
        """The group a sample belongs to, run or not (by the groups' sample lists)."""
        for g in self.groups:
            if sample in g.samples:
                return g
        ran = self.samples.get(sample)
        return next((g for g in self.groups if ran and g.label == ran.group), None)

    def samples_of(self, label: str) -> list[str]:
        return [name for name, s in self.samples.items() if s.group == label]


def _hist_json(histogram: hist.Hist) -> dict[str, Any]:
    return json.loads(json.dumps(histogram, default=uhi_default))


def _complete(release: str, groups: list[GroupStyle]) -> list[tuple[str, tuple[str, ...]]]:
    """Each group's key and samples: its own, else those of the release catalogue's
    group of that label."""
    try:
        by_label = {g.label: g for g in load_release(release).groups}
    except ValueError:
        by_label = {}
    completed = []
    for i, g in enumerate(groups):
        known = by_label.get(g.label)
        key = g.key or (known.key if known else f"group{i}")
        completed.append((key, g.samples or (known.samples if known else ())))
    return completed


@cache
def json_schema() -> dict[str, Any]:
    """The published JSON Schema of the current version (package data)."""
    source = resources.files("analysis") / "schema" / SCHEMA_FILE
    return json.loads(source.read_text(encoding="utf-8"))


@cache
def _schema_validator() -> Any:
    import fastjsonschema

    return fastjsonschema.compile(json_schema())


def _where(path: list[Any]) -> str:
    """``data.samples.Zee.n_in`` as ``samples.Zee.n_in``, list items as ``groups[0]``."""
    where = ""
    for part in path[1:]:
        where += f"[{part}]" if isinstance(part, int) else (f".{part}" if where else str(part))
    return where or "document"


def _validate_schema(raw: dict[str, Any]) -> None:
    """The JSON Schema check, its error turned into a DocumentError naming the field."""
    import fastjsonschema

    try:
        _schema_validator()(raw)
    except fastjsonschema.JsonSchemaValueException as err:
        where = _where(list(err.path or ["data"]))
        if err.rule == "required" and isinstance(err.value, dict):
            absent = [k for k in err.rule_definition or [] if k not in err.value]
            if absent:
                raise DocumentError(f"{where}.{absent[0]}: is required") from err
        message = err.message
        prefix = ".".join(str(p) for p in err.path or []) or "data"
        message = message.removeprefix(prefix).strip() or message
        raise DocumentError(f"{where}: {message}") from err


def _require(condition: bool, where: str, message: str) -> None:
    if not condition:
        raise DocumentError(f"{where}: {message}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


#: Bins of a histogram's axis a document may declare (releases use 34 and 68).
MAX_BINS = 10_000


def _load_hist(raw: Any, where: str, binning: Binning | None) -> hist.Hist:
    """A UHI histogram of one regular axis; of ``binning`` (``None``: any regular one)."""
    _require(isinstance(raw, dict), where, "must be a UHI JSON histogram object")
    try:
        uhi.schema.validate_histogram(raw)
    except Exception as err:
        raise DocumentError(f"{where}: not a valid UHI histogram: {err}") from err
    axes = raw["axes"]
    _require(len(axes) == 1, where, f"must have 1 axis, has {len(axes)}")
    axis = axes[0]
    if binning is None:
        _require(axis.get("type") == "regular", where, "axis must be regular")
    else:
        layout_ok = (
            axis.get("type") == "regular"
            and axis.get("bins") == binning.bins
            and axis.get("lower") == binning.low
            and axis.get("upper") == binning.high
        )
        _require(
            layout_ok,
            where,
            f"axis must be regular, {binning.bins} bins from {binning.low:g} "
            f"to {binning.high:g} GeV",
        )
    _require(raw["storage"].get("type") == "weighted", where, "storage must be 'weighted'")
    bins = axis.get("bins")
    _require(_is_int(bins) and 1 <= bins <= MAX_BINS, where, f"axis must have 1 to {MAX_BINS} bins")
    storage = {
        key: np.asarray(value, dtype=float) if isinstance(value, list) else value
        for key, value in raw["storage"].items()
    }
    # The histogram is built from the axis: its size must be the one the values give,
    # never one a sender merely declares (a billion bins would be allocated first).
    cells = bins + bool(axis.get("underflow")) + bool(axis.get("overflow"))
    for key in ("values", "variances"):
        array = storage[key]
        _require(np.shape(array) == (cells,), where, f"storage {key} must hold {cells} numbers")
        _require(np.all(np.isfinite(array)), where, f"storage {key} must be finite")
    try:
        return hist.Hist({**raw, "storage": storage})
    except Exception as err:
        raise DocumentError(f"{where}: cannot build histogram: {err}") from err


def from_dict(raw: Any) -> HistogramDocument:
    """A validated document, or DocumentError saying which field is wrong."""
    _require(isinstance(raw, dict), "document", "must be a JSON object")
    _require(
        raw.get("schema") in SCHEMAS,
        "schema",
        f"expected one of {', '.join(map(repr, SCHEMAS))}, got {raw.get('schema')!r}",
    )
    version1 = raw["schema"] == SCHEMA_V1
    if not version1:
        _validate_schema(raw)
    _require(
        raw.get("release") in RELEASES,
        "release",
        f"must be one of {', '.join(RELEASES)}, got {raw.get('release')!r}",
    )
    release = load_release(raw["release"])
    # Version 1: the release's binning. Version 2: the first histogram's, shared by all.
    binning: Binning | None = release.analysis.binning if version1 else None
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
        if version1:  # key and samples from the catalogue's group of that label
            known = next((c for c in release.groups if c.label == g["label"]), None)
            key, members = (known.key, known.samples) if known else (f"group{i}", ())
        else:
            key, members = g["key"], tuple(g["samples"])
        groups.append(GroupStyle(g["label"], g["colour"], g["role"], key, members))
    labels = {g.label for g in groups}
    _require(len({g.key for g in groups}) == len(groups), "groups", "group keys must be unique")

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
        histogram = _load_hist(s.get("hist"), f"{where}.hist", binning)
        if binning is None:
            axis = histogram.axes[0]
            binning = Binning(len(axis), float(axis.edges[0]), float(axis.edges[-1]))
        variations_raw = s.get("variations", {})
        _require(isinstance(variations_raw, dict), f"{where}.variations", "must be an object")
        samples[name] = SampleResult(
            group=s["group"],
            n_in=s["n_in"],
            n_out=s["n_out"],
            sumw=float(s["sumw"]),
            hist=histogram,
            variations={
                key: _load_hist(value, f"{where}.variations.{key}", binning)
                for key, value in variations_raw.items()
            },
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

    if version1:
        figure = FigureSettings(y_headroom=release.analysis.y_headroom)
    else:
        f = raw["figure"]
        for key in ("sqrt_s_tev", "y_headroom"):
            _require(
                _is_number(f[key]) and f[key] > 0, f"figure.{key}", "must be a positive number"
            )
        figure = FigureSettings(
            sqrt_s_tev=float(f["sqrt_s_tev"]),
            y_headroom=float(f["y_headroom"]),
            x_label=f["x_label"],
            process=f["process"],
            fit=bool(f.get("fit", False)),
        )
    return HistogramDocument(
        release=raw["release"],
        lumi_fb=float(raw["lumi_fb"]),
        groups=groups,
        samples=samples,
        missing=lists["missing"],
        generated=lists["generated"],
        skipped=skipped,
        created=created,
        figure=figure,
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
