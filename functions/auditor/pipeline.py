"""The order of work, between Lambda and AWS: events in, one alert per root cause out. Knows
nothing of Lambda; the handler wires it, the tests drive it directly.

    parse -> enrich -> classify -> pair -> decide -> write -> send -> confirm -> log + count

* parse: a failed call, a change, or a counted outcome (malformed, another service, ...);
* enrich + classify: the cause and its evidence (pure, with read-only facts); the root: the
  thing that must change (``classify.root_of``);
* pair: a Secrets Manager call and the KMS call it made, a rotation failure and its function's
  calls, are one failure (``pairing`` in a batch, ``joins`` across batches);
* decide: ``lifecycle`` (pure) decides, per root, what the failures do to its incident and
  which messages each channel is owed; changes are recorded (``change_log``) and may name the
  change that started an open incident;
* write: ``storage``, every write conditional, in one atomic write per batch (one item: an
  UpdateItem; several: a transaction); a message owed is *claimed* in the same write (one
  claimer at a time, a lease);
* send: each channel (SNS, EventBridge) gets the messages it is owed;
* confirm: each channel's mark records what it confirmed, and the claim is released. A message
  that could not be sent stays owed: the next decision on its incident, or the scheduled run
  (when the claim lapses), sends it, saying so. Records are never handed back to SQS for it.

Failure semantics: bad input is logged and counted, never raised; a parser or classifier bug on
one record is counted and never fails the batch; the state table failing means notify anyway
(``StateUnavailable``: one message per root cause of the batch, marked "may repeat"), and only
then does a failed send hand the records back to SQS.
"""

from __future__ import annotations

import dataclasses
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Protocol, Sequence

from . import change_log, lifecycle
from .aws import fan_out
from .changes import Change
from .classify import classify, classify_unknown, root_of
from .contract import Log, Metric, Status
from .finding import Finding
from .incidents import OPEN, Attribution, Failure, Mark, remediation_for
from .lifecycle import Decision, Notice, Settings
from .pairing import Half, half_of, pair
from .records import FailedCall, Malformed, parse_record
from .roots import affected
from .storage import (Claim, Conflict, StateUnavailable, Stored, Table, Writes, backoff, change_pk, event_keys,
                      incident_pk, join_pk, new_token, stored_incident)

__all__ = ["Pipeline", "Report", "State", "StateUnavailable"]

#: Attempts at a batch's write when another invocation's write met it (each from a fresh read).
ATTEMPTS = 4
#: How long a claimed message is the claimer's to send; then it is owed again.
CLAIM_SECONDS = 90
#: When a channel failed, how soon the scheduled run tries it again.
RETRY_SECONDS = 60
#: Roots per transaction (each also has join items and the like beside it: at most 100 operations).
ROOTS_PER_WRITE = 80
#: Principals whose incidents a late policy version can take over in one batch (their items are read).
FOLD_PRINCIPALS = 5000


class _NoHalves:
    """What a batch without halves of a failure gets from the joins: nothing (auditor.joins.Joined's shape)."""

    failures: tuple = ()
    ops: tuple = ()
    outcomes: dict = {}
    counts: Counter = Counter()


_NO_HALVES = _NoHalves()


class Metrics(Protocol):
    def count(self, name: str, value: int = 1) -> None: ...

    def findings(self, service: str, cause: str, value: int) -> None: ...

    def seconds(self, name: str, value: float) -> None: ...

    def gauge(self, name: str, value: int) -> None: ...


class Channel(Protocol):
    name: str

    def send(self, notices: list[Notice]) -> list[Optional[Exception]]: ...


@dataclass(eq=False)
class Report:
    """What one invocation did (also what the tests and the demo print)."""

    findings: list[Finding] = field(default_factory=list)
    notified: list[tuple[str, str]] = field(default_factory=list)  # (status, incident id) sent to every channel owed it
    failed_keys: list[str] = field(default_factory=list)  # inputs to hand back to SQS (only without the table)
    counts: Counter = field(default_factory=Counter)
    sent: list[tuple[str, str, str]] = field(default_factory=list)  # (channel, status, incident id), in order
    retried: set = field(default_factory=set)  # event ids handed back to SQS (only without the table)


