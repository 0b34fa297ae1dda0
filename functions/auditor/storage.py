"""The incident state table: keys, typed item conversion, the conditional writes, retries and
the breaker. Nothing is decided here: ``auditor.lifecycle`` decides, this module stores.

One DynamoDB table (partition key ``pk``, TTL on ``expires_at``) and one sparse index, ``due``
(contract.Table): what the scheduled run must look at, sharded, sorted by time.

Items:

* ``inc#<incident id>``: one per root cause (``Stored``): its state as numbers and sets that
  concurrent writers add to atomically (``failures``, ``pkeys``/``rkeys``: the distinct callers
  and resources by hash, ``principals``/``resources``: the first names, ``late``), its document
  (``doc``: root, cause, the representative finding, the change found, remediation, later
  changes, what ended it; versioned by ``docv``), per channel the mark of what it last confirmed
  (``m#sns``, ``m#events``), the claim of a message being sent (``claim``, ``claim_until``), and
  the hashes of the last events counted into it (``ekeys``, ``ekeys0``: see ``EVENT_KEYS``).
* ``chg#<change key>``: the recent changes to one resource (``c#<event id>`` attributes).
* ``join#<join key>``: records of one caller and secret (or one rotation) that belong with a
  partner (auditor.joins).

Every write is conditional on what its decision read, so two invocations never undo each other:
counts are atomic adds conditioned on the occurrence; a transition (open, resolve) on the status
and occurrence; a document change on its version; a claim on no live claim and on the channel
marks as read; an acknowledgement on its own claim token. A new item is written whole (a
``Put`` conditioned on its absence), a known one updated. A batch's writes are atomic
(``Table.write``): one item is one conditional ``PutItem`` or ``UpdateItem`` (half a
transaction's write cost, and faster), several are one ``TransactWriteItems`` (its idempotency token sent again, the same,
after a timeout). Every write also sets the item's ``wt`` to a token of its own, so a single
write whose first attempt was applied but whose answer was lost, and which the SDK therefore
sent again, is recognised as applied when the repeat fails its condition.
"""

from __future__ import annotations

import json
import random
import re
import string
import time
import uuid
import zlib
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Optional, Sequence

from .aws import Breaker, error_code, fan_out
from .aws import client as aws_client
from .contract import Table as Names
from .finding import Finding
from .incidents import OPEN, RESOLVED, Attribution, Failure, Incident, Mark, distinct, dumps
from .lifecycle import Decision
from .roots import Root

__all__ = ["Claim", "Stored", "StateUnavailable", "Table", "Conflict", "change_pk", "event_keys", "incident_pk", "join_pk",
           "finding_from_dict", "root_from_dict", "root_to_dict", "stored_incident"]

PK, TTL = Names.PARTITION_KEY, Names.TTL_ATTRIBUTE
DUE_SHARD, DUE_AT = Names.DUE_SHARD, Names.DUE_AT
BREAKER_SECONDS = 30.0
#: The attribute every write sets to its own token (``write_token``), and its value's placeholder.
WRITE_TOKEN, _WRITE_TOKEN_VALUE = "wt", ":wt"
#: The hashes (``incidents.distinct``) of the CloudTrail events last counted into an incident, in
#: two generations of at most ``EVENT_KEYS_KEPT`` each (when the current one would outgrow it, it
#: becomes the one before, and the one before is dropped): a record delivered again in a later batch
#: (SQS after a function timeout, EventBridge at least once) whose event is among them is not
#: counted again. ~12 KB per generation; a record older than the last 1,000 to 2,000 events of its
#: incident counts again.
EVENT_KEYS, EVENT_KEYS_BEFORE = "ekeys", "ekeys0"
EVENT_KEYS_KEPT = 1000
#: A transaction holds at most 100 operations and 4 MB.
TRANSACTION_OPS = 100
TRANSACTION_BYTES = 3_500_000


class StateUnavailable(Exception):
    """The table could not be read or written (missing, throttled, unreachable)."""


class _TimedOut(Exception):
    """A transaction's answer did not come in time: it may or may not have been applied."""


