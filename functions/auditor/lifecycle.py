"""How an incident lives: one set of pure decisions, used by the function (in arrival time) and
by the CLI over history (in event time).

    decide(incident or None, failures, now)  ->  open | count | record (too late to page)
    resolve(incident, now)                   ->  resolved, and the change that ended it
    on_changes(incident, changes)            ->  the change that started it, found late; later changes
    due(incident, mark, now)                 ->  what a channel must still be told (opened, updated, resolved)

Each returns a new ``Incident`` (``dataclasses.replace``; an incident is built here or read
back by the storage, nowhere else) and, for a stored incident, what the decision *adds*
(``Added``): the storage writes additions as atomic adds, so that concurrent invocations
counting into one incident never undo each other.

Time. ``Settings.clock`` is ``arrival`` for the function (``now`` is when a batch arrived; an
incident is quiet when nothing arrived for the quiet period) and ``event`` for the CLI (``now``
is the history's time; quiet when no failure happened for the quiet period). A failure's time is
its event time when that can be trusted, else the time it arrived, said in its evidence
(``effective_time``). In arrival time a failure older than the quiet period when it arrives
(and than CloudTrail's delivery delay, DELIVERY_ALLOWANCE_SECONDS), or older than the root's
last resolution, is old news: it is recorded and counted, and the
root's next message mentions it, but it never pages and never opens an occurrence.

What was announced is level-triggered: each channel keeps a ``Mark`` of what it last confirmed,
and ``due`` derives what it must still be told from the incident and that mark. A message that
could not be sent is therefore never lost: the next decision on the incident, or the scheduled
run, finds it due again and sends it, saying so.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Optional, Sequence

from .contract import Status
from .finding import Finding
from .incidents import (DEFAULT_LOOKBACK_DAYS, MAX_DISTINCT, MAX_LISTED, OPEN, RESOLVED, Attribution, Failure,
                        Incident, Mark, attribute, brief, distinct, epoch, iso, later_changes, lead, remediation_for)
from .roots import Root, iam_policy

__all__ = ["ARRIVAL", "EVENT", "Added", "Decision", "Notice", "Settings", "decide", "due", "effective_time", "epoch", "fold",
           "governed_by", "notices", "on_changes", "quiet", "quiet_at", "relink", "resolve"]

ARRIVAL, EVENT = "arrival", "event"
OPENED_ACTION, COUNT, RECORD, RESOLVE, ATTRIBUTE = "open", "count", "record", "resolve", "attribute"
#: An event time further ahead of its arrival than this is not trusted (clock skew of the caller's
#: machine does not reach CloudTrail: eventTime is AWS's; this catches forged or broken records).
MAX_AHEAD_SECONDS = 300
#: CloudTrail delivers most events to EventBridge within minutes (about 5 on average, best effort):
#: a failure is old news only when it is older than the quiet period *and* than this, so that a
#: short quiet period (a test's second, a team's minute) does not turn every delivery into old news.
DELIVERY_ALLOWANCE_SECONDS = 900
MAX_EVIDENCE = 12
MAX_NOTES = 8


@dataclass(frozen=True, eq=False)
class Settings:
    quiet: int  # seconds without a failure before an incident resolves
    update_window: int  # at most one "updated" per this many seconds
    lookback_days: int = DEFAULT_LOOKBACK_DAYS  # how far before the first failure a change is a candidate
    clock: str = ARRIVAL  # ARRIVAL (the function) or EVENT (the CLI over history)
    max_ahead: int = MAX_AHEAD_SECONDS


@dataclass(frozen=True, eq=False)
class Added:
    """What a decision adds to a stored incident: the storage writes it as atomic adds."""

    failures: int = 0
    first: float = 0.0  # earliest fresh failure (0: none)
    last: float = 0.0  # latest failure (0: none)
    arrival: float = 0.0  # last_arrival to set (0: no fresh failure)
    principals: tuple[str, ...] = ()  # names to list (within MAX_LISTED as far as the decision knows)
    principal_keys: frozenset[str] = frozenset()
    resources: tuple[str, ...] = ()
    resource_keys: frozenset[str] = frozenset()
    late: int = 0
    late_span: tuple[float, float] = (0.0, 0.0)


@dataclass(frozen=True, eq=False)
class Decision:
    action: str  # open | count | record | resolve | attribute
    before: Optional[Incident]
    after: Incident
    added: Added = Added()
    latest: Optional[Finding] = None  # the newest failure of the decision: what an "updated" message shows
    late: frozenset[str] = frozenset()  # event ids of the failures it took as old news


@dataclass(frozen=True, eq=False)
class Notice:
    """One message to send: an incident's state change, to the channels that have not had it."""

    status: str  # opened | updated | resolved
    incident: Incident
    finding: Finding  # what the message carries
    reason: str = ""  # why an update ("failures continue", "change found"), and what it carries late
    channels: tuple[str, ...] = ()

    @property
    def change(self) -> str:
        return (self.incident.attribution.change or {}).get("event_id", "") if self.incident.attribution else ""

    def incident_dict(self) -> dict:
        """The ``incident`` object every channel carries: the incident as of this message, and why
        it was sent (``reason``: an update's cause, what it carries that could not be sent before)."""
        out = self.incident.to_dict(self.status)
        if self.reason:
            out["reason"] = self.reason
        return out

    def mark(self, at: float) -> Mark:
        """What a channel records once it has this message."""
        return Mark(self.incident.occurrence, self.status, self.incident.failures, self.change, at)


