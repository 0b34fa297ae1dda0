"""The logic layer between Lambda and AWS: events in, one notification per fingerprint per
window out. Knows nothing of Lambda; the handler wires it, the tests drive it directly.

    parse -> (enrich) -> classify -> collapse by fingerprint -> dedup -> publish -> log + count

Failure semantics:
* bad input is logged and counted, never raised (retrying cannot fix it);
* the dedup table failing means notify anyway (fail open), counted once per batch; after the
  first failure the batch does not ask the table again;
* publishing failing is raised to the caller (the key is returned as failed), so AWS retries
  and, at the end, the failure destination or dead-letter queue keeps the event.

Each failure is logged (``finding``, with its ``outcome``) and counted in ``Findings`` once its
outcome is settled: notified or counted as a repeat. A failed publish is logged with outcome
``retried`` and counted when its retry settles; a redelivered event is not counted again.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Protocol, Sequence

from .aws import fan_out
from .classify import classify, classify_unknown
from .dedup import Claim, Dedup, DedupUnavailable
from .finding import Finding
from .publish import Publisher, Repeats
from .records import FailedCall, Malformed, parse_record


class Metrics(Protocol):
    def count(self, name: str, value: int = 1) -> None: ...

    def findings(self, service: str, cause: str, value: int) -> None: ...


@dataclass
class Report:
    """What one batch did (also what the tests and the demo print)."""

    findings: list[Finding] = field(default_factory=list)
    notified: list[str] = field(default_factory=list)  # fingerprints published
    failed_keys: list[str] = field(default_factory=list)  # inputs to retry
    counts: Counter = field(default_factory=Counter)
    dedup_failed: bool = False  # the table failed once: the rest of the batch does without it


@dataclass
class _Group:
    items: list[tuple[str, Finding]] = field(default_factory=list)
    #: Inputs that carried an event already in ``items`` (EventBridge and SQS deliver at least
    #: once): no finding of their own, but retried with it when its publish fails.
    copies: list[str] = field(default_factory=list)
    outcome: str = ""  # notified | suppressed | retried ("" : every event was a redelivery)


class Pipeline:
    def __init__(self, *, publisher: Publisher, metrics: Metrics, logger: Any, dedup: Optional[Dedup] = None,
                 enricher: Any = None, clock: Callable[[], float] = time.time):
        self.publisher, self.metrics, self.log = publisher, metrics, logger
        self.dedup, self.enricher, self.clock = dedup, enricher, clock

    def handle(self, events: Sequence[tuple[str, Any]]) -> Report:
        """Process ``(key, event)`` pairs (EventBridge events or bare records). Never raises for bad input."""
        report = Report()
        now = self.clock()
        groups: dict[str, _Group] = {}
        per_cause: Counter = Counter()
        calls: list[tuple[str, FailedCall]] = []
        first_key: dict[str, str] = {}  # CloudTrail eventID -> the input that brought it first
        copies: list[tuple[str, str]] = []  # (key, eventID) of inputs repeating an event of this batch
        for key, event in events:
            try:
                outcome = parse_record(event, key)
            except Exception as exc:  # noqa: BLE001 - a parser bug must not fail the batch's other records
                outcome = Malformed(key, f"the parser failed on this record ({type(exc).__name__})")
                self.log.exception("parser error: record counted as malformed", extra={"origin": ascii(key)[:200]})
            if type(outcome) is Malformed:
                report.counts["MalformedEvents"] += 1
                self.log.warning("malformed event dropped", extra={"origin": ascii(outcome.origin)[1:-1][:200],
                                                                   "reason": outcome.reason})
            elif type(outcome) is FailedCall:
                event_id = outcome.event_id
                if event_id and event_id in first_key:
                    copies.append((key, event_id))
                    continue
                if event_id:
                    first_key[event_id] = key
                calls.append((key, outcome))
            else:
                report.counts["IgnoredEvents"] += 1
        if copies:  # the same CloudTrail event twice in one batch is one failure
            report.counts["RedeliveredEvents"] += len(copies)
            self.log.info("event delivered twice in one batch: counted once",
                          extra={"event_ids": [e for _, e in copies][:10]})
        for (key, call), facts in zip(calls, self._facts(calls, report)):
            finding = self._classify(call, facts, report)
            report.findings.append(finding)
            groups.setdefault(finding.fingerprint, _Group()).items.append((key, finding))
        if copies:
            group_of = {f.event_id: g for g in groups.values() for _, f in g.items}
            for key, event_id in copies:
                group_of[event_id].copies.append(key)
        if groups:
            self._notify_all(groups, now, report)
        for group in groups.values():
            for _, finding in group.items:
                self.log.info("finding", extra={"finding": finding.to_dict(), "outcome": group.outcome,
                                                "correlation_id": finding.event_id})
                if group.outcome != "retried":
                    per_cause[(finding.service, finding.cause)] += 1
        report.counts["FindingsTotal"] = sum(per_cause.values())
        for (service, cause), n in per_cause.items():
            self.metrics.findings(service, cause, n)
        for name, n in report.counts.items():
            if n:
                self.metrics.count(name, n)
        return report

    def _classify(self, call: FailedCall, facts, report: Report) -> Finding:
        """The finding; a classifier bug on one record still gives a finding (the catch-all cause,
        whose match cannot fail), logged with its traceback and counted, and never fails the batch."""
        try:
            return classify(call, facts)
        except Exception as exc:  # noqa: BLE001
            report.counts["ClassifierErrors"] += 1
            self.log.exception("classifier error: reported as an unknown cause", extra={"event_id": call.event_id})
            return classify_unknown(call, f"the classifier failed on this record ({type(exc).__name__})")

    def _facts(self, calls: list[tuple[str, FailedCall]], report: Report) -> list:
        """Facts for each call; a batch's lookups run in parallel (the enricher caches and is thread-safe)."""
        if self.enricher is None or not calls:
            return [None] * len(calls)
        before = self.enricher.failures
        facts = fan_out(self.enricher.facts_for, [call for _, call in calls])
        report.counts["EnrichmentFailures"] += self.enricher.failures - before
        return facts

    def _notify_all(self, groups: dict[str, _Group], now: float, report: Report) -> None:
        """Dedup and publish every group of the batch, with as few AWS round trips as possible:
        one BatchGetItem for redeliveries (every event of the batch) and the fingerprints' state, one
        TransactWriteItems for the claims, PublishBatch, one BatchWriteItem per 25 settled events."""
        dedup = self.dedup
        states: dict = {}
        if dedup is not None:
            try:
                # One event alone claims with a single atomic UpdateItem: no need to read its fingerprint first.
                seen, states, unread = dedup.read([f.event_id for g in groups.values() for _, f in g.items],
                                                  list(groups) if len(groups) > 1 else [])
                if unread:  # degraded, not down: the claims still protect against storms
                    self._dedup_down(report, DedupUnavailable(f"{unread} event key(s) unread: treated as new"), stop=False)
            except DedupUnavailable as exc:
                seen = set()
                self._dedup_down(report, exc)
            for fingerprint in list(groups) if seen else ():
                group = groups[fingerprint]
                redelivered = [f.event_id for _, f in group.items if f.event_id in seen]
                if redelivered:  # already settled: neither notified nor counted again
                    report.counts["RedeliveredEvents"] += len(redelivered)
                    self.log.info("redelivered event: already notified or counted", extra={"event_ids": redelivered[:10]})
                    group.items = [(k, f) for k, f in group.items if f.event_id not in seen]
                if not group.items:
                    del groups[fingerprint]
        claims = self._claims(groups, now, report, states)
        due = []
        settled: list[str] = []  # event ids whose outcome is final: remembered against redelivery
        for fingerprint, group in groups.items():
            claim = claims.get(fingerprint)
            if claim is not None and not claim.notify:
                group.outcome = "suppressed"
                report.counts["SuppressedDuplicates"] += len(group.items)
                settled.extend(f.event_id for _, f in group.items)
                continue
            repeats = Repeats(claim.suppressed_before, claim.previous_window_start) if claim else Repeats()
            due.append((fingerprint, group, claim, repeats))
        if due:
            self._publish(due, report, settled)
        if dedup is not None and settled and not report.dedup_failed:
            try:
                dedup.mark_events(settled, now)
            except DedupUnavailable as exc:
                self._dedup_down(report, exc)

    def _publish(self, due: list, report: Report, settled: list[str]) -> None:
        publish_many = getattr(self.publisher, "publish_many", None)
        if publish_many is not None:
            errors = publish_many([(group.items[0][1], repeats) for _, group, _, repeats in due])
        else:
            errors = []
            for _, group, _, repeats in due:
                try:
                    self.publisher.publish(group.items[0][1], repeats)
                    errors.append(None)
                except Exception as exc:  # noqa: BLE001
                    errors.append(exc)
        for (fingerprint, group, claim, _), error in zip(due, errors):
            if error is not None:
                group.outcome = "retried"
                report.counts["PublishFailures"] += 1
                report.failed_keys.extend(k for k, _ in group.items)
                report.failed_keys.extend(group.copies)
                self.log.error("publishing failed; the event will be retried",
                               extra={"fingerprint": fingerprint, "error": type(error).__name__})
                if claim is not None and not report.dedup_failed:
                    self.dedup.release(fingerprint, claim)
                continue
            group.outcome = "notified"
            report.notified.append(fingerprint)
            report.counts["Notifications"] += 1
            report.counts["SuppressedDuplicates"] += len(group.items) - 1
            settled.extend(f.event_id for _, f in group.items)

    def _claims(self, groups: dict[str, _Group], now: float, report: Report, states: dict) -> dict[str, Optional[Claim]]:
        """Claim each fingerprint's window: the batch in one transaction conditional on the state read,
        the rest (state unknown or changed meanwhile) one atomic claim each, in parallel. None = fail open."""
        if self.dedup is None or not groups or report.dedup_failed:
            return {}  # no table, or it already failed in this batch: notify, without waiting on it again
        members = {fp: (len(g.items), [f.event_id for _, f in g.items]) for fp, g in groups.items()}
        out: dict[str, Optional[Claim]] = {}
        left = list(groups)
        if states:
            try:
                done, left = self.dedup.claim_many(members, states, now)
                out.update(done)
            except DedupUnavailable as exc:
                self._dedup_down(report, exc)
                return dict.fromkeys(groups)
            if left:
                report.counts["DedupRetries"] += len(left)

        def claim(fingerprint):
            try:
                return fingerprint, self.dedup.claim(fingerprint, now, *members[fingerprint]), None
            except DedupUnavailable as exc:
                return fingerprint, None, exc

        results = fan_out(claim, left)
        for fingerprint, result, error in results:
            if error is not None:
                self._dedup_down(report, error)
            out[fingerprint] = result
        return out

    def _dedup_down(self, report: Report, exc: Exception, stop: bool = True) -> None:
        """Counted once per batch (one outage, one count), logged each time; ``stop``: the rest of
        the batch does not ask the table again (notifies without claims)."""
        report.counts["DedupUnavailable"] = 1
        report.dedup_failed = report.dedup_failed or stop
        self.log.warning("dedup table unavailable: notifying anyway", extra={"error": str(exc)})
