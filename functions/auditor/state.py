"""The incident state, in one DynamoDB table (partition key ``pk``, TTL on ``expires_at``).

This module owns every read and write of it: which incident a batch's failures belong to,
whether that opens, updates or only counts it, what changed before it, which records wait for
their partner, and the scheduled resolution. It replaces the per-fingerprint windows: one
place owns dedup and incident state. Two parts live in modules of their own, imported only
when needed (an event's cold start compiles neither): the scheduled run (auditor.sweep) and the
recording of changes and their late naming (auditor.change_log).

Items:

* ``inc#<incident id>``: one per root cause. ``status`` (open | resolved), ``seq`` (its
  occurrence), ``failures``, ``notified_failures``, ``opened_at``, ``last_arrival``,
  ``last_notified``, ``first_failure``/``last_failure`` (event times), ``principals`` and
  ``resources`` (string sets, capped), ``claim`` (the invocation that last claimed a
  notification), ``doc`` (JSON: root, cause, the representative finding, the change found, what
  was searched, remediation), ``expires_at``.
* ``chg#<change key>``: the recent changes to one resource (a map by CloudTrail event id,
  the newest ``MAX_CHANGES`` kept), for ``CHANGE_RETENTION_DAYS``.
* ``join#<join key>``: records of one caller and secret (or one rotation) that belong with a
  partner: counted ones (a late partner is absorbed) and parked ones (waiting for it).
* ``registry#open`` / ``registry#parked``: string sets of the open incidents and of the join
  items with parked records, for the scheduled run (no Scan).

Every notification is claimed by a conditional write before it is published, so concurrent
invocations racing on one incident produce one alert, and a batch SQS delivers again never
notifies twice: the claim marks the notification as sent in the same write (no write after a
successful publish that could fail and leave it unmarked). The claim carries a token of its
invocation: botocore resending a write whose answer was lost finds its own claim and
notifies. A publish that fails releases its claim; if that release fails too, the alert
waits for the incident's next update window (documented in the README).

A batch costs one consistent ``BatchGetItem`` (its incidents and join items) and one
``TransactWriteItems`` (every incident it touches, conditional on what it read); an incident
that opens costs one more read (its changes). A write that meets another invocation's is
decided again from a fresh read (``StateRetries``). When the table cannot be used, the caller
notifies anyway (``StateUnavailable``): an alert too many is better than none.
"""

from __future__ import annotations

import json
import random
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Optional

from .aws import Breaker, error_code, fan_out
from .aws import client as aws_client
from .changes import Change
from .contract import Log, Metric, Status, Table
from .finding import Finding
from .incidents import MAX_LISTED, Attribution, Failure, Incident, attribute, change_entries, dumps, epoch, remediation_for
from .pairing import Half, join
from .roots import Root

__all__ = ["State", "StateUnavailable", "Notice", "Applied"]

PK, TTL = Table.PARTITION_KEY, Table.TTL_ATTRIBUTE
OPEN, RESOLVED = "open", "resolved"
REGISTRY_OPEN, REGISTRY_PARKED = "registry#open", "registry#parked"
MAX_CHANGES = 20  # per change key
MAX_TRACKED = 200  # distinct principals / resources remembered per incident
JOIN_TTL = 3600
MAX_JOIN_ENTRIES = 50
ATTEMPTS = 4
BREAKER_SECONDS = 30.0
#: How long a record without its partner waits at most (capped by the quiet period).
JOIN_WAIT = 90


class StateUnavailable(Exception):
    """The table could not be read or written (missing, throttled, unreachable)."""


@dataclass
class Notice:
    """One message to publish: an incident's state change, and how to undo its claim."""

    status: str  # opened | updated | resolved
    incident: Incident
    finding: Finding  # what the message carries
    pk: str
    failures: list[Failure] = field(default_factory=list)  # retried together if the publish fails
    release: Optional[Callable[[], None]] = None
    reason: str = ""  # why an update: "failures continue", "change found"


@dataclass
class Applied:
    """What the incident state made of a batch: the notices to publish, each failure's outcome
    (and incident), and the counts for the metrics."""

    notices: list[Notice] = field(default_factory=list)
    outcomes: dict[str, tuple[str, str]] = field(default_factory=dict)  # event id -> (outcome, incident id)
    counts: Counter = field(default_factory=Counter)
    open_incidents: Optional[int] = None  # scheduled runs: how many are open after it
    resolved_seconds: list[float] = field(default_factory=list)


