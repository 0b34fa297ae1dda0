"""What changed, over the state table: each successful change recorded under the resources it
touched (``chg#<change key>`` items, one ``c#<event id>`` attribute per change, the newest
``MAX_CHANGES`` kept for the retention period), read back as candidates when an incident opens,
and the incidents a change arriving late is about (delivery is not ordered).

Recording is idempotent (a change redelivered overwrites itself). Which incident a change
explains is the lifecycle's decision (``lifecycle.on_changes``); this module only finds them.
"""

from __future__ import annotations

import json
from typing import Iterable, Mapping, Optional

from .aws import fan_out
from .changes import Change
from .incidents import change_entries, dumps
from .roots import Root, touched_by
from .storage import N, S, Table, change_pk, incident_pk

__all__ = ["MAX_CHANGES", "by_target", "candidates", "entries_of", "incidents_touched", "record", "search_keys"]

MAX_CHANGES = 20  # per change key


def record(table: Table, changes: list[Change], now: float, retention_days: int) -> None:
    """Store every change under each key it touches (parallel UpdateItems); prune to MAX_CHANGES."""
    by_key: dict[str, dict[str, dict]] = {}
    for change in changes:
        for key, entry in change_entries(change):
            by_key.setdefault(key, {})[change.event_id or f"n{len(by_key)}"] = entry
    expires = now + retention_days * 86400

    def write(item: tuple[str, dict[str, dict]]) -> None:
        key, entries = item
        names = {f"#e{i}": "c#" + event_id for i, event_id in enumerate(entries)}
        values = {f":e{i}": S(dumps(entry)) for i, entry in enumerate(entries.values())}
        values[":exp"] = N(expires)
        sets = ", ".join(f"#e{i} = :e{i}" for i in range(len(entries)))
        current = table.call("update_item", TableName=table.name, Key={"pk": S(change_pk(key))},
                             UpdateExpression=f"SET {sets}, expires_at = :exp", ExpressionAttributeNames=names,
                             ExpressionAttributeValues=values, ReturnValues="ALL_NEW").get("Attributes", {})
        stored = dict(_named(current))
        if len(stored) > MAX_CHANGES:
            oldest = sorted(stored, key=lambda name: str(stored[name].get("event_time", "")))
            drop = oldest[: len(stored) - MAX_CHANGES]
            table.call("update_item", TableName=table.name, Key={"pk": S(change_pk(key))},
                       UpdateExpression="REMOVE " + ", ".join(f"#d{i}" for i in range(len(drop))),
                       ExpressionAttributeNames={f"#d{i}": name for i, name in enumerate(drop)})

    fan_out(write, list(by_key.items()), workers=4)


def _named(item: Optional[Mapping]) -> list[tuple[str, dict]]:
    out = []
    for name, value in (item or {}).items():
        if not name.startswith("c#") or not isinstance(value, dict):
            continue
        try:
            entry = json.loads(value.get("S", ""))
        except ValueError:
            continue
        if isinstance(entry, dict):
            out.append((name, entry))
    return out


def entries_of(item: Optional[Mapping]) -> list[dict]:
    """The changes a ``chg#`` item holds."""
    return [entry for _, entry in _named(item)]


def search_keys(roots: Iterable[Root]) -> set[str]:
    """The change keys the roots search (what must be read to attribute them)."""
    return {key for root in roots for key, _, _ in root.searches}


def candidates(items: Mapping[str, Optional[dict]], batch: Iterable[Change] = ()) -> list[tuple[str, dict]]:
    """(change key, change) from ``chg#`` items read (by pk) and the batch's own changes."""
    found = [(pk[4:], entry) for pk, item in items.items() if pk.startswith("chg#") for entry in entries_of(item)]
    return found + [entry for change in batch for entry in change_entries(change)]


def by_target(candidates: list[tuple[str, dict]]) -> list[tuple[str, dict]]:
    """The candidates read under an account-wide key (``iam-policies:<acct>``: a managed policy's
    new version), again under the key of what they changed (``policy:<ARN>``), when that is not
    among the candidates already: what lets a principal whose policies are learned after the read
    find the version of one of them."""
    have = {(key, c.get("event_id")) for key, c in candidates}
    return [(c["target"], c) for key, c in candidates if key.startswith("iam-policies:") and str(c.get("target", "")).startswith("policy:")
            and (c["target"], c.get("event_id")) not in have]


def incidents_touched(changes: Iterable[Change]) -> list[str]:
    """The incident items to look at when ``changes`` arrive: those rooted in what they changed."""
    return list(dict.fromkeys(incident_pk(root.incident_id) for change in changes for key, _ in change.keys
                              for root in touched_by(key)))
