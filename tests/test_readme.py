"""The README's quick start runs as written: its shell commands, in a directory laid
out as the README assumes (the repository beside ``shared/``), and the figure it
promises has the Higgs peak's samples in it."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from analysis.results.document import from_json
from analysis.results.outputs import outputs_in

from .helpers import PUBLISHED_COUNTS, checkout_in

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"


def section_commands(title: str) -> list[str]:
    """The commands of the first ```bash block under the heading ``title``."""
    text = README.read_text("utf-8")
    section = text[text.index(f"## {title}") :]
    (block,) = re.findall(r"```bash\n(.*?)```", section, flags=re.S)[:1]
    block = re.sub(r"\\\n\s*", "", block)  # a command continued on the next line
    lines = [line.split("  #")[0].strip() for line in block.splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


@pytest.mark.cluster
def test_the_first_command_runs_the_main_job(tmp_path: Path) -> None:
    # The set-up half (a venv, pip install) is what .ci/run does; then the main job.
    checkout = checkout_in(tmp_path)
    setup = section_commands("The two commands")[0]
    main_job = setup.split(" && ")[-1]
    assert main_job.startswith(".venv/bin/hzz run "), setup
    result = subprocess.run(
        ["bash", "-c", main_job], cwd=checkout, capture_output=True, text=True, timeout=900
    )
    assert result.returncode == 0, result.stderr
    (document_path,) = outputs_in(checkout / "plots", ".json")
    assert outputs_in(checkout / "plots", ".png")
    document = from_json(document_path.read_bytes())
    for name, counts in PUBLISHED_COUNTS.items():
        sample = document.samples[name]
        assert (sample.n_in, sample.n_out) == counts, name


@pytest.mark.cluster
def test_the_quick_start_shows_the_higgs_peak(tmp_path: Path) -> None:
    checkout = checkout_in(tmp_path)
    commands = section_commands("Quick start")
    assert [c.split()[1] for c in commands] == ["generate", "run"]
    for command in commands:
        result = subprocess.run(
            ["bash", "-c", command], cwd=checkout, capture_output=True, text=True, timeout=900
        )
        assert result.returncode == 0, f"{command}: {result.stderr}"
    (document_path,) = outputs_in(checkout / "peak", ".json")
    assert outputs_in(checkout / "peak", ".png")
    document = from_json(document_path.read_bytes())
    assert not document.missing
    assert sorted(document.generated) == sorted(
        ["llll", "ggH125_ZZ4lep", "VBFH125_ZZ4lep", "WH125_ZZ4lep", "ZH125_ZZ4lep"]
    )
    for name, counts in PUBLISHED_COUNTS.items():
        sample = document.samples[name]
        assert (sample.n_in, sample.n_out) == counts, name
    # The peak: the signal's weighted events sit around 125 GeV.
    signal = sum(document.samples[n].hist for n in document.generated if n != "llll")
    values = signal.values()
    centres = signal.axes[0].centers
    assert 115 < centres[values.argmax()] < 135
    assert "ggH125_ZZ4lep" in result.stdout  # the yields table
