"""An (organization) trail's S3 bucket: list only the days asked for, download concurrently.

Only the CLI imports this module; the Lambda never does, and boto3 is imported lazily.

CloudTrail writes ``[<prefix>/]AWSLogs/[<org id>/]<account>/CloudTrail/<region>/YYYY/MM/DD/<file>.json.gz``.
We walk that layout one level at a time with delimiter listings (``ListObjectsV2`` with
``Delimiter="/"``: org ids, then accounts, then regions), then list each
``.../YYYY/MM/DD/`` prefix inside [since, until] and nothing else: the whole bucket is never
listed. Listings and downloads run in small thread pools, ``ahead`` listings and ``in_flight``
downloads at a time, and results come back in listing order, so memory holds at most
``in_flight`` compressed files whatever the size of the bucket.

``since``/``until`` select log files, not records: the day folders and the file names
(``..._YYYYMMDDTHHmmZ_...``) carry the time CloudTrail delivered the file, a few minutes
after the events in it.
"""

from __future__ import annotations

import re
from collections import deque
from concurrent.futures import Executor, ThreadPoolExecutor
from datetime import date, datetime, timedelta, timezone
from typing import Callable, Iterable, Iterator, Optional, TypeVar

__all__ = ["TrailBucket", "parse_when", "split_s3_url", "ordered"]

