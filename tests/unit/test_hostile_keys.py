"""Any JSON value at any key: of the EventBridge envelope, of the CloudTrail record at every depth,
and of the SQS message that carries it. One such record is one counted, logged outcome and
nothing else is affected: the parser and the classifier never raise, and a poison record in an
SQS batch neither fails the batch nor loses its neighbours' findings.

Bases are the realistic records of tests/fixtures; hypothesis picks one or more key paths
(``detail-type``, ``detail.userIdentity.sessionContext.sessionIssuer.arn``, ``resources.0.ARN``,
``body``, ...) and puts an arbitrary JSON value there: an object, an array, a number, a boolean,
null, a huge string, a lone surrogate.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import auditor.handler as handler
from auditor.classify import classify
from auditor.pipeline import Pipeline
from auditor.records import Change, FailedCall, Malformed, Skipped, parse_record
from demo.envelope import to_eventbridge

from .conftest import fixture_records
from .test_hostile_handler import Context, Counter, Published

BASES = [record for _, _, record, _ in fixture_records()]
LONE = st.lists(st.sampled_from(["\ud800", "\udfff", "\udcff", "a", "é", "\n", "\x00", "\u202e"]), max_size=8).map("".join)
SCALAR = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=40), LONE,
                   st.builds(lambda n, c: c * n, st.integers(5_000, 300_000), st.sampled_from(["x", "é", "\n", "{", "\udcff"])))
ANY_JSON = st.recursive(SCALAR, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                        st.dictionaries(st.text(max_size=10), inner, max_size=4)),
                        max_leaves=10)


def key_paths(doc, prefix=()):
    """Every key path in a JSON document (dict keys and list indexes), at every depth."""
    if isinstance(doc, dict):
        for key, value in doc.items():
            yield prefix + (key,)
            yield from key_paths(value, prefix + (key,))
    elif isinstance(doc, list):
        for index, value in enumerate(doc):
            yield prefix + (index,)
            yield from key_paths(value, prefix + (index,))


def put(doc, path, value):
    target = doc
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value


@st.composite
def poisoned(draw, sqs: bool = False):
    """A realistic record, bare or in its EventBridge envelope (or that envelope in an SQS
    message), with arbitrary JSON at one to three of its key paths."""
    record = copy.deepcopy(draw(st.sampled_from(BASES)))
    doc = record if draw(st.booleans()) else to_eventbridge(record)
    if sqs:
        doc = {"messageId": "m-poison", "receiptHandle": "r", "body": doc, "attributes": {}, "messageAttributes": {},
               "md5OfBody": "", "eventSource": "aws:sqs", "eventSourceARN": "arn:aws:sqs:us-east-1:111122223333:q",
               "awsRegion": "us-east-1"}
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(list(key_paths(doc))))  # read anew: an earlier replacement may have removed paths
        put(doc, path, draw(ANY_JSON))
    if sqs and isinstance(doc.get("body"), (dict, list)):
        doc["body"] = json.dumps(doc["body"])  # SQS carries the event as a JSON string
    return doc


def _check(record):
    outcome = parse_record(record, "fuzz#0")
    assert isinstance(outcome, (FailedCall, Change, Malformed, Skipped))
    if isinstance(outcome, Malformed):
        assert outcome.origin == "fuzz#0" and outcome.reason
        outcome.reason.encode("utf-8")  # printable in a log line or on stderr
    if isinstance(outcome, FailedCall):
        finding = classify(outcome)
        finding.to_json().encode("utf-8")  # every channel can encode it: no lone surrogate survives
        assert len(finding.to_json()) < 60_000


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(poisoned())
def test_any_json_at_any_key_is_one_outcome_and_never_an_exception(record):
    _check(record)


GOOD = [to_eventbridge(dict(BASES[0], eventID=f"good-{i}", errorCode="AccessDenied",
                            errorMessage="User: arn:aws:iam::111122223333:user/a is not authorized to perform: "
                                         "secretsmanager:GetSecretValue on resource: s because no identity-based "
                                         "policy allows the secretsmanager:GetSecretValue action",
                            eventSource="secretsmanager.amazonaws.com", eventName="GetSecretValue",
                            requestParameters={"secretId": f"neighbour-{i}"})) for i in range(2)]


def _sqs(event, message_id):
    return {"messageId": message_id, "receiptHandle": "r", "body": json.dumps(event), "eventSource": "aws:sqs"}


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                                                  HealthCheck.function_scoped_fixture])
@given(poisoned(sqs=True))
def test_a_poison_message_between_two_good_ones_loses_nothing(monkeypatch, poison):
    published, counter, log = Published(), Counter(), io.StringIO()
    monkeypatch.setattr(handler, "_pipeline", Pipeline(publisher=published, metrics=counter, logger=handler.logger))
    handler.logger.registered_handler.setStream(log)
    batch = {"Records": [_sqs(GOOD[0], "m-good-0"), poison, _sqs(GOOD[1], "m-good-1")]}
    with contextlib.redirect_stdout(io.StringIO()):
        result = handler.handler(batch, Context())
    assert result == {"batchItemFailures": []}
    resources = published.resources
    assert {"neighbour-0", "neighbour-1"} <= resources  # the neighbours' findings were published
    c = counter.counts
    assert c.get("MalformedEvents", 0) + c.get("IgnoredEvents", 0) + c.get("Findings", 0) + c.get("RedeliveredEvents", 0) == 3
    if c.get("MalformedEvents"):
        assert "malformed event dropped" in log.getvalue()


def test_a_change_between_two_failures_without_a_table_is_counted_ignored(monkeypatch):
    """Found by the property test above: the 'poison' was a successful DeleteSecret (errorCode
    null), a change. With no incident state to keep it in, it is counted as ignored, not dropped
    silently, and the neighbours are notified."""
    published, counter, log = Published(), Counter(), io.StringIO()
    monkeypatch.setattr(handler, "_pipeline", Pipeline(publisher=published, metrics=counter, logger=handler.logger))
    handler.logger.registered_handler.setStream(log)
    change = to_eventbridge(dict(BASES[0], eventID="change-0", errorCode=None, errorMessage=None,
                                 eventSource="secretsmanager.amazonaws.com", eventName="DeleteSecret",
                                 requestParameters={"secretId": "neighbour-0"}, responseElements=None))
    batch = {"Records": [_sqs(GOOD[0], "m-good-0"), _sqs(change, "m-change"), _sqs(GOOD[1], "m-good-1")]}
    with contextlib.redirect_stdout(io.StringIO()):
        assert handler.handler(batch, Context()) == {"batchItemFailures": []}
    assert published.resources >= {"neighbour-0", "neighbour-1"}
    assert counter.counts.get("IgnoredEvents") == 1 and counter.counts.get("Findings") == 2
