"""``hzz run`` end to end, as a user runs it: real files, real worker processes."""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

import pytest

from analysis.results.document import from_json
from analysis.results.outputs import is_output_name, outputs_in

from .helpers import PUBLISHED_COUNTS, PUBLISHED_YIELDS, ROOT, YIELD_REL_TOL, hzz, run_args


@pytest.mark.cluster
def test_run_writes_the_figure_and_the_document(mirror: Path, tmp_path: Path) -> None:
    out = tmp_path / "plots"
    result = hzz(*run_args(mirror, out, "--allow-missing"))
    assert result.returncode == 0, result.stderr
    files = sorted(p.name for p in out.iterdir())
    assert len(files) == 2 and all(is_output_name(f, Path(f).suffix) for f in files), files
    png, doc_path = (out / files[1]), (out / files[0])
    assert png.suffix == ".png" and png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert png.stem == doc_path.stem
    document = from_json(doc_path.read_bytes())
    assert sorted(document.missing) == sorted(
        ["llll", "ggH125_ZZ4lep", "VBFH125_ZZ4lep", "WH125_ZZ4lep", "ZH125_ZZ4lep"]
    )
    for name, (n_in, n_out) in PUBLISHED_COUNTS.items():
        assert (document.samples[name].n_in, document.samples[name].n_out) == (n_in, n_out)
    for name, value in PUBLISHED_YIELDS.items():
        assert document.samples[name].sumw == pytest.approx(value, rel=YIELD_REL_TOL)
    # The yields table, the dashboard address and the files are printed.
    assert "Dask dashboard: http" in result.stdout
    assert re.search(r"^Zee\s+898\s+243\s+43\.14179", result.stdout, re.M)
    assert str(png) in result.stdout
    assert "llll" in result.stdout  # listed as missing


@pytest.mark.cluster
def test_each_progress_bar_says_what_it_counts(mirror: Path, tmp_path: Path) -> None:
    args = [a for a in run_args(mirror, tmp_path, "--samples", "Zee") if a != "--no-progress"]
    result = hzz(*args)
    assert result.returncode == 0, result.stderr
    text = result.stdout
    inspecting = text.index("inspecting the files:\n")
    reading = text.index("reading the events and filling the histograms:\n")
    table = text.index("sample  ")
    assert "% Completed" not in text[:inspecting], text  # no bar without its label
    assert "100% Completed" in text[inspecting:reading], text
    assert "100% Completed" in text[reading:table], text


@pytest.mark.cluster
def test_a_second_run_in_the_same_minute_does_not_overwrite(mirror: Path, tmp_path: Path) -> None:
    out = tmp_path / "plots"
    first = hzz(*run_args(mirror, out, "--samples", "data_A"))
    second = hzz(*run_args(mirror, out, "--samples", "data_A"))
    assert first.returncode == 0 and second.returncode == 0, second.stderr
    pngs = outputs_in(out, ".png")
    assert len(pngs) == 2
    assert len(outputs_in(out, ".json")) == 2


@pytest.mark.faults
@pytest.mark.cluster
def test_a_missing_file_is_a_named_error_and_nothing_is_written(
    fake_mirror: Path, tmp_path: Path
) -> None:
    out = tmp_path / "plots"
    result = hzz(*run_args(fake_mirror, out, "--groups", "data,z_tt"))
    assert result.returncode == 0, result.stderr  # all present
    (fake_mirror / "MC" / "mc_361107.Zmumu.4lep.root").unlink()
    out2 = tmp_path / "plots2"
    result = hzz(*run_args(fake_mirror, out2, "--groups", "data,z_tt"))
    assert result.returncode != 0
    assert "Zmumu" in result.stderr and "mc_361107.Zmumu.4lep.root" in result.stderr
    assert not out2.exists() or not any(out2.iterdir())


@pytest.mark.faults
@pytest.mark.cluster
def test_a_non_root_file_is_an_error_that_names_it(fake_mirror: Path, tmp_path: Path) -> None:
    bad = fake_mirror / "MC" / "mc_361106.Zee.4lep.root"
    bad.unlink()
    bad.write_bytes(b"<html>404 Not Found</html>\n" * 100)
    out = tmp_path / "plots"
    result = hzz(*run_args(fake_mirror, out, "--samples", "data_A,Zee", "--allow-missing"))
    assert result.returncode != 0
    assert str(bad) in result.stderr
    assert not out.exists() or not any(out.iterdir())


