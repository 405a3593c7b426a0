"""Systematic variations filled in the same pass, and the version-2 document that carries them."""

from __future__ import annotations

import json
from pathlib import Path

import dask
import fastjsonschema
import hist
import numpy as np
import pytest
import uproot
import vector

from analysis import build, inspect
from analysis.inputs.binning import m4l_axis
from analysis.inputs.catalogue import load_release
from analysis.physics.summary import branches_for, row_length, summarise_partition, totals_from_row
from analysis.physics.systematics import VARIATION_NAMES
from analysis.physics.weights import event_weight
from analysis.results.accounting import assemble_document
from analysis.results.document import SCHEMA, SCHEMA_V1, HistogramDocument, from_dict, json_schema

from .helpers import ON_DISK

RELEASE = load_release("2020")


@pytest.fixture(scope="module")
def document(mirror: Path) -> HistogramDocument:
    graph = build(inspect(str(mirror), samples=ON_DISK), step_size=300, readers=1)
    (computed,) = dask.compute(graph.outputs(), scheduler="sync")
    return assemble_document(graph.computed(computed))


def _notebook_style(path: Path, name: str) -> tuple[np.ndarray, np.ndarray]:
    """m4l (GeV) and weights of the selected events, computed the notebook's way."""
    sample = RELEASE.samples[name]
    with uproot.open(path) as file:
        events = file["mini"].arrays(list(branches_for(sample, RELEASE)))
    first = {k: events[f"lep_{k}"][:, :4] for k in ("pt", "eta", "phi", "E", "charge", "type")}
    types = np.asarray(np.sum(first["type"], axis=1))
    passed = (np.asarray(np.sum(first["charge"], axis=1)) == 0) & np.isin(types, (44, 48, 52))
    p4 = vector.zip({k: first[k] for k in ("pt", "eta", "phi", "E")})
    mass = np.asarray((p4[:, 0] + p4[:, 1] + p4[:, 2] + p4[:, 3]).M * 0.001)[passed]
    weight = np.asarray(event_weight(events, sample, RELEASE), dtype=np.float64)[passed]
    return mass, weight


def _filled(mass: np.ndarray, weight: np.ndarray) -> hist.Hist:
    h = hist.Hist(m4l_axis(), storage=hist.storage.Weight())
    h.fill(mass, weight=weight)
    return h


@pytest.mark.parametrize("name", ["Zee", "ttbar_lep"])
def test_variations_are_the_agc_ones_from_the_same_events(mirror: Path, name: str) -> None:
    path = mirror / RELEASE.samples[name].path
    mass, weight = _notebook_style(path, name)
    sample = RELEASE.samples[name]
    with uproot.open(path) as file:
        events = file["mini"].arrays(list(branches_for(sample, RELEASE)))
    row = np.asarray(summarise_partition(events, sample, RELEASE))[0]
    assert row.size == row_length(RELEASE)
    totals = totals_from_row(row, RELEASE)
    nominal = _filled(mass, weight)
    assert np.array_equal(totals.hist.values(flow=True), nominal.values(flow=True))
    expected = {
        "sf_up": _filled(mass, weight * 1.1),
        "sf_down": _filled(mass, weight * 0.9),
        "m4l_up": _filled(mass.astype(np.float64) * 1.01, weight),
        "m4l_down": _filled(mass.astype(np.float64) * 0.99, weight),
    }
    assert sorted(totals.variations) == sorted(VARIATION_NAMES)
    for key, h in expected.items():
        got = totals.variations[key]
        assert np.allclose(got.values(flow=True), h.values(flow=True), rtol=1e-12, atol=0)
        assert np.allclose(got.variances(flow=True), h.variances(flow=True), rtol=1e-12, atol=0)
    # The energy scale moves events between bins: same total, a different shape.
    up = totals.variations["m4l_up"]
    assert up.sum(flow=True).value == pytest.approx(nominal.sum(flow=True).value, rel=1e-12)
    assert not np.array_equal(up.values(), nominal.values())
    assert totals.variations["sf_up"].sum().value == pytest.approx(1.1 * nominal.sum().value)


def test_the_document_carries_variations_for_simulation_only(
    document: HistogramDocument,
) -> None:
    raw = json.loads(document.to_json())
    assert raw["schema"] == SCHEMA
    for name in ON_DISK:
        carried = raw["samples"][name].get("variations", {})
        assert sorted(carried) == ([] if name.startswith("data") else sorted(VARIATION_NAMES))
    loaded = from_dict(raw)
    zee = loaded.samples["Zee"]
    assert np.array_equal(
        zee.variations["m4l_down"].values(flow=True),
        document.samples["Zee"].variations["m4l_down"].values(flow=True),
    )
    # Self-contained: group keys and members, figure settings and binning are in it.
    assert [g["key"] for g in raw["groups"]] == ["data", "z_tt", "zz", "signal"]
    assert raw["groups"][2]["samples"] == ["llll"]
    assert raw["figure"]["y_headroom"] == 1.6
    assert loaded.binning == RELEASE.analysis.binning
    assert loaded.group_of("llll").label == "Background $ZZ^*$"


def test_the_published_json_schema_accepts_documents_and_names_faults(
    document: HistogramDocument,
) -> None:
    validate = fastjsonschema.compile(json_schema())
    raw = json.loads(document.to_json())
    validate(raw)
    raw["groups"][0]["key"] = "not a key!"
    with pytest.raises(fastjsonschema.JsonSchemaValueException):
        validate(raw)
    with pytest.raises(ValueError, match=r"groups\[0\]\.key"):
        from_dict(raw)


def test_version_1_documents_still_load(document: HistogramDocument) -> None:
    raw = json.loads(document.to_json())
    raw["schema"] = SCHEMA_V1
    del raw["figure"]
    raw["groups"] = [{k: g[k] for k in ("label", "colour", "role")} for g in raw["groups"]]
    for sample in raw["samples"].values():
        sample.pop("variations", None)
    loaded = from_dict(raw)
    assert [g.key for g in loaded.groups] == ["data", "z_tt", "zz", "signal"]
    assert loaded.figure.y_headroom == 1.6 and not loaded.samples["Zee"].variations
    assert loaded.samples["Zee"].sumw == document.samples["Zee"].sumw


def test_mixed_binnings_are_refused(document: HistogramDocument) -> None:
    raw = json.loads(document.to_json())
    raw["samples"]["Zee"]["variations"]["sf_up"]["axes"][0]["upper"] = 300.0
    with pytest.raises(ValueError, match=r"samples\.Zee\.variations\.sf_up"):
        from_dict(raw)