# --------------------------------------------------------------------------------------------
# DynamoDB attribute values
# --------------------------------------------------------------------------------------------
def _S(value: str) -> dict:
    return {"S": value}


def _N(value: float) -> dict:
    return {"N": str(int(value))}


def _n(item: Optional[dict], name: str, default: int = 0) -> int:
    try:
        return int(item[name]["N"])  # type: ignore[index]
    except (KeyError, TypeError, ValueError):
        return default


def _s(item: Optional[dict], name: str) -> str:
    value = (item or {}).get(name)
    return value.get("S", "") if isinstance(value, dict) else ""


def _ss(item: Optional[dict], name: str) -> list[str]:
    value = (item or {}).get(name)
    return list(value.get("SS", [])) if isinstance(value, dict) else []


def _doc(item: Optional[dict]) -> dict:
    try:
        found = json.loads(_s(item, "doc") or "{}")
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}


def _root(data: dict) -> Root:
    searches = tuple((k, frozenset(t) if t is not None else None, int(tier)) for k, t, tier in data.get("searches", ()))
    return Root(data.get("kind", "unknown"), data.get("id", ""), data.get("label", ""), searches, data.get("known", True))


def _root_data(root: Root) -> dict:
    return {"kind": root.kind, "id": root.id, "label": root.label, "known": root.known,
            "searches": [[k, sorted(t) if t is not None else None, tier] for k, t, tier in root.searches]}


def incident_pk(root: Root) -> str:
    return "inc#" + root.incident_id


# --------------------------------------------------------------------------------------------
# The table
# --------------------------------------------------------------------------------------------
class Table_:
    """Calls on the table, with the breaker and the error mapping; nothing about incidents."""

    def __init__(self, name: str, client=None, clock: Callable[[], float] = time.monotonic, region: Optional[str] = None):
        self.name = name
        self._client = client
        self.region = region
        self._breaker = Breaker(BREAKER_SECONDS, clock)
        self.requests = 0  # AWS requests made (tests and the storm benchmark count them too)

    @property
    def client(self):
        if self._client is None:
            self._client = aws_client("dynamodb", self.region, connect_timeout=2, read_timeout=2,
                                      retries={"max_attempts": 3, "mode": "standard"})
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
            if code in ("ConditionalCheckFailedException", "TransactionCanceledException"):
                raise
            self._breaker.record(code)
            raise StateUnavailable(f"{method} on {self.name}: {code}") from exc

    def read(self, pks: Iterable[str]) -> dict[str, Optional[dict]]:
        """Strongly consistent reads of ``pks`` (BatchGetItem, 100 a call, unprocessed keys
        retried with backoff); absent items map to None."""
        keys = list(dict.fromkeys(pks))
        found: dict[str, Optional[dict]] = dict.fromkeys(keys)

        def get(chunk: list[str]) -> None:
            request = {self.name: {"Keys": [{PK: _S(pk)} for pk in chunk], "ConsistentRead": True}}
            for attempt in range(5):
                if attempt:
                    _backoff(attempt - 1)
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

    def transact(self, ops: list[dict]) -> Optional[list[str]]:
        """Write ``ops`` in one TransactWriteItems (botocore's idempotency token makes its own
        resend safe). None when written, else each op's cancellation code ("None" for the ones
        that did not fail)."""
        try:
            self.call("transact_write_items", TransactItems=ops)
            return None
        except StateUnavailable:
            raise
        except Exception as exc:  # noqa: BLE001 - TransactionCanceledException
            reasons = getattr(exc, "response", {}).get("CancellationReasons") or []
            codes = [(r or {}).get("Code") or "None" for r in reasons]
            return codes if len(codes) == len(ops) else ["Unknown"] * len(ops)


def _backoff(attempt: int) -> None:
    time.sleep(0.05 * (2 ** attempt) * (0.5 + random.random() / 2))


# --------------------------------------------------------------------------------------------
# The incident state
# --------------------------------------------------------------------------------------------
@dataclass
class _Plan:
    """What this batch writes for one incident, and the notice and outcome that write stands for."""

    pk: str
    root: Root
    failures: list[Failure]
    op: dict
    notice: Optional[Notice] = None
    outcome: str = Log.GROUPED


