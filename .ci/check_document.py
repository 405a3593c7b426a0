"""CI container test: the stack's document holds the spec's numbers and the PNG is its figure.

Usage: python check_document.py DOCUMENT.json FIGURE.png. Run inside the worker image
(it needs only the project's own code); exits non-zero naming what differs.
"""

from __future__ import annotations

import hashlib
import math
import sys
from pathlib import Path

from PIL import Image

from analysis.document import from_json

# shared/docs/analysis-spec.md: events in, events passing; weighted yields.
PUBLISHED_COUNTS = {
    "data_A": (39, 27),
    "data_B": (156, 86),
    "data_C": (237, 146),
    "data_D": (400, 248),
    "Zee": (898, 243),
    "Zmumu": (684, 257),
    "ttbar_lep": (1031, 334),
}
PUBLISHED_YIELDS = {"Zee": 43.141792, "Zmumu": 51.99949, "ttbar_lep": 28.132816}


def problems(document_path: Path, png_path: Path) -> list[str]:
    """Every difference from the spec, as one line each."""
    body = document_path.read_bytes()
    document = from_json(body)
    found = []
    for name, counts in PUBLISHED_COUNTS.items():
        sample = document.samples.get(name)
        if sample is None:
            found.append(f"{name}: not in the document")
            continue
        if (sample.n_in, sample.n_out) != counts:
            found.append(f"{name}: events in/passing {sample.n_in}/{sample.n_out}, not {counts}")
        if name in PUBLISHED_YIELDS and not math.isclose(
            sample.sumw, PUBLISHED_YIELDS[name], rel_tol=1e-6
        ):
            found.append(f"{name}: yield {sample.sumw}, not {PUBLISHED_YIELDS[name]}")
        if round(sample.hist.sum(flow=True).value) != sample.n_out and name.startswith("data"):
            found.append(f"{name}: histogram holds {sample.hist.sum(flow=True).value} events")
    with Image.open(png_path) as image:
        tag = image.text.get("hzz-message-id")
        if image.format != "PNG" or image.width < 200:
            found.append(f"{png_path.name}: not a figure ({image.format} {image.size})")
    if tag != hashlib.sha256(body).hexdigest():
        found.append(f"{png_path.name}: message id {tag} is not that of {document_path.name}")
    return found


def main() -> int:
    document_path, png_path = (Path(arg) for arg in sys.argv[1:3])
    found = problems(document_path, png_path)
    for line in found:
        print(f"check_document: {line}", file=sys.stderr)
    if not found:
        samples = from_json(document_path.read_bytes()).samples
        data = " / ".join(str(samples[f"data_{period}"].n_out) for period in "ABCD")
        mc = ", ".join(
            f"{name} {samples[name].n_out} / {samples[name].sumw:.6f}" for name in PUBLISHED_YIELDS
        )
        print(f"    numbers equal the spec: data {data}; {mc}; PNG tagged with the document id")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
