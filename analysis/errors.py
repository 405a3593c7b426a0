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


class EventsLostError(RunFailure):
    """Fewer events were read than the files hold: a partition was lost."""