_RELATIVE = re.compile(r"^(\d+)\s*([mhdw])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_ORG = re.compile(r"^o-[a-z0-9]{10,32}$")
_ACCOUNT = re.compile(r"^\d{12}$")
_FILE_TIME = re.compile(r"_(\d{8}T\d{4})Z_")
#: Slack around [since, until] for the time in a file's name: a file holds the events of the
#: ~5 minutes before its delivery, more when delivery lags.
FILE_SLACK = timedelta(minutes=15)

T = TypeVar("T")
R = TypeVar("R")


def parse_when(text: str, now: Optional[datetime] = None) -> datetime:
    """'24h', '7d', '30m', '2w' (that long ago), or an ISO date/time (UTC unless it says otherwise)."""
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


def ordered(pool: Executor, fn: Callable[[T], R], items: Iterable[T], ahead: int) -> Iterator[tuple[T, R]]:
    """``(item, fn(item))`` in the order of ``items``, at most ``ahead`` calls running or waiting.

    ``Executor.map`` submits everything at once; this keeps a sliding window instead, so a
    slow consumer (classification) bounds how much is fetched ahead of it.
    """
    window: deque = deque()
    for item in items:
        window.append((item, pool.submit(fn, item)))
        if len(window) >= ahead:
            head, future = window.popleft()
            yield head, future.result()
    while window:
        head, future = window.popleft()
        yield head, future.result()


def days_between(since: datetime, until: datetime) -> list[date]:
    day, out = since.astimezone(timezone.utc).date(), []
    last = until.astimezone(timezone.utc).date()
    while day <= last:
        out.append(day)
        day += timedelta(days=1)
    return out


def s3_client():
    """boto3's default chain for credentials and region; AWS_ENDPOINT_URL is honoured by boto3 itself."""
    import boto3
    from botocore.config import Config

    return boto3.client("s3", config=Config(retries={"max_attempts": 5, "mode": "standard"}, max_pool_connections=32))


class TrailBucket:
    """One ``s3://bucket/prefix``: the trail's region folders, the day folders, the files."""

    def __init__(self, bucket: str, prefix: str = "", client=None, list_workers: int = 8):
        self.bucket, self.prefix = bucket, prefix
        self.s3 = client if client is not None else s3_client()
        self.list_workers = list_workers

    # -- listing ---------------------------------------------------------------------------------
    def _children(self, prefix: str) -> list[str]:
        """The next path level under ``prefix`` (names without slashes), from CommonPrefixes."""
        names = []
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix, Delimiter="/"):
            names += [p["Prefix"][len(prefix):].rstrip("/") for p in page.get("CommonPrefixes", [])]
        return names

    def _layout(self) -> tuple[str, list[str], str]:
        """(the AWSLogs/ prefix, path parts the URL names below it, a date part below the region)."""
        prefix = self.prefix if not self.prefix or self.prefix.endswith("/") else self.prefix + "/"
        head, marker, tail = prefix.partition("AWSLogs/")
        base = (head if marker else prefix) + "AWSLogs/"
        parts = [p for p in tail.split("/") if p] if marker else []
        date_part = ""
        if "CloudTrail" in parts:
            at = parts.index("CloudTrail")
            date_part = "/".join(parts[at + 2:])
            parts = parts[: at + 2]
        return base, parts, date_part

    def region_prefixes(self, accounts: Optional[set] = None, regions: Optional[set] = None) -> list[str]:
        """Every ``.../<account>/CloudTrail/<region>/`` prefix under the URL's prefix, filtered.

        Levels the URL already names (org id, account, region) are taken as given; the others
        are discovered with delimiter listings, one level at a time, the listings of one level
        in parallel.
        """
        base, parts, _ = self._layout()
        with ThreadPoolExecutor(max_workers=self.list_workers) as pool:
            if parts and _ORG.match(parts[0]):
                org_levels = [base + parts.pop(0) + "/"]
            elif parts and _ACCOUNT.match(parts[0]):
                org_levels = [base]
            else:  # an organization trail and account trails may share one bucket
                org_levels = [base] + [base + c + "/" for c in self._children(base) if _ORG.match(c)]
            account = parts.pop(0) if parts and _ACCOUNT.match(parts[0]) else None
            if account:
                account_prefixes = [level + account + "/" for level in org_levels]
            else:
                account_prefixes = [level + a + "/" for level, children in zip(org_levels, pool.map(self._children, org_levels))
                                    for a in children if _ACCOUNT.match(a)]
            account_prefixes = [p for p in account_prefixes if not accounts or p.rstrip("/").rsplit("/", 1)[-1] in accounts]
            region = parts[1] if len(parts) > 1 and parts[0] == "CloudTrail" else None
            trails = [p + "CloudTrail/" for p in account_prefixes]
            if region:
                found = [t + region + "/" for t in trails]
            else:
                found = [t + r + "/" for t, names in zip(trails, pool.map(self._children, trails)) for r in names]
        return [p for p in found if not regions or p.rstrip("/").rsplit("/", 1)[-1] in regions]

    def day_prefixes(self, since: datetime, until: datetime, accounts=None, regions=None,
                     region_prefixes: Optional[list[str]] = None) -> list[str]:
        """``.../CloudTrail/<region>/YYYY/MM/DD/`` for every region folder and day in [since, until]."""
        _, _, date_part = self._layout()
        days = [f"{d:%Y/%m/%d}/" for d in days_between(since, until)]
        if date_part:  # the URL itself names a year, month or day: only those days
            days = [d for d in days if d.startswith(date_part.rstrip("/") + "/")]
        if region_prefixes is None:
            region_prefixes = self.region_prefixes(accounts, regions)
        return [r + d for r in region_prefixes for d in days]

    def _list_day(self, prefix: str) -> list[tuple[str, int]]:
        out = []
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            out += [(o["Key"], o.get("Size", 0)) for o in page.get("Contents", [])]
        return out

    def keys(self, since: datetime, until: datetime, accounts=None, regions=None,
             prefixes: Optional[list[str]] = None) -> Iterator[tuple[str, int]]:
        """(key, size) of every log file delivered within [since, until], in listing order.

        Day folders are listed ``list_workers`` at a time (a few ahead of the consumer).
        """
        if prefixes is None:
            prefixes = self.day_prefixes(since, until, accounts, regions)
        low, high = since - FILE_SLACK, until + FILE_SLACK
        with ThreadPoolExecutor(max_workers=self.list_workers) as pool:
            for _, listed in ordered(pool, self._list_day, prefixes, ahead=2 * self.list_workers):
                for key, size in listed:
                    if key.endswith(".json.gz") and _delivered_within(key, low, high):
                        yield key, size

    # -- downloading ------------------------------------------------------------------------------
    def get(self, key: str) -> "bytes | Exception":
        try:
            return self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except Exception as exc:  # noqa: BLE001 - reported per object by the caller
            return exc

    def fetch(self, keys: Iterable[str], workers: int = 8, in_flight: int = 16) -> Iterator[tuple[str, "bytes | Exception"]]:
        """Download concurrently; yield (s3 URL, bytes or the error) in key order, at most ``in_flight`` held."""
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for key, data in ordered(pool, self.get, keys, ahead=max(1, in_flight)):
                yield f"s3://{self.bucket}/{key}", data


def _delivered_within(key: str, low: datetime, high: datetime) -> bool:
    """The file's own delivery time (…_YYYYMMDDTHHmmZ_…) within [low, high]; unknown -> kept."""
    m = _FILE_TIME.search(key.rsplit("/", 1)[-1])
    if not m:
        return True
    moment = datetime.strptime(m.group(1), "%Y%m%dT%H%M").replace(tzinfo=timezone.utc)
    return low <= moment <= high
