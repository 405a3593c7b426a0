"""Plain-text reports of a histogram document for the terminal."""

from __future__ import annotations

from analysis.results.document import HistogramDocument


def yields_table(document: HistogramDocument) -> str:
    """Sample, events in, events passing and weighted yield, one row per sample."""
    rows = [("sample", "events in", "passing", "weighted yield")]
    for name, s in document.samples.items():
        marker = " *" if name in document.generated else ""
        rows.append((name + marker, f"{s.n_in}", f"{s.n_out}", f"{s.sumw:.8g}"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for i, row in enumerate(rows):
        cells = [row[0].ljust(widths[0])]
        cells += [cell.rjust(width) for cell, width in zip(row[1:], widths[1:], strict=True)]
        lines.append("  ".join(cells).rstrip())
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    if document.generated:
        lines.append("* simulated stand-in, not real ATLAS data")
    if document.missing:
        lines.append("missing: " + ", ".join(document.missing))
    for skipped in document.skipped:
        lines.append(f"skipped bad file ({skipped.sample}): {skipped.file}: {skipped.cause}")
    return "\n".join(lines)
