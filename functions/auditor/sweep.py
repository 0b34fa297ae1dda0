"""The scheduled run's reading of the state table: what is due (the ``due`` index, every shard,
no scan and no single hot item) and how many incidents are open.

An item is in the index while the scheduled run has something to do with it, from ``due_at``
on: an open incident (from when it would be quiet), an incident with a message to send again
(from when its claim lapses, or at once after a failed send), a join item with a record waiting
for its partner (from when the wait ends). What to do with them is the lifecycle's decision and
the pipeline's order of work (auditor.pipeline): this module only finds them, in pages small
enough to finish within the time left.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator, Optional

from .aws import fan_out
from .contract import Table as Names
from .storage import PK, Stored, Table, num, stored_incident, text

__all__ = ["Due", "due", "pages"]

#: Items read and handled together: one BatchGetItem per 100, one transaction per 100 writes.
PAGE = 500


@dataclass
class Due:
    """What the index holds: the due items' keys and how many incidents are open."""

    keys: list[str] = field(default_factory=list)  # due by now, incidents first, oldest first
    open_incidents: int = 0
    waiting: int = 0  # items armed for later


def due(table: Table, now: float) -> Due:
    """Every shard of the index, in parallel: the items due by ``now``, and the open count."""
    def shard(number: int) -> list[tuple[str, float, str]]:
        out = []
        request = {"TableName": table.name, "IndexName": Names.DUE_INDEX, "KeyConditionExpression": "#s = :s",
                   "ExpressionAttributeNames": {"#s": Names.DUE_SHARD}, "ExpressionAttributeValues": {":s": {"S": str(number)}}}
        while True:
            page = table.call("query", **request)
            for item in page.get("Items", []):
                out.append((item[PK]["S"], num(item, Names.DUE_AT), text(item, "status")))
            last = page.get("LastEvaluatedKey")
            if not last:
                return out
            request["ExclusiveStartKey"] = last

    found = Due()
    entries = [e for part in fan_out(shard, range(Names.DUE_SHARDS), workers=8) for e in part]
    entries.sort(key=lambda e: (not e[0].startswith("inc#"), e[1], e[0]))
    for pk, at, status in entries:
        if pk.startswith("inc#") and status == "open":
            found.open_incidents += 1
        if at <= now:
            found.keys.append(pk)
        else:
            found.waiting += 1
    return found


def pages(table: Table, keys: list[str]) -> Iterator[tuple[list[Stored], dict[str, Optional[dict]]]]:
    """The due items, ``PAGE`` at a time, read consistently: (incidents, join items by pk)."""
    for start in range(0, len(keys), PAGE):
        items = table.read(keys[start:start + PAGE])
        incidents = [s for pk, item in items.items() if pk.startswith("inc#") and (s := stored_incident(item)) is not None]
        joins = {pk: item for pk, item in items.items() if pk.startswith("join#") and item is not None}
        yield incidents, joins
