"""A bare CloudTrail record wrapped the way EventBridge delivers it to a rule target: what the
demo, the benchmark and the tests hand the handler. Not part of the function (it never wraps
records: EventBridge does)."""

from __future__ import annotations

import uuid

from auditor.contract import API_CALL, NETWORK_ACTIVITY, SERVICE_EVENT

__all__ = ["to_eventbridge"]

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
