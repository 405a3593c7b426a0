"""When a remote request is tried again, and how the failure is told when it is not.

One policy for every request a run makes to a file server (the HEAD pass before a run,
uproot's range requests on the workers): transient failures (connection refused or
reset, an answer cut short, ``5xx``/``429``/``408``, no answer in time) are retried
with exponential back-off and jitter, so that a server shedding load under thousands of
requests is given time instead of failing the run; anything else (``404``, ``403``, a
bad URL) fails at once.
"""

from __future__ import annotations

import asyncio

#: Tries of one request before its failure is final.
RETRY_ATTEMPTS = 5
#: Tries of a request that got no answer within the timeout: a server that stays
#: silent that long is rarely back a moment later, and each try costs the whole timeout.
TIMEOUT_ATTEMPTS = 2
#: Back-off before the second try; doubled for each further one, at most ``BACKOFF_MAX_S``.
BACKOFF_FIRST_S = 0.2
BACKOFF_MAX_S = 5.0

#: HTTP statuses worth another try: the server is busy or failed for the moment.
TRANSIENT_STATUS = frozenset({408, 429, 500, 502, 503, 504})


def backoff_s(attempt: int, jitter: float) -> float:
    """Seconds to wait after failed try ``attempt`` (1, 2, …); ``jitter`` in [0, 1)
    spreads the retries of many clients that failed together."""
    return min(BACKOFF_MAX_S, BACKOFF_FIRST_S * 2 ** (attempt - 1)) * (0.5 + jitter)


def _status(err: BaseException) -> int | None:
    status = getattr(err, "status", None)  # aiohttp.ClientResponseError
    if status is None:
        response = getattr(err, "response", None)  # requests.HTTPError
        status = getattr(response, "status_code", None)
    return status if isinstance(status, int) else None


def is_transient(err: BaseException) -> bool:
    """True for a failure another try may not meet."""
    if isinstance(err, FileNotFoundError):
        return False
    status = _status(err)
    if status is not None:
        return status in TRANSIENT_STATUS
    if isinstance(err, TimeoutError | asyncio.TimeoutError | ConnectionError):
        return True
    try:
        import aiohttp

        if isinstance(err, aiohttp.ClientConnectionError | aiohttp.ClientPayloadError):
            return True
    except ImportError:  # pragma: no cover - aiohttp comes with uproot's HTTP support
        pass
    try:
        import requests

        if isinstance(err, requests.ConnectionError | requests.Timeout):
            return True
    except ImportError:  # pragma: no cover
        pass
    return isinstance(err, OSError)


def should_retry(err: BaseException, attempt: int) -> bool:
    """True if failed try ``attempt`` (1, 2, …) of a request is worth another."""
    if not is_transient(err):
        return False
    return attempt < (TIMEOUT_ATTEMPTS if _is_timeout(err) else RETRY_ATTEMPTS)


def _is_timeout(err: BaseException) -> bool:
    if isinstance(err, TimeoutError | asyncio.TimeoutError):
        return True
    try:
        import requests

        return isinstance(err, requests.Timeout)
    except ImportError:  # pragma: no cover
        return False


def reason(err: BaseException, timeout: float) -> str:
    """The cause in words: an HTTP status with its reason, a timeout with how long."""
    detail = getattr(err, "detail", None)  # an error of ours that says it already
    if isinstance(detail, str) and detail:
        return detail
    if _is_timeout(err):
        return f"no answer within {timeout:g} s (--timeout {timeout:g})"
    status = _status(err)
    if status is not None:
        message = getattr(err, "message", "") or getattr(
            getattr(err, "response", None), "reason", ""
        )
        return f"HTTP {status} {message}".strip()
    text = str(err) or type(err).__name__
    return f"{type(err).__name__}: {text}"
