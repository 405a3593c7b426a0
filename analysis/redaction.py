"""Passwords out of everything shown: URLs with credentials, as text anywhere in a message.

A data location may be ``https://user:secret@host/…``; it travels into file names in
errors, the causes uproot and fsspec give, the ``skipped`` list of the histogram
document (which is published), log lines and the console. Each of those passes its
text through ``redact_urls``, which keeps the user name and replaces the password
with ``***`` wherever a URL appears in the text.
"""

from __future__ import annotations

import re

_CREDENTIALS = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^:/@\s]*):[^@/\s]*@")


def redact_urls(text: str) -> str:
    """``text`` with the password of every ``scheme://user:password@`` replaced by ``***``."""
    return _CREDENTIALS.sub(lambda m: f"{m['scheme']}{m['user']}:***@", text)
