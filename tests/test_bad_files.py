"""Bad input files: a clear stop naming the file and cause, or (``--skip-bad-files``)
the file left out whole, listed in the document, and every other number unchanged."""

from __future__ import annotations

from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import uproot

from analysis import EventsLostError, build, inspect
from analysis.inputs.catalogue import load_release
from analysis.inputs.files import FileInfo, inspect_file
from analysis.physics.summary import row_length, summary_record
from analysis.results.accounting import check_accounting, leave_out, read_failures, sample_totals
from analysis.results.document import from_json
from analysis.results.outputs import outputs_in
from analysis.standins import write_standins

from .helpers import PUBLISHED_COUNTS, hzz, run_args

pytestmark = pytest.mark.faults  # hzz selftest --faults

ZEE = "MC/mc_361106.Zee.4lep.root"


def _replace(mirror: Path, relative: str, content: bytes) -> Path:
    path = mirror / relative
    path.unlink()
    path.write_bytes(content)
    return path


def _corrupt_a_basket(real: Path) -> bytes:
    """The real file with the middle of lep_pt's first basket zeroed: headers intact."""
    with uproot.open(real) as f:
        branch = f["mini"]["lep_pt"]
        seek = int(branch.member("fBasketSeek")[0])
        size = int(branch.member("fBasketBytes")[0])
    data = bytearray(real.read_bytes())
    start = seek + size // 2
    data[start : start + 64] = bytes(64)
    return bytes(data)


def _write_tree(path: Path, tree: str, source: Path, drop: str | None = None) -> None:
    with uproot.open(source) as f:
        arrays = f["mini"].arrays(
            ["lep_pt", "lep_eta", "lep_phi", "lep_E", "lep_charge", "lep_type"], library="ak"
        )
    columns = {name: arrays[name] for name in arrays.fields if name != drop}
    path.unlink()
    with uproot.recreate(path) as out:
        out.mktree(tree, {k: v.type for k, v in columns.items()})
        out[tree].extend(columns)


def test_inspection_names_the_cause_of_each_bad_file(fake_mirror: Path, mirror: Path) -> None:
    branches = ("lep_pt", "lep_type")
    data_a = fake_mirror / "Data" / "data_A.4lep.root"
    good = inspect_file("data_A", str(data_a), "mini", branches)
    assert good.usable and good.entries == 39 and not good.generated

    _write_tree(data_a, "events", mirror / "Data" / "data_A.4lep.root")
    wrong_tree = inspect_file("data_A", str(data_a), "mini", branches)
    assert not wrong_tree.usable and "no tree 'mini'" in (wrong_tree.error or "")
    assert "events" in (wrong_tree.error or "")

    _write_tree(data_a, "mini", mirror / "Data" / "data_A.4lep.root", drop="lep_type")
    no_branch = inspect_file("data_A", str(data_a), "mini", branches)
    assert "lacks branch(es) lep_type" in (no_branch.error or "")

    absent = inspect_file("data_A", str(fake_mirror / "nothing.root"), "mini", branches)
    assert absent.missing


WH = "MC/mc_341964.WH125_ZZ4lep.4lep.root"


@pytest.fixture
def corrupt_standin(tmp_path: Path) -> tuple[Path, Path]:
    """A generated WH file (real baskets, unlike the small real files whose baskets are
    embedded in the tree header) with one basket of lep_pt broken; its directory."""
    directory = tmp_path / "standins"
    write_standins(directory, ["WH125_ZZ4lep"], events=20_000, seed=3)
    path = directory / WH
    path.write_bytes(_corrupt_a_basket(path))
    return directory, path


@pytest.mark.cluster
def test_a_corrupt_basket_stops_the_run_naming_the_file(
    mirror: Path, corrupt_standin: tuple[Path, Path], tmp_path: Path
) -> None:
    directory, bad = corrupt_standin
    info = inspect_file("WH125_ZZ4lep", str(bad), "mini", ("lep_pt",))
    assert info.usable and info.entries == 20_000  # the header is fine
    out = tmp_path / "plots"
    args = run_args(mirror, out, "--data", str(directory), "--samples", "data_A,WH125_ZZ4lep")
    result = hzz(*args, "--step-size", "5000")
    assert result.returncode == 2, result.stderr
    assert str(bad) in result.stderr and "nothing written" in result.stderr
    assert not out.exists() or not any(out.iterdir())

    result = hzz(*args, "--step-size", "5000", "--skip-bad-files")
    assert result.returncode == 0, result.stderr
    (doc_path,) = outputs_in(out, ".json")
    document = from_json(doc_path.read_bytes())
    assert [(s.sample, s.file) for s in document.skipped] == [("WH125_ZZ4lep", str(bad))]
    assert "WH125_ZZ4lep" not in document.samples  # 3 of 4 partitions were fine: not counted
    assert (document.samples["data_A"].n_in, document.samples["data_A"].n_out) == PUBLISHED_COUNTS[
        "data_A"
    ]