# --------------------------------------------------------------------------------------------
# Time
# --------------------------------------------------------------------------------------------
def effective_time(event_time: str, now: float, settings: Settings) -> tuple[float, str]:
    """(the time a failure counts at, a note when that is not its event time). An event time
    that does not parse, or that lies more than ``max_ahead`` seconds after ``now``, is replaced
    by ``now`` (the arrival, or in the CLI the end of the history)."""
    when = epoch(event_time)
    shown = repr(event_time[:40]) if type(event_time) is str else "(none)"
    if when is None:
        return now, f"event time {shown} could not be read: the time it arrived ({iso(now)}) is used"
    if when > now + settings.max_ahead:
        return now, (f"event time {shown} is {lead(when - now)} after it arrived: not trusted, the time it arrived "
                     f"({iso(now)}) is used")
    return when, ""


def quiet_at(incident: Incident, settings: Settings) -> float:
    """When an open incident becomes quiet, if nothing else arrives."""
    since = incident.last_arrival if settings.clock == ARRIVAL else incident.last_failure
    return since + settings.quiet


def quiet(incident: Incident, now: float, settings: Settings) -> bool:
    return incident.status == OPEN and now >= quiet_at(incident, settings)


def _late(failure: Failure, before: Optional[Incident], now: float, settings: Settings) -> bool:
    """Old news: in arrival time, older than the quiet period (and the delivery allowance) when it
    arrives; and, whatever the clock, older than the root's last resolution (it cannot start a new
    occurrence)."""
    if settings.clock == ARRIVAL and now - failure.when > max(settings.quiet, DELIVERY_ALLOWANCE_SECONDS):
        return True
    return before is not None and before.status == RESOLVED and failure.when < before.resolved_at


# --------------------------------------------------------------------------------------------
# Failures in
# --------------------------------------------------------------------------------------------
def decide(before: Optional[Incident], failures: Sequence[Failure], now: float, settings: Settings,
           candidates: Iterable[tuple[str, Mapping]] = ()) -> Decision:
    """Count ``failures`` (all of one root) into ``before`` (None: the root was never seen).

    * open: a root not open gets fresh failures -> a new occurrence, attributed to the latest
      change before its first failure among ``candidates`` ((change key, change dict));
    * count: an open incident counts them (its messages are ``due``'s to decide);
    * record: only old news for a root not open -> recorded, never paged.
    """
    ordered = sorted(failures, key=lambda f: (f.when, f.event_id))
    fresh = [f for f in ordered if not _late(f, before, now, settings)]
    late = [f for f in ordered if _late(f, before, now, settings)]
    if before is not None and before.status == OPEN:
        decision = _count(before, fresh, late, now)
    elif not fresh:
        decision = _record(before, late, now, settings)
    else:
        decision = _open(before, fresh, late, now, settings, list(candidates))
    return dataclasses.replace(decision, late=frozenset(f.event_id for f in late)) if late else decision


