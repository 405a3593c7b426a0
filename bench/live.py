"""What live results and checkpoints cost: the compute phase side by side on one cluster.

On one local cluster (``workers`` single-threaded processes, as ``hzz run`` starts it)
and the benchmark's input, the compute phase of a run is timed, in alternation:

- **batch**: the graph computed at once, as ``hzz run`` computes it without options;
- **live**: partition by partition (``analysis.results.incremental``), the result so far
  assembled at the first partition and at most every 2 s and serialised as the partial
  document ``--broker`` publishes, by the sending thread of ``hzz run --live``;
- **checkpoint, cold** and **warm**: partition by partition with a new checkpoint
  directory (every partition computed and kept), then again with it (every partition
  reused, nothing computed).

Each compute builds its graph afresh and starts with the scheduler holding nothing, as a
new run does. The first partial document's delay is measured from the moment the first
partition's result reaches the client to the moment its partial document is serialised.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from distributed import Client, as_completed

from analysis.api import compute_graph
from analysis.graph import AnalysisGraph, graph_from_files
from analysis.inputs.catalogue import load_release
from analysis.results.accounting import sample_totals
from analysis.results.checkpoint import CheckpointStore
from analysis.results.incremental import DEFAULT_PARTIAL_INTERVAL_S, compute_by_partition
from cluster.runtime.clusters import dask_client
from cluster.runtime.live import LiveResults

from .inputs import FileSet
from .pipeline import _cpu_seconds, forget_everything, inspect_files


class _Each:
    """``compute_each`` on ``client``, noting when the first result reached the client."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.first_result: float | None = None

    def __call__(self, collections: Sequence[Any]) -> Iterator[tuple[int, Any]]:
        futures = self.client.compute(list(collections))
        index = {future.key: k for k, future in enumerate(futures)}
        for future, result in as_completed(futures, with_results=True):
            if self.first_result is None:
                self.first_result = time.perf_counter()
            yield index[future.key], result


def measure_live(files: FileSet, workers: int, step_size: int, computes: int) -> dict[str, Any]:
    """Batch, live, checkpoint cold and warm computes, ``computes`` of each in turn
    (batch and live each first in every other round), after one compute not counted."""
    release = load_release("2020")
    infos = inspect_files(files, release)

    def graph() -> AnalysisGraph:
        return graph_from_files(release, {files.sample.name: infos}, step_size, readers=workers)

    times: dict[str, list[float]] = {"batch": [], "live": [], "cold": [], "warm": []}
    # CPU seconds of this process (client and local scheduler), where --live does its work
    cpu: dict[str, list[float]] = {"batch": [], "live": []}
    first_partial_delay: list[float] = []
    partials: list[int] = []
    results: dict[str, Any] = {}
    with (
        dask_client(workers=workers, threads_per_worker=1, dashboard_address=":0") as client,
        tempfile.TemporaryDirectory(prefix="hzz-bench-checkpoint-") as kept,
    ):

        def batch() -> None:
            run = graph()
            began, cpu_began = time.perf_counter(), _cpu_seconds()
            computed = compute_graph(run, lambda c: client.gather(client.compute(list(c))))
            times["batch"].append(time.perf_counter() - began)
            cpu["batch"].append(_cpu_seconds() - cpu_began)
            results["batch"] = computed
            forget_everything(client)

        batch()  # workers warmed up (first reads, imports): not counted
        times["batch"].clear()
        cpu["batch"].clear()
        for n in range(computes):
            if n % 2 == 0:  # each goes first in turn
                batch()
            run = graph()
            sent: list[float] = []

            def send(document: Any, sent: list[float] = sent) -> None:
                document.to_json()  # what --broker publishes
                sent.append(time.perf_counter())

            live = LiveResults(send)
            each = _Each(client)
            began, cpu_began = time.perf_counter(), _cpu_seconds()
            computed, _ = compute_by_partition(
                run, each, on_partial=live, partial_interval_s=DEFAULT_PARTIAL_INTERVAL_S
            )
            times["live"].append(time.perf_counter() - began)
            live.close()
            cpu["live"].append(_cpu_seconds() - cpu_began)
            if sent and each.first_result is not None:
                first_partial_delay.append(sent[0] - each.first_result)
            partials.append(live.sent)
            results["live"] = computed
            forget_everything(client)
            if n % 2 == 1:
                batch()

            store = CheckpointStore(Path(kept) / f"round-{n}")
            for key in ("cold", "warm"):
                run = graph()
                began = time.perf_counter()
                computed, reused = compute_by_partition(run, _Each(client), store)
                times[key].append(time.perf_counter() - began)
                results[key] = computed
                forget_everything(client)
            assert reused.reused == reused.total, reused
    totals = {key: sample_totals(computed[0][0], release) for key, computed in results.items()}
    same = all(
        (t.n_in, t.n_out, t.sumw)
        == (totals["batch"].n_in, totals["batch"].n_out, totals["batch"].sumw)
        and (t.hist.view(flow=True) == totals["batch"].hist.view(flow=True)).all()
        for t in totals.values()
    )
    return {
        "workers": workers,
        "step_size": step_size,
        "partitions": sum(len(s.partitions) for s in graph().samples),
        "batch_s": times["batch"],
        "live_s": times["live"],
        "batch_client_cpu_s": cpu["batch"],
        "live_client_cpu_s": cpu["live"],
        "checkpoint_cold_s": times["cold"],
        "checkpoint_warm_s": times["warm"],
        "first_partial_after_first_partition_s": first_partial_delay,
        "partial_documents": partials,
        "identical": same,
        "n_in": totals["batch"].n_in,
    }
