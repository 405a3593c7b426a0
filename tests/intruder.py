"""Another local user trying to run code through a Dask scheduler of this machine.

Run as ``python intruder.py UID DASHBOARD_URL [FILE...]`` as root: it loads Dask, then
becomes user UID for good (the interpreter itself may live where UID cannot read) and
finds the scheduler's address from the dashboard (which anyone on the host may open),
then tries to run ``os.getuid`` on the workers with no certificate, as plain TCP, and
with certificates of its own CA, and to read each FILE (the cluster's certificates).
Prints one JSON object: what each attempt gave. ``"ran"`` means it got in.
"""

from __future__ import annotations

import json
import os
import sys
import urllib.request


def attempt(address: str, security: object | None) -> str:
    from distributed import Client

    try:
        with Client(address, timeout="5s", security=security) as client:
            return f"ran: {client.run(os.getuid)}"
    except Exception as err:  # what refused it
        return f"refused: {type(err).__name__}: {str(err)[:200]}"


def main() -> None:
    import distributed  # noqa: F401  (loaded while the interpreter's files are readable)
    from distributed.security import Security

    own = Security.temporary()  # a CA of its own, not the cluster's
    uid, dashboard, files = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
    os.setgroups([])
    os.setgid(uid)
    os.setuid(uid)
    with urllib.request.urlopen(f"{dashboard}/json/identity.json", timeout=10) as answer:
        address = json.load(answer)["address"]
    host_port = address.split("://", 1)[1]
    report = {
        "uid": os.getuid(),
        "address": address,
        "no certificate": attempt(address, None),
        "plain tcp": attempt(f"tcp://{host_port}", None),
        "own certificates": attempt(f"tls://{host_port}", own),
    }
    for path in files:
        try:
            with open(path, "rb") as handle:
                report[f"read {path}"] = f"ran: read {len(handle.read())} bytes"
        except OSError as err:
            report[f"read {path}"] = f"refused: {type(err).__name__}"
    print(json.dumps(report))


if __name__ == "__main__":
    main()
