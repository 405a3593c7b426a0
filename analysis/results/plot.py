"""The ATLAS-style m4l figure, drawn from a histogram document alone (and a fit result).

The simulated groups stacked with the hatched band of their uncertainty, the data with
Poisson (Garwood) intervals, a data/prediction ratio panel, the ATLAS Open Data label, a
legend of what is drawn, and a strip naming what is missing, simulated or left out
(docs/figure.md). matplotlib's object API only: a long-running service draws many
figures without sharing state, and a notebook's axes are drawn into as they are.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from typing import TYPE_CHECKING

import mplhep
import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import AutoMinorLocator, MaxNLocator

from analysis.inputs.binning import m4l_axis
from analysis.physics.systematics import NORMALISATIONS, SHAPES, symmetric_uncertainty
from analysis.results.document import GroupStyle, HistogramDocument

if TYPE_CHECKING:
    import hist

    from analysis.inputs.catalogue import Release
    from analysis.results.fit import FitResult

DPI = 150  # print quality, and about 1 s a figure for the plotting service
BAND_HATCH = "////"
RATIO_RANGE = (0.0, 2.0)  # the data / prediction panel; a point above it is an arrow


def garwood(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper 68.27 % Poisson (Garwood) error bars of observed counts.

    The quantiles of χ²(2n)/2 are those of Γ(n): ``chi2.ppf(q, 2n) / 2`` is computed by
    scipy as ``gammaincinv(n, q)``, the same numbers, without importing scipy.stats
    (about a second, on the path of every figure).
    """
    from scipy.special import gammaincinv

    counts = np.asarray(counts, dtype=float)
    alpha = 1.0 - 0.682689492137086  # ±1σ of a Gaussian
    with np.errstate(invalid="ignore"):  # n = 0 has no lower quantile: 0 is used
        low = np.where(counts > 0, gammaincinv(counts, alpha / 2), 0.0)
    high = gammaincinv(counts + 1, 1 - alpha / 2)
    return counts - low, high - counts


def _labels(document: HistogramDocument, names: list[str]) -> str:
    """The physics labels (group legend labels) of sample names, in drawing order."""
    groups = []
    for name in names:
        group = document.group_of(name)
        label = group.label if group else name
        if label not in groups:
            groups.append(label)
    return ", ".join(groups)


def notes(document: HistogramDocument) -> list[str]:
    """The strip under the axes: how far a run still computing is, and what is missing,
    partial, simulated, incomplete or out of range. A group is "not drawn" only when
    none of its samples ran."""
    lines = []
    if document.partial is not None:
        progress = document.partial
        lines.append(
            f"partial: {progress.done}/{progress.total} partitions "
            f"({progress.events:,} events read so far)"
        )
    if document.generated:
        lines.append("Simulated stand-ins: " + _labels(document, document.generated))
        lines.append(
            "    (yields calibrated to the published ones; m4l shapes are not the real ones)"
        )
    absent = [n for n in document.missing if _read_of(document, n) == 0]
    if absent:
        lines.append("Not available, not drawn: " + _labels(document, absent))
    for group in document.groups:
        read = document.samples_of(group.label)
        if not read or len(read) >= len(group.samples):
            continue
        if group.role == "data":  # the luminosity is the release's, not that of what was read
            names = ", ".join(read) if len(read) <= 2 else f"{read[0]}, …"
            lines.append(
                f"Partial data, {len(read)} of {len(group.samples)} samples ({names}): "
                f"the MC is normalised to the full {document.lumi_fb:g} fb$^{{-1}}$ shown"
            )
        else:
            lines.append(f"Partial: {len(read)} of {len(group.samples)} samples of {group.label}")
    if document.skipped:
        bad = sorted({f.sample for f in document.skipped})
        lines.append("Unreadable files left out, incomplete: " + _labels(document, bad))
    low, high = document.binning.low, document.binning.high
    for group in _data_groups(document):
        h = document.group_histogram(group.label)
        outside = h.sum(flow=True).value - h.sum().value
        if outside and not h.values().any():
            lines.append(
                f"{group.label}: all {outside:g} selected events lie outside "
                f"{low:g}–{high:g} GeV (under- or overflow), none to draw"
            )
    return lines


def _read_of(document: HistogramDocument, sample: str) -> int:
    """How many samples of ``sample``'s group ran."""
    group = document.group_of(sample)
    return len(document.samples_of(group.label)) if group else 0


def _data_groups(document: HistogramDocument) -> list[GroupStyle]:
    """The data groups that ran."""
    return [g for g in document.groups if g.role == "data" and document.samples_of(g.label)]


