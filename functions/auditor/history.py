"""CloudTrail history beyond local files: an (organization) trail's S3 bucket, and LookupEvents.

Only the CLI imports this module; the Lambda never does (boto3 clients are created here lazily).

S3: CloudTrail writes ``<prefix>/AWSLogs/[<org id>/]<account>/CloudTrail/<region>/YYYY/MM/DD/*.json.gz``.
We walk that layout level by level with delimiter listings and then list only the day
prefixes inside [since, until] — never the whole bucket — and download with a small thread
pool, at most ``in_flight`` files in memory at once, yielding files in listing order.
"""

from __future__ import annotations

import re
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from typing import Callable, Iterable, Iterator, Optional

_RELATIVE = re.compile(r"^(\d+)([mhdw])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_ORG = re.compile(r"^o-[a-z0-9]{10,32}$")
_ACCOUNT = re.compile(r"^\d{12}$")
_FILE_TIME = re.compile(r"_(\d{8}T\d{4})Z_")


def parse_when(text: str, now: Optional[datetime] = None) -> datetime:
    """'24h', '7d', '30m', '2w' (ago), or an ISO date/time (UTC unless it says otherwise)."""
    now = now or datetime.now(timezone.utc)
    m = _RELATIVE.match(text.strip())
    if m:
        return now - timedelta(**{_UNITS[m.group(2)]: int(m.group(1))})
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"not a time: {text!r} (use 24h, 7d, 2026-11-20 or 2026-11-20T08:00:00Z)") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def split_s3_url(url: str) -> tuple[str, str]:
    if not url.startswith("s3://"):
        raise ValueError(f"not an s3:// URL: {url}")
    bucket, _, prefix = url[5:].partition("/")
    if not bucket:
        raise ValueError(f"no bucket in {url}")
    return bucket, prefix


class TrailBucket:
    def __init__(self, bucket: str, prefix: str = "", client=None):
        self.bucket, self.prefix = bucket, prefix
        if client is None:
            import boto3
            from botocore.config import Config

            client = boto3.client("s3", config=Config(retries={"max_attempts": 5, "mode": "standard"}, max_pool_connections=16))
        self.s3 = client

    # -- listing ---------------------------------------------------------------------------------
    def _children(self, prefix: str) -> list[str]:
        names = []
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix, Delimiter="/"):
            names += [p["Prefix"][len(prefix):].rstrip("/") for p in page.get("CommonPrefixes", [])]
        return names

    def region_prefixes(self, accounts: Optional[set] = None, regions: Optional[set] = None) -> list[str]:
        """Every ``.../CloudTrail/<region>/`` prefix under the bucket prefix, filtered.

        Levels the prefix already names (org id, account, region) are used as given; the others
        are discovered with delimiter listings, one level at a time.
        """
        prefix = self.prefix if not self.prefix or self.prefix.endswith("/") else self.prefix + "/"
        head, marker, tail = prefix.partition("AWSLogs/")
        base = (head if marker else prefix) + "AWSLogs/"
        parts = [p for p in tail.split("/") if p] if marker else []
        if parts and _ORG.match(parts[0]):
            org_levels = [base + parts.pop(0) + "/"]
        elif parts and _ACCOUNT.match(parts[0]):
            org_levels = [base]
        else:
            children = self._children(base)
            org_levels = [base] + [base + c + "/" for c in children if _ORG.match(c)]
        account_prefixes = []
        for level in org_levels:
            if parts and _ACCOUNT.match(parts[0]):
                account_prefixes.append(level + parts[0] + "/")
            else:
                account_prefixes += [level + a + "/" for a in self._children(level) if _ACCOUNT.match(a)]
        rest = parts[1:] if parts and _ACCOUNT.match(parts[0]) else parts
        region_given = rest[1] if len(rest) > 1 and rest[0] == "CloudTrail" else None
        out = []
        for account_prefix in account_prefixes:
            account = account_prefix.rstrip("/").rsplit("/", 1)[-1]
            if accounts and account not in accounts:
                continue
            trail = account_prefix + "CloudTrail/"
            names = [region_given] if region_given else self._children(trail)
            out += [trail + r + "/" for r in names if not regions or r in regions]
        return out

    def keys(self, since: datetime, until: datetime, accounts=None, regions=None) -> Iterator[tuple[str, int]]:
        """(key, size) of every log file in the day prefixes within [since, until], in order."""
        days = []
        day = since.date()
        while day <= until.date():
            days.append(day)
            day += timedelta(days=1)
        for region_prefix in self.region_prefixes(accounts, regions):
            for d in days:
                prefix = f"{region_prefix}{d:%Y/%m/%d}/"
                for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
                    for obj in page.get("Contents", []):
                        key = obj["Key"]
                        if key.endswith(".json.gz") and _within(key, since, until):
                            yield key, obj.get("Size", 0)

    # -- downloading ------------------------------------------------------------------------------
    def fetch(self, keys: Iterable[str], workers: int = 8, in_flight: int = 16) -> Iterator[tuple[str, "bytes | Exception"]]:
        """Download concurrently; yield (s3 URL, bytes or the error) in key order, <= in_flight held."""

        def get(key: str):
            try:
                return self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()
            except Exception as exc:  # noqa: BLE001 - reported per object by the caller
                return exc

        with ThreadPoolExecutor(max_workers=workers) as pool:
            window: deque = deque()
            for key in keys:
                window.append((key, pool.submit(get, key)))
                if len(window) >= in_flight:
                    k, future = window.popleft()
                    yield f"s3://{self.bucket}/{k}", future.result()
            while window:
                k, future = window.popleft()
                yield f"s3://{self.bucket}/{k}", future.result()


def _within(key: str, since: datetime, until: datetime) -> bool:
    """Use the file's own timestamp (…_YYYYMMDDTHHMMZ_…) to drop files outside the window."""
    m = _FILE_TIME.search(key.rsplit("/", 1)[-1])
    if not m:
        return True
    moment = datetime.strptime(m.group(1), "%Y%m%dT%H%M").replace(tzinfo=timezone.utc)
    return since - timedelta(minutes=15) <= moment <= until + timedelta(minutes=15)  # files span ~5-15 minutes


# ------------------------------------------------------------------------------------------------
# CloudTrail LookupEvents: the last 90 days of management events of one account, no stack needed.
# ------------------------------------------------------------------------------------------------
EVENT_SOURCES = ("secretsmanager.amazonaws.com", "kms.amazonaws.com")


class RateLimiter:
    """At most ``rate`` calls per second (LookupEvents allows 2 per second per account and region)."""

    def __init__(self, rate: float = 2.0, clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep):
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


def lookup_records(client, since: datetime, until: datetime, limiter: Optional[RateLimiter] = None) -> Iterator[str]:
    """The CloudTrailEvent JSON of every Secrets Manager and KMS event in [since, until], paginated."""
    limiter = limiter or RateLimiter()
    for source in EVENT_SOURCES:
        token = None
        while True:
            limiter.wait()
            kwargs = {"LookupAttributes": [{"AttributeKey": "EventSource", "AttributeValue": source}],
                      "StartTime": since, "EndTime": until, "MaxResults": 50}
            if token:
                kwargs["NextToken"] = token
            page = client.lookup_events(**kwargs)
            for event in page.get("Events", []):
                if isinstance(event.get("CloudTrailEvent"), str):
                    yield event["CloudTrailEvent"]
            token = page.get("NextToken")
            if not token:
                break
