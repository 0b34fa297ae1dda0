"""A bare CloudTrail record wrapped the way EventBridge delivers it to a rule target: what the
demo, the benchmark and the tests hand the handler. Not part of the function (it never wraps
records: EventBridge does)."""

from __future__ import annotations

import copy
import uuid
from datetime import datetime, timedelta, timezone
from typing import Optional

from auditor.contract import API_CALL, NETWORK_ACTIVITY, SERVICE_EVENT
from auditor.facts import parse_time

__all__ = ["fresh", "to_eventbridge"]

#: CloudTrail's eventType -> the detail-type EventBridge gives it.
_DETAIL_TYPE_OF = {"AwsServiceEvent": SERVICE_EVENT, "AwsVpceEvent": NETWORK_ACTIVITY}


def to_eventbridge(record: dict, event_id: str | None = None) -> dict:
    """Wrap a bare CloudTrail record the way EventBridge delivers it to a rule target."""
    source = record.get("eventSource", "")
    service = source.partition(".")[0] if isinstance(source, str) else ""
    return {
        "version": "0",
        "id": event_id or str(uuid.uuid4()),
        "detail-type": _DETAIL_TYPE_OF.get(record.get("eventType"), API_CALL) if type(record.get("eventType")) is str else API_CALL,
        "source": f"aws.{service}",
        "account": record.get("recipientAccountId", ""),
        "time": record.get("eventTime", ""),
        "region": record.get("awsRegion", ""),
        "resources": [],
        "detail": record,
    }


def fresh(records: list[dict], now: Optional[datetime] = None, lag_seconds: float = 60.0) -> list[dict]:
    """Copies of ``records`` whose event times are moved, together, so that the latest is
    ``lag_seconds`` before ``now`` (default: the present): the gaps between them are kept. The
    function never pages a failure older than its quiet period when it arrives (old news), so a
    recorded history replayed through it (the demo's sample log, the fixtures) is made recent first.
    A record without a readable eventTime is copied as it is."""
    now = now or datetime.now(timezone.utc)
    times = [parse_time(r.get("eventTime")) if isinstance(r.get("eventTime"), str) else None for r in records]
    known = [t for t in times if t is not None]
    if not known:
        return [copy.deepcopy(r) for r in records]
    shift = now - timedelta(seconds=lag_seconds) - max(known)
    out = []
    for record, when in zip(records, times):
        record = copy.deepcopy(record)
        if when is not None:
            record["eventTime"] = (when + shift).strftime("%Y-%m-%dT%H:%M:%SZ")
        out.append(record)
    return out
