"""Incidents over CloudTrail history (``auditor classify --incidents``): the records of a
history in, its incidents out, grouped and attributed exactly as the deployed function does
(the same causes, roots, pairing and change attribution), by event time instead of arrival.

History holds both the failures and the changes that started them, so a team can see what
broke, since when, who was affected and what changed, before or after deploying the stack.
Everything stays in memory: the failures of the input and its changes (a week of an
organization's failures is thousands to millions of small objects, not the records).
"""

from __future__ import annotations

from typing import Iterable, Optional, Union

from .changes import Change
from .classify import classify, root_of
from .finding import Finding
from .incidents import Book, Failure, Incident
from .pairing import Half, half_of, pair
from .records import FailedCall
from .roots import affected

__all__ = ["Triage", "Unit", "unit_of"]

#: What one record contributes: a failure, half of one (its partner may be in another file), or a change.
Unit = Union[Failure, Half, Change]


def unit_of(call: FailedCall, finding: Finding) -> Union[Failure, Half]:
    """A classified failed call as the incidents count it (built where the record was read: a
    CLI worker process hands back this, not the record)."""
    failure = Failure(finding, root_of(finding.cause, call), [call.origin], [call.event_id],
                      call.principal.identity_arn or call.principal.arn, affected(call))
    return half_of(call, failure) or failure


class Triage:
    """Feed outcomes (FailedCall, Change; anything else is ignored) or units, then ``incidents()``."""

    def __init__(self, quiet_seconds: int):
        self.book = Book(quiet_seconds)
        self._halves: list[Half] = []
        self._seen: set[str] = set()  # event ids: a record in two files of the input is one failure
        self.failures = 0
        self.changes = 0

    def add(self, outcome) -> None:
        kind = type(outcome)
        if kind is Change:
            self.take(outcome)
        elif kind is FailedCall:
            self.take(unit_of(outcome, classify(outcome).settle()))  # a cause's error raised here, by its record

    def take(self, unit: Unit) -> None:
        kind = type(unit)
        if kind is Change:
            self.book.add_change(unit)
            self.changes += 1
            return
        failure = unit.failure if kind is Half else unit
        event_id = failure.event_id
        if event_id:
            if event_id in self._seen:
                return
            self._seen.add(event_id)
        self.failures += 1
        if kind is Half:
            self._halves.append(unit)
        else:
            self.book.add_failure(unit)

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
