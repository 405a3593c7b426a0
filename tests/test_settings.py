"""Defaults and environment variables live in one place (``cluster.defaults``), and each
variable is read once per process."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from cluster.defaults import ENVIRONMENT, environment, setting

ROOT = Path(__file__).resolve().parents[1]


def sources() -> list[Path]:
    return sorted([*(ROOT / "analysis").rglob("*.py"), *(ROOT / "cluster").rglob("*.py")])


def test_every_hzz_variable_named_in_the_code_is_listed_and_read_through_settings() -> None:
    named = set()
    for path in sources():
        text = path.read_text("utf-8")
        named |= set(re.findall(r"[\"'](HZZ_[A-Z_]+)[\"']", text))
        if path.name != "defaults.py":
            # Reads of the environment go through cluster.defaults.setting.
            assert not re.search(r"os\.(environ\.get|getenv)\(\s*[\"'A-Z]*HZZ", text), path
    assert named <= set(ENVIRONMENT), named - set(ENVIRONMENT)
    assert named == {name for name in ENVIRONMENT if name.startswith("HZZ_")}


def test_a_variable_is_read_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HZZ_QUEUE", "first")
    assert setting("HZZ_QUEUE") == "first"
    monkeypatch.setenv("HZZ_QUEUE", "second")  # the process already read it
    assert setting("HZZ_QUEUE") == "first"
    environment.cache_clear()
    assert setting("HZZ_QUEUE") == "second"
    with pytest.raises(KeyError, match="HZZ_NOT_A_SETTING"):
        setting("HZZ_NOT_A_SETTING")


def test_the_command_line_takes_its_defaults_from_the_environment(tmp_path: Path) -> None:
    env = {**os.environ, "HZZ_EXCHANGE": "from-env.x", "HZZ_QUEUE": "from-env.q"}
    result = subprocess.run(
        [sys.executable, "-m", "cluster.cli", "plotter", "--help"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=60,
    )
    assert result.returncode == 0
    assert "from-env.x" in result.stdout and "from-env.q" in result.stdout


def test_the_user_guide_lists_every_variable() -> None:
    guide = (ROOT / "docs" / "user-guide.md").read_text("utf-8")
    assert [name for name in ENVIRONMENT if f"| `{name}` |" not in guide] == []
