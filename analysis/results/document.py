"""The histogram document: the reduced result of a run, as versioned JSON.

All that leaves the Dask cluster, and all the figure and the statistical model need:
per-sample counts, weighted sums and m4l histograms (UHI JSON, weighted storage) with
their systematic variations, the groups in drawing order, the figure settings, and which
samples were missing, stand-ins or skipped. Version 2 is described by the JSON Schema
``analysis/schema/histograms-2.schema.json``; version 1 documents are upgraded on load.
Loading validates everything, so a document from a file or a network is safe to plot.
"""

from __future__ import annotations

import json
import math
import re
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

    @property
    def plain_label(self) -> str:
        """The label for a terminal or a log: its mathtext as plain text."""
        return plain_text(self.label)


def plain_text(mathtext: str) -> str:
    """Matplotlib mathtext as plain text: ``Background $Z,t\\bar{t}$`` reads
    ``Background Z,tt̄``, ``$ZZ^*$`` reads ``ZZ*``, ``$m_H$`` reads ``m_H``."""
    text = re.sub(r"\\bar\{(\w)\}", "\\1\u0304", mathtext)  # t̄: t and a combining macron
    text = re.sub(r"\\(\w+)", r"\1", text)  # any other command: its name
    return text.replace("$", "").replace("^", "").replace("{", "").replace("}", "")


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


@dataclass(frozen=True)
class Progress:
    """How far a run is, in a partial document (sent while it computes): partitions
    ``done`` of ``total`` and events read so far; ``run`` names the run."""

    done: int
    total: int
    events: int
    run: str | None = None

    def to_dict(self) -> dict[str, Any]:
        named = {"run": self.run} if self.run is not None else {}
        return {"done": self.done, "total": self.total, "events": self.events, **named}


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
    #: Set only in a partial document: the result so far of a run still computing.
    partial: Progress | None = None

    def to_dict(self) -> dict[str, Any]:
        completed = _complete(self.release, self.groups)
        partial = {"partial": self.partial.to_dict()} if self.partial is not None else {}
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
            **partial,
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
    """A validated document, or DocumentError saying which field is wrong.

    A version 1 document is first upgraded to version 2; the JSON Schema then checks
    every field's type and shape, and this function what a schema cannot say: the
    release is one this code knows, numbers are finite, times are times, group keys are
    unique, every sample's group is one of ``groups``, n_out ≤ n_in, and every histogram
    is a valid UHI histogram of the one binning of the document.
    """
    _require(isinstance(raw, dict), "document", "must be a JSON object")
    _require(
        raw.get("schema") in SCHEMAS,
        "schema",
        f"expected one of {', '.join(map(repr, SCHEMAS))}, got {raw.get('schema')!r}",
    )
    # Version 1: the release's binning. Version 2: the first histogram's, shared by all.
    binning: Binning | None = None
    if raw["schema"] == SCHEMA_V1:
        raw, binning = _upgraded(raw)
    _validate_schema(raw)
    _require(_known_release(raw), "release", f"must be one of {', '.join(RELEASES)}")
    _require(_is_number(raw["lumi_fb"]), "lumi_fb", "must be a number")
    groups = [
        GroupStyle(g["label"], g["colour"], g["role"], g["key"], tuple(g["samples"]))
        for g in raw["groups"]
    ]
    _require(len({g.key for g in groups}) == len(groups), "groups", "group keys must be unique")
    labels = {g.label for g in groups}
    samples: dict[str, SampleResult] = {}
    for name, s in raw["samples"].items():
        where = f"samples.{name}"
        _require(s["group"] in labels, f"{where}.group", "must be a label of 'groups'")
        _require(s["n_out"] <= s["n_in"], f"{where}.n_out", "must not exceed n_in")
        _require(_is_number(s["sumw"]), f"{where}.sumw", "must be a finite number")
        histogram = _load_hist(s["hist"], f"{where}.hist", binning)
        if binning is None:
            axis = histogram.axes[0]
            binning = Binning(len(axis), float(axis.edges[0]), float(axis.edges[-1]))
        variations = {
            key: _load_hist(value, f"{where}.variations.{key}", binning)
            for key, value in s.get("variations", {}).items()
        }
        samples[name] = SampleResult(
            s["group"], int(s["n_in"]), int(s["n_out"]), float(s["sumw"]), histogram, variations
        )
    figure = raw["figure"]
    for key in ("sqrt_s_tev", "y_headroom"):
        _require(_is_number(figure[key]), f"figure.{key}", "must be a positive number")
    partial = raw.get("partial")
    if partial is not None:
        _require(partial["done"] <= partial["total"], "partial.done", "must not exceed total")
    return HistogramDocument(
        release=raw["release"],
        lumi_fb=float(raw["lumi_fb"]),
        groups=groups,
        samples=samples,
        missing=list(raw.get("missing", [])),
        generated=list(raw.get("generated", [])),
        skipped=[SkippedFile(e["sample"], e["file"], e["cause"]) for e in raw.get("skipped", [])],
        created=_created(raw["created"]),
        figure=FigureSettings(
            sqrt_s_tev=float(figure["sqrt_s_tev"]),
            y_headroom=float(figure["y_headroom"]),
            x_label=figure["x_label"],
            process=figure["process"],
            fit=bool(figure.get("fit", False)),
        ),
        partial=(
            Progress(partial["done"], partial["total"], partial["events"], partial.get("run"))
            if partial is not None
            else None
        ),
    )


def _known_release(raw: dict[str, Any]) -> bool:
    return raw.get("release") in RELEASES


def _upgraded(raw: dict[str, Any]) -> tuple[dict[str, Any], Binning]:
    """A version 1 document as version 2, and the binning its histograms must have.

    Version 1 had no group keys or members, no figure settings and no variations: the
    keys and members are those of the release catalogue's group of the same label, the
    figure settings and the binning the release's.
    """
    _require(_known_release(raw), "release", f"must be one of {', '.join(RELEASES)}")
    release = load_release(raw["release"])
    groups = raw.get("groups")
    _require(isinstance(groups, list) and groups, "groups", "must be a non-empty list")
    upgraded = []
    for i, group in enumerate(groups):
        _require(isinstance(group, dict), f"groups[{i}]", "must be an object")
        known = next((c for c in release.groups if c.label == group.get("label")), None)
        key, members = (known.key, list(known.samples)) if known else (f"group{i}", [])
        upgraded.append({**group, "key": key, "samples": members})
    figure = FigureSettings(y_headroom=release.analysis.y_headroom).to_dict()
    document = {**raw, "schema": SCHEMA, "groups": upgraded, "figure": figure}
    return document, release.analysis.binning


def _created(text: str) -> datetime:
    """The document's time, in UTC (a time without a zone is taken as UTC)."""
    try:
        created = datetime.fromisoformat(text)
    except ValueError as err:
        raise DocumentError(f"created: not an ISO 8601 time: {text!r}") from err
    if created.tzinfo is None:
        created = created.replace(tzinfo=UTC)
    try:  # file names are UTC: a time outside years 1-9999 there would crash writing them
        return created.astimezone(UTC)
    except OverflowError as err:
        raise DocumentError(f"created: out of range in UTC: {text!r}") from err


def from_json(data: bytes | str) -> HistogramDocument:
    """Parse and validate JSON text; never evaluates anything it contains."""
    try:
        raw = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DocumentError(f"not JSON: {err}") from err
    except RecursionError as err:
        raise DocumentError("not a document: JSON nested too deeply") from err
    except ValueError as err:  # an integer longer than Python converts (4300 digits)
        raise DocumentError(f"not a document: {err}") from err
    return from_dict(raw)