def _names(failures: Sequence[Failure], attr: str, have: Sequence[str], have_keys: frozenset[str]):
    """(new names to list, new distinct keys) of ``attr`` among ``failures``."""
    names, keys = [], set()
    listed = set(have)
    room = MAX_LISTED - len(have)
    key_room = MAX_DISTINCT - len(have_keys)
    for failure in failures:
        value = getattr(failure, attr)
        if not value:
            continue
        key = distinct(value)
        if key not in have_keys and key not in keys and len(keys) < key_room:
            keys.add(key)
        if value not in listed and len(names) < room:
            listed.add(value)
            names.append(value)
    return tuple(names), frozenset(keys)


def _span(span: tuple[float, float], failures: Sequence[Failure]) -> tuple[float, float]:
    times = [f.when for f in failures] + [t for t in span if t]
    return (min(times), max(times)) if times else (0.0, 0.0)


def _notes(failures: Sequence[Failure], have: tuple[str, ...] = ()) -> tuple[str, ...]:
    found = [f"{f.event_id}: {f.time_note}" for f in failures if f.time_note]
    return tuple(dict.fromkeys(have + tuple(found)))[:MAX_NOTES]


def _open(before: Optional[Incident], fresh: list[Failure], late: list[Failure], now: float, settings: Settings,
          candidates: list[tuple[str, Mapping]]) -> Decision:
    first = fresh[0]
    root = first.root
    start, end = first.when, max(f.when for f in fresh)
    attribution = attribute(root, start, candidates, settings.lookback_days)
    principals, pkeys = _names(fresh, "principal", (), frozenset())
    resources, rkeys = _names(fresh, "resource", (), frozenset())
    earlier_late = before.late if before is not None else 0
    span = before.late_span if before is not None and before.late else (0.0, 0.0)
    after = Incident(
        id=root.incident_id, root=root, status=OPEN, occurrence=(before.occurrence if before else 0) + 1,
        cause=first.finding.cause, title=first.finding.title, severity=first.finding.severity, finding=first.finding,
        evidence=tuple(first.finding.evidence)[:MAX_EVIDENCE], remediation=remediation_for(root, first.finding, attribution),
        attribution=attribution, first_failure=start, last_failure=end, failures=len(fresh), principals=principals,
        principal_keys=pkeys, resources=resources, resource_keys=rkeys, opened_at=now, last_arrival=now,
        later_changes=tuple(later_changes(root, start, candidates)), late=earlier_late + len(late),
        late_span=_span(span, late), notes=_notes(fresh + late), marks=before.marks if before is not None else {},
    )
    added = Added(len(fresh), start, end, now, principals, pkeys, resources, rkeys, len(late), after.late_span)
    return Decision(OPENED_ACTION, before, after, added, fresh[-1].finding)


def _count(before: Incident, fresh: list[Failure], late: list[Failure], now: float) -> Decision:
    members = fresh + late
    principals, pkeys = _names(members, "principal", before.principals, before.principal_keys)
    resources, rkeys = _names(members, "resource", before.resources, before.resource_keys)
    first = min((f.when for f in fresh), default=0.0)
    last = max((f.when for f in members), default=0.0)
    late_span = _span(before.late_span if before.late else (0.0, 0.0), late) if late else before.late_span
    after = dataclasses.replace(
        before, failures=before.failures + len(members),
        first_failure=min(before.first_failure, first) if first else before.first_failure,
        last_failure=max(before.last_failure, last), last_arrival=now if fresh else before.last_arrival,
        principals=before.principals + principals, principal_keys=before.principal_keys | pkeys,
        resources=before.resources + resources, resource_keys=before.resource_keys | rkeys,
        late=before.late + len(late), late_span=late_span, notes=_notes(members, before.notes))
    added = Added(len(members), first, last, now if fresh else 0.0, principals, pkeys, resources, rkeys, len(late),
                  late_span if late else (0.0, 0.0))
    latest = max(members, key=lambda f: (f.when, f.event_id)).finding if members else None
    return Decision(COUNT, before, after, added, latest)