def prediction(
    document: HistogramDocument, fit: FitResult | None = None
) -> tuple[list[tuple[str, str, np.ndarray]], np.ndarray, np.ndarray, bool]:
    """The stacked groups (label, colour, per-bin yield), the total, its uncertainty per
    bin, and whether that includes systematics. Pre-fit: statistical (√Σw²) ⊕ the
    variations ⊕ the ZZ* normalisation; post-fit: the fit's propagated uncertainty."""
    order = [g for g in document.groups if g.role == "background"]
    order += [g for g in document.groups if g.role == "signal"]
    drawn = [g for g in order if document.samples_of(g.label)]
    stack = []
    bins = document.binning.bins
    if fit is not None:
        for g in drawn:
            stack.append((g.label, g.colour, np.asarray(fit.postfit_bins.get(g.key, [0.0] * bins))))
        total = sum((s[2] for s in stack), start=np.zeros(bins))
        return stack, total, np.asarray(fit.postfit_error, dtype=float), True
    stat2 = np.zeros(bins)
    varied: dict[str, np.ndarray] = {}
    systematic = False
    for g in drawn:
        h = document.group_histogram(g.label)
        stack.append((g.label, g.colour, h.values()))
        stat2 += h.variances()
        for key in (name for s in SHAPES for name in (s.up, s.down)):
            if document.group_has(g.label, key):
                systematic = True
                varied[key] = varied.get(key, np.zeros(bins)) + (
                    document.group_histogram(g.label, key).values()
                )
            else:  # a group without the variation counts as nominal in it
                varied[key] = varied.get(key, np.zeros(bins)) + h.values()
    total = sum((s[2] for s in stack), start=np.zeros(bins))
    syst = symmetric_uncertainty(total, varied, SHAPES) if systematic else np.zeros(bins)
    if systematic:  # the normalisations of the model: ± a fraction of a group's yield
        for norm in NORMALISATIONS:
            for g, (_, _, values) in zip(drawn, stack, strict=True):
                if g.key == norm.group:
                    syst = np.hypot(syst, norm.norm * values)
    return stack, total, np.sqrt(stat2 + syst**2), systematic


def draw(
    document: HistogramDocument, fit: FitResult | None = None, ax: Axes | None = None
) -> Figure:
    """The figure: pre-fit, or post-fit with ``fit`` (the prediction scaled by the fit).

    Drawn into ``ax`` if given (the ratio panel is split off under it, the notes go
    under that; its figure is returned), else into a new figure of its own.
    """
    lines = notes(document)
    own_figure = ax is None
    figure, ax, ratio_ax = _panels(ax, lines)
    axis = m4l_axis(document.binning)
    stack, total, error, systematic = prediction(document, fit)
    if stack:
        _draw_prediction(ax, ratio_ax, axis, stack, total, error)
    data_groups = _data_groups(document)
    data_top, drawn_data = _draw_data(document, data_groups, ax, ratio_ax, axis, total)
    # The notebooks' range: headroom × the highest data bin (the stack's without data).
    stack_top = float((total + error).max(initial=0.0)) if stack else 0.0
    top = document.figure.y_headroom * (data_top if data_top > 0 else max(stack_top, 1.0))
    _draw_axes(document, ax, ratio_ax, top, drawn_data, bool(data_groups))
    with _no_label_draws(figure) if own_figure else nullcontext():
        _draw_labels(document, ax, fit, bool(data_groups))
    band = ("Post-fit unc." if fit else "Stat. ⊕ syst. unc.") if systematic else "Stat. unc."
    _draw_legend(ax, drawn_data, [s[0] for s in stack], band)
    if lines:
        _draw_notes(figure, ratio_ax, lines, own_figure)
    return figure


@contextmanager
def _no_label_draws(figure: Figure) -> Iterator[None]:
    """mplhep's experiment label draws the whole figure before placing each of its
    two texts (to measure the first one): 40 % of a figure's time. Text metrics need a
    renderer, not a drawn figure, when the axes are placed by hand (a figure of our
    own, no layout engine): the PNG is byte for byte the same without those draws."""
    canvas = figure.canvas
    canvas.draw = lambda *args, **kwargs: None  # type: ignore[method-assign]
    try:
        yield
    finally:
        del canvas.draw  # the class's own again


