"""The histogram document: round trip, validation with named errors, and file naming."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import hist
import numpy as np
import pytest

from analysis.inputs.binning import m4l_axis
from analysis.results.document import (
    SCHEMA,
    DocumentError,
    GroupStyle,
    HistogramDocument,
    SampleResult,
    from_dict,
    from_json,
)
from analysis.results.outputs import is_output_name, outputs_in, write_new
from analysis.results.plot import render_png


def small_document() -> HistogramDocument:
    data = hist.Hist(m4l_axis(), storage=hist.storage.Weight())
    data.fill([91.0, 124.0, 126.0, 300.0])
    mc = hist.Hist(m4l_axis(), storage=hist.storage.Weight())
    mc.fill([91.0, 125.0, 70.0], weight=[0.5, 0.25, 2.0])
    return HistogramDocument(
        release="2020",
        lumi_fb=10.0,
        groups=[
            GroupStyle("Data", "black", "data"),
            GroupStyle("Background $ZZ^*$", "#ff0000", "background"),
        ],
        samples={
            "data_A": SampleResult("Data", 10, 4, 4.0, data),
            "llll": SampleResult("Background $ZZ^*$", 20, 3, 2.75, mc),
        },
        missing=["ggH125_ZZ4lep"],
        created=datetime(2026, 11, 26, 9, 5, tzinfo=UTC),
    )


def test_round_trip_keeps_every_number() -> None:
    document = small_document()
    raw = json.loads(document.to_json())
    assert raw["schema"] == SCHEMA and raw["created"] == "2026-11-26T09:05:00Z"
    assert raw["samples"]["llll"]["hist"]["storage"]["type"] == "weighted"
    loaded = from_json(document.to_json())
    assert loaded.created == document.created and loaded.missing == ["ggH125_ZZ4lep"]
    for name, sample in document.samples.items():
        other = loaded.samples[name]
        assert (other.n_in, other.n_out, other.sumw) == (sample.n_in, sample.n_out, sample.sumw)
        assert np.array_equal(other.hist.values(flow=True), sample.hist.values(flow=True))
        assert np.array_equal(other.hist.variances(flow=True), sample.hist.variances(flow=True))


def _broken(change: Any) -> dict[str, Any]:
    raw = json.loads(small_document().to_json())
    change(raw)
    return raw


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (lambda d: d.update(schema="hzz.histograms/9"), "schema"),
        (lambda d: d.update(lumi_fb="ten"), "lumi_fb"),
        (lambda d: d.update(created="yesterday"), "created"),
        (lambda d: d["samples"]["llll"].update(n_out=-1), "samples.llll.n_out"),
        (lambda d: d["samples"]["llll"].update(n_out=21), "samples.llll.n_out"),
        (lambda d: d["samples"]["llll"].update(group="Signal"), "samples.llll.group"),
        (lambda d: d["samples"]["llll"].update(sumw=None), "samples.llll.sumw"),
        (lambda d: d["samples"]["llll"]["hist"]["axes"][0].update(bins=68), "samples.llll.hist"),
        (
            lambda d: d["samples"]["llll"]["hist"]["axes"][0].update(upper=300.0),
            "samples.llll.hist",
        ),
        (
            lambda d: d["samples"]["llll"]["hist"]["storage"].update(type="double"),
            "samples.llll.hist",
        ),
        (lambda d: d["samples"]["llll"]["hist"]["storage"]["values"].pop(), "samples.llll.hist"),
        (lambda d: d["samples"]["data_A"].pop("hist"), "samples.data_A.hist"),
        (lambda d: d["groups"][0].update(role="ghost"), "groups[0].role"),
        (lambda d: d.update(missing="llll"), "missing"),
    ],
)
def test_invalid_documents_name_the_field(change: Any, named: str) -> None:
    with pytest.raises(DocumentError, match=named.replace("[", r"\[").replace("]", r"\]")):
        from_dict(_broken(change))


@pytest.mark.parametrize("bins", [10**9, 35])
def test_a_histogram_is_never_allocated_from_a_declared_size(bins: int) -> None:
    """An axis declaring a billion bins (16 GB to allocate) or more bins than its
    values: rejected before any histogram is built, naming the field."""

    def declare(raw: dict[str, Any]) -> None:
        for sample in raw["samples"].values():
            sample["hist"]["axes"][0]["bins"] = bins

    with pytest.raises(DocumentError, match=r"samples\.\w+\.hist: (axis must have|storage)"):
        from_dict(_broken(declare))


@pytest.mark.parametrize(
    "payload", [b"\x80\x04\x95garbage", b"{not json", b"[1, 2]", b"", b"[" * 100_000]
)
def test_not_a_document_at_all(payload: bytes) -> None:
    with pytest.raises(DocumentError):
        from_json(payload)


def test_files_are_never_overwritten(tmp_path: Path) -> None:
    when = datetime(2026, 11, 26, 9, 5, tzinfo=UTC)
    first = write_new(tmp_path, {".png": b"first", ".json": b"{}"}, when=when)
    second = write_new(tmp_path, {".png": b"second", ".json": b"{}"}, when=when)
    assert first[".png"].name == "plot_26_11_26-09-05.png"
    assert first[".json"].name == "plot_26_11_26-09-05.json"
    assert second[".png"].name == "plot_26_11_26-09-05_2.png"
    assert first[".png"].read_bytes() == b"first"
    assert first[".png"].stat().st_mode & 0o044 == 0o044  # readable by others (umask 022)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "plot_26_11_26-09-05.json",
        "plot_26_11_26-09-05.png",
        "plot_26_11_26-09-05_2.json",
        "plot_26_11_26-09-05_2.png",
    ]


def test_a_taken_png_name_moves_both_files_to_the_next_suffix(tmp_path: Path) -> None:
    when = datetime(2026, 11, 26, 9, 5, tzinfo=UTC)
    (tmp_path / "plot_26_11_26-09-05.png").write_bytes(b"someone else's")
    written = write_new(tmp_path, {".png": b"mine", ".json": b"{}"}, when=when)
    assert written[".json"].name == "plot_26_11_26-09-05_2.json"
    assert (tmp_path / "plot_26_11_26-09-05.png").read_bytes() == b"someone else's"
    assert not (tmp_path / "plot_26_11_26-09-05.json").exists()


def test_the_figure_renders_from_the_document_alone() -> None:
    document = from_json(small_document().to_json())
    png = render_png(document)
    assert png.startswith(b"\x89PNG") and len(png) > 10_000


def test_result_names_are_recognised_by_the_one_matcher(tmp_path: Path) -> None:
    """The ledger finds figures with the matcher of the names write_new gives."""
    when = datetime(2026, 11, 26, 9, 5, tzinfo=UTC)
    first = write_new(tmp_path, {".png": b"a", ".fit.json": b"{}"}, when=when)
    second = write_new(tmp_path, {".png": b"b"}, when=when)
    (tmp_path / "plot_notes.png").write_bytes(b"not a result")
    assert outputs_in(tmp_path, ".png") == [first[".png"], second[".png"]]
    assert outputs_in(tmp_path, ".fit.json") == [first[".fit.json"]]
    assert outputs_in(tmp_path, ".json") == []
    assert all(is_output_name(p.name, ".png") for p in outputs_in(tmp_path, ".png"))