def _record(before: Optional[Incident], late: list[Failure], now: float, settings: Settings) -> Decision:
    """Old news for a root not open: counted into the occurrence it belongs to (the resolved one,
    when it happened within it), or only recorded; never paged."""
    if before is None:
        first = late[0]
        before = Incident(id=first.root.incident_id, root=first.root, status=RESOLVED, occurrence=0,
                          cause=first.finding.cause, title=first.finding.title, severity=first.finding.severity,
                          finding=first.finding, evidence=tuple(first.finding.evidence)[:MAX_EVIDENCE],
                          remediation=first.finding.remediation,
                          attribution=Attribution(None, "not searched: the failures arrived too late to page"))
    within = [f for f in late if before.occurrence and before.first_failure <= f.when <= (before.resolved_at or now)]
    span = _span(before.late_span if before.late else (0.0, 0.0), late)
    after = dataclasses.replace(before, failures=before.failures + len(within), late=before.late + len(late),
                                late_span=span, notes=_notes(late, before.notes))
    return Decision(RECORD, before, after, Added(failures=len(within), late=len(late), late_span=span))


# --------------------------------------------------------------------------------------------
# One change, many callers
# --------------------------------------------------------------------------------------------
def relink(failure: Failure, candidates: Sequence[tuple[str, Mapping]], settings: Settings) -> Failure:
    """A failure of a principal's permissions whose latest explaining change is a new default
    version of a managed policy that governs the principal (its identity policy or its boundary,
    as the root's links say) belongs to that policy: one change, many callers, one incident
    (``roots.iam_policy``). Any other failure is returned as it is."""
    root = failure.root
    if root.kind != "principal-permissions" or not root.links:
        return failure
    found = attribute(root, failure.when, candidates, settings.lookback_days).change
    key = str((found or {}).get("key", ""))
    if not found or found.get("tier") != 0 or found.get("topic") != "policy-version" or not key.startswith("policy:"):
        return failure
    arn = key[len("policy:"):]
    relation = next((r for p, r in root.links if p == arn), "identity")
    return dataclasses.replace(failure, root=iam_policy(arn, relation))


def governed_by(incident: Incident, policy_arn: str, listed: frozenset[str] = frozenset()) -> bool:
    """Whether a principal's incident is one that a new version of ``policy_arn`` can explain: its
    root's links name the policy (for its denial's kind), or, when its links are unknown, the
    policy lists the principal (``listed``: ListEntitiesForPolicy, attach records)."""
    root = incident.root
    if root.kind != "principal-permissions":
        return False
    if root.links:
        return any(p == policy_arn for p, _ in root.links)
    return root.id in listed and any(k.startswith("iam-policies:") for k, _, _ in root.searches)


