"""What a run gives back: per-sample histograms and yields, groups by key, a table, a figure.

A thin view of the histogram document (``analysis.results.document``), which is what is
written to disk and sent to the plotting service; ``result.document`` is that document.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from analysis.inputs.catalogue import Release, load_release
from analysis.results.document import HistogramDocument, SampleResult
from analysis.results.report import yields_table

if TYPE_CHECKING:
    import hist
    from matplotlib.axes import Axes


class AnalysisResult:
    """One run's result.

    ``result.samples["Zee"].hist`` is a sample's m4l ``hist.Hist`` (weighted storage),
    ``result.yields`` its weighted yield, ``result["zz"]`` the summed histogram of a
    group (keys as in ``result.groups``: ``data``, ``z_tt``, ``zz``, ``signal`` for
    2020), ``result.yields_table()`` the table ``hzz run`` prints and
    ``result.plot(ax=...)`` the figure, drawn into the caller's axes.
    """

    def __init__(self, document: HistogramDocument) -> None:
        self.document = document

    @property
    def release(self) -> Release:
        return load_release(self.document.release)

    @property
    def samples(self) -> dict[str, SampleResult]:
        """Each sample's events read and passing, weighted yield and histogram."""
        return self.document.samples

    @property
    def yields(self) -> dict[str, float]:
        """Each sample's weighted yield (for data: the events passing)."""
        return {name: s.sumw for name, s in self.document.samples.items()}

    @property
    def groups(self) -> list[str]:
        """The group keys of the release, in drawing order (stack bottom first)."""
        return [g.key for g in self.release.groups]

    @property
    def missing(self) -> list[str]:
        """Samples left out because their file was found nowhere."""
        return list(self.document.missing)

    def group_samples(self, key: str) -> list[str]:
        """The samples of group ``key`` that ran."""
        return self.document.samples_of(self._label(key))

    def _label(self, key: str) -> str:
        try:
            return self.release.group(key).label
        except KeyError:
            known = ", ".join(self.groups)
            raise KeyError(f"no group {key!r}; groups: {known}") from None

    def __getitem__(self, key: str) -> hist.Hist:
        """The m4l histogram of group ``key`` (its samples' sum), or of sample ``key``."""
        if key in self.document.samples and key not in self.groups:
            return self.document.samples[key].hist
        return self.document.group_histogram(self._label(key))

    def yields_table(self) -> str:
        """Sample, events in, events passing, weighted yield: one row per sample."""
        return yields_table(self.document)

    def to_json(self) -> bytes:
        """The histogram document as JSON (what ``hzz run`` writes and publishes)."""
        return self.document.to_json()

    def to_png(self, metadata: dict[str, str] | None = None) -> bytes:
        """The figure as PNG bytes (what ``hzz run`` and the plotting service write), with
        ``metadata`` as PNG text chunks."""
        from analysis.results.plot import render_png

        return render_png(self.document, metadata=metadata)

    def plot(self, ax: Axes | None = None) -> Axes:
        """Draw the figure into ``ax`` (default: pyplot's current axes) and return it.

        Only the axes are drawn on; the matplotlib backend is left as it is.
        """
        from analysis.results.plot import draw

        if ax is None:
            import matplotlib.pyplot as plt

            ax = plt.gca()
        draw(self.document, ax=ax)
        return ax

    def __repr__(self) -> str:
        names = ", ".join(self.document.samples)
        return f"<AnalysisResult release {self.document.release}: {names}>"