@pytest.mark.faults
@pytest.mark.cluster
def test_a_truncated_root_file_is_an_error_that_names_it(
    fake_mirror: Path, mirror: Path, tmp_path: Path
) -> None:
    bad = fake_mirror / "MC" / "mc_410000.ttbar_lep.4lep.root"
    bad.unlink()
    real = (mirror / "MC" / "mc_410000.ttbar_lep.4lep.root").read_bytes()
    bad.write_bytes(real[: len(real) // 2])
    out = tmp_path / "plots"
    result = hzz(*run_args(fake_mirror, out, "--samples", "ttbar_lep"))
    assert result.returncode != 0
    assert str(bad) in result.stderr
    assert "hzz run: to leave bad files out, each listed with its cause: --skip-bad-files" in (
        result.stderr
    )
    assert not out.exists() or not any(out.iterdir())


@pytest.mark.faults
def test_unknown_sample_and_bad_options_are_named(mirror: Path, tmp_path: Path) -> None:
    result = hzz(*run_args(mirror, tmp_path, "--samples", "Zeee"))
    assert result.returncode == 2 and "Zeee" in result.stderr
    result = hzz(*run_args(tmp_path / "nowhere", tmp_path))
    assert result.returncode == 2 and "nowhere" in result.stderr
    result = hzz("run", "--step-size", "lots")
    assert result.returncode == 2 and "lots" in result.stderr


def test_building_the_command_line_imports_nothing_heavy() -> None:
    """The parser is built before ``hzz run`` starts its cluster: it must stay light."""
    heavy = ("numpy", "uproot", "awkward", "hist", "dask", "distributed", "pika", "requests")
    code = (
        "import sys; from cluster.cli import build_parser; build_parser(); "
        f"print(','.join(sorted(m for m in {heavy!r} if m in sys.modules)))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == ""


def test_help_documents_the_options() -> None:
    result = hzz("run", "--help")
    assert result.returncode == 0
    for option in (
        "--data",
        "--out",
        "--workers",
        "--scheduler",
        "--step-size",
        "--samples",
        "--groups",
        "--allow-missing",
        "UTC",
    ):
        assert option in result.stdout


@pytest.mark.parametrize(
    ("argv", "usage", "hint"),
    [
        (["rnu"], "usage: hzz [-h]", "did you mean 'run'?"),
        (["run", "--samles", "Zee"], "usage: hzz run [-h]", "did you mean '--samples'?"),
        (["run", "--wokers=2"], "usage: hzz run [-h]", "did you mean '--workers'?"),
        (["cluster", "upp"], "usage: hzz cluster [-h]", "did you mean 'up'?"),
        (["cluster", "up", "--wrkers", "3"], "usage: hzz cluster up [-h]", "'--workers'?"),
    ],
)
def test_a_typo_shows_the_commands_usage_and_the_closest_name(
    argv: list[str], usage: str, hint: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from cluster.cli import main

    with pytest.raises(SystemExit) as stopped:
        main(argv)
    assert stopped.value.code == 2
    stderr = capsys.readouterr().err
    assert stderr.startswith(usage) and hint in stderr, stderr


def test_verbose_is_accepted_after_the_subcommand_too() -> None:
    from cluster.cli import build_parser

    parser = build_parser()
    for argv in (["-v", "fit", "x.json"], ["fit", "x.json", "-v"], ["fit", "-v", "x.json"]):
        assert parser.parse_args(argv).verbose is True, argv
    assert parser.parse_args(["fit", "x.json"]).verbose is False
    assert parser.parse_args(["cluster", "status", "--verbose"]).verbose is True


def test_help_texts_show_what_a_reader_should_see() -> None:
    from cluster.cli import build_parser

    parser = build_parser()
    (commands,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    for name, sub in commands.choices.items():
        text = sub.format_help()
        assert "%%" not in text, name  # argparse formats help with %, never descriptions
    # Every page and section a help text points at exists.
    pointers = 0
    for name, sub in commands.choices.items():
        text = " ".join(sub.format_help().split())
        for page, section in re.findall(r"(docs/[\w-]+\.md)(?:, '([^']+)')?", text):
            pointers += 1
            headings = re.findall(r"^#+ (.*)$", (ROOT / page).read_text("utf-8"), re.M)
            assert not section or section in headings, (name, page, section)
    assert pointers >= 2
