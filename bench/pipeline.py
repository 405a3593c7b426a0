"""The pipeline measured as ``hzz run`` computes it: analysis.graph on a local Dask cluster.

Phases are timed apart: cluster start-up, file inspection (entries and marks, read
from each file's header in this process), graph building
(``analysis.graph.sample_graph`` over all files of the sample), client-side
optimisation (``dask.optimize``: fusion of each read with its summary) and the compute
(``Client.compute`` of the optimised graph until the results are back).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import dask
import dask_awkward as dak
from distributed import Client

from analysis.graph import SampleGraph, optimising, sample_graph
from analysis.inputs.catalogue import Release, load_release
from analysis.inputs.files import FileInfo, inspect_file
from analysis.inputs.partitions import partition_steps
from analysis.physics.summary import branches_for
from analysis.results.accounting import sample_totals
from cluster.runtime.clusters import dask_client

from .inputs import FileSet
from .probes import Stopwatch, peak_rss_bytes


def inspect_files(files: FileSet, release: Release) -> list[FileInfo]:
    """Entries and marks of every file, as ``analysis.inspect`` finds them, in this process."""
    needed = branches_for(files.sample)
    infos = [inspect_file(files.sample.name, p, release.tree, needed) for p in files.paths]
    bad = [f"{i.location}: {i.error}" for i in infos if not i.usable]
    if bad:
        raise RuntimeError(f"unusable benchmark input: {'; '.join(bad)}")
    return infos


def count_partitions(infos: list[FileInfo], step_size: int) -> int:
    return sum(len(partition_steps(info.entries, step_size)) for info in infos)


def to_compute(graph: SampleGraph) -> list[Any]:
    """The outputs, as a run computes them."""
    return list(graph.outputs())


def projected_branches(graph: SampleGraph) -> list[str]:
    """The branches dask-awkward's column projection leaves to be read."""
    columns = dak.necessary_columns(*graph.outputs())
    return sorted({c for cols in columns.values() for c in cols})


def _worker_peak_rss() -> int:
    from bench.probes import peak_rss_bytes

    return peak_rss_bytes()


