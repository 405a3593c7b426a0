"""One measurement in a fresh process: ``python -m bench.child`` reads a JSON request on
stdin and prints one JSON line of results on stdout.

A process per measurement keeps peak RSS figures honest (nothing left over from the
previous measurement) and lets every repetition start cold, like a real run.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from .inputs import FileSet
from .probes import Stopwatch, peak_rss_bytes


def _fileset(request: dict[str, Any]) -> FileSet:
    from analysis.inputs.catalogue import load_release

    sample = load_release("2020").samples[request["sample"]]
    return FileSet(sample, tuple(request["paths"]), request["pattern"], request["events"])


def read_limit(request: dict[str, Any]) -> dict[str, Any]:
    from .readlimit import read_only

    files = _fileset(request)
    watch = Stopwatch()
    with watch.lap("read_s"):
        result = read_only(files.paths, request["step_size"], inflate=request["inflate"])
    return {
        "seconds": watch.laps["read_s"],
        "inflate": request["inflate"],
        "events": result.events,
        "partitions": result.partitions,
        "requested_bytes": result.requested_bytes,
        "branch_compressed_bytes": result.branch_compressed_bytes,
        "branch_uncompressed_bytes": result.branch_uncompressed_bytes,
        "file_bytes": files.size_bytes,
        "peak_rss_bytes": peak_rss_bytes(),
    }


def analysis_only(request: dict[str, Any]) -> dict[str, Any]:
    from .analysisonly import analyse_in_memory

    files = _fileset(request)
    result = analyse_in_memory(files.paths, request["step_size"], files.sample.name)
    return {
        "seconds": result.seconds,
        "events": result.events,
        "n_out": result.n_out,
        "sumw": result.sumw,
    }


def no_dask(request: dict[str, Any]) -> dict[str, Any]:
    from .nodask import summarise_without_dask

    files = _fileset(request)
    result = summarise_without_dask(
        files.paths, request["step_size"], files.sample.name, request.get("start_at")
    )
    return {
        "seconds": result.seconds,
        "started": result.started,
        "ended": result.ended,
        "events": result.events,
        "n_in": result.events,
        "n_out": result.n_out,
        "sumw": result.sumw,
        "peak_rss_bytes": peak_rss_bytes(),
    }


def notebook(request: dict[str, Any]) -> dict[str, Any]:
    from .notebook import info_for, read_files

    files = _fileset(request)
    watch = Stopwatch()
    with watch.lap("seconds"):
        result = read_files(files.paths, info_for(files.sample), request["step_size"])
    return {
        "seconds": watch.laps["seconds"],
        "step_size": request["step_size"],
        "n_in": result.n_in,
        "n_out": result.n_out,
        "sumw": result.sumw,
        "requested_bytes": result.requested_bytes,
        "file_bytes": files.size_bytes,
        "peak_rss_bytes": peak_rss_bytes(),
    }


def pipeline(request: dict[str, Any]) -> dict[str, Any]:
    from .pipeline import measure_pipeline

    return measure_pipeline(
        _fileset(request),
        request["workers"],
        request["step_size"],
        request["computes"],
        request.get("encrypted", True),
    )


def graph_build(request: dict[str, Any]) -> dict[str, Any]:
    from .pipeline import measure_graph_build

    return measure_graph_build(_fileset(request), request["step_size"])


def real_set_phases(request: dict[str, Any]) -> dict[str, Any]:
    from .pipeline import measure_real_set_phases

    return measure_real_set_phases(
        Path(request["mirror"]), request["workers"], Path(request["out_dir"])
    )


def live(request: dict[str, Any]) -> dict[str, Any]:
    from .live import measure_live

    return measure_live(
        _fileset(request), request["workers"], request["step_size"], request["computes"]
    )


KINDS = {
    "read_limit": read_limit,
    "analysis_only": analysis_only,
    "no_dask": no_dask,
    "notebook": notebook,
    "pipeline": pipeline,
    "graph_build": graph_build,
    "real_set_phases": real_set_phases,
    "live": live,
}


def main() -> int:
    request = json.loads(sys.stdin.read())
    kind = request["kind"]
    if kind not in KINDS:
        print(f"bench.child: unknown kind {kind!r}; known: {', '.join(KINDS)}", file=sys.stderr)
        return 2
    started = time.perf_counter()
    result = KINDS[kind](request)
    result["process_s"] = time.perf_counter() - started
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