class State:
    def __init__(self, table_name: str, *, quiet_seconds: int, update_seconds: int, change_retention_days: int = 7,
                 client=None, monotonic: Callable[[], float] = time.monotonic, region: Optional[str] = None):
        self.table = Table_(table_name, client, monotonic, region)
        self.quiet = quiet_seconds
        self.update_window = update_seconds
        self.retention = change_retention_days
        self.join_wait = min(JOIN_WAIT, quiet_seconds)
        self._open_until: dict[str, float] = {}  # incidents this container saw open: their changes need no read

    @property
    def requests(self) -> int:
        return self.table.requests

    # ---- a batch ------------------------------------------------------------------------------
    def apply(self, failures: list[Failure], halves: list[Half], changes: list[Change], now: float) -> Applied:
        """Count a batch's failures into their incidents, resolve its halves against the ones
        seen before, record its changes. Raises StateUnavailable (the caller fails open)."""
        applied = Applied()
        token = uuid.uuid4().hex[:16]
        if changes:
            self._record_changes(changes, now, applied)
        changes_read: dict[str, list[tuple[str, dict]]] = {}
        for attempt in range(ATTEMPTS):
            groups = self._groups(failures)
            roots = [root for root, _ in groups.values()] + [h.failure.root for h in halves if h.failure.root.known]
            pks = [incident_pk(root) for root in roots] + ["join#" + h.join for h in halves]
            # An incident this container did not see open a moment ago may open now: its changes
            # are read in the same request (one round trip less when it does; none more in a storm).
            wanted = {key for root in roots if not self._seen_open(incident_pk(root), now)
                      for key, _, _ in root.searches} - set(changes_read)
            state = self.table.read(pks + ["chg#" + k for k in wanted])
            for key in wanted:
                changes_read[key] = _change_entries(state.pop("chg#" + key, None))
            self._remember_open(state, now)
            extra, join_ops, outcomes, counts, parked_pks = self._resolve_halves(halves, state, now)
            for failure in extra:
                root, members = groups.setdefault(failure.root.key, (failure.root, []))
                members.append(failure)
            new_pks = [incident_pk(root) for root, _ in groups.values() if incident_pk(root) not in state]
            if new_pks:
                state.update(self.table.read(new_pks))
            plans = self._plan(groups, state, now, token, changes, changes_read)
            ops = [p.op for p in plans] + join_ops
            ops += self._registry_ops(plans, parked_pks)
            if not ops:
                applied.outcomes.update(outcomes)
                applied.counts.update(counts)
                break
            failed = self._write(ops)
            if failed is None:
                applied.counts.update(counts)
                applied.outcomes.update(outcomes)
                for plan in plans:
                    self._open_until[plan.pk] = now + 60  # open now, whoever opened it
                    for failure in plan.failures:
                        for event_id in failure.event_ids:
                            applied.outcomes.setdefault(event_id, (plan.outcome, plan.root.incident_id))
                    if plan.notice is not None:
                        applied.notices.append(plan.notice)
                break
            applied.counts[Metric.STATE_RETRIES] += 1
            _backoff(attempt)
        else:
            raise StateUnavailable(f"TransactWriteItems on {self.table.name}: still conflicting after {ATTEMPTS} attempts")
        if changes:
            applied.notices += self._late_attribution(changes, now, token, applied)
        return applied

    def _seen_open(self, pk: str, now: float) -> bool:
        return self._open_until.get(pk, 0.0) > now

    def _remember_open(self, state: dict, now: float) -> None:
        if len(self._open_until) > 4096:
            self._open_until.clear()
        for pk, item in state.items():
            if pk.startswith("inc#") and _s(item, "status") == OPEN:
                self._open_until[pk] = now + 60

    def _write(self, ops: list[dict]) -> Optional[list[str]]:
        for start in range(0, len(ops), 100):
            codes = self.table.transact(ops[start:start + 100])
            if codes is not None:
                return codes
        return None

    @staticmethod
    def _groups(failures: list[Failure]) -> dict[str, tuple[Root, list[Failure]]]:
        groups: dict[str, tuple[Root, list[Failure]]] = {}
        for failure in failures:
            groups.setdefault(failure.root.key, (failure.root, []))[1].append(failure)
        return groups

    # ---- planning one incident's write ------------------------------------------------------
    def _plan(self, groups, state, now, token, changes, changes_read) -> list[_Plan]:
        opening = [(root, members) for root, members in groups.values()
                   if _s(state.get(incident_pk(root)), "status") != OPEN]
        wanted = {key for root, _ in opening for key, _, _ in root.searches} - set(changes_read)
        if wanted:
            for key, item in self.table.read("chg#" + k for k in wanted).items():
                changes_read[key[4:]] = _change_entries(item)
        batch_changes = [entry for change in changes for entry in change_entries(change)]
        plans = []
        for root, members in groups.values():
            pk = incident_pk(root)
            item = state.get(pk)
            members.sort(key=lambda f: (epoch(f.finding.event_time) or 0.0, f.event_id))
            if _s(item, "status") != OPEN:
                candidates = [e for k, _, _ in root.searches for e in ((k, c) for c in changes_read.get(k, []))]
                candidates += batch_changes
                plans.append(self._open(pk, root, members, item, now, token, candidates))
            elif now - _n(item, "last_notified") >= self.update_window:
                plans.append(self._update(pk, root, members, item, now, token))
            else:
                plans.append(self._count(pk, root, members, item, now))
        return plans

    def _open(self, pk, root, members, item, now, token, candidates) -> _Plan:
        first = members[0]
        attribution = attribute(root, first.finding.event_time, candidates, self.retention)
        seq = _n(item, "seq") + 1
        principals = _distinct(f.principal for f in members)
        resources = _distinct(f.resource for f in members)
        doc = {"root": _root_data(root), "cause": first.finding.cause, "title": first.finding.title,
               "severity": first.finding.severity, "finding": _bounded_finding(first.finding),
               "attribution": attribution.to_dict(), "evidence": list(first.finding.evidence)[:12],
               "remediation": remediation_for(root, first.finding, attribution), "later": []}
        values = {":open": _S(OPEN), ":seq": _N(seq), ":now": _N(now), ":n": _N(len(members)), ":claim": _S(token),
                  ":ff": _S(first.finding.event_time), ":lf": _S(members[-1].finding.event_time),
                  ":doc": _S(dumps(doc)), ":exp": _N(now + self._open_ttl())}
        sets = ["#status = :open", "seq = :seq", "opened_at = :now", "last_arrival = :now", "last_notified = :now",
                "failures = :n", "notified_failures = :n", "claim = :claim", "first_failure = :ff",
                "last_failure = :lf", "doc = :doc", f"{TTL} = :exp"]
        removes = ["resolved_at"]
        for name, members_ in (("principals", principals), ("resources", resources)):
            if members_:
                values[f":{name}"] = {"SS": members_}
                sets.append(f"{name} = :{name}")
            else:
                removes.append(name)
        if item is None:
            condition = f"attribute_not_exists({PK})"
        else:
            condition = "(attribute_not_exists(#status) OR #status = :resolved) AND (attribute_not_exists(seq) OR seq = :oldseq)"
            values.update({":resolved": _S(RESOLVED), ":oldseq": _N(seq - 1)})
        op = self._update_op(pk, "SET " + ", ".join(sets) + " REMOVE " + ", ".join(removes), condition, values)
        incident = self._incident(pk, {**_as_item(values, principals, resources), "doc": _S(dumps(doc))}, status=OPEN)
        notice = Notice(Status.OPENED, incident, first.finding, pk, members,
                        release=self._releaser(pk, item, token))
        return _Plan(pk, root, members, op, notice, Log.OPENED)

    def _update(self, pk, root, members, item, now, token) -> _Plan:
        plan = self._count(pk, root, members, item, now, notify=True, token=token)
        after = dict(item)
        after.update({"failures": _N(_n(item, "failures") + len(members)), "last_failure": _S(plan.failures[-1].finding.event_time),
                      "principals": {"SS": _merged(item, "principals", plan.failures, "principal")},
                      "resources": {"SS": _merged(item, "resources", plan.failures, "resource")}})
        incident = self._incident(pk, after, status=OPEN)
        plan.notice = Notice(Status.UPDATED, incident, members[-1].finding, pk, members,
                             release=self._update_releaser(pk, item, token), reason="failures continue")
        plan.outcome = Log.UPDATED
        return plan

    def _count(self, pk, root, members, item, now, notify: bool = False, token: str = "") -> _Plan:
        values = {":open": _S(OPEN), ":seq": _N(_n(item, "seq")), ":n": _N(len(members)), ":now": _N(now),
                  ":zero": _N(0), ":exp": _N(now + self._open_ttl())}
        sets = ["failures = if_not_exists(failures, :zero) + :n", "last_arrival = :now", f"{TTL} = :exp"]
        last = members[-1].finding.event_time
        if last > _s(item, "last_failure"):
            values[":lf"] = _S(last)
            sets.append("last_failure = :lf")
        adds = []
        for name, attr in (("principals", "principal"), ("resources", "resource")):
            have = set(_ss(item, name))
            new = [v for v in _distinct(getattr(f, attr) for f in members) if v not in have][:max(0, MAX_TRACKED - len(have))]
            if new:
                values[f":{name}"] = {"SS": new}
                adds.append(f"{name} :{name}")
        condition = "#status = :open AND seq = :seq"
        if notify:
            values.update({":ln": _N(_n(item, "last_notified")), ":claim": _S(token),
                           ":nf": _N(_n(item, "failures") + len(members))})
            sets += ["last_notified = :now", "notified_failures = :nf", "claim = :claim"]
            condition += " AND last_notified = :ln"
        expression = "SET " + ", ".join(sets) + (" ADD " + ", ".join(adds) if adds else "")
        return _Plan(pk, root, members, self._update_op(pk, expression, condition, values))

    def _update_op(self, pk: str, expression: str, condition: str, values: dict) -> dict:
        names = {"#status": "status"} if "#status" in expression or "#status" in condition else None
        op = {"TableName": self.table.name, "Key": {PK: _S(pk)}, "UpdateExpression": expression,
              "ConditionExpression": condition, "ExpressionAttributeValues": values}
        if names:
            op["ExpressionAttributeNames"] = names
        return {"Update": op}

    def _open_ttl(self) -> int:
        return max(30 * 86400, 4 * self.quiet)

    def _registry_ops(self, plans: list[_Plan], parked: set[str]) -> list[dict]:
        """Adds the incidents this batch opens and the join items it parks a record in to the
        registries the scheduled run walks."""
        ops = []
        opened = [p.pk for p in plans if p.outcome == Log.OPENED]
        if opened:
            ops.append({"Update": {"TableName": self.table.name, "Key": {PK: _S(REGISTRY_OPEN)},
                                   "UpdateExpression": "ADD ids :ids", "ExpressionAttributeValues": {":ids": {"SS": opened}}}})
        if parked:
            ops.append({"Update": {"TableName": self.table.name, "Key": {PK: _S(REGISTRY_PARKED)},
                                   "UpdateExpression": "ADD ids :ids", "ExpressionAttributeValues": {":ids": {"SS": sorted(parked)}}}})
        return ops

    # ---- releasing a claim whose notification could not be published -------------------------
    def _releaser(self, pk: str, before: Optional[dict], token: str) -> Callable[[], None]:
        def release() -> None:
            condition = {"ConditionExpression": "claim = :claim", "ExpressionAttributeValues": {":claim": _S(token)}}
            if before is None:
                self.table.call("delete_item", TableName=self.table.name, Key={PK: _S(pk)}, **condition)
            else:
                self.table.call("put_item", TableName=self.table.name, Item=before, **condition)
        return release

    def _update_releaser(self, pk: str, before: dict, token: str) -> Callable[[], None]:
        def release() -> None:
            self.table.call("update_item", TableName=self.table.name, Key={PK: _S(pk)},
                            UpdateExpression="SET last_notified = :ln, notified_failures = :nf",
                            ConditionExpression="claim = :claim",
                            ExpressionAttributeValues={":ln": _N(_n(before, "last_notified")),
                                                       ":nf": _N(_n(before, "notified_failures")), ":claim": _S(token)})
        return release

    # ---- records that belong with a partner -------------------------------------------------
    def _resolve_halves(self, halves: list[Half], state: dict, now: float):
        """Against what earlier batches left: (failures to count, join item writes, outcomes, counts,
        the join items a record now waits in)."""
        extra: list[Failure] = []
        ops: list[dict] = []
        outcomes: dict[str, tuple[str, str]] = {}
        counts: Counter = Counter()
        parked_pks: set[str] = set()
        by_join: dict[str, list[Half]] = {}
        for half in halves:
            by_join.setdefault(half.join, []).append(half)
        for join_key, members in by_join.items():
            pk = "join#" + join_key
            item = state.get(pk)
            entries = [e for e in _join_entries(item) if e.get("until", 0) > now]
            known_ids = {e.get("event_id") for e in entries}
            for half in members:
                if half.failure.event_id in known_ids:
                    counts[Metric.REDELIVERED_EVENTS] += 1
                    outcomes[half.failure.event_id] = (Log.REDELIVERED, "")
                    continue
                partner = _nearest(entries, half)
                if partner is not None and partner["state"] == "counted":
                    partner["state"] = "done"
                    counts[Metric.JOINED_RECORDS] += 1
                    outcomes[half.failure.event_id] = (Log.JOINED, partner.get("incident", ""))
                    entries.append(_entry(half, "done", now))
                elif partner is not None and partner["state"] == "parked":
                    waiting = _failure_from(partner)
                    partner["state"] = "done"
                    merged = join(waiting, half.failure, "sm") if half.side == "kms" else join(half.failure, waiting, half.side)
                    merged.keys = list(half.failure.keys)
                    counts[Metric.JOINED_RECORDS] += 1
                    extra.append(merged)
                    entries.append(_entry(half, "done", now, merged.root.incident_id))
                elif half.failure.root.known:
                    extra.append(half.failure)
                    entries.append(_entry(half, "counted", now, half.failure.root.incident_id))
                else:
                    counts[Metric.PARKED_RECORDS] += 1
                    outcomes[half.failure.event_id] = (Log.PARKED, "")
                    entries.append(_entry(half, "parked", now, failure=half.failure))
                    parked_pks.add(pk)
                known_ids.add(half.failure.event_id)
            entries = entries[-MAX_JOIN_ENTRIES:]
            values = {":doc": _S(dumps(entries)), ":v": _N(_n(item, "v") + 1), ":exp": _N(now + JOIN_TTL)}
            if item is None:
                condition = f"attribute_not_exists({PK})"
            else:
                condition = "v = :oldv"
                values[":oldv"] = _N(_n(item, "v"))
            ops.append(self._update_op(pk, f"SET doc = :doc, v = :v, {TTL} = :exp", condition, values))
        return extra, ops, outcomes, counts, parked_pks

    # ---- changes (recorded, and named late): auditor.change_log -------------------------------
    def _record_changes(self, changes: list[Change], now: float, applied: Applied) -> None:
        from .change_log import record_changes  # only batches with changes need it

        record_changes(self, changes, now, applied)

    def _late_attribution(self, changes: list[Change], now: float, token: str, applied: Applied) -> list[Notice]:
        from .change_log import late_attribution

        return late_attribution(self, changes, now, token, applied)

    # ---- the scheduled run: auditor.sweep -----------------------------------------------------
    def sweep(self, now: float) -> tuple[list[Failure], Applied]:
        """Records that waited long enough for their partner, and the open incidents quiet for
        ``quiet`` seconds (resolved): see :func:`auditor.sweep.sweep`."""
        from .sweep import sweep  # the scheduled run only: not compiled on an event's cold start

        return sweep(self, now)

    # ---- an incident as the messages show it --------------------------------------------------
    def _incident(self, pk: str, item: dict, status: str) -> Incident:
        doc = _doc(item)
        root = _root(doc.get("root", {}))
        principals = sorted(_ss(item, "principals"))
        resources = sorted(_ss(item, "resources"))
        attribution = doc.get("attribution") or {}
        return Incident(
            id=root.incident_id, root=root, status=status, cause=doc.get("cause", ""), title=doc.get("title", ""),
            severity=doc.get("severity", ""), first_failure=_s(item, "first_failure"), last_failure=_s(item, "last_failure"),
            failures=_n(item, "failures"), principals=principals[:MAX_LISTED], resources=resources[:MAX_LISTED],
            principal_count=len(principals), resource_count=len(resources), remediation=doc.get("remediation", ""),
            evidence=doc.get("evidence", []), attribution=Attribution(attribution.get("change"), attribution.get("searched", "")),
            occurrence=_n(item, "seq", 1), opened_at=_n(item, "opened_at"), resolved_at=_n(item, "resolved_at"),
            last_arrival=_n(item, "last_arrival"), later_changes=doc.get("later", []),
        )


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------
def _distinct(values: Iterable[str]) -> list[str]:
    return [v[:256] for v in dict.fromkeys(v for v in values if v)][:MAX_TRACKED]