class Conflict(Exception):
    """A conditional write found the item changed since it was read (``codes``: per operation)."""

    def __init__(self, codes: list[str]):
        super().__init__(", ".join(codes))
        self.codes = codes


def incident_pk(incident_id: str) -> str:
    return "inc#" + incident_id


def change_pk(key: str) -> str:
    return "chg#" + key


def join_pk(key: str) -> str:
    return "join#" + key


def shard_of(pk: str) -> str:
    return str(zlib.crc32(pk.encode("utf-8", "surrogatepass")) % Names.DUE_SHARDS)


# --------------------------------------------------------------------------------------------
# DynamoDB values
# --------------------------------------------------------------------------------------------
def S(value: str) -> dict:
    return {"S": value}


def N(value: float) -> dict:
    """A number; times keep milliseconds."""
    if float(value).is_integer():
        return {"N": str(int(value))}
    return {"N": f"{value:.3f}"}


def num(item: Optional[Mapping], name: str, default: float = 0.0) -> float:
    try:
        return float(item[name]["N"])  # type: ignore[index]
    except (KeyError, TypeError, ValueError):
        return default


def text(item: Optional[Mapping], name: str) -> str:
    value = (item or {}).get(name)
    return value.get("S", "") if isinstance(value, dict) else ""


def strings(item: Optional[Mapping], name: str) -> list[str]:
    value = (item or {}).get(name)
    return sorted(value.get("SS", [])) if isinstance(value, dict) else []


def _json(raw: str, kind: type) -> Any:
    try:
        found = json.loads(raw) if raw else kind()
    except ValueError:
        return kind()
    return found if isinstance(found, kind) else kind()


# --------------------------------------------------------------------------------------------
# Typed conversion: a stored incident
# --------------------------------------------------------------------------------------------
def root_to_dict(root: Root) -> dict:
    return {"kind": root.kind, "id": root.id, "label": root.label, "known": root.known,
            "searches": [[k, sorted(t) if t is not None else None, tier] for k, t, tier in root.searches],
            "links": [list(link) for link in root.links], "note": root.note}


def root_from_dict(data: Mapping) -> Root:
    searches = tuple((str(k), frozenset(t) if t is not None else None, int(tier)) for k, t, tier in data.get("searches", ()))
    links = tuple((str(p), str(r)) for p, r in data.get("links") or ())
    return Root(str(data.get("kind", "unknown")), str(data.get("id", "")), str(data.get("label", "")), searches,
                bool(data.get("known", True)), links, str(data.get("note") or ""))


_FINDING_LIMIT = 12_000


def finding_to_dict(finding: Finding) -> dict:
    """The finding as stored with its incident: whole when small (the common case), else with its
    longest texts cut, so that an item stays far below DynamoDB's 400 KB."""
    data = finding.to_dict()
    if len(dumps(data)) <= _FINDING_LIMIT:
        return data
    data["evidence"] = [e[:300] for e in data["evidence"][:8]]
    data["remediation"] = data["remediation"][:2000]
    data["error_message"] = data["error_message"][:500]
    data["user_agent"] = data["user_agent"][:200]
    return data


def finding_from_dict(data: Mapping) -> Optional[Finding]:
    """The finding a stored dict (``Finding.to_dict``) holds; None when it is not one."""
    try:
        return Finding.from_dict(dict(data))
    except (KeyError, TypeError, ValueError):
        return None


@dataclass(frozen=True, eq=False)
class Stored:
    """An incident as read, with what a conditional write on it must check: the claim of a message
    being sent, the document's version, and each channel's mark as stored."""

    incident: Incident
    claim: str = ""
    claim_until: float = 0.0
    version: int = 0
    raw_marks: Mapping[str, str] = field(default_factory=dict)
    due_at: float = 0.0
    #: The events last counted into it, by hash: the current generation and the one before (EVENT_KEYS).
    event_keys: frozenset[str] = frozenset()
    event_keys_before: frozenset[str] = frozenset()

    def claim_free(self, now: float) -> bool:
        return not self.claim or self.claim_until < now

    def counted(self, failure: Failure) -> bool:
        """Whether a record of ``failure`` is among the events last counted into this incident:
        the failure was delivered again, and is counted already."""
        keys = event_keys(failure)
        return not (keys.isdisjoint(self.event_keys) and keys.isdisjoint(self.event_keys_before))


