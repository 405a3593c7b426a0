"""Column projection: only the 11 branches of the spec are read (6 for data)."""

from __future__ import annotations

from pathlib import Path

import dask
import dask_awkward as dak
import pytest

from analysis import build, inspect
from analysis.inputs.partitions import partition_steps

SPEC_BRANCHES = {
    "lep_pt",
    "lep_eta",
    "lep_phi",
    "lep_E",
    "lep_charge",
    "lep_type",
    "mcWeight",
    "scaleFactor_PILEUP",
    "scaleFactor_ELE",
    "scaleFactor_MUON",
    "scaleFactor_LepTRIGGER",
}
LEPTON_BRANCHES = {b for b in SPEC_BRANCHES if b.startswith("lep_")}


def test_only_the_spec_branches_are_read(mirror: Path) -> None:
    graph = build(inspect(mirror, samples=["data_A", "Zee"]))
    for sample_graph in graph.samples:
        columns = dak.necessary_columns(*sample_graph.outputs())
        (read,) = columns.values()
        expected = LEPTON_BRANCHES if sample_graph.sample.is_data else SPEC_BRANCHES
        assert set(read) == expected, sample_graph.sample.name


def test_the_readers_read_just_what_column_projection_would_keep(mirror: Path) -> None:
    """Runs compute without dask-awkward's column projection (``analysis.graph.
    OPTIMISATIONS``, to save its typetracer pass on the client): that reads no more and
    no less only because each reader's own columns are those the projection keeps."""
    from analysis.graph import optimising

    graph = build(inspect(mirror, samples=["data_A", "Zee"]))
    for sample_graph in graph.samples:
        (needed,) = dak.necessary_columns(*sample_graph.outputs()).values()
        (reader,) = [
            layer.io_func
            for layer in sample_graph.summaries.dask.layers.values()
            if hasattr(layer, "io_func")
        ]
        assert sorted(reader.columns) == sorted(needed), sample_graph.sample.name
        with optimising():
            (optimised,) = dask.optimize(sample_graph.summaries)
        assert len(optimised.dask.layers) == 1  # each read still fused with its summary


@pytest.mark.parametrize(
    ("entries", "step", "boundaries", "expected"),
    [
        # baskets of 200k: partitions are whole baskets
        (500_000, 200_000, [0, 200_000, 400_000, 500_000], [0, 200_000, 400_000, 500_000]),
        # two baskets per partition where they fit
        (554_279, 200_000, [0, 100_000, 200_000, 300_000, 400_000, 500_000, 554_279],
         [0, 200_000, 400_000, 554_279]),
        # one basket holding the whole small file: cut evenly when asked for small steps
        (898, 300, [0, 898], [0, 299, 599, 898]),
        # a long basket cluster after a short one
        (1000, 100, [0, 10, 1000], [0, 10, 109, 208, 307, 406, 505, 604, 703, 802, 901, 1000]),
    ],
)  # fmt: skip
def test_partitions_are_cut_at_basket_boundaries(
    entries: int, step: int, boundaries: list[int], expected: list[int]
) -> None:
    steps = partition_steps(entries, step, boundaries)
    assert [a for a, _ in steps] + [steps[-1][1]] == expected
    assert all(b - a <= step for a, b in steps)


def test_a_samples_tasks_carry_its_own_part_of_the_catalogue(mirror: Path) -> None:
    """Dask walks and hashes every argument of every task it builds: a sample's tasks
    carry the release narrowed to that sample (its group holding it alone), not the
    whole catalogue, so building a graph grows with the samples, not their square."""
    import pickle

    from analysis.inputs.catalogue import load_release

    release = load_release("2020")
    zee = release.samples["Zee"]
    narrowed = release.for_sample(zee)
    assert list(narrowed.samples) == ["Zee"]
    assert [(g.key, g.samples) for g in narrowed.groups] == [(zee.group, ("Zee",))]
    assert (narrowed.analysis, narrowed.lumi_fb, narrowed.tree) == (
        release.analysis,
        release.lumi_fb,
        release.tree,
    )
    graph = build(inspect(mirror, samples=["data_A", "Zee"]))
    for sample_graph in graph.samples:
        (summaries,) = sample_graph.outputs()[:1]
        layers = summaries.dask.layers
        (layer,) = [v for k, v in layers.items() if k.startswith("select-and-fill")]
        text = pickle.dumps(dict(layer))
        other = "Zee" if sample_graph.sample.name == "data_A" else "data_A"
        assert other.encode() not in text, sample_graph.sample.name
