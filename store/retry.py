"""Retry Qdrant calls through transient failures (connection reset, timeout, 5xx, 429).

Point ids are derived from catalog keys, so replaying an upsert that may already have been
applied (the response was lost) writes the same points again: retries never duplicate.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential

from ..errors import BadInput

T = TypeVar("T")
TRANSIENT_STATUS = {429, 500, 502, 503, 504}


def is_transient(error: BaseException) -> bool:
    """Worth another try: the network or the server hiccuped; not bad input."""
    from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

    if isinstance(error, ResponseHandlingException):  # httpx transport errors: reset, refused, timeout
        return True
    if isinstance(error, UnexpectedResponse):
        return error.status_code in TRANSIENT_STATUS
    if isinstance(error, (ConnectionError, TimeoutError)):
        return True
    try:
        import grpc

        if isinstance(error, grpc.RpcError):
            return error.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.RESOURCE_EXHAUSTED)
    except ImportError:
        pass
    return False


def with_retries(call: Callable[[], T], what: str, attempts: int = 5, wait: float = 0.5) -> T:
    """call(), retried with exponential backoff (wait, 2*wait, ... up to 30 s) on transient errors."""
    retrying = Retrying(
        stop=stop_after_attempt(attempts),
        wait=wait_exponential(multiplier=wait, max=30),
        retry=retry_if_exception(is_transient),
        reraise=True,
    )
    try:
        return retrying(call)
    except Exception as e:
        if is_transient(e):
            raise BadInput(f"{what} failed {attempts} times ({type(e).__name__}: {str(e)[:150]}); what was stored before is kept") from None
        raise
