"""Hostile input against the parser and the classifier: nothing crashes, everything is bounded.

Property-based (hypothesis): realistic records mutated field by field — missing, wrongly
typed, null, huge, unicode and control characters, deeply nested — plus arbitrary JSON,
wrong envelopes and other services' records. The handler's own hostile tests live with the
pipeline tests.
"""

from __future__ import annotations

import gzip
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from auditor.causes import BY_ID
from auditor.classify import classify
from auditor.cli.documents import iter_outcomes
from auditor.records import Change, FailedCall, Malformed, Skipped, parse_record
from demo.envelope import to_eventbridge

from .test_records import DENIED

FIELDS = sorted(set(DENIED) | {"additionalEventData", "resources", "vpcEndpointId", "detail", "Records"})
NASTY_TEXT = st.one_of(
    st.text(max_size=64),
    st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x2FFFF), max_size=300),
    st.sampled_from(["\x00", "\r\nBcc: victim@example.com", "<script>alert(1)</script>", "@here <!channel>",
                     "[click](https://evil.example)", "\u202e", "\ufeff", "\udcff", "%s%n"]),
    st.builds(lambda n, c: c * n, st.integers(10_000, 200_000), st.sampled_from(["x", "é", "\n", "{"])),
)
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), NASTY_TEXT)
JSONISH = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                        st.dictionaries(st.text(max_size=12), inner, max_size=4)),
                       max_leaves=12)


def deeply_nested(depth: int):
    value: object = "x"
    for _ in range(depth):
        value = {"a": value}
    return value


@st.composite
def mutated_records(draw):
    record = json.loads(json.dumps(DENIED))
    for _ in range(draw(st.integers(0, 6))):
        field = draw(st.sampled_from(FIELDS))
        action = draw(st.sampled_from(["drop", "null", "replace", "nest"]))
        if action == "drop":
            record.pop(field, None)
        elif action == "null":
            record[field] = None
        elif action == "replace":
            record[field] = draw(JSONISH)
        else:
            record[field] = deeply_nested(draw(st.integers(1, 200)))
    if draw(st.booleans()):
        record["eventSource"] = draw(st.sampled_from(["kms.amazonaws.com", "s3.amazonaws.com", "secretsmanager.amazonaws.com"]))
    if draw(st.booleans()):
        record["errorCode"] = draw(st.sampled_from(["AccessDenied", "ThrottlingException", "ResourceNotFoundException",
                                                    "InvalidRequestException", "ExpiredTokenException", "X" * 5000]))
    wrap = draw(st.sampled_from(["bare", "eventbridge", "bad-envelope", "arbitrary"]))
    if wrap == "eventbridge":
        return to_eventbridge(record)
    if wrap == "bad-envelope":
        return {"detail-type": draw(st.one_of(st.text(max_size=30), st.none())), "detail": draw(JSONISH)}
    if wrap == "arbitrary":
        return draw(JSONISH)
    return record


def _check_finding(call):
    finding = classify(call)
    assert finding.cause in BY_ID
    text = finding.to_json()
    assert "\n" not in text and json.loads(text)["cause"] == finding.cause
    assert len(finding.error_message) <= 1024
    assert len(text) < 40_000  # bounded whatever the input
    assert "CANARY" not in text
    text.encode("utf-8")  # every output channel must be able to encode it (no lone surrogates)


@settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(mutated_records())
def test_parser_and_classifier_never_crash_on_hostile_records(record):
    outcome = parse_record(record, "fuzz#0")
    assert isinstance(outcome, (FailedCall, Change, Malformed, Skipped))
    if isinstance(outcome, FailedCall):
        _check_finding(outcome)
    elif isinstance(outcome, Malformed):
        assert outcome.origin == "fuzz#0" and outcome.reason


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2000), st.booleans())
def test_arbitrary_bytes_as_a_file_never_crash(data, gzipped):
    for outcome in iter_outcomes(gzip.compress(data) if gzipped else data, "blob"):
        assert isinstance(outcome, (FailedCall, Change, Malformed, Skipped))


# The nastiest cases hypothesis and review found, kept as plain regression tests.
SEED_CORPUS = [
    (b'{"a":' * 100_000) + b'"x"' + (b"}" * 100_000),  # RecursionError inside json.loads
    b'{"Records": {"not": "a list"}}',
    b'{"Records": [null, 1, "x", [], {"eventSource": 5}]}',
    b"\x1f\x8b\x08\x00garbage",
    b"\xff\xfe\x00\x00",
    json.dumps({**DENIED, "errorMessage": "User: a is not authorized to perform: " + "x:y " * 100_000}).encode(),
    json.dumps({**DENIED, "errorMessage": "with an explicit deny in a "}).encode(),
    json.dumps({**DENIED, "errorMessage": "not authorized to perform"}).encode(),
    json.dumps({"detail-type": "AWS API Call via CloudTrail", "detail": {**DENIED, "errorCode": ""}}).encode(),
]


def test_seed_corpus_of_nasty_inputs():
    for data in SEED_CORPUS:
        for outcome in iter_outcomes(data, "seed"):
            assert isinstance(outcome, (FailedCall, Change, Malformed, Skipped))
            if isinstance(outcome, FailedCall):
                _check_finding(outcome)