def _merged(item: dict, name: str, failures: list[Failure], attr: str) -> list[str]:
    have = _ss(item, name)
    return list(dict.fromkeys(have + _distinct(getattr(f, attr) for f in failures)))[:MAX_TRACKED] or ["-"]


def _as_item(values: dict, principals: list[str], resources: list[str]) -> dict:
    item = {"status": values[":open"], "seq": values[":seq"], "opened_at": values[":now"], "last_arrival": values[":now"],
            "last_notified": values[":now"], "failures": values[":n"], "first_failure": values[":ff"],
            "last_failure": values[":lf"]}
    if principals:
        item["principals"] = {"SS": principals}
    if resources:
        item["resources"] = {"SS": resources}
    return item


def _change_entries(item: Optional[dict], keep_names: bool = False) -> list:
    """The changes a ``chg#`` item holds (its ``c#<event id>`` attributes); with ``keep_names``,
    (attribute name, change) pairs."""
    out: list = []
    for name, value in (item or {}).items():
        if not name.startswith("c#"):
            continue
        try:
            entry = json.loads(value.get("S", ""))
        except (ValueError, AttributeError):
            continue
        if isinstance(entry, dict):
            out.append((name, entry) if keep_names else entry)
    return out


def _join_entries(item: Optional[dict]) -> list[dict]:
    try:
        entries = json.loads(_s(item, "doc") or "[]")
    except ValueError:
        return []
    return [e for e in entries if isinstance(e, dict)] if isinstance(entries, list) else []


