"""Baseline (a): the notebook's algorithm, written again as the HZZAnalysis notebook does.

One process; ``uproot.iterate`` over each file in chunks, awkward arrays, ``vector.zip``
for the four-vectors, the two sum cuts, the per-event MC weight and a weighted ``hist``
fill per chunk. Deliberately independent of ``analysis`` (only the catalogue's numbers,
the notebook's ``infofile``, are taken from it), so that agreeing with the pipeline's
numbers proves both compute the same thing.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import awkward as ak
import hist
import uproot
import vector

LUMI_FB = 10  # fb⁻¹: data_A, data_B, data_C, data_D
MEV = 0.001  # MeV → GeV
#: The notebook's chunk size for uproot.iterate.
NOTEBOOK_STEP_SIZE = 1_000_000
VARIABLES = ["lep_pt", "lep_eta", "lep_phi", "lep_E", "lep_charge", "lep_type"]
WEIGHT_VARIABLES = [
    "mcWeight",
    "scaleFactor_PILEUP",
    "scaleFactor_ELE",
    "scaleFactor_MUON",
    "scaleFactor_LepTRIGGER",
]


@dataclass
class NotebookResult:
    """One sample's numbers, as the notebook would print and plot them."""

    n_in: int = 0
    n_out: int = 0
    hist: hist.Hist = field(
        default_factory=lambda: hist.Hist(
            hist.axis.Regular(34, 80, 250, name="m4l"), storage=hist.storage.Weight()
        )
    )
    requested_bytes: int = 0

    @property
    def sumw(self) -> float:
        return float(self.hist.sum(flow=True).value)


def cut_lep_charge(lep_charge: ak.Array) -> ak.Array:
    """True to reject: the first four charges do not sum to zero."""
    return lep_charge[:, 0] + lep_charge[:, 1] + lep_charge[:, 2] + lep_charge[:, 3] != 0


def cut_lep_type(lep_type: ak.Array) -> ak.Array:
    """True to reject: the first four types do not sum to 44 (eeee), 48 (eeμμ) or 52 (μμμμ)."""
    total = lep_type[:, 0] + lep_type[:, 1] + lep_type[:, 2] + lep_type[:, 3]
    return (total != 44) & (total != 48) & (total != 52)


def calc_mllll(lep_pt: Any, lep_eta: Any, lep_phi: Any, lep_E: Any) -> ak.Array:
    """4-lepton invariant mass in GeV."""
    p4 = vector.zip({"pt": lep_pt, "eta": lep_eta, "phi": lep_phi, "E": lep_E})
    return (p4[:, 0] + p4[:, 1] + p4[:, 2] + p4[:, 3]).M * MEV


def calc_weight(info: dict[str, float], events: ak.Array) -> ak.Array:
    """The notebook's total weight: lumi · 1000 · xsec / (sumw · red_eff) times the factors."""
    total_weight = (LUMI_FB * 1000 * info["xsec"]) / (info["sumw"] * info["red_eff"])
    for variable in WEIGHT_VARIABLES:
        total_weight = total_weight * events[variable]
    return total_weight


def read_file(
    path: str, info: dict[str, float] | None, step_size: int = NOTEBOOK_STEP_SIZE
) -> NotebookResult:
    """One file, chunk by chunk; ``info`` (xsec, sumw, red_eff) for MC, None for data."""
    result = NotebookResult()
    branches = VARIABLES + (WEIGHT_VARIABLES if info is not None else [])
    with uproot.open(path) as file:
        for data in file["mini"].iterate(branches, library="ak", step_size=step_size):
            result.n_in += len(data)
            if info is not None:
                data["totalWeight"] = calc_weight(info, data)
            data = data[~cut_lep_charge(data.lep_charge)]
            data = data[~cut_lep_type(data.lep_type)]
            data["mllll"] = calc_mllll(data.lep_pt, data.lep_eta, data.lep_phi, data.lep_E)
            result.n_out += len(data)
            if info is not None:
                result.hist.fill(data.mllll, weight=data.totalWeight)
            else:
                result.hist.fill(data.mllll)
        result.requested_bytes = file.file.source.num_requested_bytes
    return result


def info_for(sample: Any) -> dict[str, float] | None:
    """The notebook's infofile entry of a catalogue sample (None for data)."""
    if sample.is_data:
        return None
    return {"xsec": sample.xsec_pb, "sumw": sample.sumw, "red_eff": sample.red_eff}


def read_files(
    paths: Iterable[str], info: dict[str, float] | None, step_size: int = NOTEBOOK_STEP_SIZE
) -> NotebookResult:
    """Several files of one sample, summed as the notebook concatenates them."""
    total = NotebookResult()
    for path in paths:
        part = read_file(path, info, step_size)
        total.n_in += part.n_in
        total.n_out += part.n_out
        total.hist += part.hist
        total.requested_bytes += part.requested_bytes
    return total


def plot(results: dict[str, tuple[Any, NotebookResult]], out: Path) -> None:
    """The notebook's figure in short: data points over the stacked simulation."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    centres = None
    data_total = None
    stack, labels = [], []
    for name, (sample, result) in results.items():
        centres = result.hist.axes[0].centers
        if sample.is_data:
            values = result.hist.values()
            data_total = values if data_total is None else data_total + values
        else:
            stack.append(result.hist.values())
            labels.append(name)
    if stack:
        ax.hist(
            [centres] * len(stack),
            bins=34,
            range=(80, 250),
            weights=stack,
            stacked=True,
            label=labels,
        )
    if data_total is not None:
        ax.errorbar(centres, data_total, yerr=data_total**0.5, fmt="ko", label="Data")
    ax.set_xlabel("4-lepton invariant mass $m_{4l}$ [GeV]")
    ax.set_ylabel("Events / 5 GeV")
    ax.legend(frameon=False)
    fig.savefig(out)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    """The notebook end to end on a mirror: every catalogue sample found, then the figure."""
    from analysis.inputs.catalogue import load_release

    from .inputs import MIRROR_2020, real_samples

    parser = argparse.ArgumentParser(prog="python -m bench.notebook", description=main.__doc__)
    parser.add_argument("--data", type=Path, default=MIRROR_2020, help="mirror directory")
    parser.add_argument("--plot", type=Path, help="write the figure here")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    results = {}
    for sample, path in real_samples(load_release("2020"), args.data):
        results[sample.name] = (sample, read_file(path, info_for(sample)))
        result = results[sample.name][1]
        print(f"{sample.name}: {result.n_in} in, {result.n_out} out, sumw {result.sumw:.6f}")
    if args.plot:
        plot(results, args.plot)
    print(f"time taken: {time.perf_counter() - started:.2f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
