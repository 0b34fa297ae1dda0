"""The scheduled run's part of the incident state: records that waited long enough for their
partner are released to be counted alone, and open incidents quiet for the quiet period are
resolved (each claimed by a conditional write, like every notification).

Part of auditor.state (which owns the table's items and helpers); imported only by the
scheduled run, so an event's cold start does not compile it.
"""

from __future__ import annotations

import uuid
from typing import Callable

from .contract import Metric, Status
from .incidents import Failure, dumps
from .state import (OPEN, PK, REGISTRY_OPEN, REGISTRY_PARKED, RESOLVED, TTL, Applied, Notice, State, StateUnavailable,
                    _N, _S, _doc, _failure_from, _finding_from, _join_entries, _n, _s, _ss)

__all__ = ["sweep"]


def sweep(state: State, now: float) -> tuple[list[Failure], Applied]:
    """Records that waited long enough for their partner (processed alone now), and the
    open incidents quiet for ``quiet`` seconds (resolved). Returns the waiting failures (the
    caller counts them through ``apply``) and what resolving did."""
    applied = Applied()
    token = uuid.uuid4().hex[:16]
    registries = state.table.read([REGISTRY_OPEN, REGISTRY_PARKED])
    waiting = _unpark(state, _ss(registries.get(REGISTRY_PARKED), "ids"), now)
    open_pks = _ss(registries.get(REGISTRY_OPEN), "ids")
    items = state.table.read(open_pks) if open_pks else {}
    stale, still_open = [], 0
    for pk, item in items.items():
        if _s(item, "status") != OPEN:
            stale.append(pk)
            continue
        if now - _n(item, "last_arrival") < state.quiet:
            still_open += 1
            continue
        values = {":resolved": _S(RESOLVED), ":open": _S(OPEN), ":seq": _N(_n(item, "seq")), ":now": _N(now),
                  ":claim": _S(token), ":la": _N(_n(item, "last_arrival")), ":exp": _N(now + state.retention * 86400),
                  ":ids": {"SS": [pk]}}
        ops = [state._update_op(pk, f"SET #status = :resolved, resolved_at = :now, claim = :claim, {TTL} = :exp",
                               "#status = :open AND seq = :seq AND last_arrival = :la",
                               {k: v for k, v in values.items() if k != ":ids"}),
               {"Update": {"TableName": state.table.name, "Key": {PK: _S(REGISTRY_OPEN)},
                           "UpdateExpression": "DELETE ids :ids", "ExpressionAttributeValues": {":ids": {"SS": [pk]}}}}]
        if state.table.transact(ops) is not None:
            applied.counts[Metric.STATE_RETRIES] += 1
            still_open += 1  # a failure arrived meanwhile, or another run resolved it
            continue
        resolved = {**item, "status": _S(RESOLVED), "resolved_at": _N(now)}
        incident = state._incident(pk, resolved, status=RESOLVED)
        finding = _finding_from(_doc(item).get("finding", {}))
        if finding is None:
            continue
        applied.notices.append(Notice(Status.RESOLVED, incident, finding, pk, [],
                                      release=_resolve_releaser(state, pk, token)))
        applied.resolved_seconds.append(now - _n(item, "opened_at", int(now)))
    if stale:
        state.table.call("update_item", TableName=state.table.name, Key={PK: _S(REGISTRY_OPEN)},
                        UpdateExpression="DELETE ids :ids", ExpressionAttributeValues={":ids": {"SS": stale}})
    applied.open_incidents = still_open
    return waiting, applied

def _resolve_releaser(state: State, pk: str, token: str) -> Callable[[], None]:
    def release() -> None:
        state.table.transact([
            state._update_op(pk, "SET #status = :open REMOVE resolved_at", "claim = :claim AND #status = :resolved",
                            {":open": _S(OPEN), ":resolved": _S(RESOLVED), ":claim": _S(token)}),
            {"Update": {"TableName": state.table.name, "Key": {PK: _S(REGISTRY_OPEN)},
                        "UpdateExpression": "ADD ids :ids", "ExpressionAttributeValues": {":ids": {"SS": [pk]}}}}])
    return release

def _unpark(state: State, join_pks: list[str], now: float) -> list[Failure]:
    """Parked records whose wait is over: marked counted (a late partner is absorbed) and
    returned to be counted alone; join items with nothing parked leave the registry."""
    if not join_pks:
        return []
    out: list[Failure] = []
    done: list[str] = []
    for pk, item in state.table.read(join_pks).items():
        entries = _join_entries(item)
        due = [e for e in entries if e.get("state") == "parked" and now - e.get("arrived", 0) >= state.join_wait]
        ready = []
        for entry in due:
            failure = _failure_from(entry)
            entry["state"] = "counted"
            if failure is not None:
                entry["incident"] = failure.root.incident_id
                ready.append(failure)
        if due:
            try:
                state.table.call("update_item", TableName=state.table.name, Key={PK: _S(pk)},
                                UpdateExpression="SET doc = :doc, v = :v", ConditionExpression="v = :oldv",
                                ExpressionAttributeValues={":doc": _S(dumps(entries)), ":v": _N(_n(item, "v") + 1),
                                                           ":oldv": _N(_n(item, "v"))})
            except StateUnavailable:
                raise
            except Exception:  # noqa: BLE001 - a partner arrived meanwhile: the next run decides again
                continue
            out += ready
        if not any(e.get("state") == "parked" for e in entries):
            done.append(pk)
    if done:
        state.table.call("update_item", TableName=state.table.name, Key={PK: _S(REGISTRY_PARKED)},
                        UpdateExpression="DELETE ids :ids", ExpressionAttributeValues={":ids": {"SS": done}})
    return out