def _panels(ax: Axes | None, lines: list[str]) -> tuple[Figure, Axes, Axes]:
    """The figure, the main axes and the ratio panel under them: a new figure of its own
    (taller by the notes' strip), or ``ax`` with the ratio panel split off under it."""
    if ax is None:
        figure = Figure(figsize=(7.0, 7.0 + 0.25 * len(lines)), dpi=DPI)
        FigureCanvasAgg(figure)
        grid = figure.add_gridspec(2, 1, height_ratios=(3, 1), hspace=0.06)
        ax = figure.add_subplot(grid[0])
        ratio_ax = figure.add_subplot(grid[1], sharex=ax)
        figure.subplots_adjust(left=0.13, right=0.96, top=0.95, bottom=0.09 + 0.035 * len(lines))
        return figure, ax, ratio_ax
    from mpl_toolkits.axes_grid1 import make_axes_locatable

    ratio_ax = make_axes_locatable(ax).append_axes("bottom", size="33%", pad=0.08, sharex=ax)
    return ax.figure, ax, ratio_ax  # type: ignore[return-value]


def _draw_prediction(
    ax: Axes,
    ratio_ax: Axes,
    axis: hist.axis.Regular,
    stack: list[tuple[str, str, np.ndarray]],
    total: np.ndarray,
    error: np.ndarray,
) -> None:
    """The stacked groups, and the hatched uncertainty band around their total and 1."""
    mplhep.histplot(
        [s[2] for s in stack],
        bins=axis.edges,
        stack=True,
        histtype="fill",
        color=[s[1] for s in stack],
        label=[s[0] for s in stack],
        ax=ax,
    )
    for axes, low, height in ((ax, total - error, 2 * error), (ratio_ax, *_relative(total, error))):
        axes.bar(
            axis.centers,
            height,
            width=axis.widths,
            bottom=low,
            color="none",
            edgecolor="0.35",
            hatch=BAND_HATCH,
            linewidth=0,
            gid="uncertainty-band",
        )


def _draw_data(
    document: HistogramDocument,
    groups: list[GroupStyle],
    ax: Axes,
    ratio_ax: Axes,
    axis: hist.axis.Regular,
    total: np.ndarray,
) -> tuple[float, list[str]]:
    """Each data group's points with Garwood intervals (none for an empty bin), and their
    ratio to the prediction: a ratio above the panel is an arrow at its top edge, as
    ATLAS draws it. Returns the highest data bin and the labels of the groups drawn (a
    group with no event in range is not, and stays out of the legend)."""
    centres = axis.centers
    top = 0.0
    drawn = []
    for group in groups:
        counts = document.group_histogram(group.label).values()
        low, high = garwood(counts)
        shown = counts > 0
        if not shown.any():
            continue
        drawn.append(group.label)
        ax.errorbar(
            centres[shown],
            counts[shown],
            yerr=(low[shown], high[shown]),
            xerr=axis.widths[shown] / 2,
            fmt="o",
            markersize=4,
            color=group.colour,
            label=group.label,
            gid="data",
        )
        top = max(top, float(counts.max(initial=0.0)))
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(total > 0, counts / total, np.nan)
        keep = shown & (total > 0) & (ratio <= RATIO_RANGE[1])
        ratio_ax.errorbar(
            centres[keep],
            ratio[keep],
            yerr=(low[keep] / total[keep], high[keep] / total[keep]),
            xerr=axis.widths[keep] / 2,
            fmt="o",
            markersize=4,
            color=group.colour,
            gid="data-ratio",
        )
        above = shown & (total > 0) & (ratio > RATIO_RANGE[1])
        if above.any():
            span = RATIO_RANGE[1] - RATIO_RANGE[0]
            for x in centres[above]:
                ratio_ax.annotate(
                    "",
                    xy=(x, RATIO_RANGE[1] - 0.02 * span),
                    xytext=(x, RATIO_RANGE[1] - 0.3 * span),
                    arrowprops={"arrowstyle": "-|>", "color": group.colour, "linewidth": 1.5},
                    gid="data-ratio-above",
                )
    return top, drawn


def _draw_axes(
    document: HistogramDocument,
    ax: Axes,
    ratio_ax: Axes,
    top: float,
    drawn_data: list[str],
    read_data: bool,
) -> None:
    """Ranges, ticks and axis titles of both panels; the ratio panel's line at 1, and
    with no data drawn, a word in it saying why it holds no points."""
    binning = document.binning
    ax.set_ylim(0, top)
    ax.set_xlim(binning.low, binning.high)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    for axes in (ax, ratio_ax):
        axes.xaxis.set_minor_locator(AutoMinorLocator())
        axes.yaxis.set_minor_locator(AutoMinorLocator())
        axes.tick_params(which="both", direction="in", top=True, right=True)
    ax.tick_params(labelbottom=False)
    ax.set_ylabel(f"Events / {binning.width:g} GeV", y=1, horizontalalignment="right")
    ratio_ax.axhline(1.0, color="0.3", linewidth=0.8, linestyle="--")
    ratio_ax.set_ylim(*RATIO_RANGE)
    ratio_ax.set_ylabel("Data / Pred.")
    if not drawn_data:
        ratio_ax.text(
            0.5,
            0.78,
            "no data in range to compare" if read_data else "simulation only: no data",
            transform=ratio_ax.transAxes,
            ha="center",
            va="center",
            fontsize=9,
            color="0.3",
            gid="ratio-note",
        )
    ratio_ax.set_xlabel(document.figure.x_label, fontsize=13, x=1, horizontalalignment="right")