def fold(before: Optional[Incident], taken: Sequence[Incident], policy: Root, entries: Sequence[tuple[str, Mapping]],
         now: float, settings: Settings) -> Optional[tuple[Decision, list[Decision]]]:
    """A managed policy's new default version that arrives after the principals it broke opened
    incidents of their own (IAM events come from us-east-1, often later): the policy's incident
    (``before``, or a new occurrence) takes their failures over, and each of them is resolved as
    superseded by it. One change, one incident: the policy's incident says how many it took over
    (one "opened" or "updated"), and each superseded incident gets its "resolved" so that an
    on-call tool closes the alert it opened. ``taken``: the principals' open incidents that the
    change explains (``governed_by``); only those whose first failure follows the change."""
    found = [i for i in taken if i.status == OPEN and i.occurrence > 0 and i.superseded_by == "" and
             attribute(policy, i.first_failure, entries, settings.lookback_days).change is not None]
    if not found:
        return None
    first = min(i.first_failure for i in found)
    principals = tuple(dict.fromkeys(p for i in found for p in i.principals))
    resources = tuple(dict.fromkeys(r for i in found for r in i.resources))
    pkeys = frozenset().union(*(i.principal_keys for i in found))
    rkeys = frozenset().union(*(i.resource_keys for i in found))
    failures = sum(i.failures for i in found)
    last = max(i.last_failure for i in found)
    arrival = max(i.last_arrival for i in found)
    ids = ", ".join(i.id for i in found[:5]) + (f" and {len(found) - 5} more" if len(found) > 5 else "")
    note = f"took over {len(found)} incident(s) opened before the change was known: {ids}"
    if before is not None and before.status == OPEN:
        room = MAX_LISTED - len(before.principals)
        new_p = tuple(p for p in principals if p not in before.principals)[:max(room, 0)]
        new_r = tuple(r for r in resources if r not in before.resources)[:max(MAX_LISTED - len(before.resources), 0)]
        after = dataclasses.replace(
            before, failures=before.failures + failures, first_failure=min(before.first_failure, first),
            last_failure=max(before.last_failure, last), last_arrival=max(before.last_arrival, arrival),
            principals=before.principals + new_p, principal_keys=before.principal_keys | pkeys,
            resources=before.resources + new_r, resource_keys=before.resource_keys | rkeys,
            notes=tuple(dict.fromkeys(before.notes + (note,)))[:MAX_NOTES])
        added = Added(failures, first, last, arrival, new_p, pkeys - before.principal_keys, new_r, rkeys - before.resource_keys)
        decision = Decision(COUNT, before, after, added)
    else:
        lead_incident = min(found, key=lambda i: (i.first_failure, i.id))
        attribution = attribute(policy, first, entries, settings.lookback_days)
        after = Incident(
            id=policy.incident_id, root=policy, status=OPEN, occurrence=(before.occurrence if before else 0) + 1,
            cause=lead_incident.cause, title=lead_incident.title, severity=lead_incident.severity,
            finding=lead_incident.finding, evidence=lead_incident.evidence,
            remediation=remediation_for(policy, lead_incident.finding, attribution) if lead_incident.finding else "",
            attribution=attribution, first_failure=first, last_failure=last, failures=failures,
            principals=principals[:MAX_LISTED], principal_keys=pkeys, resources=resources[:MAX_LISTED],
            resource_keys=rkeys, opened_at=now, last_arrival=arrival, notes=(note,),
            marks=before.marks if before is not None else {})
        decision = Decision(OPENED_ACTION, before, after, Added(failures, first, last, arrival, after.principals, pkeys,
                                                                after.resources, rkeys))
    superseded = [Decision(RESOLVE, i, dataclasses.replace(i, status=RESOLVED, resolved_at=now, superseded_by=after.id))
                  for i in found]
    return decision, superseded


# --------------------------------------------------------------------------------------------
# Quiet: resolved
# --------------------------------------------------------------------------------------------
def resolve(before: Incident, now: float, settings: Settings,
            candidates: Iterable[tuple[str, Mapping]] = ()) -> Decision:
    """The incident resolved: at ``now`` in arrival time; in event time, when it became quiet.
    ``ended_by`` names the change to its root between its last failure and the resolution (the
    earliest, among the later changes it knows and ``candidates``), or None when there was none."""
    at = now if settings.clock == ARRIVAL else quiet_at(before, settings)
    later = _merge(before.later_changes, later_changes(before.root, before.first_failure, candidates))
    ended = None
    for change in later:
        when = epoch(change.get("event_time") or "")
        if when is not None and before.last_failure < when <= at:
            ended = change
            break
    after = dataclasses.replace(before, status=RESOLVED, resolved_at=at, later_changes=later, ended_by=ended)
    return Decision(RESOLVE, before, after)


def _merge(have: Sequence[dict], new: Sequence[dict]) -> tuple[dict, ...]:
    seen = {c.get("event_id") for c in have}
    merged = list(have) + [c for c in new if c.get("event_id") not in seen]
    merged.sort(key=lambda c: epoch(c.get("event_time") or "") or 0.0)
    return tuple(merged[-20:])


# --------------------------------------------------------------------------------------------
# Changes that arrive after the failures they explain
# --------------------------------------------------------------------------------------------
def on_changes(before: Incident, entries: Sequence[tuple[str, Mapping]], settings: Settings) -> Optional[Decision]:
    """Changes (change key, change dict) recorded after the incident opened (delivery is not
    ordered): one before its first failure that explains it better than what it names is the
    change that started it (its messages then say "change found"); one after its first failure
    is a later change (a fix, perhaps: ``ended_by`` when it resolves). None when nothing changes."""
    if before.occurrence == 0:
        return None
    current = before.attribution.change
    found = attribute(before.root, before.first_failure, list(entries) + _current(before), settings.lookback_days)
    improved = found.change is not None and (current is None or found.change.get("event_id") != current.get("event_id"))
    later = _merge(before.later_changes, later_changes(before.root, before.first_failure, entries))
    ended = before.ended_by
    if before.status == RESOLVED and ended is None:
        for change in later:
            when = epoch(change.get("event_time") or "")
            if when is not None and before.last_failure < when <= before.resolved_at:
                ended = change
                break
    if not improved and later == before.later_changes and ended == before.ended_by:
        return None
    after = dataclasses.replace(before, later_changes=later, ended_by=ended)
    if improved and before.status == OPEN and before.finding is not None:
        after = dataclasses.replace(after, attribution=found, remediation=remediation_for(before.root, before.finding, found))
    return Decision(ATTRIBUTE, before, after)