def _entry(half: Half, state: str, now: float, incident: str = "", failure: Optional[Failure] = None) -> dict:
    entry = {"side": half.side, "when": half.when, "event_id": half.failure.event_id, "state": state,
             "incident": incident, "arrived": now, "until": now + JOIN_TTL}
    if failure is not None:
        entry.update(finding=_bounded_finding(failure.finding), root=_root_data(failure.root),
                     principal=failure.principal, resource=failure.resource, event_ids=failure.event_ids)
    return entry


def _nearest(entries: list[dict], half: Half) -> Optional[dict]:
    sides = half.partner_sides()
    best = None
    for entry in entries:
        if entry.get("side") not in sides or entry.get("state") not in ("counted", "parked"):
            continue
        gap = abs(float(entry.get("when", 0)) - half.when)
        if gap <= half.window and (best is None or gap < best[0]):
            best = (gap, entry)
    return best[1] if best else None


def _failure_from(entry: dict) -> Optional[Failure]:
    finding = _finding_from(entry.get("finding", {}))
    if finding is None:
        return None
    return Failure(finding, _root(entry.get("root", {})), [], list(entry.get("event_ids") or [finding.event_id]),
                   entry.get("principal", ""), entry.get("resource", ""))


_FINDING_LIMIT = 12_000


