"""Writing stand-in files in the 2020 server layout, each marked as simulated inside.

The mark is a TObjString ``hzz_standin`` holding JSON (generator, version, seed,
sample, events, creation time): it travels with the file, whatever it is renamed to,
so a run can always tell a stand-in from a real ATLAS file.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import uproot

from analysis.inputs.catalogue import load_release
from analysis.inputs.files import MARK_KEY
from analysis.standins.events import generate_sample
from analysis.standins.samples import DEFAULT_SEED, STANDINS, StandinSpec

GENERATOR = "hzz-standins"
GENERATOR_VERSION = "1"
TREE = "mini"
#: Entries per basket: the real files' baskets hold ~10⁵ events (fBasketSize 2–3 MB).
CHUNK_ENTRIES = 200_000


@dataclass(frozen=True)
class WrittenFile:
    """One generated file, for the command's report."""

    sample: str
    path: Path
    events: int
    seconds: float


def part_dir(out: Path, part: int, parts: int) -> Path:
    """Where part ``part`` (0-based) of ``parts`` goes: ``out`` itself, or ``out/part-NNN``."""
    return out if parts == 1 else out / f"part-{part + 1:03d}"


def rng_for(seed: int, spec: StandinSpec, part: int) -> np.random.Generator:
    """An independent, reproducible stream per (seed, sample, part)."""
    return np.random.default_rng(np.random.SeedSequence([seed, spec.dsid, part]))


def write_tree(path: Path, branches: dict[str, Any], mark: dict[str, Any]) -> None:
    """The ``mini`` tree in baskets of CHUNK_ENTRIES, ZLIB level 1 like the real files; the mark."""
    n = len(branches["runNumber"])
    tmp = path.with_name(path.name + ".tmp")
    with uproot.recreate(tmp, compression=uproot.ZLIB(1)) as file:
        file[MARK_KEY] = json.dumps(mark, sort_keys=True)
        chunks = (
            {name: values[start : start + CHUNK_ENTRIES] for name, values in branches.items()}
            for start in range(0, n, CHUNK_ENTRIES)
        )
        # mktree (a TTree; dict assignment would make an RNTuple) adds uproot's int32
        # counters ("nlep" for lep_*); the real uint32 lep_n is a plain branch beside them.
        tree = file.mktree(TREE, next(chunks), initial_basket_capacity=64)
        for chunk in chunks:
            tree.extend(chunk)
    os.replace(tmp, path)


def write_standin(
    spec: StandinSpec, out: Path, events: int, seed: int, part: int = 0, parts: int = 1
) -> WrittenFile:
    """Generate and write one file of ``spec`` (part ``part`` of ``parts``)."""
    started = time.perf_counter()
    sample = load_release("2020").samples[spec.name]
    path = part_dir(out, part, parts) / sample.path
    path.parent.mkdir(parents=True, exist_ok=True)
    first = part * (events // parts) + min(part, events % parts)
    n = events // parts + (1 if part < events % parts else 0)
    branches = generate_sample(spec, n, rng_for(seed, spec, part), first_event=first + 1)
    mark = {
        "generator": GENERATOR,
        "version": GENERATOR_VERSION,
        "seed": seed,
        "sample": spec.name,
        "dsid": spec.dsid,
        "events": n,
        "part": part + 1,
        "parts": parts,
        "created": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "note": "simulated stand-in, not ATLAS data; normalised to the published yield",
    }
    write_tree(path, branches, mark)
    return WrittenFile(spec.name, path, n, time.perf_counter() - started)


def write_standins(
    out: Path,
    samples: list[str] | None = None,
    events: int | None = None,
    parts: int = 1,
    seed: int = DEFAULT_SEED,
) -> list[WrittenFile]:
    """Write the chosen stand-ins (default: all five) under ``out`` in the server layout."""
    names = samples or list(STANDINS)
    unknown = [name for name in names if name not in STANDINS]
    if unknown:
        raise ValueError(f"no stand-in for {', '.join(unknown)}; known: {', '.join(STANDINS)}")
    written = []
    for name in names:
        spec = STANDINS[name]
        total = spec.events if events is None else events
        if total < parts:
            raise ValueError(f"{name}: {total} events cannot fill {parts} files")
        written += [write_standin(spec, out, total, seed, part, parts) for part in range(parts)]
    return written
