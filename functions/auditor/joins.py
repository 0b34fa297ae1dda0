"""Records that are one failure with a partner in another batch (a Secrets Manager call and the
KMS call it made for the caller; a rotation and its function's calls), over the state table.

A ``join#<join key>`` item lists the halves seen for one caller and secret (or one rotation):
``counted`` (a late partner is absorbed into it), ``parked`` (its root is not known without its
partner: it waits) and ``done``. A parked half arms the item in the ``due`` index for when its
wait ends; the scheduled run then counts it alone (``unpark``). Nothing here writes: the
operations go into the same transaction as the incidents they count into, so a half is never
marked counted without being counted, nor counted twice.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional

from .contract import Log, Metric
from .incidents import Failure, dumps
from .pairing import Half, join
from .storage import (N, S, Writes, finding_from_dict, finding_to_dict, join_pk, num, root_from_dict, root_to_dict,
                      shard_of, text)
from .contract import Table as Names

__all__ = ["Joined", "JOIN_TTL", "JOIN_WAIT", "resolve", "unpark"]

JOIN_TTL = 3600
MAX_JOIN_ENTRIES = 50
#: How long a record without its partner waits at most (capped by the quiet period).
JOIN_WAIT = 90


@dataclass
class Joined:
    """What halves became: failures to count, the join items' writes, each half's outcome, counts."""

    failures: list[Failure] = field(default_factory=list)
    ops: list[dict] = field(default_factory=list)
    outcomes: dict[str, tuple[str, str]] = field(default_factory=dict)  # event id -> (outcome, incident id)
    counts: Counter = field(default_factory=Counter)


def entries_of(item: Optional[Mapping]) -> list[dict]:
    import json

    try:
        entries = json.loads(text(item, "doc") or "[]")
    except ValueError:
        return []
    return [e for e in entries if isinstance(e, dict)] if isinstance(entries, list) else []


def _entry(half: Half, state: str, now: float, incident: str = "", failure: Optional[Failure] = None) -> dict:
    entry: dict[str, Any] = {"side": half.side, "when": half.when, "event_id": half.failure.event_id, "state": state,
                             "incident": incident, "arrived": now, "until": now + JOIN_TTL}
    if failure is not None:
        entry.update(finding=finding_to_dict(failure.finding), root=root_to_dict(failure.root),
                     principal=failure.principal, resource=failure.resource, event_ids=list(failure.event_ids),
                     keys=list(failure.keys), at=failure.when, note=failure.time_note)
    return entry


def _nearest(entries: list[dict], half: Half) -> Optional[dict]:
    sides = half.partner_sides()
    best = None
    for entry in entries:
        if entry.get("side") not in sides or entry.get("state") not in ("counted", "parked"):
            continue
        try:
            gap = abs(float(entry.get("when", 0)) - half.when)
        except (TypeError, ValueError):
            continue
        if gap <= half.window and (best is None or gap < best[0]):
            best = (gap, entry)
    return best[1] if best else None


def failure_of(entry: Mapping) -> Optional[Failure]:
    """The failure a parked entry holds (None when it cannot be read back)."""
    finding = finding_from_dict(entry.get("finding") or {})
    if finding is None:
        return None
    try:
        return Failure(finding, root_from_dict(entry.get("root") or {}), tuple(entry.get("keys") or ()),
                       tuple(entry.get("event_ids") or [finding.event_id]), str(entry.get("principal", "")),
                       str(entry.get("resource", "")), float(entry.get("at") or 0.0), str(entry.get("note") or ""))
    except (TypeError, ValueError):
        return None


def _write(writes: Writes, pk: str, item: Optional[Mapping], entries: list[dict], now: float, join_wait: int) -> dict:
    """The join item's new entries, conditional on the version read; armed while a half is parked."""
    entries = entries[-MAX_JOIN_ENTRIES:]
    u = writes.update(pk)
    u.set("doc", S(dumps(entries))).set("v", N(num(item, "v") + 1)).set(Names.TTL_ATTRIBUTE, N(now + JOIN_TTL))
    waiting = [float(e.get("arrived") or now) + join_wait for e in entries if e.get("state") == "parked"]
    if waiting:
        u.set(Names.DUE_SHARD, S(shard_of(pk))).set(Names.DUE_AT, N(min(waiting)))
    else:
        u.remove(Names.DUE_SHARD, Names.DUE_AT)
    if item is None:
        u.when("attribute_not_exists({pk})")
    else:
        u.when("{v} = {v_old}", v_old=N(num(item, "v")))
    return u.op()


def resolve(halves: list[Half], items: Mapping[str, Optional[dict]], now: float, join_wait: int, writes: Writes) -> Joined:
    """Halves of this batch against what earlier batches left in their join items (``items``, by pk)."""
    out = Joined()
    by_join: dict[str, list[Half]] = {}
    for half in halves:
        by_join.setdefault(half.join, []).append(half)
    for join_key, members in by_join.items():
        pk = join_pk(join_key)
        item = items.get(pk)
        entries = [e for e in entries_of(item) if (e.get("until") or 0) > now]
        known = {e.get("event_id") for e in entries}
        for half in members:
            if half.failure.event_id in known:
                out.counts[Metric.REDELIVERED_EVENTS] += 1
                out.outcomes[half.failure.event_id] = (Log.REDELIVERED, "")
                continue
            partner = _nearest(entries, half)
            if partner is not None and partner["state"] == "counted":
                partner["state"] = "done"
                out.counts[Metric.JOINED_RECORDS] += 1
                out.outcomes[half.failure.event_id] = (Log.JOINED, partner.get("incident", ""))
                entries.append(_entry(half, "done", now))
            elif partner is not None and partner["state"] == "parked" and (waiting := failure_of(partner)) is not None:
                partner["state"] = "done"
                merged = join(waiting, half.failure, "sm") if half.side == "kms" else join(half.failure, waiting, half.side)
                out.counts[Metric.JOINED_RECORDS] += 1
                out.failures.append(merged)
                entries.append(_entry(half, "done", now, merged.root.incident_id))
            elif half.failure.root.known:
                out.failures.append(half.failure)
                entries.append(_entry(half, "counted", now, half.failure.root.incident_id))
            else:
                out.counts[Metric.PARKED_RECORDS] += 1
                out.outcomes[half.failure.event_id] = (Log.PARKED, "")
                entries.append(_entry(half, "parked", now, failure=half.failure))
            known.add(half.failure.event_id)
        out.ops.append(_write(writes, pk, item, entries, now, join_wait))
    return out


def unpark(items: Mapping[str, Optional[dict]], now: float, join_wait: int, writes: Writes) -> Joined:
    """Parked halves whose wait is over, from their join items: counted alone now (their entries
    become ``counted``, so a late partner is absorbed), in the same transaction as their incidents."""
    out = Joined()
    for pk, item in items.items():
        if not pk.startswith("join#") or item is None:
            continue
        entries = entries_of(item)
        due = [e for e in entries if e.get("state") == "parked" and now - float(e.get("arrived") or 0) >= join_wait]
        for entry in due:
            failure = failure_of(entry)
            entry["state"] = "counted"
            if failure is not None:
                entry["incident"] = failure.root.incident_id
                out.failures.append(failure)
        out.ops.append(_write(writes, pk, item, entries, now, join_wait))
    return out
