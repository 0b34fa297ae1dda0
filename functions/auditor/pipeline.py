"""The logic layer between Lambda and AWS: events in, one alert per root cause out. Knows
nothing of Lambda; the handler wires it, the tests drive it directly.

    parse -> (enrich) -> classify -> root -> pair -> incident state -> publish -> log + count

* parse: a failed call, a change (a successful call that can start an incident), or a counted
  outcome (malformed, another service, a successful call of no interest);
* classify: the cause and its evidence (pure); root: the thing that must change (auditor.roots);
* pair: a Secrets Manager call and the KMS call it made, a rotation failure and the rotation
  function's calls, are one failure (auditor.pairing);
* incident state (auditor.state): count each failure into its incident; open, update at most
  once a window, and (on the scheduled run) resolve, each claimed by a conditional write;
* publish: one SNS message per state change (attribute ``status``), the finding JSON with its
  incident.

Failure semantics:
* bad input is logged and counted, never raised (retrying cannot fix it); a parser or
  classifier bug on one record is counted and never fails the batch;
* the state table failing means notify anyway (fail open, ``StateUnavailable``, once per
  batch): one message per root cause of the batch, marked so;
* publishing failing: the claim is released and the records are returned as failed, so SQS
  redelivers them (and at the end the dead-letter queue keeps them).
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Protocol, Sequence

from .aws import fan_out
from .changes import Change
from .classify import classify, classify_unknown, root_of
from .contract import Log, Metric, Status
from .finding import Finding
from .incidents import Attribution, Failure, Incident, remediation_for
from .pairing import half_of, pair
from .records import FailedCall, Malformed, parse_record
from .roots import affected
from .state import Notice, State, StateUnavailable


class Metrics(Protocol):
    def count(self, name: str, value: int = 1) -> None: ...

    def findings(self, service: str, cause: str, value: int) -> None: ...

    def seconds(self, name: str, value: float) -> None: ...

    def gauge(self, name: str, value: int) -> None: ...


@dataclass
class Report:
    """What one batch did (also what the tests and the demo print)."""

    findings: list[Finding] = field(default_factory=list)
    notified: list[tuple[str, str]] = field(default_factory=list)  # (status, incident id) published
    failed_keys: list[str] = field(default_factory=list)  # inputs to retry
    counts: Counter = field(default_factory=Counter)


class Pipeline:
    def __init__(self, *, publisher: Any, metrics: Metrics, logger: Any, state: Optional[State] = None,
                 enricher: Any = None, clock: Callable[[], float] = time.time):
        self.publisher, self.metrics, self.log = publisher, metrics, logger
        self.state, self.enricher, self.clock = state, enricher, clock

    @classmethod
    def from_config(cls, config, *, metrics: Metrics, logger: Any, own_account: Optional[str] = None) -> "Pipeline":
        """The pipeline the function runs: SNS publisher, incident state, enricher, from ``config``."""
        from .enrich import Enricher
        from .publish import Publisher

        state = None
        if config.table_name:
            state = State(config.table_name, quiet_seconds=config.quiet_seconds, update_seconds=config.update_seconds,
                          change_retention_days=config.change_retention_days, region=config.region)
        enricher = Enricher(consistency_window_seconds=config.consistency_window_seconds,
                            simulate_policies=config.simulate_policies, own_account=own_account)
        return cls(publisher=Publisher(config.topic_arn, region=config.region), metrics=metrics, logger=logger,
                   state=state, enricher=enricher)

    # ---- a batch of events --------------------------------------------------------------------
    def handle(self, events: Sequence[tuple[str, Any]]) -> Report:
        """Process ``(key, event)`` pairs (EventBridge events or bare records). Never raises for bad input."""
        report = Report()
        now = self.clock()
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
        wholes, halves = [], []
        for position, ((key, call), facts) in enumerate(zip(calls, self._facts(calls, report))):
            finding = self._classify(call, facts, report)
            report.findings.append(finding)
            failure = Failure(finding, root_of(finding.cause, call, facts), [key, *copies.get(position, [])],
                              [call.event_id], call.principal.identity_arn or call.principal.arn, affected(call))
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
            return classify(call, facts).settle()  # its text too: a cause's error in it is caught here
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

    # ---- incidents ----------------------------------------------------------------------------
    def _settle(self, failures: list[Failure], halves: list, changes: list[Change], now: float, report: Report) -> None:
        """Count the failures into their incidents and publish the state changes; fail open."""
        applied = None
        if self.state is not None:
            try:
                applied = self.state.apply(failures, halves, changes, now)
            except StateUnavailable as exc:
                report.counts[Metric.STATE_UNAVAILABLE] = 1
                self.log.warning("incident state unavailable: notifying every root cause of the batch",
                                 extra={"error": str(exc), "changes_not_recorded": len(changes)})
        if applied is None:
            # Without the table a change has nowhere to be kept: counted as ignored, not lost silently.
            report.counts[Metric.IGNORED_EVENTS] += len(changes)
            notices, outcomes = self._stateless(failures + [h.failure for h in halves], now)
        else:
            notices, outcomes = applied.notices, applied.outcomes
            report.counts.update({k: v for k, v in applied.counts.items() if isinstance(v, int)})
        retried = self._publish(notices, report)
        every = failures + [h.failure for h in halves]
        for failure in every:
            outcome, incident = outcomes.get(failure.event_id, (Log.GROUPED, failure.root.incident_id))
            if failure.event_id in retried:
                outcome = Log.RETRIED
            for extra in failure.finding.joined:
                outcomes.setdefault(extra.get("event_id", ""), (Log.JOINED, incident))
            self.log.info(Log.FINDING, extra={Log.FIELD_FINDING: failure.finding.to_dict(), Log.FIELD_OUTCOME: outcome,
                                              Log.FIELD_INCIDENT_ID: incident, "correlation_id": failure.finding.event_id})
            if outcome not in Log.NOT_COUNTED:
                report.counts[("findings", failure.finding.service, failure.finding.cause)] += 1

    def _stateless(self, failures: list[Failure], now: float) -> tuple[list[Notice], dict]:
        """Without the table (absent or failing): one "opened" per root cause of the batch, whose
        incident says what it could not do. The incident id is the same as with the table, so an
        on-call tool still folds repeats into one alert."""
        groups: dict[str, list[Failure]] = {}
        for failure in failures:
            groups.setdefault(failure.root.key, []).append(failure)
        notices = []
        for members in groups.values():
            first = members[0]
            attribution = Attribution(None, "not searched: the incident state table is unavailable, so this alert may repeat")
            principals = list(dict.fromkeys(f.principal for f in members if f.principal))
            resources = list(dict.fromkeys(f.resource for f in members if f.resource))
            incident = Incident(
                id=first.root.incident_id, root=first.root, status="open", cause=first.finding.cause,
                title=first.finding.title, severity=first.finding.severity, first_failure=first.finding.event_time,
                last_failure=members[-1].finding.event_time, failures=len(members), principals=principals[:20],
                resources=resources[:20], principal_count=len(principals), resource_count=len(resources),
                remediation=remediation_for(first.root, first.finding, attribution), evidence=list(first.finding.evidence),
                attribution=attribution, opened_at=now, last_arrival=now)
            notices.append(Notice(Status.OPENED, incident, first.finding, "", members))
        return notices, {}

    def _publish(self, notices: list[Notice], report: Report) -> set[str]:
        """Publish every notice (PublishBatch); a failed one releases its claim and returns its
        records as failed. Returns the event ids that will be retried."""
        if not notices:
            return set()
        errors = self.publisher.publish_notices(notices)
        retried: set[str] = set()
        for notice, error in zip(notices, errors):
            self.log.info(Log.INCIDENT, extra={Log.FIELD_INCIDENT: notice.incident.to_dict(notice.status),
                                               "status": notice.status, "published": error is None})
            if error is None:
                report.notified.append((notice.status, notice.incident.id))
                report.counts[Metric.NOTIFICATIONS] += 1
                report.counts[{Status.OPENED: Metric.INCIDENTS_OPENED, Status.UPDATED: Metric.INCIDENTS_UPDATED,
                               Status.RESOLVED: Metric.INCIDENTS_RESOLVED}[notice.status]] += 1
                continue
            report.counts[Metric.PUBLISH_FAILURES] += 1
            self.log.error("publishing failed; its records will be retried",
                           extra={"incident_id": notice.incident.id, "status": notice.status, "error": type(error).__name__})
            for failure in notice.failures:
                report.failed_keys.extend(failure.keys)
                retried.update(failure.event_ids)
            if notice.release is not None:
                try:
                    notice.release()
                except Exception as exc:  # noqa: BLE001 - documented: the alert waits for the next window
                    self.log.warning("could not release the claim of a failed notification",
                                     extra={"incident_id": notice.incident.id, "error": type(exc).__name__})
        return retried

    # ---- the scheduled run --------------------------------------------------------------------
    def scheduled(self) -> Report:
        """Resolve incidents quiet for the quiet period, and count records that waited long
        enough for their partner; emit the open-incident gauge."""
        report = Report()
        now = self.clock()
        if self.state is None:
            self._emit(report)
            return report
        try:
            waiting, applied = self.state.sweep(now)
            if waiting:
                self._settle(waiting, [], [], now, report)
        except StateUnavailable as exc:
            report.counts[Metric.STATE_UNAVAILABLE] = 1
            self.log.warning("incident state unavailable: nothing resolved this run", extra={"error": str(exc)})
            self._emit(report)
            return report
        report.counts.update({k: v for k, v in applied.counts.items() if isinstance(v, int)})
        self._publish(applied.notices, report)
        for seconds in applied.resolved_seconds:
            self.metrics.seconds(Metric.TIME_TO_RESOLVE, seconds)
        if applied.open_incidents is not None:
            self.metrics.gauge(Metric.OPEN_INCIDENTS, applied.open_incidents)
        self._emit(report)
        return report

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