@dataclass(eq=False)
class State:
    """The incident state the pipeline keeps: the table, the lifecycle's settings, and what the
    table's writes need to know (retention, how long a record waits for its partner)."""

    table: Table
    settings: Settings
    retention_days: int = 7
    join_wait: int = 90  # how long a record waits for its partner at most (auditor.joins.JOIN_WAIT)
    writes: Writes = field(init=False)
    open_until: dict = field(default_factory=dict)  # incidents this container saw open: their changes need no read

    def __post_init__(self):
        self.join_wait = min(self.join_wait, self.settings.quiet)
        self.writes = Writes(self.table.name, open_ttl=max(30 * 86400, 4 * self.settings.quiet),
                             resolved_ttl=max(self.retention_days, 7) * 86400)

    @classmethod
    def create(cls, table_name: str, *, quiet_seconds: int, update_seconds: int, change_retention_days: int = 7,
               client=None, region: Optional[str] = None, timeout_seconds: float = 30.0) -> "State":
        return cls(Table(table_name, client, region=region, timeout_seconds=timeout_seconds),
                   Settings(quiet_seconds, update_seconds, change_retention_days), change_retention_days)

    @property
    def requests(self) -> int:
        return self.table.requests


@dataclass(eq=False)
class _Plan:
    """One incident's part of a write: the decision, what was read, the claim, the messages owed."""

    decision: Decision
    stored: Optional[Stored]
    claim: Optional[Claim]
    owed: list[Notice]
    op: dict