def event_keys(failure: Failure) -> frozenset[str]:
    """The hashes of the CloudTrail events of ``failure`` (its records joined into it included)."""
    return frozenset(distinct(event_id) for event_id in failure.event_ids if event_id)


CHANNEL_PREFIX = "m#"


def stored_incident(item: Optional[Mapping]) -> Optional[Stored]:
    """The incident an ``inc#`` item holds (None for no item, or one that is not an incident)."""
    if not item or not text(item, "status"):
        return None
    doc = _json(text(item, "doc"), dict)
    root = root_from_dict(doc.get("root") or {})
    finding = finding_from_dict(doc.get("finding") or {})
    marks, raw = {}, {}
    for name, value in item.items():
        if name.startswith(CHANNEL_PREFIX) and isinstance(value, dict) and "S" in value:
            try:
                marks[name[len(CHANNEL_PREFIX):]] = Mark.from_dict(json.loads(value["S"]))
                raw[name[len(CHANNEL_PREFIX):]] = value["S"]
            except (ValueError, KeyError, TypeError):
                continue
    incident = Incident(
        id=root.incident_id, root=root, status=text(item, "status"), occurrence=int(num(item, "seq")),
        cause=str(doc.get("cause", "")), title=str(doc.get("title", "")), severity=str(doc.get("severity", "")),
        finding=finding, evidence=tuple(doc.get("evidence") or ()), remediation=str(doc.get("remediation", "")),
        attribution=Attribution.from_dict(doc.get("attribution") or {}), first_failure=num(item, "first_failure"),
        last_failure=num(item, "last_failure"), failures=int(num(item, "failures")),
        principals=tuple(p for p in strings(item, "principals") if p != "-"), principal_keys=frozenset(strings(item, "pkeys")),
        resources=tuple(r for r in strings(item, "resources") if r != "-"), resource_keys=frozenset(strings(item, "rkeys")),
        opened_at=num(item, "opened_at"), resolved_at=num(item, "resolved_at"), last_arrival=num(item, "last_arrival"),
        later_changes=tuple(c for c in doc.get("later") or () if isinstance(c, dict)),
        ended_by=doc.get("ended_by") if isinstance(doc.get("ended_by"), dict) else None,
        superseded_by=str(doc.get("superseded_by") or ""), late=int(num(item, "late")),
        late_span=(num(item, "late_first"), num(item, "late_last")), notes=tuple(strings(item, "notes")), marks=marks,
    )
    return Stored(incident, text(item, "claim"), num(item, "claim_until"), int(num(item, "docv")), raw, num(item, DUE_AT),
                  frozenset(strings(item, EVENT_KEYS)), frozenset(strings(item, EVENT_KEYS_BEFORE)))


def _doc(incident: Incident) -> str:
    return dumps({
        "root": root_to_dict(incident.root), "cause": incident.cause, "title": incident.title,
        "severity": incident.severity, "finding": finding_to_dict(incident.finding) if incident.finding else None,
        "evidence": list(incident.evidence), "remediation": incident.remediation,
        "attribution": incident.attribution.to_dict(), "later": list(incident.later_changes),
        "ended_by": incident.ended_by, "superseded_by": incident.superseded_by,
    })


# --------------------------------------------------------------------------------------------
# The conditional writes, built in one place
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class Claim:
    """A message being sent: its token, until when the claim holds (then the message is due again)."""

    token: str
    until: float


