"""Time arguments and the windows they make: ``--since``/``--until`` of ``classify s3://`` and
``lookup``, and the year, month or day an s3:// URL names below a region.

Everything here is checked before any input is read; a value that cannot be used raises
:class:`UsageError` with a message for the user (exit status 1), never a traceback: a relative
time reaching back before the year 1, an ISO time out of range once in UTC, ``--since`` after
``--until``, a URL's date folder that is not a date or lies outside the window.
"""

from __future__ import annotations

import calendar
import re
from datetime import datetime, timedelta, timezone
from typing import Optional

__all__ = ["LOOKUP_DAYS", "UsageError", "check_order", "date_range", "lookup_window", "now", "parse_when", "s3_window",
           "shifted"]

_RELATIVE = re.compile(r"^(\d+)\s*([mhdw])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
#: LookupEvents keeps this many days of management events.
LOOKUP_DAYS = 90
_EARLIEST = datetime.min.replace(tzinfo=timezone.utc)
_LATEST = datetime.max.replace(tzinfo=timezone.utc)


class UsageError(ValueError):
    """An argument that cannot be used: the message says which and why."""


def now() -> datetime:
    """The current time in UTC (tests replace this)."""
    return datetime.now(timezone.utc)


def parse_when(text: str, at: Optional[datetime] = None) -> datetime:
    """'24h', '7d', '30m', '2w' (that long before ``at``), or an ISO date/time (UTC unless it
    says otherwise), as an aware datetime in UTC."""
    at = at or now()
    value = text.strip()
    m = _RELATIVE.match(value)
    if m:
        try:
            return at - timedelta(**{_UNITS[m.group(2)]: int(m.group(1))})
        except (OverflowError, ValueError):  # beyond timedelta's range, or before the year 1
            raise UsageError(f"{text!r} reaches back before the year 1") from None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"not a time: {text!r} (use 24h, 7d, 2026-11-20 or 2026-11-20T08:00:00Z)") from None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=timezone.utc)
    try:
        return moment.astimezone(timezone.utc)
    except OverflowError:
        raise UsageError(f"{text!r} is out of range in UTC") from None


def shifted(moment: datetime, delta: timedelta) -> datetime:
    """``moment + delta``, held at the first or last representable moment instead of overflowing."""
    try:
        return moment + delta
    except OverflowError:
        return _LATEST if delta > timedelta(0) else _EARLIEST


def date_range(date_part: str) -> tuple[datetime, datetime] | None:
    """'2026' / '2026/11' / '2026/11/21' (the part of an s3:// URL below the region) -> its first
    and last moment; None when the URL names no date. A fourth level (the start of file names)
    narrows nothing further."""
    fields = [f for f in date_part.split("/") if f][:3]
    if not fields:
        return None
    shape_ok = all(f.isascii() and f.isdigit() for f in fields) and len(fields[0]) == 4 and all(
        len(f) == 2 for f in fields[1:])
    try:
        if not shape_ok:
            raise ValueError
        numbers = [int(f) for f in fields]
        year, month, day = (numbers + [1, 1])[:3]
        start = datetime(year, month, day, tzinfo=timezone.utc)
    except ValueError:
        raise UsageError(f"{date_part!r} below the region is not a date folder (YYYY, YYYY/MM or YYYY/MM/DD)") from None
    if len(numbers) == 1:
        last_month, last_day = 12, 31
    elif len(numbers) == 2:
        last_month, last_day = month, calendar.monthrange(year, month)[1]
    else:
        last_month, last_day = month, day
    return start, datetime(year, last_month, last_day, 23, 59, 59, 999999, tzinfo=timezone.utc)


def _show(moment: datetime) -> str:
    return f"{moment:%Y-%m-%dT%H:%M}Z"


def s3_window(args, date_part: str = "", at: Optional[datetime] = None) -> tuple[datetime, datetime]:
    """[since, until] for an s3:// URL: the options, else the date the URL names, else the last 24 hours."""
    at = at or now()
    named = date_range(date_part)
    if args.since:
        since = parse_when(args.since, at)
    else:
        since = named[0] if named else shifted(at, -timedelta(hours=24))
    if args.until:
        until = parse_when(args.until, at)
    else:
        until = named[1] if named and not args.since else at
    if named and (until < named[0] or since > named[1]):
        raise UsageError(f"the URL names {date_part.strip('/')}, which is outside the window from "
                         f"{_show(since)} to {_show(until)} (--since/--until)")
    if since > until:
        raise UsageError(f"--since {_show(since)} is after --until {_show(until)}")
    return since, until


def check_order(since_text: Optional[str], until_text: Optional[str], at: Optional[datetime] = None) -> None:
    """Both times valid, and --since not after --until (for any command that takes them)."""
    at = at or now()
    since = parse_when(since_text, at) if since_text else None
    until = parse_when(until_text, at) if until_text else None
    if since and until and since > until:
        raise UsageError(f"--since {_show(since)} is after --until {_show(until)}")


def lookup_window(since_text: str, until_text: Optional[str], at: Optional[datetime] = None) -> tuple[datetime, datetime]:
    """[since, until] for LookupEvents, within the 90 days it keeps (nothing older or newer exists)."""
    at = at or now()
    since = parse_when(since_text, at)
    until = parse_when(until_text, at) if until_text else at
    if since > until:
        raise UsageError(f"--since {_show(since)} is after --until {_show(until)}")
    oldest = shifted(at, -timedelta(days=LOOKUP_DAYS))
    if until < oldest:
        raise UsageError(f"--until {_show(until)} is more than {LOOKUP_DAYS} days ago: LookupEvents keeps "
                         f"{LOOKUP_DAYS} days of events (use the trail's bucket or Athena)")
    return max(since, oldest), min(until, at)