class Pipeline:
    def __init__(self, *, channels: Sequence[Channel] = (), metrics: Metrics, logger: Any, state: Optional[State] = None,
                 enricher: Any = None, clock: Callable[[], float] = time.time, publisher: Optional[Channel] = None,
                 monotonic: Callable[[], float] = time.monotonic):
        self.channels: list[Channel] = list(channels) + ([publisher] if publisher is not None else [])
        self.metrics, self.log = metrics, logger
        self.state, self.enricher, self.clock, self.monotonic = state, enricher, clock, monotonic

    @property
    def publisher(self) -> Optional[Channel]:
        """The SNS channel (tests and the demo read it)."""
        return next((c for c in self.channels if c.name == "sns"), None)

    @classmethod
    def from_config(cls, config, *, metrics: Metrics, logger: Any, own_account: Optional[str] = None) -> "Pipeline":
        """The pipeline the function runs: its channels, incident state and enricher, from ``config``."""
        from .enrich import Enricher
        from .publish import EventBus, Publisher

        state = None
        if config.table_name:
            state = State.create(config.table_name, quiet_seconds=config.quiet_seconds,
                                 update_seconds=config.update_seconds, change_retention_days=config.change_retention_days,
                                 region=config.region, timeout_seconds=config.timeout_seconds)
        channels: list[Channel] = [Publisher(config.topic_arn, region=config.region)]
        if config.bus_name:
            channels.append(EventBus(config.bus_name, region=config.region, account=own_account or ""))
        enricher = Enricher(consistency_window_seconds=config.consistency_window_seconds,
                            simulate_policies=config.simulate_policies, own_account=own_account)
        return cls(channels=channels, metrics=metrics, logger=logger, state=state, enricher=enricher)

    @property
    def channel_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.channels)

    # ---- a batch of events --------------------------------------------------------------------
    def handle(self, events: Sequence[tuple[str, Any]]) -> Report:
        """Process ``(key, event)`` pairs (EventBridge events or bare records). Never raises for bad input."""
        report = Report()
        now = self.clock()
        if self.enricher is not None and hasattr(self.enricher, "begin"):
            self.enricher.begin()
        calls: list[tuple[str, FailedCall]] = []
        changes: list[Change] = []
        first_key: dict[str, int] = {}  # CloudTrail eventID -> position in calls
        copies: dict[int, list[str]] = {}
        for key, event in events:
            outcome = self._parse(key, event, report)
            kind = type(outcome)
            if kind is FailedCall:
                event_id = outcome.event_id
                if event_id and event_id in first_key:  # the same event twice in one batch: one failure
                    copies.setdefault(first_key[event_id], []).append(key)
                    report.counts[Metric.REDELIVERED_EVENTS] += 1
                    continue
                if event_id:
                    first_key[event_id] = len(calls)
                calls.append((key, outcome))
            elif kind is Change:
                changes.append(outcome)
            elif kind is not Malformed:
                report.counts[Metric.IGNORED_EVENTS] += 1
        settings = self.state.settings if self.state is not None else Settings(0, 0)
        wholes, halves = [], []
        for position, ((key, call), facts) in enumerate(zip(calls, self._facts(calls, report))):
            finding = self._classify(call, facts, report)
            when, note = lifecycle.effective_time(call.event_time, now, settings)
            if note:
                finding = dataclasses.replace(finding, evidence=tuple(finding.evidence) + (note,))
            report.findings.append(finding)
            failure = Failure(finding, root_of(finding.cause, call, facts), (key, *copies.get(position, ())),
                              (call.event_id,), call.principal.identity_arn or call.principal.arn, affected(call), when, note)
            half = half_of(call, failure)
            (halves if half is not None else wholes).append(half if half is not None else failure)
        joined, left = pair(halves)
        report.counts[Metric.JOINED_RECORDS] += len(halves) - len(left) - len(joined)
        failures = wholes + joined
        if failures or left or changes:
            self._settle(failures, left, changes, now, report)
        self._emit(report)
        return report

    def _parse(self, key: str, event: Any, report: Report):
        try:
            outcome = parse_record(event, key)
        except Exception as exc:  # noqa: BLE001 - a parser bug must not fail the batch's other records
            outcome = Malformed(key, f"the parser failed on this record ({type(exc).__name__})")
            self.log.exception("parser error: record counted as malformed", extra={"origin": ascii(key)[:200]})
        if type(outcome) is Malformed:
            report.counts[Metric.MALFORMED_EVENTS] += 1
            self.log.warning("malformed event dropped", extra={"origin": ascii(outcome.origin)[1:-1][:200],
                                                               "reason": outcome.reason})
        return outcome

    def _classify(self, call: FailedCall, facts, report: Report) -> Finding:
        """The finding; a classifier bug on one record still gives a finding (the catch-all cause,
        whose match cannot fail), logged with its traceback and counted, and never fails the batch."""
        try:
            return classify(call, facts)  # its text too: a cause's error in it is caught here
        except Exception as exc:  # noqa: BLE001
            report.counts[Metric.CLASSIFIER_ERRORS] += 1
            self.log.exception("classifier error: reported as an unknown cause", extra={"event_id": call.event_id})
            return classify_unknown(call, f"the classifier failed on this record ({type(exc).__name__})")

    def _facts(self, calls: list[tuple[str, FailedCall]], report: Report) -> list:
        """Facts for each call; a batch's lookups run in parallel (the enricher caches and is thread-safe)."""
        if self.enricher is None or not calls:
            return [None] * len(calls)
        before = self.enricher.failures
        facts = fan_out(self.enricher.facts_for, [call for _, call in calls])
        report.counts[Metric.ENRICHMENT_FAILURES] += self.enricher.failures - before
        return facts

    # ---- decide, write, send, confirm ---------------------------------------------------------
    def _settle(self, failures: list[Failure], halves: list[Half], changes: list[Change], now: float,
                report: Report, extra: Optional["joins.Joined"] = None) -> None:
        """Count the failures into their incidents, record the changes, send what is owed; fail open."""
        every = failures + (extra.failures if extra else []) + [h.failure for h in halves]
        outcomes: dict[str, tuple[str, str]] = {}
        plans: list[_Plan] = []
        state = self.state
        if state is not None:
            timeouts = state.table.timeouts
            try:
                if changes:
                    change_log.record(state.table, changes, now, state.retention_days)
                    report.counts[Metric.CHANGES_RECORDED] += len(changes)
                token = new_token()
                plans, outcomes, counts = self._write_failures(failures, halves, changes, now, token, extra)
                report.counts.update(counts)
                if changes:
                    late = self._write_changes(changes, now, token, report)
                    plans += late
                report.counts[Metric.STATE_TIMEOUTS] += state.table.timeouts - timeouts
            except StateUnavailable as exc:
                report.counts[Metric.STATE_UNAVAILABLE] = 1
                self.log.warning("incident state unavailable: notifying every root cause of the batch",
                                 extra={"error": str(exc), "changes_not_recorded": len(changes)})
                state = None
                plans = []
        if state is None:
            # Without the table a change has nowhere to be kept: counted as ignored, not lost silently.
            report.counts[Metric.IGNORED_EVENTS] += len(changes)
            self._stateless(every, now, report)
        else:
            self._send(plans, now, report)
        for failure in every:
            outcome, incident = outcomes.get(failure.event_id, (Log.GROUPED, failure.root.incident_id))
            if failure.event_id in report.retried:
                outcome = Log.RETRIED
            for extra_record in failure.finding.joined:
                outcomes.setdefault(extra_record.get("event_id", ""), (Log.JOINED, incident))
            self.log.info(Log.FINDING, extra={Log.FIELD_FINDING: failure.finding.to_dict(), Log.FIELD_OUTCOME: outcome,
                                              Log.FIELD_INCIDENT_ID: incident, "correlation_id": failure.finding.event_id})
            if outcome not in Log.NOT_COUNTED:
                report.counts[("findings", failure.finding.service, failure.finding.cause)] += 1

    def _write_failures(self, failures: list[Failure], halves: list[Half], changes: list[Change], now: float,
                        token: str, extra: Optional["joins.Joined"] = None):
        """Decide and write every root of the batch, a transaction per ``ROOTS_PER_WRITE`` roots
        (halves and their join items with the first), each decided again from a fresh read when
        another invocation's write met it. (plans written, outcomes by event id, counts)."""
        groups: dict[str, list[Failure]] = {}
        for failure in failures + (extra.failures if extra else []):
            groups.setdefault(failure.root.key, []).append(failure)
        units = [list(groups.values())[i:i + ROOTS_PER_WRITE] for i in range(0, max(len(groups), 1), ROOTS_PER_WRITE)]
        written: list[_Plan] = []
        outcomes: dict[str, tuple[str, str]] = {}
        counts: Counter = Counter()
        for number, unit in enumerate(units):
            unit_halves = halves if number == 0 else []
            unit_extra = extra if number == 0 else None
            for attempt in range(ATTEMPTS):
                plans, joined, decided, again = self._plan(unit, unit_halves, changes, now, token)
                ops = [p.op for p in plans] + list(joined.ops) + (unit_extra.ops if unit_extra else [])
                try:
                    # one atomic write; more than one only for a batch of very many roots and halves
                    for start in range(0, len(ops), 100):
                        self.state.table.write(ops[start:start + 100])
                except Conflict:
                    counts[Metric.STATE_RETRIES] += 1
                    backoff(attempt)
                    continue
                for failure, incident_id in again:  # counted by an earlier batch: its records delivered again
                    counts[Metric.REDELIVERED_EVENTS] += max(1, len(failure.event_ids))
                    for event_id in failure.event_ids:
                        outcomes.setdefault(event_id, (Log.REDELIVERED, incident_id))
                if not ops:
                    break
                written += plans
                outcomes.update(joined.outcomes)
                counts.update(joined.counts)
                if unit_extra is not None:
                    outcomes.update(unit_extra.outcomes)
                    counts.update(unit_extra.counts)
                for plan in plans:
                    decision = plan.decision
                    if decision.after.status == OPEN:
                        self.state.open_until[incident_pk(decision.after.id)] = now + 60
                    outcome = {"open": Log.OPENED, "record": Log.LATE}.get(decision.action, Log.GROUPED)
                    if decision.action == "count" and any(n.status == Status.UPDATED for n in plan.owed):
                        outcome = Log.UPDATED
                    for member in decided.get(decision.after.root.key, []):
                        late = member.event_id in decision.late
                        for event_id in member.event_ids:
                            outcomes.setdefault(event_id, (Log.LATE if late else outcome, decision.after.id))
                    counts[Metric.LATE_FAILURES] += len(decision.late)
                break
            else:
                raise StateUnavailable(f"TransactWriteItems on {self.state.table.name}: still conflicting after {ATTEMPTS} attempts")
        return written, outcomes, counts

    def _plan(self, unit: list[list[Failure]], halves: list[Half], changes: list[Change], now: float,
              token: str) -> tuple[list[_Plan], "joins.Joined", dict[str, list[Failure]], list[tuple[Failure, str]]]:
        """Read what the unit's incidents, join items and (for roots not known open) changes are,
        and decide each root: the plans, what the halves became, the failures of each root it
        counts, and the failures it does not count because an earlier batch did (with their incident)."""
        state = self.state
        roots = [members[0].root for members in unit] + [h.failure.root for h in halves if h.failure.root.known]
        if len(state.open_until) > 4096:
            state.open_until.clear()
        wanted = change_log.search_keys(r for r in roots if state.open_until.get(incident_pk(r.incident_id), 0.0) <= now)
        wanted |= {f"policy:{arn}" for r in roots for arn, _ in r.links}  # a linked policy's versions: always
        wanted |= {k for r in roots if r.kind == "principal-permissions" and not r.links
                   for k, _, _ in r.searches if k.startswith("iam-policies:")}  # ... and the account's, to link them
        pks = [incident_pk(r.incident_id) for r in roots] + [join_pk(h.join) for h in halves]
        items = state.table.read(pks + [change_pk(k) for k in wanted])
        if halves:  # only a batch with halves of a failure needs the join items (and their module)
            from . import joins

            joined = joins.resolve(halves, items, now, state.join_wait, state.writes)
        else:
            joined = _NO_HALVES
        candidates = change_log.candidates({pk: item for pk, item in items.items() if pk.startswith("chg#")}, changes)
        candidates += change_log.by_target(candidates)  # an account's policy versions, under their policy too
        groups: dict[str, list[Failure]] = {}
        for failure in [f for members in unit for f in members] + list(joined.failures):
            failure = lifecycle.relink(self._linked(failure, candidates), candidates, state.settings)
            groups.setdefault(failure.root.key, []).append(failure)
        missing = [incident_pk(m[0].root.incident_id) for m in groups.values() if incident_pk(m[0].root.incident_id) not in items]
        moved = [m[0].root for m in groups.values() if m[0].root.key not in {r.key for r in roots}
                 and state.open_until.get(incident_pk(m[0].root.incident_id), 0.0) <= now]  # relinked, not known open
        more = {change_pk(k) for k in change_log.search_keys(moved)} - set(items)
        if missing or more:
            items.update(state.table.read(missing + sorted(more)))
            candidates = change_log.candidates({pk: item for pk, item in items.items() if pk.startswith("chg#")}, changes)
            candidates += change_log.by_target(candidates)
        plans, again = [], []
        for key, members in list(groups.items()):
            incident_id = members[0].root.incident_id
            stored = stored_incident(items.get(incident_pk(incident_id)))
            if stored is not None:
                counted = [stored.counted(m) for m in members]
                again += [(m, incident_id) for m, before in zip(members, counted) if before]
                members = groups[key] = [m for m, before in zip(members, counted) if not before]
            if members:
                plans.append(self._decide(members, stored, now, token, candidates))
        return plans, joined, groups, again

    def _linked(self, failure: Failure, candidates: list) -> Failure:
        """A principal's failure, with what governs the principal, when a managed policy of its
        account got a new default version before the failure (the only change a link can name):
        what the attach and boundary changes recorded say; else IAM lookups (its boundary, its
        and its groups' attached policies: Enricher.links, cached, bounded); else whom the changed
        policies are attached to (ListEntitiesForPolicy). No version, no lookup: most denials
        cost no IAM call."""
        from .changes import links_from_records
        from .roots import with_links

        root = failure.root
        if root.kind != "principal-permissions" or root.links or not root.id.startswith(("role:", "user:")):
            return failure
        account = root.id.split(":")[1]
        lookback = self.state.settings.lookback_days * 86400
        versions = sorted(((c.get("event_time") or "", c) for k, c in candidates
                           if k == f"iam-policies:{account}" and c.get("topic") == "policy-version"
                           and (when := lifecycle.epoch(c.get("event_time") or "")) is not None
                           and 0 <= failure.when - when <= lookback), key=lambda pair: pair[0], reverse=True)
        if not versions:
            return failure
        recorded = links_from_records(root.id, candidates, failure.when)
        if recorded is not None:
            return dataclasses.replace(failure, root=with_links(root, recorded))
        if self.enricher is None or not hasattr(self.enricher, "links"):
            return failure
        looked_up = self.enricher.links(failure.principal, self.enricher.own_account())
        if looked_up is not None and (looked_up.known or looked_up.policies):
            return dataclasses.replace(failure, root=with_links(root, looked_up))
        for _, change in versions[:3]:
            arn = str(change.get("target", "")).removeprefix("policy:")
            if not arn.startswith("arn:"):
                continue
            listed = self.enricher.entities(arn, account)
            if listed and root.id in listed:
                from .facts import LinkFacts

                links = LinkFacts(root.id, policies=(arn,), source="lookups",
                                  note=f"{arn} lists it (ListEntitiesForPolicy); its other policies were not looked up")
                return dataclasses.replace(failure, root=with_links(root, links))
        if looked_up is not None and looked_up.note:  # say why the lookups could not tell
            return dataclasses.replace(failure, root=dataclasses.replace(root, note=looked_up.note))
        return failure

    def _decide(self, members: list[Failure], stored: Optional[Stored], now: float, token: str,
                candidates: list) -> _Plan:
        settings = self.state.settings
        decision = lifecycle.decide(stored.incident if stored else None, members, now, settings, candidates)
        return self._plan_for(decision, stored, now, token, frozenset().union(*map(event_keys, members)))

    def _plan_for(self, decision: Decision, stored: Optional[Stored], now: float, token: str,
                  events: frozenset[str] = frozenset()) -> _Plan:
        """The write of a decision: a claim on the messages it owes when nobody else holds one.
        ``events``: the hashes of the events of the failures it counts, kept against redelivery."""
        settings = self.state.settings
        owed = lifecycle.notices(decision.after, self.channel_names, now, settings, decision.latest)
        claim = None
        due = None
        if owed and (stored is None or stored.claim_free(now)):
            claim = Claim(token, now + CLAIM_SECONDS)
        elif owed and stored is not None:
            due = stored.claim_until  # another invocation is sending: look again when its claim lapses
            owed = []
        if decision.action == "open" and claim is None and due is None:
            due = lifecycle.quiet_at(decision.after, settings)
        op = self.state.writes.decision(decision, stored, now, claim, due, events)
        return _Plan(decision, stored, claim, owed if claim else [], op)

    def _write_changes(self, changes: list[Change], now: float, token: str, report: Report) -> list[_Plan]:
        """Incidents rooted in what the changes changed: the change that started one (found late)
        or ended it; and a managed policy's new version that broke principals whose incidents
        opened before it arrived: folded into the policy's incident. Each decided again from a
        fresh read if another write met it."""
        pks = change_log.incidents_touched(changes)
        versions = self._versions(changes)
        if not pks and not versions:
            return []
        entries = change_log.candidates({}, changes)
        for attempt in range(ATTEMPTS):
            plans = []
            for pk, item in (self.state.table.read(pks).items() if pks else ()):
                stored = stored_incident(item)
                if stored is None:
                    continue
                decision = lifecycle.on_changes(stored.incident, entries, self.state.settings)
                if decision is not None:
                    plans.append(self._plan_for(decision, stored, now, token))
            folded = [p for arn, listed in versions.items() for p in self._fold(arn, listed, entries, now, token)]
            plans = [p for p in plans if not any(f.decision.after.id == p.decision.after.id for f in folded)] + folded
            if not plans:
                return []
            try:
                for start in range(0, len(plans), 100):
                    self.state.table.write([p.op for p in plans[start:start + 100]])
            except Conflict:
                report.counts[Metric.STATE_RETRIES] += 1
                backoff(attempt)
                continue
            report.counts[Metric.LATE_ATTRIBUTIONS] += sum(
                1 for p in plans if p.decision.before is not None and p.decision.after.attribution != p.decision.before.attribution)
            return plans
        raise StateUnavailable(f"TransactWriteItems on {self.state.table.name}: still conflicting after {ATTEMPTS} attempts")

    def _versions(self, changes: list[Change]) -> dict[str, set[str]]:
        """The managed policies the changes give a new default version, with the principals known
        to be governed by each: listed by the policy (ListEntitiesForPolicy), looked up earlier
        (cached links), or named by attach and boundary records (the policy's change item)."""
        arns = list(dict.fromkeys(k[len("policy:"):] for change in changes for k, t in change.keys
                                  if k.startswith("policy:") and t == "policy-version"))
        if not arns:
            return {}
        out: dict[str, set[str]] = {}
        items = self.state.table.read(change_pk(f"policy:{arn}") for arn in arns)
        account = {k[len("policy:"):]: change.account for change in changes for k, _ in change.keys if k.startswith("policy:")}
        for arn in arns:
            known: set[str] = set()
            if self.enricher is not None and hasattr(self.enricher, "entities"):
                known |= set(self.enricher.entities(arn, account.get(arn, "")) or ()) | self.enricher.linked_to(arn)
            for entry in change_log.entries_of(items.get(change_pk(f"policy:{arn}"))):
                if entry.get("topic") in ("attachment", "boundary-set"):
                    known |= {k for k in entry.get("keys") or () if k.startswith(("role:", "user:"))}
            out[arn] = known
        return out

    def _fold(self, arn: str, listed: set[str], entries: list, now: float, token: str) -> list[_Plan]:
        """The principals' open incidents a new version of ``arn`` explains, folded into its incident."""
        from .roots import Root, iam_policy

        if not listed:
            return []
        principal_pks = {incident_pk(Root("principal-permissions", p).incident_id): p for p in sorted(listed)[:FOLD_PRINCIPALS]}
        items = self.state.table.read(list(principal_pks) + [incident_pk(iam_policy(arn).incident_id)])
        taken = [st for pk, item in items.items() if pk in principal_pks and (st := stored_incident(item)) is not None
                 and lifecycle.governed_by(st.incident, arn, frozenset(listed))]
        if not taken:
            return []
        relation = next((r for st in taken for p, r in st.incident.root.links if p == arn), "identity")
        policy = iam_policy(arn, relation)
        before = stored_incident(items.get(incident_pk(policy.incident_id)))
        result = lifecycle.fold(before.incident if before else None, [st.incident for st in taken], policy, entries, now,
                                self.state.settings)
        if result is None:
            return []
        decision, superseded = result
        # the events counted into what it takes over come with their counts (those a record delivered again finds)
        events = frozenset().union(*(st.event_keys | st.event_keys_before for st in taken))
        plan = self._plan_for(decision, before, now, token, events)
        if decision.action == "count" and plan.claim is None and (before is None or before.claim_free(now)):
            reason = decision.after.notes[-1] if decision.after.notes else "took over incidents opened before the change was known"
            notice = Notice(Status.UPDATED, decision.after, decision.after.finding, reason, self.channel_names)
            claim = Claim(token, now + CLAIM_SECONDS)
            plan = _Plan(decision, before, claim, [notice], self.state.writes.decision(decision, before, now, claim, None, events))
        by_id = {st.incident.id: st for st in taken}
        return [plan] + [self._plan_for(d, by_id[d.before.id], now, token) for d in superseded]

    # ---- sending, and confirming what was sent ------------------------------------------------
    def _send(self, plans: list[_Plan], now: float, report: Report) -> None:
        """Send every claimed message to its channels, then confirm per channel (marks) and release
        the claims. A channel that failed leaves its message owed: retried within RETRY_SECONDS."""
        claimed = [p for p in plans if p.claim is not None and p.owed]
        if not claimed:
            return
        ok: dict[tuple[int, str], bool] = {}  # (plan index, channel) -> sent
        for channel in self.channels:
            batch = [(i, n) for i, p in enumerate(claimed) for n in p.owed if channel.name in n.channels]
            if not batch:
                continue
            errors = channel.send([n for _, n in batch])
            for (i, notice), error in zip(batch, errors):
                ok[(i, channel.name)] = error is None
                if error is None:
                    report.sent.append((channel.name, notice.status, notice.incident.id))
                    continue
                report.counts[Metric.PUBLISH_FAILURES] += 1
                self.log.error("sending failed; the message stays owed and is sent again",
                               extra={"incident_id": notice.incident.id, "status": notice.status, "channel": channel.name,
                                      "error": type(error).__name__})
        acks = []
        for i, plan in enumerate(claimed):
            marks: dict[str, Mark] = {}
            failed = False
            for notice in plan.owed:
                sent = [c for c in notice.channels if ok.get((i, c))]
                for channel in sent:
                    marks[channel] = notice.mark(now)
                failed = failed or len(sent) < len(notice.channels)
                everywhere = not failed and len(sent) == len(notice.channels)
                self.log.info(Log.INCIDENT, extra={Log.FIELD_INCIDENT: notice.incident.to_dict(notice.status),
                                                   Log.FIELD_STATUS: notice.status, Log.FIELD_PUBLISHED: everywhere,
                                                   "channels": {c: bool(ok.get((i, c))) for c in notice.channels},
                                                   "reason": notice.reason})
                if everywhere:
                    report.notified.append((notice.status, notice.incident.id))
                    report.counts[Metric.NOTIFICATIONS] += 1
                    report.counts[{Status.OPENED: Metric.INCIDENTS_OPENED, Status.UPDATED: Metric.INCIDENTS_UPDATED,
                                   Status.RESOLVED: Metric.INCIDENTS_RESOLVED}[notice.status]] += 1
            after = plan.decision.after
            if failed:
                due = now + RETRY_SECONDS
            elif after.status == OPEN:
                due = lifecycle.quiet_at(after, self.state.settings)
            else:
                due = None
            acks.append(self.state.writes.acknowledge(after.id, plan.claim.token, marks, due))
        self._confirm(acks)

    def _confirm(self, acks: list[dict]) -> None:
        """Write the confirmations (Table.write_all: one alone is an UpdateItem, several go in
        transactions of 100). One that fails (its claim lapsed and was taken over, the table did
        not answer) leaves its message owed: sent again when its claim lapses."""
        for chunk, error in self.state.table.write_all(acks) if acks else ():
            if error is None:
                continue
            if isinstance(error, Conflict) and len(chunk) > 1:  # one claim lapsed and was taken over: the others alone
                for op, code in zip(chunk, error.codes):
                    if code in ("None", ""):
                        try:
                            self.state.table.write_one(op)
                        except (Conflict, StateUnavailable):
                            pass
            self.log.warning("could not confirm sent messages; they are sent again when their claim lapses",
                             extra={"error": str(error)[:300]})

    def _stateless(self, failures: list[Failure], now: float, report: Report) -> None:
        """Without the table (absent or failing): one "opened" per root cause of the batch, whose
        incident says what it could not do. The incident id is the same as with the table, so an
        on-call tool still folds repeats into one alert. A message that cannot be sent hands its
        records back to SQS (nothing else keeps it)."""
        groups: dict[str, list[Failure]] = {}
        for failure in failures:
            groups.setdefault(failure.root.key, []).append(failure)
        settings = Settings(0, 0)
        for members in groups.values():
            decision = lifecycle.decide(None, members, now, dataclasses.replace(settings, quiet=10 ** 9, clock=lifecycle.EVENT))
            incident = dataclasses.replace(decision.after, attribution=Attribution(
                None, "not searched: the incident state table is unavailable, so this alert may repeat"))
            incident = dataclasses.replace(incident, remediation=remediation_for(incident.root, incident.finding, incident.attribution))
            notice = Notice(Status.OPENED, incident, incident.finding, "", self.channel_names)
            sent_everywhere = True
            for channel in self.channels:
                (error,) = channel.send([notice]) or [RuntimeError("no answer")]
                if error is None:
                    report.sent.append((channel.name, notice.status, incident.id))
                    continue
                sent_everywhere = False
                report.counts[Metric.PUBLISH_FAILURES] += 1
                self.log.error("sending failed; its records will be retried",
                               extra={"incident_id": incident.id, "status": notice.status, "channel": channel.name,
                                      "error": type(error).__name__})
            self.log.info(Log.INCIDENT, extra={Log.FIELD_INCIDENT: incident.to_dict(notice.status), Log.FIELD_STATUS: notice.status,
                                               Log.FIELD_PUBLISHED: sent_everywhere})
            if sent_everywhere:
                report.notified.append((notice.status, incident.id))
                report.counts[Metric.NOTIFICATIONS] += 1
                report.counts[Metric.INCIDENTS_OPENED] += 1
            else:
                for failure in members:
                    report.failed_keys.extend(failure.keys)
                    report.retried.update(failure.event_ids)

    # ---- the scheduled run --------------------------------------------------------------------
    def scheduled(self, remaining: Optional[Callable[[], float]] = None) -> Report:
        """The due items of the state table, a page at a time while time is left (``remaining``:
        seconds left in this invocation): first the incidents (quiet ones resolved, owed messages
        sent again), sent and confirmed; then the records whose wait for their partner is over,
        counted alone. Emits the open-incident gauge."""
        report = Report()
        now = self.clock()
        if self.state is None:
            self._emit(report)
            return report
        from . import joins, sweep  # the scheduled run only: not imported by an event's cold start

        state = self.state
        left = remaining or (lambda: float(state.table.call_timeout * 5))
        try:
            found = sweep.due(state.table, now)
            done = resolved = 0
            timeouts = state.table.timeouts
            for incidents, join_items in sweep.pages(state.table, found.keys):
                if left() < max(8.0, 2 * state.table.call_timeout):
                    report.counts[Metric.SWEEP_DEFERRED] += len(found.keys) - done
                    self.log.warning("the scheduled run stopped early: the rest is due at the next run",
                                     extra={"left": len(found.keys) - done})
                    break
                done += len(incidents) + len(join_items)
                resolved += self._sweep_incidents(incidents, now, report)
                if join_items:
                    released = joins.unpark(join_items, now, state.join_wait, state.writes)
                    self._settle(released.failures, [], [], now, report, extra=released)
            self.metrics.gauge(Metric.OPEN_INCIDENTS, max(0, found.open_incidents - resolved))
            report.counts[Metric.STATE_TIMEOUTS] += state.table.timeouts - timeouts
        except StateUnavailable as exc:
            report.counts[Metric.STATE_UNAVAILABLE] = 1
            self.log.warning("incident state unavailable: the rest waits for the next scheduled run", extra={"error": str(exc)})
        self._emit(report)
        return report

    def _sweep_incidents(self, incidents: list[Stored], now: float, report: Report) -> int:
        """Resolve the quiet ones, claim what each owes, put the others back in the index for
        when they are next due; send; confirm (which takes them out of the index). How many resolved."""
        state = self.state
        settings = state.settings
        token = new_token()
        plans: list[_Plan] = []
        for stored in incidents:
            incident = stored.incident
            if lifecycle.quiet(incident, now, settings):
                plans.append(self._plan_for(lifecycle.resolve(incident, now, settings), stored, now, token))
                continue
            owed = lifecycle.notices(incident, self.channel_names, now, settings)
            if owed and stored.claim_free(now):
                claim = Claim(token, now + CLAIM_SECONDS)
                plans.append(_Plan(Decision("claim", incident, incident), stored, claim, owed,
                                   state.writes.claim(stored, claim, now)))
            elif not stored.claim_free(now):
                plans.append(_Plan(Decision("wait", incident, incident), stored, None, [],
                                   state.writes.rearm(stored, stored.claim_until)))
            else:
                due = lifecycle.quiet_at(incident, settings) if incident.status == OPEN else None
                plans.append(_Plan(Decision("rearm", incident, incident), stored, None, [], state.writes.rearm(stored, due)))
        written: list[_Plan] = []
        by_op = {id(p.op): p for p in plans}
        for chunk, error in state.table.write_all([p.op for p in plans]):
            if error is None:
                written += [by_op[id(op)] for op in chunk]
                continue
            if isinstance(error, Conflict):  # the ones that did not conflict, alone; the others are due next run
                report.counts[Metric.STATE_RETRIES] += 1
                retry = [op for op, code in zip(chunk, error.codes) if code in ("None", "")]
                if retry:
                    try:
                        state.table.write(retry)
                        written += [by_op[id(op)] for op in retry]
                    except (Conflict, StateUnavailable):
                        pass
            else:
                raise error
        resolved = [p for p in written if p.decision.action == "resolve"]
        for plan in resolved:
            self.metrics.seconds(Metric.TIME_TO_RESOLVE, plan.decision.after.resolved_at - plan.decision.after.opened_at)
        self._send(written, now, report)
        return len(resolved)

    # ---- metrics ------------------------------------------------------------------------------
    def _emit(self, report: Report) -> None:
        total = 0
        for name, n in list(report.counts.items()):
            if isinstance(name, tuple):
                _, service, cause = name
                self.metrics.findings(service, cause, n)
                total += n
                del report.counts[name]
        report.counts[Metric.FINDINGS_TOTAL] = total
        for name, n in report.counts.items():
            if n:
                self.metrics.count(name, n)
