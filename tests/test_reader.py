"""The partition reader: trees opened once per run and process, ISA-L inflate, outcomes."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import awkward as ak
import dask
import pytest
import uproot

from analysis.graph import interleave, sample_graph
from analysis.inputs import reader
from analysis.inputs.catalogue import load_release
from analysis.inputs.files import inspect_file
from analysis.physics.summary import SampleTotals, branches_for, partition_summary
from analysis.results.accounting import sample_totals
from analysis.standins import write_standins

from .helpers import PUBLISHED_COUNTS

RELEASE = load_release("2020")


def _compute_sync(graph) -> SampleTotals:
    """Compute in this process, so that this process's tree cache is the one used."""
    optimised = dask.optimize(*graph.outputs())
    computed = dask.compute(*optimised, scheduler="sync", optimize_graph=False)
    (summaries,) = computed
    return sample_totals(summaries, RELEASE)


def _graph(path: Path, sample: str, step_size: int):
    info = inspect_file(sample, str(path), "mini", branches_for(RELEASE.samples[sample], RELEASE))
    assert info.usable, info.error
    return sample_graph(RELEASE.samples[sample], [info], RELEASE, step_size)


def test_a_file_is_opened_once_per_run_whatever_its_partitions(
    mirror: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = mirror / "MC" / "mc_361106.Zee.4lep.root"
    graph = _graph(path, "Zee", step_size=100)  # 9 partitions
    assert graph.summaries.npartitions == 9
    reader.OPEN_TREES.clear()
    opened: list[str] = []
    original = uproot.open

    def counting_open(location, **options):  # the real open, counted
        opened.append(location)
        return original(location, **options)

    monkeypatch.setattr(uproot, "open", counting_open)
    totals = _compute_sync(graph)
    assert (totals.n_in, totals.n_out) == PUBLISHED_COUNTS["Zee"]
    assert opened == [str(path)]
    # the kept tree holds no arrays: uproot's per-file array cache is off
    (tree,) = reader.OPEN_TREES._trees.values()
    assert tree.file.array_cache is None


def test_a_new_run_reads_a_file_rewritten_in_place(tmp_path: Path) -> None:
    """The cache is scoped to one graph: a file replaced between runs is read afresh."""
    write_standins(tmp_path, ["ZH125_ZZ4lep"], events=2_000, seed=1)
    path = tmp_path / RELEASE.samples["ZH125_ZZ4lep"].path
    first = _compute_sync(_graph(path, "ZH125_ZZ4lep", step_size=500))
    write_standins(tmp_path, ["ZH125_ZZ4lep"], events=3_000, seed=2)
    second = _compute_sync(_graph(path, "ZH125_ZZ4lep", step_size=500))
    assert first.n_in == 2_000
    assert second.n_in == 3_000


def test_isal_inflate_gives_the_bytes_zlib_gives(mirror: Path) -> None:
    assert reader.use_fast_inflate() == "isal"
    path = mirror / "MC" / "mc_410000.ttbar_lep.4lep.root"
    branches = list(branches_for(RELEASE.samples["ttbar_lep"], RELEASE))
    decompressor = uproot.compression._decompress_ZLIB
    try:
        decompressor.library = "zlib"
        with uproot.open(path) as file:
            plain = file["mini"].arrays(branches)
    finally:
        reader.use_fast_inflate()
    assert decompressor.library == "isal"
    with uproot.open(path) as file:
        fast = file["mini"].arrays(branches)
    assert ak.array_equal(plain, fast)
    assert uproot.ZLIB.library == "zlib"  # writing in this process is left as it was


def test_a_partition_that_cannot_be_read_is_reported_not_raised(tmp_path: Path) -> None:
    form = ak.forms.from_json('{"class": "RecordArray", "fields": ["x"], "contents": ["float32"]}')
    read = reader.PartitionReader("mini", form)
    events = read((str(tmp_path / "absent.root"), 0, 10))
    assert len(events) == 0 and events.fields == ["x"]
    outcome = reader.read_outcome(events)
    assert outcome is not None
    assert outcome["location"].endswith("absent.root")
    assert outcome["exception"] == "FileNotFoundError"
    assert outcome["entry_start"] == 0 and outcome["entry_stop"] == 10


def test_a_failed_read_reaches_the_partition_summary(tmp_path: Path, mirror: Path) -> None:
    """The summary record of an unreadable partition names the file and the cause, and
    counts nothing; a good partition's record says where its events came from."""
    zee = RELEASE.samples["Zee"]
    path = mirror / zee.path
    info = inspect_file("Zee", str(path), "mini", branches_for(zee, RELEASE))
    read = reader.PartitionReader("mini", ak.forms.from_json(info.form))
    bad = partition_summary(read((str(tmp_path / "absent.root"), 0, 10)), zee, RELEASE)
    good = partition_summary(read((str(path), 0, 898)), zee, RELEASE)
    (bad_row,), (good_row,) = bad.to_list(), good.to_list()
    assert bad_row["exception"] == "FileNotFoundError"
    assert bad_row["location"].endswith("absent.root") and not any(bad_row["row"])
    assert good_row["exception"] is None and good_row["location"] == str(path)
    assert good_row["row"][:2] == list(PUBLISHED_COUNTS["Zee"])


@pytest.mark.parametrize("columns", [frozenset({"lep_pt"}), frozenset()])
def test_projection_keeps_the_files_branch_order(mirror: Path, columns: frozenset[str]) -> None:
    path = mirror / "MC" / "mc_361106.Zee.4lep.root"
    graph = _graph(path, "Zee", step_size=1000)
    info = inspect_file("Zee", str(path), "mini", ("lep_pt", "lep_eta", "mcWeight"))
    full = reader.PartitionReader("mini", ak.forms.from_json(info.form))
    projected = full.project_columns(columns)
    events = projected((str(path), 0, 100))
    assert events.fields == [c for c in ("lep_pt", "lep_eta", "mcWeight") if c in columns]
    assert len(events) == 100
    assert reader.read_outcome(events)["exception"] is None
    assert graph.summaries.npartitions == 1


def test_building_the_graph_computes_nothing(mirror: Path) -> None:
    """Every number comes from the one compute of a run, none from graph building
    (dask-awkward computes divisions eagerly when a lazy array is indexed by position)."""

    def refuse(*_args, **_kwargs):
        raise AssertionError("something was computed while building the graph")

    with dask.config.set(scheduler=refuse):
        graph = _graph(mirror / "MC" / "mc_361106.Zee.4lep.root", "Zee", step_size=100)
        dask.optimize(*graph.outputs())
    assert _compute_sync(graph).n_in == 898


def test_each_partition_is_one_task_read_and_summary_fused(mirror: Path) -> None:
    """No report beside the events: Dask fuses every read with its summary."""
    graph = _graph(mirror / "MC" / "mc_361106.Zee.4lep.root", "Zee", step_size=100)
    (optimised,) = dask.optimize(*graph.outputs())
    assert len(dict(optimised.__dask_graph__())) == graph.summaries.npartitions == 9


def test_partitions_of_files_read_side_by_side_alternate() -> None:
    a, b, c = (["a0", "a1", "a2"], ["b0", "b1"], ["c0"])
    assert interleave([a, b, c], 1) == ["a0", "a1", "a2", "b0", "b1", "c0"]
    assert interleave([a, b, c], 2) == ["a0", "b0", "a1", "b1", "a2", "c0"]
    assert interleave([a, b, c], 3) == ["a0", "b0", "c0", "a1", "b1", "a2"]
    many = [[f"{n}-{k}" for k in range(2)] for n in range(20)]
    ordered = interleave(many, 64)  # never more files at once than a worker keeps open
    assert ordered[: reader.TREE_CACHE_SIZE] == [f"{n}-0" for n in range(reader.TREE_CACHE_SIZE)]
    assert sorted(ordered) == sorted(p for parts in many for p in parts)


def test_the_total_does_not_depend_on_the_order_of_partitions(mirror: Path, tmp_path: Path) -> None:
    """Interleaved or not, one reader or eight: bit for bit the same sample totals."""
    path = mirror / "MC" / "mc_361106.Zee.4lep.root"
    (tmp_path / "copy.root").symlink_to(path)  # the same events, as a second file
    info = inspect_file("Zee", str(path), "mini", branches_for(RELEASE.samples["Zee"], RELEASE))
    copy = dataclasses.replace(info, location=str(tmp_path / "copy.root"))
    zee = RELEASE.samples["Zee"]
    totals = []
    for readers in (1, 2, 8):
        graph = sample_graph(zee, [info, copy], RELEASE, 100, readers=readers)
        totals.append(_compute_sync(graph))
    first = totals[0]
    assert (first.n_in, first.n_out) == (2 * 898, 2 * 243)
    for other in totals[1:]:
        assert (other.n_in, other.n_out, other.sumw) == (first.n_in, first.n_out, first.sumw)
        assert (other.hist.values(flow=True) == first.hist.values(flow=True)).all()
        assert (other.hist.variances(flow=True) == first.hist.variances(flow=True)).all()


def test_threads_asking_for_one_file_at_once_open_it_once(mirror: Path) -> None:
    """A worker's threads share its trees: partitions of one file read at the same time
    open the file once, and read what one thread alone reads."""
    from concurrent.futures import ThreadPoolExecutor

    path = str(mirror / "MC" / "mc_361106.Zee.4lep.root")
    info = inspect_file("Zee", path, "mini", branches_for(RELEASE.samples["Zee"], RELEASE))
    read = reader.PartitionReader("mini", ak.forms.from_json(info.form))
    steps = [(path, start, min(start + 100, 898)) for start in range(0, 898, 100)]
    opens = reader.OPEN_TREES.opens
    with ThreadPoolExecutor(len(steps)) as pool:
        parts = list(pool.map(read, steps))
    assert reader.OPEN_TREES.opens == opens + 1
    alone = reader.PartitionReader("mini", ak.forms.from_json(info.form))  # a new run
    assert ak.array_equal(ak.concatenate(parts), alone((path, 0, 898)))


def test_a_header_that_misses_a_range_costs_a_request_not_a_result(mirror: Path) -> None:
    """A recorded header answers the ranges it holds; any other goes to the file."""
    from analysis.inputs import headers

    path = str(mirror / "Data" / "data_A.4lep.root")
    with headers.HeaderFile(path, record=True) as recording:
        expected = recording.root_directory["mini"].arrays(["lep_pt"])
        header = recording.header
    assert header is not None
    ranges = headers.decode(header)
    assert headers.encode(ranges) == header and ranges[0][0] == 0
    full = headers.HeaderFile(path, header=header)
    assert ak.array_equal(full.root_directory["mini"].arrays(["lep_pt"]), expected)
    assert full.requests_not_covered == 0
    partial = headers.HeaderFile(path, header=headers.encode(ranges[:1]))  # file header only
    assert ak.array_equal(partial.root_directory["mini"].arrays(["lep_pt"]), expected)
    assert partial.requests_not_covered > 0
