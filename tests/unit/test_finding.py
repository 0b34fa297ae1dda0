"""A finding from classify() is complete and plain (pickles, copies, compares as any dataclass);
a cause's error in its text is raised by classify itself, so the callers' per-record guard
costs that record only; ``Finding.from_dict`` and ``Principal.from_dict`` invert ``to_dict``."""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import pickle
from pathlib import Path

import pytest

from auditor.causes import BY_ID
from auditor.classify import classify
from auditor.facts import Facts
from auditor.finding import Finding
from auditor.records import FailedCall, Principal, parse_record

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def _call(cause: str = "access-denied.identity-policy"):
    path = sorted((FIXTURES / cause).glob("*.json"))[0]
    return parse_record(json.loads(path.read_text()), path.name)


def _every_fixture_finding():
    for path in sorted(FIXTURES.glob("*/*.json")):
        call = parse_record(json.loads(path.read_text()), path.name)
        if type(call) is FailedCall:
            yield classify(call)
            side = path.with_suffix(".facts")
            if side.exists():
                yield classify(call, Facts.from_dict(json.loads(side.read_text())))


def test_a_finding_is_complete_and_plain():
    finding = classify(_call())
    assert type(finding) is Finding
    assert finding.remediation and finding.evidence and finding.fingerprint and finding.confidence == "high"
    assert not hasattr(finding, "settle")  # complete when built: nothing is left for later
    with pytest.raises(AttributeError):
        finding.no_such_field  # noqa: B018
    for made in (pickle.loads(pickle.dumps(finding)), copy.copy(finding), copy.deepcopy(finding)):
        assert type(made) is Finding and made == finding and made.to_json() == finding.to_json()
    assert dataclasses.replace(finding, cause="x").to_dict() == dict(finding.to_dict(), cause="x")


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


def test_a_cause_error_in_its_text_is_raised_by_classify_every_time():
    call = _call("throttling")
    with broken_remediation() as original:
        for _ in range(2):  # nothing memoised half done: the next call fails the same way
            with pytest.raises(RuntimeError):
                classify(call)
    assert classify(call).remediation == original(call, BY_ID["throttling"].match(call, None))


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


@pytest.mark.parametrize("incidents", [False, True], ids=["classify", "incidents"])
def test_the_cli_counts_a_cause_error_in_its_text_against_that_record_only(tmp_path, incidents):
    """A cause's bug costs its record (named malformed); the input's other records are classified
    (and, with --incidents, handed back as units, pickled as a worker hands them back) as usual."""
    from auditor.cli.sources import LocalFile
    from auditor.cli.stages import Classify, Incidents, process

    good = json.loads(sorted((FIXTURES / "access-denied.identity-policy").glob("*.json"))[0].read_text())
    bad = json.loads(sorted((FIXTURES / "throttling").glob("*.json"))[0].read_text())
    log = tmp_path / "trail.json"
    log.write_text(json.dumps({"Records": [good, bad, dict(good, eventID="second-good")]}))
    with broken_remediation():
        part = process(LocalFile(str(log)), Incidents() if incidents else Classify("jsonl"), 1 << 20)
        part = pickle.loads(pickle.dumps(part))
    assert not part.tally.unreadable
    assert part.tally.malformed_count == 1 and "RuntimeError" in part.tally.malformed[0]
    assert part.tally.findings == {"access-denied.identity-policy": 2}
    if incidents:
        assert len(part.units) == 2
    else:
        assert part.text.count(b"\n") == 2 and b'"event_id":"second-good"' in part.text


# ------------------------------------------------------------------------------------------------
# from_dict: the inverse of to_dict (the incident state stores findings as their dicts)
# ------------------------------------------------------------------------------------------------
def test_finding_from_dict_inverts_to_dict_for_every_fixture():
    findings = list(_every_fixture_finding())
    assert len(findings) > 100
    for finding in findings:
        data = finding.to_dict()
        again = Finding.from_dict(json.loads(json.dumps(data)))  # as stored: through JSON
        assert again.to_dict() == data and again.to_json() == finding.to_json()
        # equal as objects, but for the two principal fields to_dict leaves out
        assert again == dataclasses.replace(finding, principal=dataclasses.replace(
            finding.principal, access_key_id="", session_issuer=""))
        assert type(again.evidence) is tuple and type(again.joined) is tuple


def test_finding_from_dict_keeps_joined_records_and_policy():
    finding = dataclasses.replace(classify(_call()), joined=({"event_id": "e", "service": "kms", "action": "Decrypt",
                                                              "error_code": "AccessDenied", "resource": "k"},))
    assert finding.policy
    assert Finding.from_dict(finding.to_dict()) == dataclasses.replace(
        finding, principal=dataclasses.replace(finding.principal, access_key_id="", session_issuer=""))


def test_finding_from_dict_defaults_the_optional_fields():
    data = classify(_call()).to_dict()
    for name in ("policy", "topic", "joined", "schema_version"):
        del data[name]
    del data["principal"]["account"], data["principal"]["identity_arn"], data["principal"]["invoked_by"]
    finding = Finding.from_dict(data)
    assert (finding.policy, finding.topic, finding.joined) == (None, "", ())
    assert (finding.principal.account, finding.principal.identity_arn, finding.principal.invoked_by) == ("", "", "")


@pytest.mark.parametrize("change, error", [
    (lambda d: d.pop("cause"), KeyError),
    (lambda d: d.pop("principal"), KeyError),
    (lambda d: d["principal"].pop("temporary_credentials"), KeyError),
    (lambda d: d.update(cause=None), TypeError),
    (lambda d: d.update(evidence="not a list"), TypeError),
    (lambda d: d.update(evidence=["ok", 3]), TypeError),
    (lambda d: d.update(policy=["not", "an object"]), TypeError),
    (lambda d: d.update(joined=[1]), TypeError),
    (lambda d: d.update(topic=7), TypeError),
    (lambda d: d.update(principal="arn:aws:iam::1:user/x"), TypeError),
    (lambda d: d["principal"].update(temporary_credentials="yes"), TypeError),
    (lambda d: d["principal"].update(arn=None), TypeError),
    (lambda d: d.update(schema_version="2"), ValueError),
])
def test_finding_from_dict_refuses_bad_input_with_the_errors_callers_catch(change, error):
    data = classify(_call()).to_dict()
    change(data)
    with pytest.raises(error):
        Finding.from_dict(data)


@pytest.mark.parametrize("data", [None, [], "x", 3])
def test_from_dict_of_something_else_than_an_object_is_a_type_error(data):
    with pytest.raises(TypeError):
        Finding.from_dict(data)
    with pytest.raises(TypeError):
        Principal.from_dict(data)


def test_principal_from_dict_inverts_to_dict():
    principals = {f.principal.to_dict()["arn"]: f.principal for f in _every_fixture_finding()}
    assert len(principals) > 10
    for principal in principals.values():
        data = principal.to_dict()
        again = Principal.from_dict(json.loads(json.dumps(data)))
        assert again.to_dict() == data
        assert again == dataclasses.replace(principal, access_key_id="", session_issuer="")
    whole = Principal("arn:aws:sts::1:assumed-role/R/s", "AssumedRole", True, "1", "arn:aws:iam::1:role/R", "ASIAX",
                      "", "arn:aws:iam::1:role/R")
    data = dict(whole.to_dict(), access_key_id=whole.access_key_id, session_issuer=whole.session_issuer)
    assert Principal.from_dict(data) == whole  # the two fields to_dict leaves out are read when present
