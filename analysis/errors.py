"""The errors the analysis and the tools that run it raise on purpose.

Every one derives from ``HZZError``, and the message names what failed (the sample,
file, URL or option). Two families tell a caller what to do about it:

* ``InputError``: the input is wrong (a missing or unreadable file, an unknown sample
  or group, a bad document or option). Running again unchanged fails again; the
  command line exits with code 2.
* ``RunFailure``: the run could not finish although the input may be fine (no Dask
  worker, a server that does not answer, a lost partition). The command line exits 1.
"""

from __future__ import annotations

import errno
from collections.abc import Iterator


class HZZError(Exception):
    """Base of every error raised on purpose; the message says what and where."""


class InputError(HZZError, ValueError):
    """The input is wrong: fix it and run again (command line exit code 2)."""


class RunFailure(HZZError, RuntimeError):
    """The run could not finish although the input may be fine (exit code 1)."""


class SampleFileError(InputError):
    """A sample's file cannot be used; the message names the file and the cause."""

    def __init__(self, sample: str, location: str, reason: str) -> None:
        from analysis.redaction import redact_urls  # a location may carry a password

        super().__init__(redact_urls(f"{sample}: cannot read {location}: {reason}"))
        self.sample = sample
        self.location = location
        self.reason = reason


class MissingFileError(SampleFileError):
    """A sample's file is absent from every location searched."""


class RemoteAccessError(RunFailure, OSError):
    """A remote file could not be reached or read (after retries): the message names the
    URL and the cause (``detail``). An OSError too: a file that cannot be read."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"{url}: {reason}")
        self.url = url
        self.detail = reason


class RemoteReadError(RunFailure):
    """A remote file's server failed (after retries): the file itself may be fine."""

    def __init__(self, sample: str, location: str, reason: str) -> None:
        super().__init__(f"{sample}: cannot read {location}: {reason}")
        self.sample = sample
        self.location = location
        self.reason = reason


class FileChangedError(RunFailure):
    """A file is no longer the version the run inspected (its server's validator, its
    size, or the ROOT file's UUID or entries differ): reading on would mix two versions
    into one result. The run stops; run again to read the new version."""

    def __init__(self, message: str, location: str | None = None) -> None:
        super().__init__(message)
        self.location = location

    def __reduce__(self) -> tuple:  # rebuilt from its message when sent by a worker
        return (type(self), (str(self), self.location))


def file_changed(location: str, what: str, during_run: bool = True) -> FileChangedError:
    """The error of a file at ``location`` that is not the version inspected (``what``
    says how): changed ``during_run``, or found so on opening (a kept inspection that
    no longer describes it). Any password in the URL is redacted."""
    from analysis.inputs.sources import is_remote
    from analysis.redaction import redact_urls

    where = "on the server" if is_remote(location) else "on disk"
    how = f"changed {where} during the run" if during_run else "not the version inspected"
    return FileChangedError(
        redact_urls(
            f"{location}: {how} ({what}); the run stopped rather than mix two versions of "
            "the file: run again to read it afresh"
        ),
        location,
    )


def run_failure_in(error: BaseException, where: str) -> RunFailure | None:
    """The run's failure hidden in ``error`` raised while reading ``where``: the machine
    out of something (``resource_exhausted``), or a file that changed since it was
    inspected (``FileChangedError``, anywhere in the chain). None: the file's own fault."""
    exhausted = resource_exhausted(error, where)
    if exhausted is not None:
        return exhausted
    return next((e for e in _chain(error) if isinstance(e, FileChangedError)), None)


class EventsLostError(RunFailure):
    """Fewer events were read than the files hold: a partition was lost."""


class ResourceExhausted(RunFailure):
    """The machine ran out of something while a file was read or summarised (memory,
    file handles, an I/O error of the disk): the run's failure, never the file's. The
    message says what ran out and which setting helps."""


#: The errors of an exhausted machine, by errno: what ran out and what helps.
_RESOURCE_ERRNOS = {
    errno.ENOMEM: "memory",
    errno.EMFILE: "file handles (this process's open-file limit, ulimit -n)",
    errno.ENFILE: "file handles (the system's open-file limit)",
    errno.EIO: "the disk (an input/output error)",
    errno.ENOSPC: "disk space",
}

#: What to do when a worker runs out of memory.
MEMORY_LEVERS = (
    "give each partition fewer entries (--step-size) or the workers more memory "
    "(the Dask worker memory limit: hzz cluster up --memory-limit, or the machine's)"
)


def resource_fault(error: BaseException) -> str | None:
    """What ran out, if ``error`` (or an error it was raised from) is the machine's
    fault rather than the file's: a MemoryError, or an OSError of ``_RESOURCE_ERRNOS``.
    None for anything else (a bad file, a bad server)."""
    for current in _chain(error):
        if isinstance(current, MemoryError):
            return "memory"
        if isinstance(current, OSError) and current.errno in _RESOURCE_ERRNOS:
            return _RESOURCE_ERRNOS[current.errno]
        if isinstance(current, TypeError) and str(current).startswith("'MemoryError' object"):
            return "memory"  # fsspec hands uproot a failed read's exception as its bytes
        if isinstance(current, RuntimeError) and str(current) == "can't start new thread":
            return "memory (for a new thread)"  # CPython's words when pthread_create fails
    return None


def _chain(error: BaseException) -> Iterator[BaseException]:
    """``error`` and each error it was raised from or while handling, once each."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def resource_exhausted(error: BaseException, where: str) -> ResourceExhausted | None:
    """The run failure for ``error`` at ``where`` (a file and its entries) if the machine
    ran out of something, naming what and the lever; None if the fault is not a resource's."""
    what = resource_fault(error)
    if what is None:
        return None
    lever = (
        MEMORY_LEVERS
        if what.startswith("memory")
        else "raise the limit or free some, then run again"
    )
    detail = f"{type(error).__name__}: {error}".rstrip(": ")
    return ResourceExhausted(
        f"a worker ran out of {what} while reading {where} ({detail}); the file is not "
        f"at fault: {lever}"
    )