class _Update:
    """One conditional write of one item, put together clause by clause with its own placeholders.

    ``new``: the write creates the item (its condition says it does not exist), so it is a
    ``Put`` of what it sets and adds, under the same condition: one item written whole, no
    update expression for DynamoDB to evaluate. Otherwise an ``Update``."""

    def __init__(self, table: str, pk: str, new: bool = False):
        self.table, self.pk, self.new = table, pk, new
        self.sets: list[str] = []
        self.adds: list[str] = []
        self.removes: list[str] = []
        self.conditions: list[str] = []
        self.names: dict[str, str] = {}
        self.values: dict[str, dict] = {}
        self.item: dict[str, dict] = {}  # what a new item holds (``new``)

    def name(self, attribute: str) -> str:
        for placeholder, known in self.names.items():
            if known == attribute:
                return placeholder
        placeholder = f"#a{len(self.names)}"
        self.names[placeholder] = attribute
        return placeholder

    def value(self, value: dict) -> str:
        placeholder = f":v{len(self.values)}"
        self.values[placeholder] = value
        return placeholder

    def set(self, attribute: str, value: dict) -> "_Update":
        self.item[attribute] = value
        self.sets.append(f"{self.name(attribute)} = {self.value(value)}")
        return self

    def add(self, attribute: str, value: dict) -> "_Update":
        self.item[attribute] = value  # added to nothing: the value itself
        self.adds.append(f"{self.name(attribute)} {self.value(value)}")
        return self

    def remove(self, *attributes: str) -> "_Update":
        for attribute in attributes:
            self.item.pop(attribute, None)
        self.removes.extend(self.name(a) for a in attributes)
        return self

    def when(self, condition: str, **values: dict) -> "_Update":
        """A condition; ``{name}`` for an attribute name, ``{value_key}`` for a value given as keyword."""
        mapping = {}
        for key, value in values.items():
            mapping[key] = self.value(value)
        for attribute in _names_in(condition):
            mapping[attribute] = self.name(attribute)
        self.conditions.append("(" + condition.format(**mapping) + ")")
        return self

    def op(self) -> dict:
        token = S(uuid.uuid4().hex)
        condition = " AND ".join(self.conditions)
        if self.new:
            put: dict[str, Any] = {"TableName": self.table, "Item": {**self.item, PK: S(self.pk), WRITE_TOKEN: token},
                                   "ConditionExpression": condition}
            used = set(_PLACEHOLDER.findall(condition))
            names = {k: v for k, v in self.names.items() if k in used}
            values = {k: v for k, v in self.values.items() if k in used}
            if names:
                put["ExpressionAttributeNames"] = names
            if values:
                put["ExpressionAttributeValues"] = values
            return {"Put": put}
        self.values[_WRITE_TOKEN_VALUE] = token
        clauses = ["SET " + ", ".join(self.sets + [f"{WRITE_TOKEN} = {_WRITE_TOKEN_VALUE}"])]
        if self.adds:
            clauses.append("ADD " + ", ".join(self.adds))
        if self.removes:
            clauses.append("REMOVE " + ", ".join(self.removes))
        update: dict[str, Any] = {"TableName": self.table, "Key": {PK: S(self.pk)}, "UpdateExpression": " ".join(clauses)}
        if condition:
            update["ConditionExpression"] = condition
        if self.names:
            update["ExpressionAttributeNames"] = self.names
        update["ExpressionAttributeValues"] = self.values
        return {"Update": update}


#: A placeholder in a condition: ``#a0`` (a name) or ``:v0`` (a value).
_PLACEHOLDER = re.compile(r"[#:][a-z]\d+")


def write_token(op: dict) -> str:
    """The token an ``op`` sets in its item's ``wt``: unique to that op."""
    if "Put" in op:
        return op["Put"]["Item"][WRITE_TOKEN]["S"]
    return op["Update"]["ExpressionAttributeValues"][_WRITE_TOKEN_VALUE]["S"]


def _names_in(condition: str) -> list[str]:
    """The ``{attribute}`` fields of a condition template that are attribute names (values are ``{v_...}``)."""
    return [f for _, f, _, _ in _FORMATTER.parse(condition) if f and not f.startswith("v_")]


_FORMATTER = string.Formatter()


