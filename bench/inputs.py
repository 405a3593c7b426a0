"""The benchmark's input files: generated 2020-format stand-ins, cached and reused, and
the small real set.

Generated input lives in ``INPUT_DIR/llll-<events>x<files>-s<seed>/part-NNN/MC/…``
(``hzz generate --files`` layout). A part is reused only if the stand-in mark inside it
names the same seed, part and event count; otherwise it is (re)written, one part per
child process so that no more than one part's events are ever held in memory.
"""

from __future__ import annotations

import glob
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from analysis.inputs.catalogue import Release, Sample, load_release
from analysis.inputs.locations import locate
from analysis.standins import DEFAULT_SEED, read_mark
from analysis.standins.writer import part_dir

REPO = Path(__file__).resolve().parents[1]
#: The real files (data A–D, Zee, Zmumu, ttbar_lep), beside the repository as in CI.
MIRROR_2020 = REPO.parent / "shared" / "data" / "atlas-opendata-2020" / "4lep"
DEFAULT_INPUT_DIR = Path("/tmp/hzz-bench-input")
#: The sample generated for throughput: the largest 2020 MC sample, all 11 branches read.
BENCH_SAMPLE = "llll"


@dataclass(frozen=True)
class FileSet:
    """Files of one sample to benchmark on: their paths, a glob matching exactly them."""

    sample: Sample
    paths: tuple[str, ...]
    pattern: str
    events: int

    @property
    def size_bytes(self) -> int:
        return sum(os.path.getsize(p) for p in self.paths)


def _mark_matches(path: Path, seed: int, events: int, part: int, parts: int) -> bool:
    if not path.is_file():
        return False
    try:
        mark = read_mark(str(path))
    except Exception:  # a truncated or foreign file: regenerate it
        return False
    return mark is not None and (
        mark.get("seed"),
        mark.get("events"),
        mark.get("part"),
        mark.get("parts"),
    ) == (seed, events, part + 1, parts)


def _generate_part(out: Path, total: int, parts: int, seed: int, part: int) -> None:
    """Write one part in a child process (a part's arrays are freed with the process)."""
    code = (
        "import sys; from pathlib import Path; "
        "from analysis.standins import STANDINS; "
        "from analysis.standins.writer import write_standin; "
        "a = sys.argv[1:]; "
        "write_standin(STANDINS[a[0]], Path(a[1]), int(a[2]), int(a[3]), int(a[4]), int(a[5]))"
    )
    args = [BENCH_SAMPLE, str(out), str(total), str(seed), str(part), str(parts)]
    subprocess.run([sys.executable, "-c", code, *args], check=True)


def generated_input(
    input_dir: Path, events: int, files: int, seed: int = DEFAULT_SEED, log=print
) -> FileSet:
    """``events`` stand-in llll events over ``files`` files, generated only if not cached."""
    release = load_release("2020")
    sample = release.samples[BENCH_SAMPLE]
    out = input_dir / f"{BENCH_SAMPLE}-{events}x{files}-s{seed}"
    paths = []
    for part in range(files):
        path = part_dir(out, part, files) / sample.path
        n = events // files + (1 if part < events % files else 0)
        if not _mark_matches(path, seed, n, part, files):
            log(f"generating {path} ({n} events)")
            _generate_part(out, events, files, seed, part)
        paths.append(str(path))
    pattern = str(out / "part-*" / sample.path) if files > 1 else paths[0]
    assert sorted(glob.glob(pattern)) == paths, f"{pattern} matches other files than {paths}"
    return FileSet(sample, tuple(paths), pattern, events)


def many_files(input_dir: Path, count: int, seed: int = DEFAULT_SEED, log=print) -> FileSet:
    """``count`` paths to one small stand-in (symbolic links), for graph-building cost.

    Each link is opened by uproot as a file of its own (its header and TTree metadata
    are read), which is what building the graph of ``count`` real files costs; only the
    bytes come from the page cache rather than from distinct inodes.
    """
    source = generated_input(input_dir, 2_000, 1, seed, log)
    links = input_dir / f"many-{count}"
    links.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        link = links / f"f-{i + 1:05d}.root"
        if not link.is_symlink():
            link.symlink_to(source.paths[0])
        paths.append(str(link))
    pattern = str(links / "f-*.root")
    found = sorted(glob.glob(pattern))
    if found != paths:
        raise RuntimeError(f"{links} holds other files than the {count} links expected")
    return FileSet(source.sample, tuple(paths), pattern, source.events * count)


def real_samples(release: Release, mirror: Path = MIRROR_2020) -> list[tuple[Sample, str]]:
    """The catalogue's samples present in the real mirror, with their paths."""
    if not mirror.is_dir():
        raise FileNotFoundError(f"real data files expected at {mirror}")
    found = []
    for sample in release.select():
        path = locate(sample, [str(mirror)])
        if path is not None:
            found.append((sample, path))
    return found
