"""Incidents over CloudTrail history (``auditor classify --incidents``): the records of a
history in, its incidents out, grouped and attributed exactly as the deployed function does
(the same causes, roots, pairing and change attribution), by event time instead of arrival.

History holds both the failures and the changes that started them, so a team can see what
broke, since when, who was affected and what changed, before or after deploying the stack.
Everything stays in memory: the failures of the input and its changes (a week of an
organization's failures is thousands to millions of small objects, not the records).
"""

from __future__ import annotations

from typing import Iterable, Optional

from .changes import Change
from .classify import classify
from .incidents import Book, Failure, Incident
from .pairing import half_of, pair
from .records import FailedCall
from .roots import affected, root_of

__all__ = ["Triage"]


class Triage:
    """Feed outcomes (FailedCall, Change; anything else is ignored), then ``incidents()``."""

    def __init__(self, quiet_seconds: int):
        self.book = Book(quiet_seconds)
        self._halves = []
        self._seen: set[str] = set()  # event ids: a record in two files of the input is one failure
        self.failures = 0
        self.changes = 0

    def add(self, outcome) -> None:
        kind = type(outcome)
        if kind is Change:
            self.book.add_change(outcome)
            self.changes += 1
        elif kind is FailedCall:
            self.add_failure(outcome, classify(outcome))

    def add_failure(self, call: FailedCall, finding) -> None:
        if call.event_id:
            if call.event_id in self._seen:
                return
            self._seen.add(call.event_id)
        self.failures += 1
        failure = Failure(finding, root_of(finding.cause, call), [call.origin], [call.event_id],
                          call.principal.identity_arn or call.principal.arn, affected(call))
        half = half_of(call, failure)
        if half is None:
            self.book.add_failure(failure)
        else:
            self._halves.append(half)

    def incidents(self, now: Optional[float] = None) -> list[Incident]:
        """Every incident of the input, oldest first; ``now`` (epoch s) decides which are still
        open (default: the last failure of the input)."""
        joined, left = pair(self._halves)
        for failure in joined + [h.failure for h in left]:  # a record with no partner counts alone
            self.book.add_failure(failure)
        self._halves = []
        return self.book.incidents(now)

    def extend(self, outcomes: Iterable) -> "Triage":
        for outcome in outcomes:
            self.add(outcome)
        return self
