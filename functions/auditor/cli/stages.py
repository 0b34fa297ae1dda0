"""One input's records -> what the output shows: the seam in the CLI's one-way flow.

    source (a named input) -> bounded read -> documents -> (origin, record)
        -> parse_record -> (origin, record, outcome) -> stage.take -> Part -> output

:func:`process` runs that for one input, in a worker process or in this one, and never
raises: an input that cannot be read (missing, larger than the limit, truncated) or whose
processing fails in any way (an exception, even a ``MemoryError``) is named in the Part's
tally, after whatever it did yield; a record whose parsing or classification raises is one
malformed record with its origin, and the input goes on.

A stage sees every record's outcome *and* the record itself: a successful change (a key policy
put, a key disabled, an SCP attached) is the outcome ``Change``, any other successful call
``Skipped("successful call")`` with its record right there. :class:`Classify` renders the
findings and counts the rest as the summary always has; :class:`Incidents` (``--incidents``)
hands back each classified failure and each change as a unit (``auditor.cli.triage``) for the main
process to group into incidents across every input, the flow unchanged.
"""

from __future__ import annotations

import codecs
import gc
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from ..classify import classify
from .documents import Unreadable, iter_documents
from ..records import OTHER_SERVICE, SERVICES, SUCCESS, Change, FailedCall, Malformed, Outcome, Skipped, parse_record
from .triage import unit_of
from .output import ENCODE_ERRORS, RENDER, Part, render_jsonl_utf8
from .sources import Events, Failed, describe, read

__all__ = ["Classify", "Incidents", "LIMIT_HINT", "process"]

#: Said after "larger than the N MiB limit".
LIMIT_HINT = "raise it with --max-file-mb"


@dataclass(frozen=True)
class Classify:
    """Failed calls -> findings rendered for stdout; the rest counted (the classify command)."""

    fmt: str
    encoding: str = "utf-8"  # stdout's: the findings are encoded where they are rendered
    render: Callable = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        render = RENDER[self.fmt]
        if self.fmt == "jsonl" and _is_utf8(self.encoding):
            render = render_jsonl_utf8  # encoded as it is rendered (by msgspec when installed): the same bytes
        object.__setattr__(self, "render", render)

    def part(self) -> Part:
        return Part()

    def done(self, part: Part) -> Part:
        return part.seal(self.encoding, ENCODE_ERRORS[self.fmt])

    def take(self, part: Part, origin: str, record: Any, outcome: Outcome) -> None:
        if type(outcome) is FailedCall:
            finding = classify(outcome)
            part.tally.findings[finding.cause] += 1
            part.lines.append(self.render(finding, outcome))
        else:
            _count(part, outcome)


@dataclass(frozen=True)
class Incidents:
    """Failed calls -> classified failures, successful changes -> changes, handed back as units
    (``auditor.cli.triage.unit_of``): grouping needs every input, so it happens in the main process."""

    def part(self) -> Part:
        return Part()

    def done(self, part: Part) -> Part:
        return part

    def take(self, part: Part, origin: str, record: Any, outcome: Outcome) -> None:
        kind = type(outcome)
        if kind is FailedCall:
            finding = classify(outcome)  # in this record's guard (process): a cause's error costs this record
            part.tally.findings[finding.cause] += 1
            part.units.append(unit_of(outcome, finding))
            return
        if kind is Change:
            part.units.append(outcome)
        _count(part, outcome)


def _is_utf8(encoding: str) -> bool:
    try:
        return codecs.lookup(encoding).name == "utf-8"
    except LookupError:
        return False


def _count(part: Part, outcome: Outcome) -> None:
    """What is not a finding, as the summary counts it."""
    kind = type(outcome)
    if kind is Skipped:
        part.tally.skipped[outcome.reason] += 1
    elif kind is Change:  # a successful change (an incident's evidence): counted as the call it is
        ours = outcome.source.partition(".")[0] in SERVICES
        part.tally.skipped[(SUCCESS if ours else OTHER_SERVICE).reason] += 1
    else:
        part.tally.add_malformed(outcome.origin, outcome.reason)


def process(item, stage, limit: int) -> Part:
    """One input (a path, bytes already read, a LookupEvents page, or a read error) through the stage."""
    part = stage.part()
    tally = part.tally
    name = item.name
    paused = False
    try:
        if type(item) is Failed:
            tally.unreadable.append((name, _reason(item)))
            return part
        if type(item) is Events:
            records = _events(item, limit)
        else:
            data = read(item, limit)
            if type(data) is Failed:
                tally.unreadable.append((name, _reason(data)))
                return part
            paused = _pause_gc()
            try:
                records = iter_documents(data, name, limit)  # decompressed and parsed now
            finally:
                _hold_gc(paused)
            del data  # the compressed bytes go as soon as they are decompressed
        tally.files = 1
        take = stage.take
        for origin, rec in records:
            if type(rec) is Unreadable:  # the input (or, in a LookupEvents page, one event) read in part
                tally.unreadable.append((rec.origin, _reason(rec)))
                continue
            tally.records += 1
            try:
                take(part, origin, rec, rec if type(rec) is Malformed else parse_record(rec, origin))
            except MemoryError:
                raise
            except Exception as exc:  # noqa: BLE001 - one record that breaks the parser or classifier
                tally.add_malformed(origin, f"could not be processed ({describe(exc)})")
    except MemoryError:
        tally.unreadable.append((name, "out of memory while reading it"))
    except Exception as exc:  # noqa: BLE001 - whatever fails, this input is named and the run goes on
        tally.unreadable.append((name, f"could not be processed ({describe(exc)})"))
    finally:
        if paused:
            gc.unfreeze()
    return stage.done(part)


# A parsed input is a tree of dicts and lists (a 2,000-record log file: some 100,000 of them) with no
# cycle, freed by reference counting when the input is done. The cyclic garbage collector would
# scan it over and over meanwhile, as the parse and then every record's finding allocate: it is
# not collected while the input is parsed, and frozen (never scanned) while its records are read;
# gc.unfreeze() hands back to the collector what is still alive after, the input's tree gone.
def _pause_gc() -> bool:
    """Stop the cyclic collector while an input is parsed; whether it was running."""
    if not gc.isenabled():
        return False
    gc.disable()
    return True


def _hold_gc(paused: bool) -> None:
    """After the parse: freeze what is alive (the input's tree) and run the collector again."""
    if paused:
        gc.freeze()
        gc.enable()


def _events(page: Events, limit: int) -> Iterator[tuple[str, Any]]:
    """A LookupEvents page: each CloudTrailEvent (one record's JSON) read like a file of its own."""
    for event_id, raw in page.events:
        yield from iter_documents(raw.encode("utf-8", "surrogatepass"), f"{page.prefix}:{event_id}", limit)


def _reason(problem) -> str:
    return f"{problem.reason}; {LIMIT_HINT}" if problem.too_large else problem.reason