def _keep_events(update: _Update, stored: Optional[Stored], events: frozenset[str]) -> None:
    """Keep the hashes of the events a write counts (EVENT_KEYS), at most EVENT_KEYS_KEPT of them:
    added to the current generation, or, when it would outgrow EVENT_KEYS_KEPT, a new generation,
    on condition that the current one is still as read (another writer's keys are never dropped
    unseen: its write conflicts)."""
    if len(events) > EVENT_KEYS_KEPT:  # e.g. the events of every incident a policy's incident takes over
        events = frozenset(sorted(events)[:EVENT_KEYS_KEPT])
    have = stored.event_keys if stored is not None else frozenset()
    if update.new or len(have) + len(events) <= EVENT_KEYS_KEPT:
        update.add(EVENT_KEYS, {"SS": sorted(events)})
        return
    if have:
        update.set(EVENT_KEYS_BEFORE, {"SS": sorted(have)})
        update.when("size({" + EVENT_KEYS + "}) = {v_kept}", v_kept=N(len(have)))
    else:
        update.remove(EVENT_KEYS_BEFORE)
        update.when("attribute_not_exists({" + EVENT_KEYS + "})")
    update.set(EVENT_KEYS, {"SS": sorted(events)})


def _arm(update: _Update, pk: str, due: Optional[float]) -> None:
    """Put the item in the ``due`` index from ``due`` on (None: take it out)."""
    if due is None:
        update.remove(DUE_SHARD, DUE_AT)
    else:
        update.set(DUE_SHARD, S(shard_of(pk))).set(DUE_AT, N(due))


def _claim(update: _Update, stored: Optional[Stored], claim: Claim, now: float) -> None:
    """Claim a message: no live claim, and the marks still as read (nobody confirmed it meanwhile).
    An item written for the first time (its own condition: it does not exist) has neither."""
    update.set("claim", S(claim.token)).set("claim_until", N(claim.until))
    if stored is None:
        return
    update.when("attribute_not_exists({claim_until}) OR {claim_until} < {v_now}", v_now=N(now))
    for channel, raw in stored.raw_marks.items():
        update.when("{" + CHANNEL_PREFIX + channel + "} = {v_mark}", v_mark=S(raw))
    for channel in ("sns", "events"):
        if channel not in stored.raw_marks:
            update.when("attribute_not_exists({" + CHANNEL_PREFIX + channel + "})")


