"""CI check of a histogram document: the spec's numbers, the plotter's PNG, a second run.

Usage: python check_document.py DOCUMENT.json [--png FIGURE.png] [--same-as OTHER.json]
- the published numbers of shared/docs/analysis-spec.md (events in and passing, yields);
- with --png: the PNG is a figure tagged with this document's message id (the plotter's);
- with --same-as: every sample of either document is in both, with the same events in,
  events passing, yield and histogram, bin for bin (values and variances, exactly).
Exits non-zero naming each difference.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from analysis.results.document import HistogramDocument, from_json

# The notebook's published numbers (shared/docs/analysis-spec.md), as the tests read them.
PUBLISHED = json.loads(
    (Path(__file__).resolve().parents[1] / "tests" / "published.json").read_text()
)
PUBLISHED_COUNTS = {name: tuple(counts) for name, counts in PUBLISHED["counts"].items()}
PUBLISHED_YIELDS: dict[str, float] = PUBLISHED["yields"]


def spec_problems(document: HistogramDocument) -> list[str]:
    """Every difference from the spec's published numbers, one line each."""
    found = []
    for name, counts in PUBLISHED_COUNTS.items():
        sample = document.samples.get(name)
        if sample is None:
            found.append(f"{name}: not in the document")
            continue
        if (sample.n_in, sample.n_out) != counts:
            found.append(f"{name}: events in/passing {sample.n_in}/{sample.n_out}, not {counts}")
        if name in PUBLISHED_YIELDS and not math.isclose(
            sample.sumw, PUBLISHED_YIELDS[name], rel_tol=PUBLISHED["yields_rel_tol"]
        ):
            found.append(f"{name}: yield {sample.sumw}, not {PUBLISHED_YIELDS[name]}")
        if round(sample.hist.sum(flow=True).value) != sample.n_out and name.startswith("data"):
            found.append(f"{name}: histogram holds {sample.hist.sum(flow=True).value} events")
    return found


def png_problems(body: bytes, png_path: Path) -> list[str]:
    """The PNG must be a figure tagged with the id of the document ``body``."""
    found = []
    with Image.open(png_path) as image:
        tag = image.text.get("hzz-message-id")
        if image.format != "PNG" or image.width < 200:
            found.append(f"{png_path.name}: not a figure ({image.format} {image.size})")
    if tag != hashlib.sha256(body).hexdigest():
        found.append(f"{png_path.name}: message id {tag} is not that of the document")
    return found


def difference_problems(document: HistogramDocument, other: HistogramDocument) -> list[str]:
    """Every sample that differs between two runs' documents, one line each."""
    found = []
    for name in sorted(set(document.samples) | set(other.samples)):
        mine, theirs = document.samples.get(name), other.samples.get(name)
        if mine is None or theirs is None:
            found.append(f"{name}: in one document only")
            continue
        if (mine.n_in, mine.n_out, mine.sumw) != (theirs.n_in, theirs.n_out, theirs.sumw):
            found.append(
                f"{name}: events in/passing, yield {mine.n_in}/{mine.n_out}, {mine.sumw!r} "
                f"vs {theirs.n_in}/{theirs.n_out}, {theirs.sumw!r}"
            )
        a, b = mine.hist.view(flow=True), theirs.hist.view(flow=True)
        for field in ("value", "variance"):
            if not np.array_equal(a[field], b[field]):
                bins = np.flatnonzero(a[field] != b[field]).tolist()
                found.append(f"{name}: histogram {field}s differ in bins {bins}")
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("document", type=Path)
    parser.add_argument("--png", type=Path)
    parser.add_argument("--same-as", type=Path)
    args = parser.parse_args()
    body = args.document.read_bytes()
    document = from_json(body)
    found = spec_problems(document)
    if args.png:
        found += png_problems(body, args.png)
    if args.same_as:
        found += difference_problems(document, from_json(args.same_as.read_bytes()))
    for line in found:
        print(f"check_document: {args.document.name}: {line}", file=sys.stderr)
    if found:
        return 1
    samples = document.samples
    data = " / ".join(str(samples[f"data_{period}"].n_out) for period in "ABCD")
    mc = ", ".join(
        f"{name} {samples[name].n_out} / {samples[name].sumw:.6f}" for name in PUBLISHED_YIELDS
    )
    print(f"    {args.document.name}: numbers equal the spec: data {data}; {mc}")
    if args.png:
        print(f"    {args.png.name}: a figure tagged with the document's message id")
    if args.same_as:
        bins = sum(sample.hist.view(flow=True).size for sample in samples.values())
        print(
            f"    {args.document.name} = {args.same_as.name}: {len(samples)} samples, "
            f"{bins} bins, values and variances identical"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