@pytest.mark.parametrize("damage", ["not ROOT", "truncated"])
@pytest.mark.cluster
def test_skip_bad_files_leaves_the_file_out_whole_and_lists_it(
    damage: str, fake_mirror: Path, mirror: Path, tmp_path: Path
) -> None:
    real = (mirror / ZEE).read_bytes()
    content = {
        "not ROOT": b"<html>503 Service Unavailable</html>\n" * 50,
        "truncated": real[: len(real) // 3],
    }[damage]
    bad = _replace(fake_mirror, ZEE, content)
    out = tmp_path / "plots"
    result = hzz(
        *run_args(
            fake_mirror, out, "--groups", "data,z_tt", "--step-size", "300", "--skip-bad-files"
        )
    )
    assert result.returncode == 0, result.stderr
    assert "skipped bad file (Zee)" in result.stdout and str(bad) in result.stdout
    (doc_path,) = outputs_in(out, ".json")
    document = from_json(doc_path.read_bytes())
    assert [(s.sample, s.file) for s in document.skipped] == [("Zee", str(bad))]
    assert document.skipped[0].cause
    assert "Zee" not in document.samples
    for name in ("data_A", "data_B", "data_C", "data_D", "Zmumu", "ttbar_lep"):
        sample = document.samples[name]
        assert (sample.n_in, sample.n_out) == PUBLISHED_COUNTS[name]
    assert len(outputs_in(out, ".png")) == 1


def test_event_accounting_catches_a_lost_partition(mirror: Path) -> None:
    release = load_release("2020")
    graph = build(inspect(mirror, samples=["Zee"]))

    def row(n_in: int) -> ak.Array:  # computed summaries: one partition's record
        values = np.zeros(row_length(release))
        values[:3] = (n_in, 243, 43.1)
        location = str(mirror / "MC/mc_361106.Zee.4lep.root")
        return summary_record(values, {"location": location, "entry_stop": n_in})

    with pytest.raises(EventsLostError, match=r"Zee: read 897 events but its files hold 898"):
        check_accounting(graph.computed([(row(897),)]))
    check_accounting(graph.computed([(row(898),)]))  # complete: no error


def test_a_bad_file_is_dropped_whole_and_the_sample_keeps_its_good_files(mirror: Path) -> None:
    """Two files of one sample, the second with one unreadable partition: the sample is
    counted from the first file alone (no recompute), the second is listed as skipped."""
    release = load_release("2020")
    graph = build(inspect(mirror, samples=["Zee"]))
    good_info = graph.samples[0].files[0]
    bad_info = FileInfo("Zee", "/elsewhere/zee-copy.root", entries=898)
    graph.samples[0].files.append(bad_info)

    def record(location: str, n_in: int, error: str | None = None) -> ak.Array:
        values = np.zeros(row_length(release))
        values[:3] = (n_in, n_in // 4, n_in / 10)
        outcome = {"location": location, "entry_stop": n_in, "message": error}
        return summary_record(values, outcome | {"exception": "OSError" if error else None})

    records = [
        record(good_info.location, 500),
        record(good_info.location, 398),
        record(bad_info.location, 450),
        record(bad_info.location, 0, "basket 3 is corrupt"),
    ]
    computed = graph.computed([(ak.concatenate(records),)])
    failures = read_failures(computed)
    assert [(f.sample, f.location) for f in failures] == [("Zee", bad_info.location)]
    assert "basket 3 is corrupt" in failures[0].cause
    kept = leave_out(computed, failures)
    assert [f.location for f in kept.samples[0].files] == [good_info.location]
    assert [(s.sample, s.file) for s in kept.skipped] == [("Zee", bad_info.location)]
    totals = sample_totals(kept.samples[0].summaries, release)
    assert (totals.n_in, totals.n_out, totals.sumw) == (898, 125 + 99, 89.8)
    check_accounting(kept)  # the kept partitions cover the kept file exactly