def _bounded_finding(finding: Finding) -> dict:
    """The finding as stored with its incident: whole when small (the common case), else with
    its longest texts cut, so an item stays far below DynamoDB's 400 KB."""
    data = finding.to_dict()
    if len(dumps(data)) <= _FINDING_LIMIT:
        return data
    data["evidence"] = [e[:300] for e in data["evidence"][:8]]
    data["remediation"] = data["remediation"][:2000]
    data["error_message"] = data["error_message"][:500]
    data["user_agent"] = data["user_agent"][:200]
    return data


def _finding_from(data: dict) -> Optional[Finding]:
    from .finding import Finding as F
    from .records import Principal

    try:
        p = data["principal"]
        principal = Principal(p["arn"], p["type"], p["temporary_credentials"], p.get("account", ""),
                              p.get("identity_arn", ""), "", p.get("invoked_by", ""), "")
        return F(data["event_id"], data["event_time"], data["account"], data["region"], data["service"], data["action"],
                 data["error_code"], data["error_message"], principal, data["source_ip"], data["user_agent"],
                 data["resource"], data["cause"], data["title"], data["severity"], data["confidence"],
                 tuple(data["evidence"]), data["remediation"], data.get("policy"), data["doc_url"], data.get("topic", ""),
                 data["fingerprint"], tuple(data.get("joined") or ()))
    except (KeyError, TypeError):
        return None