class Writes:
    """The conditional writes on the table named ``table``: one method per decision."""

    def __init__(self, table: str, *, open_ttl: int, resolved_ttl: int):
        self.table, self.open_ttl, self.resolved_ttl = table, open_ttl, resolved_ttl

    def decision(self, decision: Decision, stored: Optional[Stored], now: float, claim: Optional[Claim],
                 due: Optional[float], events: frozenset[str] = frozenset()) -> dict:
        """The write a lifecycle decision stands for. ``due``: when the scheduled run must look
        at it next (None: leave the index entry as it is). ``events``: the hashes of the events
        of the failures it counts (``event_keys``), kept on the item (EVENT_KEYS)."""
        after = decision.after
        pk = incident_pk(after.id)
        u = _Update(self.table, pk, new=stored is None and decision.action in ("open", "record"))
        added = decision.added
        if decision.action == "open":
            u.set("status", S(OPEN)).set("seq", N(after.occurrence)).set("failures", N(after.failures))
            u.set("first_failure", N(after.first_failure)).set("last_failure", N(after.last_failure))
            u.set("last_arrival", N(after.last_arrival)).set("opened_at", N(after.opened_at))
            u.set("doc", S(_doc(after))).set("docv", N((stored.version if stored else 0) + 1))
            if after.late or stored is not None:
                u.set("late", N(after.late)).set("late_first", N(after.late_span[0])).set("late_last", N(after.late_span[1]))
            for attribute, values in (("principals", after.principals), ("pkeys", after.principal_keys),
                                      ("resources", after.resources), ("rkeys", after.resource_keys),
                                      ("notes", after.notes)):
                if values:
                    u.set(attribute, {"SS": sorted(values)})
                elif stored is not None:
                    u.remove(attribute)
            if stored is not None:
                u.remove("resolved_at")
            u.set(TTL, N(now + self.open_ttl))
            if stored is None:
                u.when("attribute_not_exists({pk})")
            else:
                u.when("{status} = {v_resolved} AND {seq} = {v_seq}", v_resolved=S(RESOLVED), v_seq=N(stored.incident.occurrence))
        elif decision.action == "count":
            before = decision.before
            assert before is not None and stored is not None
            self._added(u, added, before)
            u.set(TTL, N(now + self.open_ttl))
            u.when("{status} = {v_open} AND {seq} = {v_seq}", v_open=S(OPEN), v_seq=N(before.occurrence))
        elif decision.action == "record":
            if stored is None:  # a root first seen with old news only: its item, never opened
                u.set("status", S(RESOLVED)).set("seq", N(0)).set("failures", N(0)).set("doc", S(_doc(after)))
                u.set("docv", N(1)).set("late", N(added.late)).set("late_first", N(added.late_span[0]))
                u.set("late_last", N(added.late_span[1])).set(TTL, N(now + self.resolved_ttl))
                if after.notes:
                    u.set("notes", {"SS": sorted(after.notes)})
                u.when("attribute_not_exists({pk})")
            else:
                if added.failures:
                    u.add("failures", N(added.failures))
                u.add("late", N(added.late)).set("late_first", N(added.late_span[0])).set("late_last", N(added.late_span[1]))
                new_notes = set(after.notes) - set(stored.incident.notes)
                if new_notes:
                    u.add("notes", {"SS": sorted(new_notes)})
                u.when("{status} = {v_resolved} AND {seq} = {v_seq}", v_resolved=S(RESOLVED), v_seq=N(stored.incident.occurrence))
        elif decision.action == "resolve":
            assert stored is not None
            before = stored.incident
            u.set("status", S(RESOLVED)).set("resolved_at", N(after.resolved_at)).set("doc", S(_doc(after)))
            u.set("docv", N(stored.version + 1)).set(TTL, N(now + self.resolved_ttl))
            u.when("{status} = {v_open} AND {seq} = {v_seq} AND {last_arrival} = {v_la} AND {docv} = {v_docv}",
                   v_open=S(OPEN), v_seq=N(before.occurrence), v_la=N(before.last_arrival), v_docv=N(stored.version))
        elif decision.action == "attribute":
            assert stored is not None
            u.set("doc", S(_doc(after))).set("docv", N(stored.version + 1))
            u.when("{status} = {v_status} AND {seq} = {v_seq} AND {docv} = {v_docv}", v_status=S(stored.incident.status),
                   v_seq=N(stored.incident.occurrence), v_docv=N(stored.version))
        else:  # pragma: no cover - the lifecycle has no other decision
            raise ValueError(decision.action)
        if events:
            _keep_events(u, stored, events)
        if claim is not None:
            _claim(u, stored, claim, now)
        if claim is not None or due is not None:
            _arm(u, pk, claim.until if claim is not None else due)
        return u.op()

    @staticmethod
    def _added(u: _Update, added, before: Incident) -> None:
        if added.failures:
            u.add("failures", N(added.failures))
        if added.last and added.last > before.last_failure:
            u.set("last_failure", N(added.last))
        if added.first and added.first < before.first_failure:
            u.set("first_failure", N(added.first))
        if added.arrival:
            u.set("last_arrival", N(added.arrival))
        for attribute, values in (("principals", added.principals), ("pkeys", added.principal_keys),
                                  ("resources", added.resources), ("rkeys", added.resource_keys)):
            if values:
                u.add(attribute, {"SS": sorted(values)})
        if added.late:
            u.add("late", N(added.late)).set("late_first", N(added.late_span[0])).set("late_last", N(added.late_span[1]))

    def claim(self, stored: Stored, claim: Claim, now: float) -> dict:
        """Claim the messages an incident owes (nothing else changes)."""
        pk = incident_pk(stored.incident.id)
        u = _Update(self.table, pk)
        _claim(u, stored, claim, now)
        u.when("{seq} = {v_seq} AND {status} = {v_status}", v_seq=N(stored.incident.occurrence), v_status=S(stored.incident.status))
        _arm(u, pk, claim.until)
        return u.op()

    def acknowledge(self, incident_id: str, token: str, marks: Mapping[str, Mark], due: Optional[float]) -> dict:
        """After sending: the channels that confirmed (their marks), the claim released, and when
        the scheduled run must look again (``due``; None: nothing left to do)."""
        pk = incident_pk(incident_id)
        u = _Update(self.table, pk)
        for channel, mark in marks.items():
            u.set(CHANNEL_PREFIX + channel, S(dumps(mark.to_dict())))
        u.remove("claim", "claim_until")
        _arm(u, pk, due)
        u.when("{claim} = {v_token}", v_token=S(token))
        return u.op()

    def rearm(self, stored: Stored, due: Optional[float]) -> dict:
        """An item the scheduled run looked at too early (or has nothing left to do for)."""
        pk = incident_pk(stored.incident.id)
        u = _Update(self.table, pk)
        _arm(u, pk, due)
        u.when("{seq} = {v_seq} AND {status} = {v_status} AND {last_arrival} = {v_la}", v_seq=N(stored.incident.occurrence),
               v_status=S(stored.incident.status), v_la=N(stored.incident.last_arrival))
        if stored.claim:
            u.when("{claim} = {v_claim}", v_claim=S(stored.claim))
        else:
            u.when("attribute_not_exists({claim})")
        return u.op()

    def update(self, pk: str) -> _Update:
        """A blank conditional update of ``pk``, for the modules that own other items (joins)."""
        return _Update(self.table, pk)


