"""Where results are written: timestamped names, atomic writes, never an overwrite.

A figure is ``plot_dd_mm_yy-HH-MM.png`` (UTC), its document the same stem with
``.json``. A second result in the same minute gets ``_2``, ``_3``, … . Files are
written to a temporary name and hard-linked into place, so a reader never sees a
half-written file and an existing file is never replaced, even by a concurrent writer.
The one exception is a live figure (``live/<run>.png``), the result so far of a run
still computing: it is replaced, atomically, by the next.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

from analysis.errors import InputError, RunFailure

STEM_FORMAT = "plot_%d_%m_%y-%H-%M"
MAX_SUFFIX = 10_000
#: Every name written here, as a pattern: ``STEM_FORMAT``'s fields as two digits each,
#: then the ``_N`` of a second result in the same minute.
STEM_PATTERN = re.compile(
    "".join(
        r"\d\d" if part.startswith("%") else re.escape(part)
        for part in re.split(r"(%[dmyHM])", STEM_FORMAT)
    )
    + r"(?:_\d+)?"
)
#: A glob that every name written here matches (``plot_*``).
STEM_GLOB = STEM_FORMAT.split("%", 1)[0] + "*"


def stem_for(when: datetime) -> str:
    """``plot_dd_mm_yy-HH-MM`` for ``when`` in UTC."""
    return when.astimezone(UTC).strftime(STEM_FORMAT)


def is_output_name(name: str, ending: str) -> bool:
    """True for a name written here with ``ending`` (``.png``, ``.fit.json``, …) after the
    stem: ``plot_26_11_26-09-05_2.png`` for ``.png``, not ``plot_….fit.json`` for ``.json``."""
    return name.endswith(ending) and STEM_PATTERN.fullmatch(name[: -len(ending)]) is not None


def outputs_in(directory: Path | str, ending: str) -> list[Path]:
    """The files of ``directory`` named as results are, ending in ``ending``, by name."""
    return sorted(
        path
        for path in Path(directory).glob(STEM_GLOB + ending)
        if is_output_name(path.name, ending)
    )


#: Free bytes an output directory needs at the start of a run (a figure is ~100 kB).
MIN_FREE_BYTES = 4 * 1024 * 1024


def check_writable(directory: Path | str, what: str = "--out") -> Path:
    """The output directory, made if needed, once it is known to take files: InputError
    naming it if it is not a directory, cannot be written or has no room. Checked before
    a run starts, so that an output fault does not show only after the computation."""
    directory = Path(directory)
    try:
        if directory.exists() and not directory.is_dir():
            raise InputError(f"{what} {directory}: exists and is not a directory")
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=directory, prefix=".tmp-probe-") as probe:
            probe.write(b"\0" * 4096)
            probe.flush()
            os.fsync(probe.fileno())
        stats = os.statvfs(directory)
    except OSError as err:
        raise InputError(f"{what} {directory}: cannot write there: {err.strerror or err}") from err
    free = stats.f_bavail * stats.f_frsize
    if free < MIN_FREE_BYTES:
        raise InputError(f"{what} {directory}: only {free} bytes free on its file system")
    return directory


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _write_temp(directory: Path, content: bytes) -> Path:
    fd, name = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=".part")
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; results are for sharing
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        os.unlink(name)
        raise
    return Path(name)


def write_new(
    directory: Path | str, contents: Mapping[str, bytes], when: datetime | None = None
) -> dict[str, Path]:
    """Write files sharing one new stem, e.g. ``{".png": png, ".json": doc}``.

    The first extension decides the stem: the first ``plot_…[_N]`` name free for it
    (and for the others) is taken; nothing existing is overwritten.
    Returns the paths written, by extension.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    base = stem_for(when or datetime.now(UTC))
    targets = _write_under_free_stem(directory, base, contents)
    if targets is None:  # not an OSError: the directory is fine, the time has every name
        raise RunFailure(f"no free name for {base} in {directory} ({MAX_SUFFIX} taken)")
    return targets


def _write_under_free_stem(
    directory: Path, base: str, contents: Mapping[str, bytes]
) -> dict[str, Path] | None:
    """Write ``contents`` to temporary files, then link them all under the first of
    ``base``, ``base_2``, … that is free for every extension (None: none is). Nothing
    existing is overwritten, and no temporary file is left, whatever fails."""
    temps: dict[str, Path] = {}
    try:
        for ext, data in contents.items():  # inside the try: a full disk leaves no part
            temps[ext] = _write_temp(directory, data)
        for n in range(1, MAX_SUFFIX):
            stem = base if n == 1 else f"{base}_{n}"
            targets = {ext: directory / f"{stem}{ext}" for ext in contents}
            linked: list[Path] = []
            try:
                for ext, target in targets.items():
                    os.link(temps[ext], target)  # fails if target exists: no overwrite
                    linked.append(target)
            except FileExistsError:
                for path in linked:
                    path.unlink()
                continue
            return targets
        return None
    finally:
        for temp in temps.values():
            temp.unlink(missing_ok=True)


#: The folder of ``--out`` that live figures go to, one per run: ``live/<run>.png``.
LIVE_DIR = "live"
#: What names a run (a live figure's file name): the schema's ``partial.run``.
RUN_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")


def live_path(directory: Path | str, run: str) -> Path:
    """Where the live figure of ``run`` is kept under the output ``directory``."""
    if RUN_PATTERN.fullmatch(run) is None:
        raise ValueError(f"not a run name: {run!r}")
    return Path(directory) / LIVE_DIR / f"{run}.png"


def replace_live(directory: Path | str, run: str, png: bytes) -> Path:
    """Write (or replace) the live figure of ``run``: a temporary file renamed over the
    old one, so that a reader always sees a whole figure."""
    target = live_path(directory, run)
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = _write_temp(target.parent, png)
    try:
        os.replace(temp, target)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return target


def replace_beside(document: Path | str, contents: Mapping[str, bytes]) -> dict[str, Path]:
    """Write files next to ``document``, named by its stem and their ending, each
    replacing atomically a file of that name: files made from the document alone (its
    fit with one model), so that making them again gives the same names."""
    document = Path(document)
    targets = {}
    for ending, data in contents.items():
        temp = _write_temp(document.parent, data)
        try:
            target = document.parent / f"{document.stem}{ending}"
            os.replace(temp, target)
        finally:
            temp.unlink(missing_ok=True)
        targets[ending] = target
    return targets
