"""What a histogram document may ask of the figure: size caps shared by every producer and consumer.

A well-formed document (``document.from_json``) can still ask for tens of thousands of
names or labels thousands of characters long: minutes of drawing in a service that
serves everyone. The caps are far above what a release needs; ``hzz run`` checks its own
document with ``validate_document`` before writing or publishing it, and the plotter
every message with ``check_limits``, dead-lettering one over a cap.
"""

from __future__ import annotations

from analysis.results.document import DocumentError, HistogramDocument, from_json

#: Samples in a document (the largest release has 40).
MAX_SAMPLES = 500
#: Groups (stack entries and data series; releases have 4).
MAX_GROUPS = 20
#: Entries in each of ``missing``, ``generated`` and ``skipped``.
MAX_LISTED = 200
#: Characters of a sample name, release or colour.
MAX_NAME = 100
#: Characters of a group label (drawn as matplotlib mathtext in the legend).
MAX_LABEL = 100
#: Characters of the names the figure's footnote writes out in full (the stand-in
#: samples and the samples with skipped files): wrapped text costs about 0.5 s per
#: 1000 characters to lay out; the 2025 release's 40 sample names are 1600.
MAX_FOOTNOTE = 4000
#: Characters of a skipped file's location or cause.
MAX_DETAIL = 2000


def _cap(condition: bool, where: str, message: str) -> None:
    if not condition:
        raise DocumentError(f"{where}: {message}")


def _text(value: str, where: str, limit: int) -> None:
    _cap(len(value) <= limit, where, f"{len(value)} characters, at most {limit} allowed")


def check_limits(document: HistogramDocument) -> HistogramDocument:
    """``document`` if it is within every cap, else DocumentError naming the field."""
    _cap(
        len(document.samples) <= MAX_SAMPLES,
        "samples",
        f"{len(document.samples)} samples, at most {MAX_SAMPLES} allowed",
    )
    _cap(
        len(document.groups) <= MAX_GROUPS,
        "groups",
        f"{len(document.groups)} groups, at most {MAX_GROUPS} allowed",
    )
    for i, group in enumerate(document.groups):
        _text(group.label, f"groups[{i}].label", MAX_LABEL)
        _text(group.colour, f"groups[{i}].colour", MAX_NAME)
    for name in document.samples:
        _text(name, f"samples.{name[:MAX_NAME]!r}", MAX_NAME)
    for key in ("missing", "generated", "skipped"):
        entries = getattr(document, key)
        _cap(
            len(entries) <= MAX_LISTED,
            key,
            f"{len(entries)} entries, at most {MAX_LISTED} allowed",
        )
    for i, name in enumerate([*document.missing, *document.generated]):
        _text(name, f"missing/generated[{i}]", MAX_NAME)
    drawn = [*document.generated, *{entry.sample for entry in document.skipped}]
    _cap(
        sum(len(name) + 2 for name in drawn) <= MAX_FOOTNOTE,
        "generated/skipped",
        f"the sample names to write on the figure exceed {MAX_FOOTNOTE} characters",
    )
    for i, entry in enumerate(document.skipped):
        _text(entry.sample, f"skipped[{i}].sample", MAX_NAME)
        _text(entry.file, f"skipped[{i}].file", MAX_DETAIL)
        _text(entry.cause, f"skipped[{i}].cause", MAX_DETAIL)
    return document


def validate_document(document: HistogramDocument) -> HistogramDocument:
    """The document as a receiver will read it: its JSON parsed back by ``from_json``
    (every field checked: finite numbers, histograms, names) and within the caps.
    DocumentError says which field is wrong."""
    return check_limits(from_json(document.to_json()))
