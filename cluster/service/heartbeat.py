"""A long-running service's health as a file: the service refreshes it while it works,
and a container health check (``hzz health FILE``) reads it.

A process that is alive is not necessarily working: the plotting service may be
reconnecting to a broker that is gone, or stuck on one message. So the service writes
what it is doing (``state``) and refreshes the file's modification time every time its
loop comes round; the check passes only when the state is the working one and the file
is fresh. Nothing is served on a port and no extra thread runs.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

#: The state a service writes while it does its job (for the plotter: consuming).
WORKING = "consuming"


class Heartbeat:
    """The file a service keeps fresh; ``None`` as the path makes every call a no-op."""

    def __init__(self, path: Path | None, every_s: float = 1.0) -> None:
        self.path = path
        self.every_s = every_s
        self._state: str | None = None
        self._last = 0.0

    def beat(self, state: str = WORKING, **details: object) -> None:
        """Record ``state``; when it is unchanged, refresh the time at most every ``every_s``."""
        if self.path is None:
            return
        now = time.monotonic()
        if state == self._state and now - self._last < self.every_s:
            return
        try:
            if state != self._state:
                record = {"state": state, "pid": os.getpid(), **details}
                part = self.path.with_name(f".{self.path.name}.{os.getpid()}")
                part.write_text(json.dumps(record) + "\n")
                part.replace(self.path)  # a reader never sees half a record
            else:
                os.utime(self.path)
        except OSError:
            return  # health is reported, never a reason to stop working
        self._state, self._last = state, now

    def clear(self) -> None:
        """Remove the file: the service has stopped."""
        if self.path is not None:
            with contextlib.suppress(OSError):
                self.path.unlink()
        self._state = None


@dataclass(frozen=True)
class Health:
    healthy: bool
    reason: str


def check(path: Path, max_age_s: float) -> Health:
    """Healthy when ``path`` says the service is working and was refreshed within ``max_age_s``."""
    try:
        age = time.time() - path.stat().st_mtime
        record = json.loads(path.read_text())
    except FileNotFoundError:
        return Health(False, f"{path}: no heartbeat (the service is starting or has stopped)")
    except (OSError, ValueError) as err:
        return Health(False, f"{path}: unreadable heartbeat: {err}")
    state = record.get("state") if isinstance(record, dict) else None
    if state != WORKING:
        return Health(False, f"{path}: state {state!r} for {age:.0f} s, not {WORKING!r}")
    if age > max_age_s:
        return Health(False, f"{path}: last heartbeat {age:.0f} s ago (limit {max_age_s:g} s)")
    return Health(True, f"{state}, heartbeat {age:.1f} s ago")
