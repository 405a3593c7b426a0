"""The lazy per-sample graph: uproot.dask reads, the selection, weights and histograms.

Nothing is read here beyond file headers (uproot needs each file's entry count to
partition it); events are read by the Dask workers when the graph is computed.
Only the branches the selection, mass and weights use are projected.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import awkward as ak
import dask_awkward as dak
import hist.dask
import numpy as np
import uproot

from .binning import m4l_axis
from .catalogue import Release, Sample, is_remote, locate
from .document import GroupStyle, HistogramDocument, SampleResult
from .selection import KERNEL_OUTPUT, LEPTON_BRANCHES, select_four_leptons
from .standins import read_mark
from .weights import WEIGHT_BRANCHES, event_weight

#: Entries per partition when none is given: a few partitions for the largest 2020
#: sample (llll, 554279 entries), one for each small one.
DEFAULT_STEP_SIZE = 200_000


class SampleFileError(RuntimeError):
    """A sample's file could not be read; the message names the file."""

    def __init__(self, sample: str, location: str, reason: str) -> None:
        super().__init__(f"{sample}: cannot read {location}: {reason}")
        self.sample = sample
        self.location = location


class MissingFileError(SampleFileError):
    """A sample's file is absent from every location searched."""


def branches_for(sample: Sample) -> tuple[str, ...]:
    """The branches a sample needs: leptons, plus the weight branches for simulation."""
    return LEPTON_BRANCHES if sample.is_data else LEPTON_BRANCHES + WEIGHT_BRANCHES


@dataclass
class SampleGraph:
    """The lazy results of one sample: counts, weighted sum and m4l histogram."""

    sample: Sample
    location: str
    events: dak.Array
    n_in: Any
    n_out: Any
    sumw: Any
    hist: Any
    generated: bool = False  # the file is a simulated stand-in (marked inside it)

    def outputs(self) -> tuple[Any, Any, Any, Any]:
        return (self.n_in, self.n_out, self.sumw, self.hist)


@dataclass
class AnalysisGraph:
    """The whole run: one SampleGraph per sample found, and the samples not found."""

    release: Release
    samples: list[SampleGraph]
    missing: list[str] = field(default_factory=list)

    def outputs(self) -> list[tuple[Any, Any, Any, Any]]:
        """Everything to hand to a single ``dask.compute`` call."""
        return [s.outputs() for s in self.samples]

    @property
    def generated(self) -> list[str]:
        """Names of the samples read from simulated stand-ins, for the document and figure."""
        return [s.sample.name for s in self.samples if s.generated]


def open_events(sample: Sample, location: str, tree: str, step_size: int | str) -> dak.Array:
    """A lazy array of the sample's events, or SampleFileError naming the file."""
    try:
        return uproot.dask(
            {location: tree},
            filter_name=list(branches_for(sample)),
            step_size=step_size,
            open_files=True,
        )
    except FileNotFoundError as err:
        raise MissingFileError(sample.name, location, "file not found") from err
    except Exception as err:  # uproot raises many types for bad files; name the file
        raise SampleFileError(sample.name, location, f"{type(err).__name__}: {err}") from err


def sample_graph(
    sample: Sample, location: str, release: Release, step_size: int | str
) -> SampleGraph:
    """The lazy counts, weighted sum and m4l histogram of one sample.

    One fused kernel per partition (``select_four_leptons``) turns the six lepton
    columns into two flat columns, ``passed`` and ``m4l``; everything after it masks
    flat columns, never whole records.
    """
    events = open_events(sample, location, release.tree, step_size)
    selected = dak.map_partitions(
        select_four_leptons,
        *(events[branch] for branch in LEPTON_BRANCHES),
        label="select-four-leptons",
        meta=ak.Array(KERNEL_OUTPUT.layout.to_typetracer(forget_length=True)),
    )
    passed = selected.passed
    mass = selected.m4l[passed]
    histogram = hist.dask.Hist(m4l_axis(), storage=hist.storage.Weight())
    n_in = dak.num(passed, axis=0)
    n_out = dak.sum(passed)
    if sample.is_data:
        histogram.fill(mass)
        sumw = n_out
    else:
        weight = dak.values_astype(event_weight(events, sample, release.lumi_fb), np.float64)
        weight = weight[passed]
        histogram.fill(mass, weight=weight)
        sumw = dak.sum(weight)
    return SampleGraph(sample, location, events, n_in, n_out, sumw, histogram)


def build_graph(
    release: Release,
    samples: Sequence[Sample],
    locations: Sequence[str],
    step_size: int | str = DEFAULT_STEP_SIZE,
    allow_missing: bool = False,
) -> AnalysisGraph:
    """One lazy graph for all samples; missing files raise unless ``allow_missing``."""
    graphs: list[SampleGraph] = []
    missing: list[str] = []
    for sample in samples:
        location = locate(sample, list(locations))
        try:
            if location is None:
                searched = ", ".join(str(loc) for loc in locations)
                raise MissingFileError(sample.name, sample.path, f"not found in {searched}")
            graph = sample_graph(sample, location, release, step_size)
            # Stand-ins are written locally; remote files are real and not opened twice.
            graph.generated = not is_remote(location) and read_mark(location) is not None
            graphs.append(graph)
        except MissingFileError:
            if not allow_missing:
                raise
            missing.append(sample.name)
    return AnalysisGraph(release, graphs, missing)


def assemble_document(
    graph: AnalysisGraph,
    computed: Sequence[tuple[Any, Any, Any, Any]],
    generated: Sequence[str] = (),
) -> HistogramDocument:
    """The histogram document from the computed outputs of ``graph.outputs()``."""
    release = graph.release
    styles = {g.key: GroupStyle(g.label, g.colour, g.role) for g in release.groups}
    results: dict[str, SampleResult] = {}
    for sample_graph_, (n_in, n_out, sumw, histogram) in zip(graph.samples, computed, strict=True):
        sample = sample_graph_.sample
        results[sample.name] = SampleResult(
            group=styles[sample.group].label,
            n_in=int(n_in),
            n_out=int(n_out),
            sumw=float(sumw),
            hist=histogram,
        )
    return HistogramDocument(
        release=release.name,
        lumi_fb=release.lumi_fb,
        groups=[styles[g.key] for g in release.groups],
        samples=results,
        missing=list(graph.missing),
        generated=list(generated),
    )
