"""What every AWS edge of the package shares: reading an error's code, telling a transport
failure from an answer, a breaker that stops asking an endpoint that did not answer, running
one call per item (serially for one, a few threads for several), and the partition a Region
belongs to (an ARN built for a record's resource carries it).

No botocore import here: the edges create their own clients lazily.
"""

from __future__ import annotations

import re
import threading
import time
from typing import Any, Callable, Iterable, Optional, Sequence, TypeVar

__all__ = ["ACCOUNT_ID", "Breaker", "TRANSPORT_ERRORS", "client", "error_code", "fan_out", "is_transport",
           "partition_of_region"]

T = TypeVar("T")
R = TypeVar("R")

#: A 12-digit AWS account id.
ACCOUNT_ID = re.compile(r"^\d{12}$")

#: Substrings of botocore's exception names (or AWS codes) that mean the endpoint did not answer.
TRANSPORT_ERRORS = ("Timeout", "EndpointConnectionError", "ConnectionError", "ConnectionClosedError",
                    "ProxyConnectionError")


#: A Region name's prefix -> its partition (botocore's partitions.json); every other Region is in "aws".
_PARTITIONS = (("cn-", "aws-cn"), ("us-gov-", "aws-us-gov"), ("us-iso-", "aws-iso"), ("us-isob-", "aws-iso-b"),
               ("eu-isoe-", "aws-iso-e"), ("us-isof-", "aws-iso-f"), ("eusc-", "aws-eusc"))


def partition_of_region(region: str) -> str:
    """The partition of a Region: ``cn-north-1`` -> ``aws-cn``, ``us-gov-west-1`` -> ``aws-us-gov``,
    ``us-isob-east-1`` -> ``aws-iso-b``; "aws" for a commercial Region (and for "" or any other name)."""
    for prefix, partition in _PARTITIONS:
        if region.startswith(prefix):
            return partition
    return "aws"


def error_code(exc: BaseException) -> str:
    """The AWS error code of a botocore ``ClientError`` ("AccessDeniedException", ...), else the
    exception's class name (``ReadTimeoutError``, ``EndpointConnectionError``, ...)."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        error = response.get("Error")
        code = error.get("Code") if isinstance(error, dict) else None
        if isinstance(code, str) and code:
            return code
    return type(exc).__name__


def is_transport(code: str) -> bool:
    """True when ``code`` (from :func:`error_code`) says the endpoint did not answer."""
    return any(t in code for t in TRANSPORT_ERRORS)


class Breaker:
    """Per key (an endpoint, a table): after a transport failure, calls fail at once for
    ``seconds``, so an outage costs one timeout, not one per call. Thread-safe."""

    def __init__(self, seconds: float = 30.0, clock: Callable[[], float] = time.monotonic):
        self.seconds, self.clock = seconds, clock
        self._open: dict[Any, tuple[float, str]] = {}
        self._lock = threading.Lock()

    def why_open(self, key: Any = None) -> Optional[str]:
        """The reason the breaker is open for ``key``, or None when calls may go ahead."""
        with self._lock:
            found = self._open.get(key)
            if found is None:
                return None
            if self.clock() >= found[0]:
                del self._open[key]
                return None
            return found[1]

    def record(self, code: str, key: Any = None) -> None:
        """Open the breaker for ``key`` if ``code`` is a transport failure."""
        if is_transport(code):
            with self._lock:
                self._open[key] = (self.clock() + self.seconds, code)


_CLIENT_LOCK = threading.Lock()
_SESSION = None


def client(service: str, region: Optional[str] = None, **config: Any):
    """A client from one shared botocore session, built under one lock (threads of a batch may
    ask at once): every edge shares the session's loaded endpoints and models, so a cold start
    parses them once. ``config``: botocore Config options.

    botocore, not boto3: the same client (boto3.client is this call on its default session),
    without importing boto3's resource layer and s3transfer (~20-40 ms of a cold start)."""
    global _SESSION
    import botocore.session
    from botocore.config import Config

    with _CLIENT_LOCK:
        if _SESSION is None:
            _SESSION = botocore.session.get_session()
        return _SESSION.create_client(service, region_name=region or None, config=Config(**config))


def fan_out(fn: Callable[[T], R], items: Sequence[T] | Iterable[T], workers: int = 8) -> list[R]:
    """``[fn(item) for item in items]``, in order: serially for one item (no thread started),
    in a pool of at most ``workers`` threads for several. The first exception is raised once
    every call has finished (``fn`` should catch what it wants to report per item)."""
    items = list(items)
    if len(items) <= 1:
        return [fn(item) for item in items]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=min(workers, len(items))) as pool:
        futures = [pool.submit(fn, item) for item in items]
        return [future.result() for future in futures]
