"""Changes in the incident state table: each recorded on the resources it touched (``chg#``
items, the newest ``MAX_CHANGES`` kept for the retention period), and named late by an open
incident it started (delivery is not ordered: a change can arrive after its failures).

Part of auditor.state (which owns the table's items and helpers); imported only by a batch
that holds changes, so a cold start on failures alone does not compile it.
"""

from __future__ import annotations

from .aws import fan_out
from .changes import Change
from .contract import Metric, Status
from .incidents import attribute, change_entries, dumps, epoch, remediation_for
from .state import (MAX_CHANGES, OPEN, PK, TTL, REGISTRY_OPEN, Applied, Notice, State, StateUnavailable, _N, _S,
                    _change_entries, _doc, _finding_from, _n, _root, _s, _ss)

__all__ = ["late_attribution", "record_changes"]


def record_changes(state: State, changes: list[Change], now: float, applied: Applied) -> None:
    by_key: dict[str, dict[str, dict]] = {}
    for change in changes:
        for key, entry in change_entries(change):
            by_key.setdefault(key, {})[change.event_id or str(len(by_key))] = entry
    expires = now + state.retention * 86400

    def write(item: tuple[str, dict[str, dict]]) -> None:
        key, entries = item
        # One attribute per change (``c#<event id>``): a redelivered change overwrites itself,
        # and no map has to exist first. Pruned to the newest MAX_CHANGES.
        names = {f"#e{i}": "c#" + event_id for i, event_id in enumerate(entries)}
        values = {f":e{i}": _S(dumps(entry)) for i, entry in enumerate(entries.values())}
        values[":exp"] = _N(expires)
        sets = ", ".join(f"#e{i} = :e{i}" for i in range(len(entries)))
        current = state.table.call("update_item", TableName=state.table.name, Key={PK: _S("chg#" + key)},
                                  UpdateExpression=f"SET {sets}, {TTL} = :exp", ExpressionAttributeNames=names,
                                  ExpressionAttributeValues=values, ReturnValues="ALL_NEW").get("Attributes", {})
        stored = dict(_change_entries(current, keep_names=True))
        if len(stored) > MAX_CHANGES:
            oldest = sorted(stored, key=lambda name: stored[name].get("event_time", ""))
            drop = oldest[: len(stored) - MAX_CHANGES]
            state.table.call("update_item", TableName=state.table.name, Key={PK: _S("chg#" + key)},
                            UpdateExpression="REMOVE " + ", ".join(f"#d{i}" for i in range(len(drop))),
                            ExpressionAttributeNames={f"#d{i}": name for i, name in enumerate(drop)})

    fan_out(write, list(by_key.items()), workers=4)
    applied.counts[Metric.CHANGES_RECORDED] += len(changes)

def late_attribution(state: State, changes: list[Change], now: float, token: str, applied: Applied) -> list[Notice]:
    """A change that arrives after the incident it started opened (delivery is not ordered):
    the incident names it in an update; a change after the first failure is kept as a later
    change (a fix, perhaps), shown when it resolves."""
    registry = state.table.read([REGISTRY_OPEN]).get(REGISTRY_OPEN)
    open_pks = _ss(registry, "ids")
    if not open_pks:
        return []
    entries = [e for change in changes for e in change_entries(change)]
    notices = []
    for pk, item in state.table.read(open_pks).items():
        if _s(item, "status") != OPEN:
            continue
        doc = _doc(item)
        root = _root(doc.get("root", {}))
        first = _s(item, "first_failure")
        mine = [(k, c) for k, c in entries if any(k == s[0] and (s[1] is None or c.get("topic") in s[1]) for s in root.searches)]
        if not mine:
            continue
        before = [(k, c) for k, c in mine if (epoch(c.get("event_time", "")) or 0) <= (epoch(first) or 0)]
        later = [c for k, c in mine if (k, c) not in before]
        current = (doc.get("attribution") or {}).get("change")
        found = attribute(root, first, before + ([("", current)] if current else []), state.retention) if before else None
        improved = found is not None and found.change is not None and (
            current is None or found.change.get("event_id") != current.get("event_id"))
        if not improved and not later:
            continue
        if improved:
            doc["attribution"] = found.to_dict()
            finding = _finding_from(doc.get("finding", {}))
            if finding is not None:
                doc["remediation"] = remediation_for(root, finding, found)
        doc["later"] = (doc.get("later", []) + [{k: c.get(k) for k in ("event_id", "event_time", "action", "actor", "summary")}
                                                for c in later])[-5:]
        values = {":doc": _S(dumps(doc)), ":open": _S(OPEN), ":seq": _N(_n(item, "seq"))}
        expression = "SET doc = :doc"
        if improved:
            values.update({":now": _N(now), ":claim": _S(token)})
            expression += ", last_notified = :now, claim = :claim"
        try:
            state.table.call("update_item", TableName=state.table.name, Key={PK: _S(pk)}, UpdateExpression=expression,
                            ConditionExpression="#status = :open AND seq = :seq",
                            ExpressionAttributeNames={"#status": "status"}, ExpressionAttributeValues=values)
        except StateUnavailable:
            raise
        except Exception:  # noqa: BLE001 - ConditionalCheckFailed: it resolved or reopened meanwhile
            continue
        if improved:
            incident = state._incident(pk, {**item, "doc": _S(dumps(doc))}, status=OPEN)
            finding = _finding_from(doc.get("finding", {}))
            if finding is not None:
                notices.append(Notice(Status.UPDATED, incident, finding, pk, [],
                                      release=state._update_releaser(pk, item, token), reason="change found"))
                applied.counts[Metric.LATE_ATTRIBUTIONS] += 1
    return notices
