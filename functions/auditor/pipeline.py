"""The logic layer between Lambda and AWS: events in, one notification per fingerprint per
window out. Knows nothing of Lambda; the handler wires it, the tests drive it directly.

    parse -> (enrich) -> classify -> count + log -> collapse by fingerprint -> dedup -> publish

Failure semantics:
* bad input is logged and counted, never raised (retrying cannot fix it);
* the dedup table failing means notify anyway (fail open), counted;
* publishing failing is raised to the caller (the key is returned as failed), so AWS retries
  and, at the end, the failure destination or dead-letter queue keeps the event.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Protocol, Sequence

from .classify import classify
from .dedup import Claim, Dedup, DedupUnavailable
from .finding import Finding
from .publish import Publisher, Repeats
from .trail import FailedCall, Malformed, parse_record


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


@dataclass
class _Group:
    items: list[tuple[str, Finding]] = field(default_factory=list)


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
        for key, event in events:
            outcome = parse_record(event, key)
            if type(outcome) is Malformed:
                report.counts["MalformedEvents"] += 1
                self.log.warning("malformed event dropped", extra={"origin": outcome.origin, "reason": outcome.reason})
                continue
            if type(outcome) is not FailedCall:
                report.counts["IgnoredEvents"] += 1
                continue
            finding = self._classify(outcome, report)
            report.findings.append(finding)
            per_cause[(finding.service, finding.cause)] += 1
            self.log.info("finding", extra={"finding": finding.to_dict(), "correlation_id": finding.event_id})
            groups.setdefault(finding.fingerprint, _Group()).items.append((key, finding))
        report.counts["FindingsTotal"] = sum(per_cause.values())
        for fingerprint, group in groups.items():
            try:
                self._notify(fingerprint, group, now, report)
            except Exception as exc:  # noqa: BLE001 - counted, logged, and handed back for retry
                report.counts["PublishFailures"] += 1
                report.failed_keys.extend(k for k, _ in group.items)
                self.log.error("publishing failed; the event will be retried",
                               extra={"fingerprint": fingerprint, "error": type(exc).__name__})
        for (service, cause), n in per_cause.items():
            self.metrics.findings(service, cause, n)
        for name, n in report.counts.items():
            if n:
                self.metrics.count(name, n)
        return report

    def _classify(self, call: FailedCall, report: Report) -> Finding:
        facts = None
        if self.enricher is not None:
            before = self.enricher.failures
            facts = self.enricher.facts_for(call)
            report.counts["EnrichmentFailures"] += self.enricher.failures - before
        return classify(call, facts)

    def _notify(self, fingerprint: str, group: _Group, now: float, report: Report) -> None:
        key, finding = group.items[0]
        count = len(group.items)
        claim: Optional[Claim] = None
        if self.dedup is not None:
            try:
                if self.dedup.seen_event(finding.event_id):
                    report.counts["RedeliveredEvents"] += 1
                    self.log.info("redelivered event: already notified", extra={"event_id": finding.event_id})
                    if count == 1:
                        return
                    group.items.pop(0)
                    key, finding = group.items[0]
                    count -= 1
                claim = self.dedup.claim(fingerprint, now, count)
            except DedupUnavailable as exc:
                report.counts["DedupUnavailable"] += 1
                self.log.warning("dedup table unavailable: notifying anyway", extra={"error": str(exc)})
                claim = None
        if claim is not None and not claim.notify:
            report.counts["SuppressedDuplicates"] += count
            return
        repeats = Repeats(claim.suppressed_before, claim.previous_window_start) if claim else Repeats()
        try:
            self.publisher.publish(finding, repeats)
        except Exception:
            if claim is not None:
                self.dedup.release(fingerprint, claim)
            raise
        report.notified.append(fingerprint)
        report.counts["Notifications"] += 1
        report.counts["SuppressedDuplicates"] += count - 1
        if self.dedup is not None:
            try:
                self.dedup.mark_event(finding.event_id, now)
            except DedupUnavailable:
                report.counts["DedupUnavailable"] += 1
