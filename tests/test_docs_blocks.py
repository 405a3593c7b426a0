"""Every titled shell block of the docs is run by CI, exactly as written."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def titles(doc: Path) -> list[str]:
    listed = subprocess.run(
        [sys.executable, str(ROOT / ".ci" / "doc_blocks.py"), "--list", str(doc)],
        capture_output=True,
        text=True,
        check=True,
    )
    return [line for line in listed.stdout.splitlines() if line]


def test_every_titled_block_is_run_by_a_ci_script() -> None:
    scripts = "\n".join(p.read_text("utf-8") for p in (ROOT / ".ci").glob("*.sh"))
    found = {doc.name: titles(doc) for doc in (ROOT / "docs").glob("*.md")}
    assert found["deployment.md"], "the several-machines steps are titled blocks"
    for doc, names in found.items():
        for title in names:
            assert f"docs/{doc} '{title}'" in scripts or f'docs/{doc} "{title}"' in scripts, (
                f"{doc}: block {title!r} is run by no script in .ci/"
            )
