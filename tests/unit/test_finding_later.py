"""A finding from classify() fills in its explanation on first read: every way of reading it gives
what an eagerly built finding holds, and a cause's error in its text still surfaces where it did."""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import pickle
from pathlib import Path

import pytest

from auditor.causes import BY_ID
from auditor.classify import _finding, classify
from auditor.finding import LATER, Finding
from auditor.records import parse_record

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def _call(cause: str = "access-denied.identity-policy"):
    path = sorted((FIXTURES / cause).glob("*.json"))[0]
    return parse_record(json.loads(path.read_text()), path.name)


def _eager(call):
    """The finding as classify built it before: the winner's match and remediation at once."""
    later = classify(call)
    cause = BY_ID[later.cause]
    found = cause.match(call, None)
    return _finding(call, cause, found, later.evidence)


def test_a_later_finding_is_the_eager_one_however_it_is_read():
    call = _call()
    assert classify(call) == _eager(call)
    assert classify(call).to_dict() == _eager(call).to_dict()
    assert classify(call).to_json() == _eager(call).to_json()
    assert repr(classify(call)) == repr(_eager(call))
    for name in LATER:
        assert getattr(classify(call), name) == getattr(_eager(call), name)


def test_a_later_finding_pickles_copies_and_replaces_filled_in():
    call = _call()
    for made in (pickle.loads(pickle.dumps(classify(call))), copy.copy(classify(call)), copy.deepcopy(classify(call)),
                 dataclasses.replace(classify(call), cause="x")):
        assert type(made) is Finding
        assert made.to_dict() == dict(_eager(call).to_dict(), cause=made.cause)


def test_settle_fills_in_once_and_unknown_attributes_still_fail():
    finding = classify(_call())
    assert finding.settle() is finding and finding.settle() is finding
    assert finding.remediation
    with pytest.raises(AttributeError):
        finding.no_such_field  # noqa: B018
    with pytest.raises(AttributeError):
        finding._filler  # noqa: B018 - gone once filled in


@contextlib.contextmanager
def broken_remediation(cause_id: str = "throttling"):
    """The cause's remediation text raises while inside (a bug in a cause's text); yields the original."""
    cause = BY_ID[cause_id]
    original = cause.remediation

    def broken(call, found):
        raise RuntimeError("bug in a remediation")

    object.__setattr__(cause, "remediation", broken)  # Cause is frozen
    try:
        yield original
    finally:
        object.__setattr__(cause, "remediation", original)


def test_a_cause_error_in_its_text_surfaces_when_read_and_again_after():
    call = _call("throttling")
    with broken_remediation() as original:
        finding = classify(call)  # the cause is decided without its text
        assert finding.cause == "throttling"
        for _ in range(2):  # nothing half filled in: the next read fails the same way
            with pytest.raises(RuntimeError):
                finding.settle()
            with pytest.raises(RuntimeError):
                finding.evidence  # noqa: B018
    assert finding.settle().remediation == original(call, BY_ID["throttling"].match(call, None))


def test_the_pipeline_still_reports_a_cause_error_in_its_text_as_the_unknown_cause():
    import logging

    from auditor.pipeline import Pipeline, Report

    call = _call("throttling")
    with broken_remediation():
        report = Report()
        pipeline = Pipeline(publisher=None, metrics=None, logger=logging.getLogger("test"))
        finding = pipeline._classify(call, None, report)
    assert finding.cause == "unknown" and "the classifier failed on this record (RuntimeError)" in finding.evidence
    assert sum(report.counts.values()) == 1


def test_the_cli_with_incidents_counts_a_cause_error_in_its_text_against_that_record_only(tmp_path):
    """--incidents keeps each failure beyond its record (pickled back from a worker): the
    finding is settled inside the record's guard, so a cause's bug costs that record (named
    malformed) and the input's other records are grouped as usual."""
    from auditor.cli.sources import LocalFile
    from auditor.cli.stages import Incidents, process

    good = json.loads(sorted((FIXTURES / "access-denied.identity-policy").glob("*.json"))[0].read_text())
    bad = json.loads(sorted((FIXTURES / "throttling").glob("*.json"))[0].read_text())
    log = tmp_path / "trail.json"
    log.write_text(json.dumps({"Records": [good, bad, dict(good, eventID="second-good")]}))
    with broken_remediation():
        part = process(LocalFile(str(log)), Incidents(), 1 << 20)
        units = pickle.loads(pickle.dumps(part.units))  # as a worker hands them back
    assert not part.tally.unreadable
    assert part.tally.malformed_count == 1 and "RuntimeError" in part.tally.malformed[0]
    assert len(units) == 2 and part.tally.findings == {"access-denied.identity-policy": 2}
