"""An (organization) trail's S3 bucket: list only the days asked for, download concurrently.

Only the CLI imports this module; the Lambda never does, and boto3 is imported lazily.

CloudTrail writes ``[<prefix>/]AWSLogs/[<org id>/]<account>/CloudTrail/<region>/YYYY/MM/DD/<file>.json.gz``.
We walk that layout one level at a time with delimiter listings (``ListObjectsV2`` with
``Delimiter="/"``: org ids, then accounts, then regions), then list each
``.../YYYY/MM/DD/`` prefix inside [since, until] and nothing else: the whole bucket is never
listed. A window longer than :data:`ENUMERATED_DAYS` days is not enumerated day by day: the
year, month and day folders that exist are discovered by delimiter listings too, so
``--since 2014-01-01`` costs a few listings per region, not one per day. Listings and
downloads run in small thread pools, ``ahead`` listings and ``in_flight`` downloads at a
time (and at most ``limit`` bytes of them), and results come back in listing order, so
memory holds a bounded number of compressed files whatever the size of the bucket.

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

from ..aws import ACCOUNT_ID, client, fan_out
from .documents import DEFAULT_LIMIT, read_bounded, too_large
from .windows import shifted

__all__ = ["ENUMERATED_DAYS", "TrailBucket", "layout", "ordered", "split_s3_url"]

_ORG = re.compile(r"^o-[a-z0-9]{10,32}$")
_FILE_TIME = re.compile(r"_(\d{8}T\d{4})Z_")
#: Slack around [since, until] for the time in a file's name: a file holds the events of the
#: ~5 minutes before its delivery, more when delivery lags.
FILE_SLACK = timedelta(minutes=15)
#: Windows up to this many days list each day folder directly; longer ones discover them.
ENUMERATED_DAYS = 62

T = TypeVar("T")
R = TypeVar("R")


def split_s3_url(url: str) -> tuple[str, str]:
    if not url.startswith("s3://"):
        raise ValueError(f"not an s3:// URL: {url!r}")
    bucket, _, prefix = url[5:].partition("/")
    if not bucket:
        raise ValueError(f"no bucket in {url!r}")
    return bucket, prefix


def layout(prefix: str) -> tuple[str, list[str], str]:
    """(the AWSLogs/ prefix, path parts the URL names below it, a date part below the region)."""
    prefix = prefix if not prefix or prefix.endswith("/") else prefix + "/"
    head, marker, tail = prefix.partition("AWSLogs/")
    base = (head if marker else prefix) + "AWSLogs/"
    parts = [p for p in tail.split("/") if p] if marker else []
    date_part = ""
    if "CloudTrail" in parts:
        at = parts.index("CloudTrail")
        date_part = "/".join(parts[at + 2:])
        parts = parts[: at + 2]
    return base, parts, date_part


def ordered(pool: Executor, fn: Callable[[T], R], items: Iterable[T], ahead: int,
            weight: Optional[Callable[[T], int]] = None, budget: int = 0) -> Iterator[tuple[T, R]]:
    """``(item, fn(item))`` in the order of ``items``, at most ``ahead`` calls running or waiting
    (and, with ``weight``, at most ``budget`` of their weight, one call always allowed).

    ``Executor.map`` submits everything at once; this keeps a sliding window instead, so a
    slow consumer (classification) bounds how much is fetched ahead of it.
    """
    window: deque = deque()
    held = 0
    for item in items:
        cost = weight(item) if weight else 0
        while window and (len(window) >= ahead or (weight and held + cost > budget)):
            head, future, spent = window.popleft()
            held -= spent
            yield head, future.result()
        window.append((item, pool.submit(fn, item), cost))
        held += cost
    while window:
        head, future, _ = window.popleft()
        yield head, future.result()


def days_between(since: datetime, until: datetime) -> list[date]:
    day, out = since.astimezone(timezone.utc).date(), []
    last = until.astimezone(timezone.utc).date()
    while day <= last:
        out.append(day)
        if day == date.max:
            break
        day += timedelta(days=1)
    return out


def s3_client():
    """boto3's default chain for credentials and region; AWS_ENDPOINT_URL is honoured by boto3 itself."""
    return client("s3", retries={"max_attempts": 5, "mode": "standard"}, max_pool_connections=32)


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

    def _listed(self, prefixes: list[str]) -> list[list[str]]:
        """``_children`` of each prefix, ``list_workers`` at a time."""
        return fan_out(self._children, prefixes, workers=self.list_workers)

    def _layout(self) -> tuple[str, list[str], str]:
        return layout(self.prefix)

    def region_prefixes(self, accounts: Optional[set] = None, regions: Optional[set] = None) -> list[str]:
        """Every ``.../<account>/CloudTrail/<region>/`` prefix under the URL's prefix, filtered.

        Levels the URL already names (org id, account, region) are taken as given; the others
        are discovered with delimiter listings, one level at a time, the listings of one level
        in parallel.
        """
        base, parts, _ = self._layout()
        if parts and _ORG.match(parts[0]):
            org_levels = [base + parts.pop(0) + "/"]
        elif parts and ACCOUNT_ID.match(parts[0]):
            org_levels = [base]
        else:  # an organization trail and account trails may share one bucket
            org_levels = [base] + [base + c + "/" for c in self._children(base) if _ORG.match(c)]
        account = parts.pop(0) if parts and ACCOUNT_ID.match(parts[0]) else None
        if account:
            account_prefixes = [level + account + "/" for level in org_levels]
        else:
            account_prefixes = [level + a + "/" for level, children in zip(org_levels, self._listed(org_levels))
                                for a in children if ACCOUNT_ID.match(a)]
        account_prefixes = [p for p in account_prefixes if not accounts or p.rstrip("/").rsplit("/", 1)[-1] in accounts]
        region = parts[1] if len(parts) > 1 and parts[0] == "CloudTrail" else None
        trails = [p + "CloudTrail/" for p in account_prefixes]
        if region:
            found = [t + region + "/" for t in trails]
        else:
            found = [t + r + "/" for t, names in zip(trails, self._listed(trails)) for r in names]
        return [p for p in found if not regions or p.rstrip("/").rsplit("/", 1)[-1] in regions]

    def day_prefixes(self, since: datetime, until: datetime, accounts=None, regions=None,
                     region_prefixes: Optional[list[str]] = None) -> list[str]:
        """``.../CloudTrail/<region>/YYYY/MM/DD/`` for every region folder and day in [since, until]."""
        _, _, date_part = self._layout()
        named = date_part.strip("/").split("/")[:3] if date_part.strip("/") else []
        if region_prefixes is None:
            region_prefixes = self.region_prefixes(accounts, regions)
        first, last = since.astimezone(timezone.utc).date(), until.astimezone(timezone.utc).date()
        if (last - first).days < ENUMERATED_DAYS:
            days = [f"{d:%Y/%m/%d}/" for d in days_between(since, until)]
            if named:  # the URL itself names a year, month or day: only those days
                days = [d for d in days if d.startswith("/".join(named) + "/")]
            return [r + d for r in region_prefixes for d in days]
        return self._discover_days(region_prefixes, first, last, named)

    def _discover_days(self, region_prefixes: list[str], first: date, last: date, named: list[str]) -> list[str]:
        """The day folders that exist between ``first`` and ``last``: years, then months, then
        days listed with delimiters (each level's listings in parallel), in listing order."""
        def within(value: str, width: int, low: str, high: str, given: Optional[str]) -> bool:
            return len(value) == width and value.isdigit() and low <= value <= high and (given is None or value == given)

        years = [r + y + "/" for r, names in zip(region_prefixes, self._listed(region_prefixes)) for y in names
                 if within(y, 4, f"{first:%Y}", f"{last:%Y}", named[0] if named else None)]
        months = [y + m + "/" for y, names in zip(years, self._listed(years)) for m in names
                  if within(m, 2, "01", "12", named[1] if len(named) > 1 else None)
                  and f"{first:%Y%m}" <= y[-5:-1] + m <= f"{last:%Y%m}"]
        days = [m + d + "/" for m, names in zip(months, self._listed(months)) for d in names
                if within(d, 2, "01", "31", named[2] if len(named) > 2 else None)
                and f"{first:%Y%m%d}" <= m[-8:-4] + m[-3:-1] + d <= f"{last:%Y%m%d}"]
        return days

    def _list_day(self, prefix: str) -> list[tuple[str, int]]:
        out = []
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            out += [(o["Key"], o.get("Size", 0)) for o in page.get("Contents", [])]
        return out

    def _list_day_or_error(self, prefix: str):
        try:
            return self._list_day(prefix)
        except Exception as exc:  # noqa: BLE001 - reported per day folder by the caller
            return exc

    def keys(self, since: datetime, until: datetime, accounts=None, regions=None,
             prefixes: Optional[list[str]] = None,
             on_error: Optional[Callable[[str, Exception], None]] = None) -> Iterator[tuple[str, int]]:
        """(key, size) of every log file delivered within [since, until], in listing order.

        Day folders are listed ``list_workers`` at a time (a few ahead of the consumer). A day
        folder that cannot be listed raises, or with ``on_error`` is reported there and skipped.
        """
        if prefixes is None:
            prefixes = self.day_prefixes(since, until, accounts, regions)
        low, high = shifted(since, -FILE_SLACK), shifted(until, FILE_SLACK)
        list_day = self._list_day if on_error is None else self._list_day_or_error
        with ThreadPoolExecutor(max_workers=self.list_workers) as pool:
            for prefix, listed in ordered(pool, list_day, prefixes, ahead=2 * self.list_workers):
                if isinstance(listed, Exception):
                    on_error(prefix, listed)
                    continue
                for key, size in listed:
                    if key.endswith(".json.gz") and _delivered_within(key, low, high):
                        yield key, size

    # -- downloading ------------------------------------------------------------------------------
    def get(self, key: str, limit: int = DEFAULT_LIMIT, size: Optional[int] = None):
        """The object's bytes; an ``Unreadable`` (too large) when it holds more than ``limit``
        bytes (not downloaded when the listed ``size`` says so); or the exception."""
        url = f"s3://{self.bucket}/{key}"
        if size is not None and size > limit:
            return too_large(url, limit)
        try:
            response = self.s3.get_object(Bucket=self.bucket, Key=key)
            body = response["Body"]
            try:
                data = read_bounded(body, limit, response.get("ContentLength"))
            finally:
                body.close()
        except Exception as exc:  # noqa: BLE001 - reported per object by the caller
            return exc
        return too_large(url, limit) if data is None else data

    def fetch(self, keys: Iterable, workers: int = 8, in_flight: int = 16,
              limit: int = DEFAULT_LIMIT) -> Iterator[tuple[str, object]]:
        """Download concurrently; yield (s3 URL, bytes, or why not) in key order, at most
        ``in_flight`` objects (and about ``limit`` listed bytes) held. ``keys`` are keys, or
        (key, listed size) pairs."""
        pairs = ((k, None) if isinstance(k, str) else k for k in keys)
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for (key, _), data in ordered(pool, lambda pair: self.get(pair[0], limit, pair[1]), pairs,
                                          ahead=max(1, in_flight), weight=lambda pair: pair[1] or 0, budget=limit):
                yield f"s3://{self.bucket}/{key}", data


def _delivered_within(key: str, low: datetime, high: datetime) -> bool:
    """The file's own delivery time (…_YYYYMMDDTHHmmZ_…) within [low, high]; unknown -> kept."""
    m = _FILE_TIME.search(key.rsplit("/", 1)[-1])
    if not m:
        return True
    try:
        moment = datetime.strptime(m.group(1), "%Y%m%dT%H%M").replace(tzinfo=timezone.utc)
    except ValueError:  # 20261399T9999: not a time after all
        return True
    return low <= moment <= high
