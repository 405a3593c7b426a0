"""The titled shell blocks of a document, for CI to run exactly as written.

A block opened with ```` ```bash title="NAME" ```` in docs/*.md is a step a reader runs
on one machine; a CI script runs it with ``bash -euc "$(python .ci/doc_blocks.py FILE
NAME)"`` on the machine it names, with the variables the text tells the reader to set.
``--list FILE`` prints the titles (tests/test_docs.py checks that a CI script runs each).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

BLOCK = re.compile(r'^```bash title="([^"]+)"\n(.*?)^```', flags=re.S | re.M)


def blocks(path: Path) -> dict[str, str]:
    """Title → the block's text, in the document's order."""
    return {title: body for title, body in BLOCK.findall(path.read_text(encoding="utf-8"))}


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "--list":
        print("\n".join(blocks(Path(argv[1]))))
        return 0
    if len(argv) != 2:
        print("usage: doc_blocks.py FILE TITLE | --list FILE", file=sys.stderr)
        return 2
    found = blocks(Path(argv[0]))
    if argv[1] not in found:
        print(f"doc_blocks: no block titled {argv[1]!r} in {argv[0]}", file=sys.stderr)
        return 1
    sys.stdout.write(found[argv[1]])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