def new_token() -> str:
    return uuid.uuid4().hex[:16]


# --------------------------------------------------------------------------------------------
# The table
# --------------------------------------------------------------------------------------------
class Table:
    """Calls on the table, with the breaker, the error mapping and the timeouts; nothing about incidents.

    Timeouts come from the function's: a call may take a fifth of it (at least 2 s, at most 10 s).
    A transaction whose answer did not come in time is sent again once, with the same idempotency
    token (DynamoDB applies it at most once), if the time left allows (``StateTimeouts``)."""

    def __init__(self, name: str, client=None, clock: Callable[[], float] = time.monotonic, region: Optional[str] = None,
                 timeout_seconds: float = 30.0):
        self.name = name
        self._client = client
        self.region = region
        self.call_timeout = max(2.0, min(10.0, timeout_seconds / 5))
        self._breaker = Breaker(BREAKER_SECONDS, clock)
        self.requests = 0  # AWS requests made (tests and the benchmarks count them too)
        self.timeouts = 0

    @property
    def client(self):
        if self._client is None:
            self._client = aws_client("dynamodb", self.region, connect_timeout=2, read_timeout=self.call_timeout,
                                      retries={"max_attempts": 3, "mode": "standard"}, max_pool_connections=16)
        return self._client

    def call(self, method: str, **kwargs) -> Any:
        why = self._breaker.why_open()
        if why is not None:
            raise StateUnavailable(f"{method} on {self.name}: not tried, the table did not answer a moment ago ({why})")
        self.requests += 1
        try:
            return getattr(self.client, method)(**kwargs)
        except Exception as exc:  # noqa: BLE001
            code = error_code(exc)
            if code in ("ConditionalCheckFailedException", "TransactionCanceledException", "TransactionConflictException"):
                raise
            self._breaker.record(code)
            raise StateUnavailable(f"{method} on {self.name}: {code}") from exc

    def read(self, pks: Iterable[str]) -> dict[str, Optional[dict]]:
        """Strongly consistent reads of ``pks`` (BatchGetItem, 100 a call, in parallel; unprocessed
        keys retried with backoff); absent items map to None."""
        keys = list(dict.fromkeys(pks))
        found: dict[str, Optional[dict]] = dict.fromkeys(keys)

        def get(chunk: list[str]) -> None:
            request = {self.name: {"Keys": [{PK: S(pk)} for pk in chunk], "ConsistentRead": True}}
            for attempt in range(5):
                if attempt:
                    backoff(attempt - 1)
                response = self.call("batch_get_item", RequestItems=request)
                for item in response.get("Responses", {}).get(self.name, []):
                    found[item[PK]["S"]] = item
                request = response.get("UnprocessedKeys") or {}
                if not request:
                    return
            raise StateUnavailable(f"BatchGetItem on {self.name}: keys left unprocessed")

        if keys:
            fan_out(get, [keys[i:i + 100] for i in range(0, len(keys), 100)], workers=4)
        return found

    def transact(self, ops: Sequence[dict]) -> None:
        """Write ``ops`` (at most 100) in one TransactWriteItems. Raises Conflict (each op's
        cancellation code, "None" for the ones that did not fail) or StateUnavailable. An answer
        that did not come in time is asked for again once, with the same idempotency token:
        DynamoDB applies a transaction at most once per token (``timeouts`` counts these)."""
        token = uuid.uuid4().hex
        for attempt in range(2):
            try:
                self._transact(ops, token, last=attempt == 1)
                return
            except _TimedOut:
                self.timeouts += 1
            except Conflict:
                raise

    def _transact(self, ops: Sequence[dict], token: str, last: bool) -> None:
        why = self._breaker.why_open()
        if why is not None:
            raise StateUnavailable(f"TransactWriteItems on {self.name}: not tried, the table did not answer a moment ago ({why})")
        self.requests += 1
        try:
            self.client.transact_write_items(TransactItems=list(ops), ClientRequestToken=token)
        except Exception as exc:  # noqa: BLE001
            code = error_code(exc)
            if code == "TransactionCanceledException":
                reasons = getattr(exc, "response", {}).get("CancellationReasons") or []
                codes = [(r or {}).get("Code") or "None" for r in reasons]
                raise Conflict(codes if len(codes) == len(ops) else ["Unknown"] * len(ops)) from exc
            if "ReadTimeout" in code and not last:
                raise _TimedOut() from exc
            self._breaker.record(code)
            raise StateUnavailable(f"TransactWriteItems on {self.name}: {code}") from exc

    def write_all(self, ops: Sequence[dict]) -> list[tuple[list[dict], Optional[Exception]]]:
        """``ops`` in as few atomic writes (``write``) as they fit (100 operations, ~3.5 MB each),
        run in parallel; per write, its operations and what stopped it (None when written)."""
        chunks: list[list[dict]] = []
        size = 0
        for op in ops:
            weight = len(dumps(op))
            if not chunks or len(chunks[-1]) == TRANSACTION_OPS or size + weight > TRANSACTION_BYTES:
                chunks.append([])
                size = 0
            chunks[-1].append(op)
            size += weight

        def write(chunk: list[dict]) -> tuple[list[dict], Optional[Exception]]:
            try:
                self.write(chunk)
                return chunk, None
            except (Conflict, StateUnavailable) as exc:
                return chunk, exc

        return fan_out(write, chunks, workers=4)

    def write(self, ops: Sequence[dict]) -> None:
        """Write ``ops`` (at most 100) atomically: one alone as a conditional PutItem or UpdateItem
        (``write_one``), several in one transaction. Raises Conflict (per operation) or StateUnavailable."""
        if len(ops) == 1:
            self.write_one(ops[0])
        elif ops:
            self.transact(ops)

    def write_one(self, op: dict) -> None:
        """One conditional PutItem or UpdateItem (an ``op`` from ``Writes``); raises Conflict when
        its condition fails or a transaction holds the item. A failed condition on an item whose
        ``wt`` is this op's token means the op was applied and its answer lost (the SDK sent it
        again): that is success, not a conflict."""
        try:
            if "Put" in op:
                self.call("put_item", **op["Put"], ReturnValuesOnConditionCheckFailure="ALL_OLD")
            else:
                self.call("update_item", **op["Update"], ReturnValuesOnConditionCheckFailure="ALL_OLD")
        except StateUnavailable:
            raise
        except Exception as exc:  # noqa: BLE001 - ConditionalCheckFailedException, TransactionConflictException
            if error_code(exc) == "TransactionConflictException":
                raise Conflict(["TransactionConflict"]) from exc
            item = getattr(exc, "response", {}).get("Item") or {}
            if item.get(WRITE_TOKEN, {}).get("S") == write_token(op):
                return
            raise Conflict(["ConditionalCheckFailed"]) from exc


def backoff(attempt: int) -> None:
    time.sleep(0.05 * (2 ** attempt) * (0.5 + random.random() / 2))