def _cpu_seconds() -> float:
    """User + system CPU seconds of this process so far (run on workers and scheduler)."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _scheduler_task_count(dask_scheduler: Any) -> int:
    return len(dask_scheduler.tasks)


def forget_everything(client: Client, timeout_s: float = 30.0) -> None:
    """Wait until the scheduler holds no task, so that a repeat computes from scratch.

    Dask keys are deterministic: computing the same graph while the previous results
    are still held would return them without reading anything.
    """
    deadline = time.monotonic() + timeout_s
    while client.run_on_scheduler(_scheduler_task_count) > 0:
        if time.monotonic() > deadline:
            raise RuntimeError("the scheduler still holds tasks of the previous compute")
        time.sleep(0.05)


def measure_pipeline(
    files: FileSet, workers: int, step_size: int, computes: int, encrypted: bool = True
) -> dict[str, Any]:
    """Start a cluster of ``workers`` single-threaded processes, build, optimise, compute.

    ``encrypted``: mutual TLS as ``hzz run`` starts it; False: plain TCP, to measure what
    the TLS costs."""
    release = load_release("2020")
    watch = Stopwatch()
    with watch.lap("cluster_start_s"):
        # As `hzz run` starts it (cluster.runtime.clusters): worker allocator settings included.
        context = dask_client(
            workers=workers, threads_per_worker=1, dashboard_address=":0", encrypted=encrypted
        )
        client: Client = context.__enter__()
    try:
        with watch.lap("inspect_s"):
            infos = inspect_files(files, release)
        # as hzz run builds it for this cluster: files spread over its worker threads
        graph_args = (files.sample, infos, release, step_size, None, workers)
        with watch.lap("graph_build_s"):
            graph = sample_graph(*graph_args)
        with watch.lap("optimise_s"), optimising():
            optimised = dask.optimize(*to_compute(graph))
        compute_s: list[float] = []
        worker_cpu_s: list[float] = []  # all workers together, per compute
        here_cpu_s: list[float] = []  # this process: client and scheduler
        results: tuple[Any, ...] = ()
        for n in range(computes):
            if n:  # a new graph, as a new run builds: nothing the workers kept is reused
                with optimising():
                    optimised = dask.optimize(*to_compute(sample_graph(*graph_args)))
            workers_before = client.run(_cpu_seconds)
            here_before = _cpu_seconds()
            with watch.lap("compute"):
                futures = client.compute(list(optimised), optimize_graph=False)
                results = tuple(client.gather(futures))
            compute_s.append(watch.laps["compute"])
            here_cpu_s.append(_cpu_seconds() - here_before)
            after = client.run(_cpu_seconds)
            worker_cpu_s.append(sum(after[w] - workers_before[w] for w in workers_before))
            del futures
            forget_everything(client)
        worker_rss = client.run(_worker_peak_rss)
    finally:
        context.__exit__(None, None, None)
    (summaries,) = results
    totals = sample_totals(summaries, release)
    return {
        "workers": workers,
        "encrypted": encrypted,
        "threads_per_worker": 1,
        "step_size": step_size,
        "partitions": count_partitions(infos, step_size),
        "files": len(files.paths),
        "cluster_start_s": watch.laps["cluster_start_s"],
        "inspect_s": watch.laps["inspect_s"],
        "graph_build_s": watch.laps["graph_build_s"],
        "optimise_s": watch.laps["optimise_s"],
        "compute_s": compute_s,
        "worker_cpu_s": worker_cpu_s,
        "scheduler_and_client_cpu_s": here_cpu_s,
        "worker_peak_rss_bytes": sorted(worker_rss.values()),
        "client_peak_rss_bytes": peak_rss_bytes(),
        "n_in": totals.n_in,
        "n_out": totals.n_out,
        "sumw": totals.sumw,
        "hist_sum": float(totals.hist.sum(flow=True).value),
        "branches": projected_branches(graph),
    }


def measure_graph_build(files: FileSet, step_size: int) -> dict[str, Any]:
    """Client-side cost of many files: build the lazy graph and optimise it, no cluster."""
    release = load_release("2020")
    watch = Stopwatch()
    with watch.lap("inspect_s"):
        infos = inspect_files(files, release)
    with watch.lap("graph_build_s"):
        graph = sample_graph(files.sample, infos, release, step_size)
    with watch.lap("optimise_s"), optimising():
        optimised = dask.optimize(*to_compute(graph))
    tasks = len(dask.base.collections_to_dsk(optimised, optimize_graph=False))
    return {
        "files": len(files.paths),
        "partitions": count_partitions(infos, step_size),
        "tasks_after_optimise": tasks,
        "inspect_s": watch.laps["inspect_s"],
        "graph_build_s": watch.laps["graph_build_s"],
        "optimise_s": watch.laps["optimise_s"],
        # Client-side: inspection runs on the cluster in ``hzz run``, in parallel.
        "total_s": watch.laps["graph_build_s"] + watch.laps["optimise_s"],
        "client_peak_rss_bytes": peak_rss_bytes(),
    }


def measure_real_set_phases(mirror: Path, workers: int, out_dir: Path) -> dict[str, Any]:
    """``hzz run --allow-missing`` on the real set, phase by phase, with the project's APIs."""
    import analysis
    from cluster.runtime.run import write_outputs

    release = load_release("2020")
    watch = Stopwatch()
    with watch.lap("cluster_start_s"):
        context = dask_client(workers=workers, dashboard_address=":0")
        client: Client = context.__enter__()
    try:
        with watch.lap("graph_build_s"):
            inspection = analysis.inspect(mirror, release, allow_missing=True)
            graph = analysis.build(inspection)
        with watch.lap("compute_s"):
            flat = [output for outputs in graph.outputs() for output in outputs]
            results = client.gather(client.compute(flat))
        with watch.lap("document_and_figure_s"):
            width = len(graph.outputs()[0])
            computed = [tuple(results[i : i + width]) for i in range(0, len(results), width)]
            result = analysis.collect(graph, computed)
            write_outputs(result, out_dir)
    finally:
        with watch.lap("cluster_stop_s"):
            context.__exit__(None, None, None)
    return {
        "workers": workers,
        "samples": sorted(result.samples),
        **watch.laps,
    }