def _draw_labels(document: HistogramDocument, ax: Axes, fit: FitResult | None, data: bool) -> None:
    """The ATLAS Open Data label, and the process and fit stage under the legend."""
    settings = document.figure
    mplhep.atlas.label(
        text="Open Data",
        data=data,
        lumi=f"{document.lumi_fb:g}",
        com=f"{settings.sqrt_s_tev:g}",
        loc=4,
        ax=ax,
    )
    stage = (
        f"Post-fit, {fit.model} model\n$\\hat{{\\mu}}$ = {fit.mu:.2f} ± {fit.mu_error:.2f}"
        if fit
        else "Pre-fit"
    )
    ax.text(  # under the legend, where the m4l spectrum is low
        0.97,
        0.66,
        f"for education\n{settings.process}\n{stage}",
        transform=ax.transAxes,
        ha="right",
        va="top",
        fontsize=10,
        linespacing=1.5,
        gid="process",
    )


def _draw_legend(ax: Axes, data: list[str], stacked: list[str], band: str) -> None:
    """What is drawn, in the notebook's order: data, the stack from the top, the band."""
    by_label = dict(zip(*reversed(ax.get_legend_handles_labels()), strict=True))
    order = data + list(reversed(stacked))
    handles = [by_label[label] for label in order if label in by_label]
    labels = [label for label in order if label in by_label]
    if stacked:
        handles.append(Patch(facecolor="none", hatch=BAND_HATCH, edgecolor="0.35"))
        labels.append(band)
    if handles:
        ax.legend(handles, labels, frameon=False, loc="upper right", fontsize=10)


def _draw_notes(figure: Figure, ratio_ax: Axes, lines: list[str], own_figure: bool) -> None:
    """What is missing, simulated or incomplete: in a strip of the figure's own under
    the x label, never on the data; under the caller's axes in a figure not ours."""
    if not own_figure:  # under the caller's axes, below the x label
        ratio_ax.text(
            0.0,
            -0.55,
            "\n".join(lines),
            transform=ratio_ax.transAxes,
            ha="left",
            va="top",
            fontsize=9,
            color="0.15",
            gid="notes",
        )
        return
    figure.text(
        0.02,
        0.012,
        "\n".join(lines),
        ha="left",
        va="bottom",
        fontsize=9,
        color="0.15",
        gid="notes",
    )


def _relative(total: np.ndarray, error: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The band in the ratio panel: 1 ± error / total (nothing where there is no prediction)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        relative = np.where(total > 0, error / total, 0.0)
    return 1.0 - relative, 2 * relative


def render_png(
    document: HistogramDocument,
    fit: FitResult | None = None,
    metadata: dict[str, str] | None = None,
) -> bytes:
    """The figure as PNG bytes, ready to be written atomically; ``metadata``: PNG text
    chunks (key → Latin-1 text) besides matplotlib's own."""
    buffer = io.BytesIO()
    draw(document, fit).savefig(buffer, format="png", metadata=metadata)
    return buffer.getvalue()


def warm_up(release: Release) -> None:
    """Draw one throw-away figure in ``release``'s layout and forget it.

    The first figure of a process pays for finding fonts, building the mathtext parser
    and loading scipy.special: about half of its time. ``hzz run`` calls this in a
    thread while the workers compute, so that the real figure, drawn once the numbers
    are in, costs only its own drawing.
    """
    import hist

    from analysis.results.document import FigureSettings, GroupStyle, SampleResult

    axis = m4l_axis(release.analysis.binning)
    groups = [GroupStyle(g.label, g.colour, g.role, g.key, g.samples) for g in release.groups]
    samples = {}
    for group in groups:
        histogram = hist.Hist(axis, storage=hist.storage.Weight())
        histogram.fill(axis.centers, weight=1.0)
        samples[group.samples[0] if group.samples else group.key] = SampleResult(
            group.label, axis.size, axis.size, float(axis.size), histogram
        )
    document = HistogramDocument(
        release=release.name,
        lumi_fb=release.lumi_fb,
        groups=groups,
        samples=samples,
        figure=FigureSettings(y_headroom=release.analysis.y_headroom),
    )
    render_png(document)