def _current(incident: Incident) -> list[tuple[str, Mapping]]:
    """The change an incident names, as a candidate again (under the key it was found under)."""
    change = incident.attribution.change
    if not change:
        return []
    if change.get("key"):
        return [(change["key"], change)]
    tier = change.get("tier", 0)
    for key, topics, t in incident.root.searches:
        if t == tier:
            return [(key, {**change, "topic": next(iter(topics)) if topics else "policy"})]
    return []


# --------------------------------------------------------------------------------------------
# What each channel must still be told
# --------------------------------------------------------------------------------------------
def due(incident: Incident, mark: Optional[Mark], now: float, settings: Settings) -> Optional[tuple[str, str]]:
    """(status, reason) of the message a channel whose last confirmed message is ``mark`` must
    still get about ``incident``, or None.

    * open, the channel has not announced this occurrence: ``opened`` (saying what it missed);
    * open, the change that started it was found since: ``updated`` (change found);
    * open, more failures and the last message older than the update window: ``updated``;
    * resolved, the channel has not announced the resolution: ``resolved``.
    """
    occurrence = incident.occurrence
    if occurrence == 0:
        return None
    missed = ""
    if mark is not None and mark.seq < occurrence and mark.status != RESOLVED:
        missed = (f"occurrence {mark.seq} was last announced {mark.status}; the message that resolved it could not be "
                  "sent, and this one carries it")
    if incident.status == OPEN:
        if mark is None or mark.seq < occurrence:
            return Status.OPENED, _with_late(incident, missed)
        change = (incident.attribution.change or {}).get("event_id", "")
        if change and change != mark.change:
            return Status.UPDATED, _with_late(incident, "change found")
        if incident.failures > mark.failures and now - mark.at >= settings.update_window:
            return Status.UPDATED, _with_late(incident, "failures continue")
        return None
    if mark is not None and mark.seq == occurrence and mark.status == RESOLVED:
        return None
    reason = f"superseded by incident {incident.superseded_by}" if incident.superseded_by else ""
    if mark is None or mark.seq < occurrence:
        reason = "; ".join(r for r in (reason, "the message that opened it could not be sent") if r)
    return Status.RESOLVED, _with_late(incident, reason)


def _with_late(incident: Incident, reason: str) -> str:
    if not incident.late:
        return reason
    first, last = incident.late_span
    late = (f"{incident.late} failure(s) arrived late (event times {iso(first)} to {iso(last)}, more than the quiet "
            f"period before they arrived or before the last resolution): recorded and counted, not paged")
    return "; ".join(r for r in (reason, late) if r)


def notices(incident: Incident, channels: Sequence[str], now: float, settings: Settings,
            latest: Optional[Finding] = None) -> list[Notice]:
    """The messages ``incident`` owes ``channels``, one per distinct (status, reason), each
    naming the channels it goes to. ``latest``: the newest failure, shown by an ``updated``."""
    owed: dict[tuple[str, str], list[str]] = {}
    for channel in channels:
        found = due(incident, incident.marks.get(channel), now, settings)
        if found is not None:
            owed.setdefault(found, []).append(channel)
    out = []
    for (status, reason), to in owed.items():
        finding = (latest if status == Status.UPDATED and latest is not None else incident.finding)
        if finding is not None:
            out.append(Notice(status, incident, finding, reason, tuple(to)))
    return out


def with_marks(incident: Incident, marks: Mapping[str, Mark]) -> Incident:
    """``incident`` once ``marks`` (channel -> mark) are confirmed."""
    return dataclasses.replace(incident, marks={**incident.marks, **marks})
