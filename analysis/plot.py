"""The ATLAS-style m4l figure of the notebook, drawn from a histogram document alone.

Uses matplotlib's object API (no pyplot state), so a long-running plotting service
can draw many figures without leaking or sharing anything between them, and a
notebook's axes can be drawn into without its backend being changed.
"""

from __future__ import annotations

import io

import mplhep
import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import AutoMinorLocator

from .binning import m4l_axis
from .catalogue import load_release
from .document import HistogramDocument

X_LABEL = r"4-lepton invariant mass $\mathrm{m_{4l}}$ [GeV]"


def _summarise(document: HistogramDocument, names: list[str], most: int = 5) -> str:
    """A few sample names, or their counts per group when there are many."""
    if len(names) <= most:
        return ", ".join(names)
    release = load_release(document.release)
    counts: dict[str, int] = {}
    for name in names:
        sample = release.samples.get(name)
        key = release.group(sample.group).label if sample else "other"
        counts[key] = counts.get(key, 0) + 1
    return ", ".join(f"{n} × {label}" for label, n in counts.items())


def _footnote(document: HistogramDocument) -> str:
    notes = []
    if document.generated:
        notes.append("simulated stand-ins: " + ", ".join(document.generated))
    if document.missing:
        notes.append("missing (not drawn): " + _summarise(document, document.missing))
    if document.skipped:
        bad = sorted({f.sample for f in document.skipped})
        notes.append("bad files skipped, samples incomplete: " + ", ".join(bad))
    return "\n".join(notes)


def draw(document: HistogramDocument, ax: Axes | None = None) -> Figure:
    """The figure of the spec: stacked MC, signal on top, data points, background band.

    Drawn into ``ax`` if given (its figure is returned), else into a new figure of its own.
    """
    binning = document.binning
    axis = m4l_axis(binning)
    headroom = load_release(document.release).analysis.y_headroom  # 1.6 (2020), 2 (2025)
    edges = axis.edges
    centres = axis.centers
    width = axis.widths

    if ax is None:
        figure = Figure(figsize=(7.0, 5.6), dpi=100)
        FigureCanvasAgg(figure)
        ax = figure.add_subplot()

    stack = [g for g in document.groups if g.role == "background"]
    stack += [g for g in document.groups if g.role == "signal"]
    stacked = [document.group_histogram(g.label) for g in stack]
    if stacked:
        mplhep.histplot(
            [h.values() for h in stacked],
            bins=edges,
            stack=True,
            histtype="fill",
            color=[g.colour for g in stack],
            label=[g.label for g in stack],
            ax=ax,
        )

    backgrounds = [
        document.group_histogram(g.label) for g in document.groups if g.role == "background"
    ]
    handles: list = []
    if backgrounds:
        total = sum(h.values() for h in backgrounds)
        error = np.sqrt(sum(h.variances() for h in backgrounds))
        band = ax.bar(
            centres,
            2 * error,
            width=width,
            bottom=total - error,
            color="none",
            hatch="////",
            alpha=0.5,
            linewidth=0,
            label="Stat. Unc.",
        )
        handles.append(band)

    data_max = 0.0
    for group in document.groups:
        if group.role != "data":
            continue
        counts = document.group_histogram(group.label).values()
        data_max = max(data_max, float(counts.max(initial=0.0)))
        ax.errorbar(
            centres,
            counts,
            yerr=np.sqrt(counts),
            fmt="o",
            color=group.colour,
            label=group.label,
        )

    ax.set_xlim(binning.low, binning.high)
    top = headroom * data_max
    if top <= 0:  # no data ran: scale to the stack instead
        stack_max = float(sum(h.values() for h in stacked).max()) if stacked else 1.0
        top = headroom * max(stack_max, 1.0)
    ax.set_ylim(0, top)
    ax.xaxis.set_minor_locator(AutoMinorLocator())
    ax.yaxis.set_minor_locator(AutoMinorLocator())
    ax.tick_params(which="both", direction="in", top=True, right=True)
    ax.set_xlabel(X_LABEL, fontsize=13, x=1, horizontalalignment="right")
    ax.set_ylabel(f"Events / {binning.width:g} GeV", y=1, horizontalalignment="right")

    ax.text(0.05, 0.93, "ATLAS Open Data", transform=ax.transAxes, fontsize=13)
    ax.text(0.05, 0.88, "for education", transform=ax.transAxes, style="italic", fontsize=8)
    lumi = f"{document.lumi_fb:g}"
    ax.text(
        0.05,
        0.82,
        r"$\sqrt{s}$ = 13 TeV, $\int$L dt = " + lumi + r" fb$^{-1}$",
        transform=ax.transAxes,
    )
    ax.text(0.05, 0.76, r"$H \rightarrow ZZ^* \rightarrow 4\ell$", transform=ax.transAxes)
    note = _footnote(document)
    if note:
        ax.text(
            0.98,
            0.55,
            note,
            transform=ax.transAxes,
            fontsize=7,
            ha="right",
            va="top",
            wrap=True,
        )

    # Legend order of the notebook: backgrounds, signal, data, Stat. Unc.
    by_label = dict(zip(*reversed(ax.get_legend_handles_labels()), strict=True))
    order = [g.label for g in stack] + [g.label for g in document.groups if g.role == "data"]
    legend_handles = [by_label[label] for label in order if label in by_label]
    legend_labels = [label for label in order if label in by_label]
    if handles:
        legend_handles.append(Patch(facecolor="none", hatch="////", edgecolor="black", alpha=0.5))
        legend_labels.append("Stat. Unc.")
    ax.legend(legend_handles, legend_labels, frameon=False)
    return ax.figure


def render_png(document: HistogramDocument, metadata: dict[str, str] | None = None) -> bytes:
    """The figure as PNG bytes, ready to be written atomically; ``metadata``: PNG text
    chunks (key → Latin-1 text) besides matplotlib's own."""
    buffer = io.BytesIO()
    draw(document).savefig(buffer, format="png", metadata=metadata)
    return buffer.getvalue()
