"""Incidents over CloudTrail history (``auditor classify --incidents``): the records of a
history in, its incidents out, decided by the function's own lifecycle (``auditor.lifecycle``)
in event time instead of arrival time: the same causes, roots, pairing, attribution, occurrences.

History holds both the failures and the changes that started (and ended) them, so a team can
see what broke, since when, who was affected, what changed and what ended it, before or after
deploying the stack. Everything stays in memory: the input's failures and changes (a week of an
organization's failures is thousands to millions of small objects, not the records).
"""

from __future__ import annotations

import dataclasses
import time
from typing import Iterable, Optional, Union

from .. import lifecycle
from ..changes import Change, links_from_records
from ..facts import LinkFacts
from ..classify import classify, root_of
from ..finding import Finding
from ..incidents import Failure, Incident, change_entries
from ..lifecycle import EVENT, Settings
from ..pairing import Half, half_of, pair
from ..records import FailedCall
from ..roots import affected, with_links

__all__ = ["Book", "Triage", "Unit", "unit_of"]

#: What one record contributes: a failure, half of one (its partner may be in another file), or a change.
Unit = Union[Failure, Half, Change]


def unit_of(call: FailedCall, finding: Finding) -> Union[Failure, Half]:
    """A classified failed call as the incidents count it (built where the record was read: a
    CLI worker process hands back this, not the record). Its time is decided later, by the book."""
    failure = Failure(finding, root_of(finding.cause, call), (call.origin,), (call.event_id,),
                      call.principal.identity_arn or call.principal.arn, affected(call))
    return half_of(call, failure) or failure


class Book:
    """Failures and changes of a history, in any order; ``incidents()`` decides them root by
    root in event time with the lifecycle: an incident resolves once its root has had no
    failure for the quiet period, and the next failure opens a new occurrence."""

    #: History cannot hold the future: an event time more than a day ahead of this machine's clock
    #: is not trusted (a forged or broken record; a day covers any machine's clock error).
    MAX_AHEAD = 86400

    def __init__(self, settings: Settings):
        self.settings = dataclasses.replace(settings, clock=EVENT, max_ahead=self.MAX_AHEAD)
        self._failures: list[Failure] = []
        self._changes: list[tuple[str, dict]] = []

    def add_failure(self, failure: Failure) -> None:
        self._failures.append(failure)

    def add_change(self, change: Change) -> None:
        self._changes.extend(change_entries(change))

    def incidents(self, now: Optional[float] = None, wall_clock: Optional[float] = None) -> list[Incident]:
        """Every incident, oldest first. A failure whose event time cannot be read, or lies ahead of
        ``wall_clock`` (default: this machine's clock), counts at the end of the history (the last
        trusted event time), and its evidence says so. ``now`` (epoch s) decides which incidents
        are still open (default: the end of the history)."""
        settings = self.settings
        ceiling = time.time() if wall_clock is None else wall_clock
        timed, untrusted = [], []
        for failure in self._failures:
            when, note = lifecycle.effective_time(failure.finding.event_time, ceiling, settings)
            (untrusted if note else timed).append(dataclasses.replace(failure, when=when))
        end = max((f.when for f in timed), default=ceiling)
        for failure in untrusted:
            _, note = lifecycle.effective_time(failure.finding.event_time, end, settings)
            note = note.replace("the time it arrived", "the end of the history")
            finding = dataclasses.replace(failure.finding, evidence=tuple(failure.finding.evidence) + (note,))
            timed.append(dataclasses.replace(failure, finding=finding, when=end, time_note=note))
        by_root: dict[str, list[Failure]] = {}
        for failure in timed:
            failure = lifecycle.relink(self._linked(failure), self._changes, settings)
            by_root.setdefault(failure.root.key, []).append(failure)
        out: list[Incident] = []
        closing = end if now is None else now
        for failures in by_root.values():
            out.extend(self._root(failures, closing))
        return sorted(out, key=lambda i: (i.first_failure, i.id, i.occurrence))

    def _linked(self, failure: Failure) -> Failure:
        """A principal's failure, with what the input's attach, boundary and membership records say
        governs the principal at the time (the CLI looks nothing up, and says so)."""
        root = failure.root
        if root.kind != "principal-permissions" or root.links:
            return failure
        links = links_from_records(root.id, self._changes, failure.when) or LinkFacts(
            root.id, note="the CLI looks nothing up, and no attach or boundary record of the input names its policies")
        return dataclasses.replace(failure, root=with_links(root, links))

    def _root(self, failures: list[Failure], end: float) -> list[Incident]:
        """One root's occurrences: runs of failures no further apart than the quiet period."""
        settings = self.settings
        failures.sort(key=lambda f: (f.when, f.event_id))
        runs: list[list[Failure]] = []
        for failure in failures:
            if runs and failure.when - runs[-1][-1].when < settings.quiet:
                runs[-1].append(failure)
            else:
                runs.append([failure])
        out: list[Incident] = []
        current: Optional[Incident] = None
        for run in runs:
            if current is not None and lifecycle.quiet(current, run[0].when, settings):
                out[-1] = current = lifecycle.resolve(current, run[0].when, settings, self._changes).after
            current = lifecycle.decide(current, run, run[0].when, settings, self._changes).after
            out.append(current)
        if current is not None and lifecycle.quiet(current, end, settings):
            out[-1] = lifecycle.resolve(current, end, settings, self._changes).after
        return out


class Triage:
    """Feed outcomes (FailedCall, Change; anything else is ignored) or units, then ``incidents()``."""

    def __init__(self, quiet_seconds: int, update_seconds: int = 900):
        self.book = Book(Settings(quiet_seconds, update_seconds))
        self._halves: list[Half] = []
        self._seen: set[str] = set()  # event ids: a record in two files of the input is one failure
        self.failures = 0
        self.changes = 0

    def add(self, outcome) -> None:
        kind = type(outcome)
        if kind is Change:
            self.take(outcome)
        elif kind is FailedCall:
            self.take(unit_of(outcome, classify(outcome)))  # a cause's error raised here, by its record

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

    def incidents(self, now: Optional[float] = None, wall_clock: Optional[float] = None) -> list[Incident]:
        """Every incident of the input, oldest first; ``now`` (epoch s) decides which are still
        open (default: the last failure of the input)."""
        joined, left = pair(self._halves)
        for failure in joined + [h.failure for h in left]:  # a record with no partner counts alone
            self.book.add_failure(failure)
        self._halves = []
        return self.book.incidents(now, wall_clock)

    def extend(self, outcomes: Iterable) -> "Triage":
        for outcome in outcomes:
            self.add(outcome)
        return self
