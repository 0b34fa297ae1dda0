"""CloudTrail LookupEvents: the last 90 days of one account's management events, no stack needed.

Only the CLI imports this module; boto3 is imported lazily.

LookupEvents takes one lookup attribute per call, so each region costs two queries (event
source ``secretsmanager.amazonaws.com``, then ``kms.amazonaws.com``), each paginated with
``NextToken``. The API allows 2 requests per second per account and region: a per-region
:class:`RateLimiter` keeps us under it, botocore's ``standard`` retry mode retries a
``ThrottlingException`` (other tools share the same budget), and if throttling outlasts
botocore's attempts we back off and retry the same page a few more times before giving up on
the region. Read-only: the only call made is ``cloudtrail:LookupEvents``.

LookupEvents returns management events only (no data events) and includes read-only ones and
successful calls: the classifier skips the successes as it does for log files.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime
from typing import Callable, Iterator, Optional

from ..aws import client, error_code

__all__ = ["EVENT_SOURCES", "RateLimiter", "cloudtrail_client", "lookup_pages", "lookup_records"]

EVENT_SOURCES = ("secretsmanager.amazonaws.com", "kms.amazonaws.com")
PAGE_SIZE = 50  # LookupEvents' maximum
THROTTLED = frozenset({"ThrottlingException", "Throttling", "TooManyRequestsException", "RequestLimitExceeded"})


class RateLimiter:
    """At most ``rate`` calls per second, spaced evenly (LookupEvents: 2 per second per account and region).

    ``clock`` and ``sleep`` are injectable so tests run without waiting.
    """

    def __init__(self, rate: float = 2.0, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
        self.interval, self.clock, self.sleep = 1.0 / rate, clock, sleep
        self.next = 0.0
        self.lock = threading.Lock()

    def wait(self) -> None:
        with self.lock:
            now = self.clock()
            if now < self.next:
                self.sleep(self.next - now)
                now = self.next
            self.next = now + self.interval

    def back_off(self, seconds: float) -> None:
        """Push the next permitted call at least ``seconds`` into the future (after a throttle)."""
        with self.lock:
            self.next = max(self.next, self.clock() + seconds)


def cloudtrail_client(region: str):
    return client("cloudtrail", region, retries={"mode": "standard", "max_attempts": 5})


def lookup_pages(client, since: datetime, until: datetime, limiter: Optional[RateLimiter] = None,
                 sources=EVENT_SOURCES, throttle_retries: int = 4, throttle_pause: float = 2.0
                 ) -> Iterator[tuple[str, list[tuple[str, str]]]]:
    """``(event source, [(event id, CloudTrailEvent JSON), ...])`` for every page, both sources, in order.

    A throttle that outlasts botocore's retries pauses ``throttle_pause`` seconds (doubling)
    and retries the same page, ``throttle_retries`` times at most; other errors propagate.
    """
    limiter = limiter or RateLimiter()
    for source in sources:
        token = None
        while True:
            kwargs = {"LookupAttributes": [{"AttributeKey": "EventSource", "AttributeValue": source}],
                      "StartTime": since, "EndTime": until, "MaxResults": PAGE_SIZE}
            if token:
                kwargs["NextToken"] = token
            pause = throttle_pause
            for attempt in range(throttle_retries + 1):
                limiter.wait()
                try:
                    page = client.lookup_events(**kwargs)
                    break
                except Exception as exc:
                    if error_code(exc) not in THROTTLED or attempt == throttle_retries:
                        raise
                    limiter.back_off(pause)
                    pause *= 2
            events = [(e.get("EventId", ""), e["CloudTrailEvent"]) for e in page.get("Events", [])
                      if isinstance(e.get("CloudTrailEvent"), str)]
            yield source, events
            token = page.get("NextToken")
            if not token:
                break


def lookup_records(client, since: datetime, until: datetime, limiter: Optional[RateLimiter] = None) -> Iterator[str]:
    """The CloudTrailEvent JSON string of every Secrets Manager and KMS event in [since, until]."""
    for _, events in lookup_pages(client, since, until, limiter):
        for _, raw in events:
            yield raw
