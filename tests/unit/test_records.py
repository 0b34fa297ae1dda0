"""The parser: every input shape CloudTrail and EventBridge produce, and bad input never crashes."""

from __future__ import annotations

import gzip
import json

import pytest

from auditor.cli.documents import DEFAULT_LIMIT, MiB, Unreadable, iter_documents, iter_outcomes, read_bounded
from auditor.denial import parse_denial
from auditor.records import OTHER_SERVICE, SUCCESS, FailedCall, Malformed, parse_record
from demo.envelope import to_eventbridge

DENIED = {
    "eventVersion": "1.09",
    "userIdentity": {
        "type": "AssumedRole",
        "principalId": "AROAEXAMPLEID:build-42",
        "arn": "arn:aws:sts::111122223333:assumed-role/ci-deployer/build-42",
        "accountId": "111122223333",
        "accessKeyId": "ASIAEXAMPLEKEY123456",
        "sessionContext": {
            "sessionIssuer": {"type": "Role", "arn": "arn:aws:iam::111122223333:role/ci/ci-deployer", "accountId": "111122223333"},
            "attributes": {"creationDate": "2026-11-24T08:00:00Z", "mfaAuthenticated": "false"},
        },
    },
    "eventTime": "2026-11-24T08:12:09Z",
    "eventSource": "secretsmanager.amazonaws.com",
    "eventName": "GetSecretValue",
    "awsRegion": "eu-west-1",
    "sourceIPAddress": "198.51.100.7",
    "userAgent": "aws-cli/2.17.0 Python/3.11",
    "errorCode": "AccessDeniedException",
    "errorMessage": "User: arn:aws:sts::111122223333:assumed-role/ci-deployer/build-42 is not authorized to perform: "
    "secretsmanager:GetSecretValue on resource: prod/api-key with an explicit deny in a service control policy: "
    "arn:aws:organizations::999988887777:policy/o-abcd1234/service_control_policy/p-deny1234",
    "requestParameters": {"secretId": "prod/api-key", "secretString": "CANARY-not-read"},
    "responseElements": None,
    "eventID": "0b1c2d3e-0000-4000-8000-000000000001",
    "readOnly": True,
    "eventType": "AwsApiCall",
    "recipientAccountId": "111122223333",
}


def test_bare_record_becomes_a_typed_failed_call():
    call = parse_record(DENIED)
    assert isinstance(call, FailedCall)
    assert (call.service, call.action, call.error_code) == ("secretsmanager", "GetSecretValue", "AccessDeniedException")
    assert (call.account, call.region, call.resource) == ("111122223333", "eu-west-1", "prod/api-key")
    assert call.principal.temporary and call.principal.identity_arn == "arn:aws:iam::111122223333:role/ci/ci-deployer"
    assert call.denial.policy_type == "service control" and call.denial.explicit
    assert call.denial.policy_arn.endswith("p-deny1234")


@pytest.mark.parametrize("arn, role", [
    ("arn:aws:sts::111122223333:assumed-role/app/session-1", "arn:aws:iam::111122223333:role/app"),
    ("arn:aws:sts::111122223333:assumed-role/app/session-2", "arn:aws:iam::111122223333:role/app"),
    ("arn:aws-cn:sts::111122223333:assumed-role/app/a/b/c", "arn:aws-cn:iam::111122223333:role/app"),
    ("arn:aws:sts::111122223333:assumed-role/app/", "arn:aws:iam::111122223333:role/app"),
    ("arn:aws:sts::111122223333:assumed-role/app", ""),
    ("arn:aws:sts::111122223333:assumed-role//s", ""),
    ("arn:aws:sts::111122223333:federated-user/app/s", ""),
    ("", ""),
])
def test_an_assumed_role_session_is_keyed_by_its_role_whatever_its_session_name(arn, role):
    call = parse_record({**DENIED, "userIdentity": {"type": "AssumedRole", "arn": arn}})
    assert call.principal.identity_arn == (role or arn)


def test_request_parameters_that_could_hold_secret_material_are_never_copied():
    call = parse_record(DENIED)
    assert "CANARY" not in repr(call)


def test_eventbridge_envelope_is_unwrapped_for_both_detail_types():
    assert isinstance(parse_record(to_eventbridge(DENIED)), FailedCall)
    rotation = {**DENIED, "eventType": "AwsServiceEvent", "eventName": "RotationFailed", "errorCode": None,
                "errorMessage": None, "requestParameters": None, "additionalEventData": {"SecretId": "arn:aws:secretsmanager:eu-west-1:111122223333:secret:db-AbCdEf"}}
    del rotation["errorCode"]
    envelope = to_eventbridge(rotation)
    assert envelope["detail-type"] == "AWS Service Event via CloudTrail"
    call = parse_record(envelope)
    assert isinstance(call, FailedCall) and call.error_code == "RotationFailed"
    assert call.resource.endswith("secret:db-AbCdEf")


def test_successful_calls_and_other_services_are_skipped_not_malformed():
    ok = {k: v for k, v in DENIED.items() if k not in ("errorCode", "errorMessage")}
    assert parse_record(ok) is SUCCESS
    assert parse_record({**DENIED, "eventSource": "s3.amazonaws.com"}) is OTHER_SERVICE


@pytest.mark.parametrize(
    "record, reason",
    [
        (42, "number"),
        (None, "null"),
        ([], "array"),
        ({"eventName": "GetSecretValue"}, "eventSource"),
        ({**DENIED, "eventName": 7}, "eventName"),
        ({**DENIED, "errorCode": {"nested": True}}, "errorCode"),
        ({"detail-type": "Scheduled Event", "detail": {}}, "detail-type"),
        ({"detail-type": "AWS API Call via CloudTrail", "detail": "x"}, "detail"),
    ],
)
def test_records_that_cannot_be_understood_are_malformed_with_a_reason(record, reason):
    outcome = parse_record(record, "trail.json#3")
    assert isinstance(outcome, Malformed)
    assert outcome.origin == "trail.json#3" and reason in outcome.reason


def test_wrongly_typed_optional_fields_do_not_crash():
    odd = {**DENIED, "userIdentity": "root", "requestParameters": [1, 2], "errorMessage": {"a": 1}, "awsRegion": None}
    call = parse_record(odd)
    assert isinstance(call, FailedCall)
    assert call.principal.arn == "" and call.error_message == "" and call.region == ""


def test_huge_strings_are_bounded():
    call = parse_record({**DENIED, "errorMessage": "x" * 1_000_000, "userAgent": "y" * 100_000})
    assert len(call.error_message) <= 1024 and len(call.user_agent) <= 512


#: Where each field of _CALL_FIELDS and _IDENTITY_FIELDS lands in the FailedCall.
_CALL_ATTRS = {"eventID": "event_id", "eventTime": "event_time", "recipientAccountId": "account", "awsRegion": "region",
               "eventType": "event_type", "sourceIPAddress": "source_ip", "userAgent": "user_agent",
               "vpcEndpointId": "vpc_endpoint_id", "errorMessage": "error_message"}
_IDENTITY_ATTRS = {"type": "type", "arn": "arn", "accessKeyId": "access_key_id", "accountId": "account",
                   "invokedBy": "invoked_by"}


@pytest.mark.parametrize("where", ["record", "userIdentity"])
def test_every_field_read_is_bounded_and_encodable_as_its_table_says(where):
    """The reads are written out one by one for speed: each must keep to its bound in records._CALL_FIELDS /
    _IDENTITY_FIELDS, turn a lone surrogate into '?', and read a value that is not a string as ''."""
    from auditor.records import _CALL_FIELDS, _IDENTITY_FIELDS

    table, attrs = (_CALL_FIELDS, _CALL_ATTRS) if where == "record" else (_IDENTITY_FIELDS, _IDENTITY_ATTRS)
    assert {name for name, _ in table} == set(attrs)  # every field of the table is checked here

    def read(name, value):
        if where == "record":
            return getattr(parse_record({**DENIED, name: value}), attrs[name])
        identity = {**DENIED["userIdentity"], name: value}
        return getattr(parse_record({**DENIED, "userIdentity": identity}).principal, attrs[name])

    for name, bound in table:
        assert read(name, "a" * bound) == read(name, "a" * (bound + 1)) == read(name, "a" * 10 * bound) == "a" * bound, name
        assert read(name, "é\ud800z") == "é?z", name
        # not a string: '' (but the account falls back to the caller's, and a type is then "Unknown")
        empty = {("record", "recipientAccountId"): "111122223333", ("userIdentity", "type"): "Unknown"}.get((where, name), "")
        assert read(name, 12) == read(name, None) == read(name, ["x"]) == read(name, {"a": 1}) == empty, name


def _outcomes(data: bytes, name="f"):
    return list(iter_outcomes(data, name))


def test_cloudtrail_log_file_plain_and_gzip():
    log = json.dumps({"Records": [DENIED, DENIED, 5]}).encode()
    for data in (log, gzip.compress(log)):
        outcomes = _outcomes(data, "111122223333_CloudTrail_eu-west-1.json.gz")
        assert [type(o).__name__ for o in outcomes] == ["FailedCall", "FailedCall", "Malformed"]
        assert outcomes[2].origin == "111122223333_CloudTrail_eu-west-1.json.gz#2"


def test_json_lines_of_records_and_envelopes_with_a_bad_line():
    lines = [json.dumps(DENIED), "", json.dumps(to_eventbridge(DENIED)), "{not json"]
    outcomes = _outcomes("\n".join(lines).encode(), "events.jsonl")
    assert [type(o).__name__ for o in outcomes] == ["FailedCall", "FailedCall", "Malformed"]
    assert outcomes[2].origin == "events.jsonl:4"


def test_truncated_gzip_keeps_its_complete_records_and_ends_with_one_unreadable():
    data = gzip.compress(json.dumps({"Records": [DENIED, DENIED]}).encode())[:-10]  # the trailer and a little more
    outcomes = _outcomes(data, "cut.json.gz")
    assert [type(o).__name__ for o in outcomes] == ["FailedCall", "FailedCall", "Unreadable"]
    assert outcomes[-1].origin == "cut.json.gz" and "gzip stream ends early" in outcomes[-1].reason
    assert "2 complete record(s)" in outcomes[-1].reason
    assert isinstance(outcomes[-1], Malformed)  # callers that only know Malformed still never see it as a record


def _documents(data: bytes, name="f.json", limit=DEFAULT_LIMIT):
    return list(iter_documents(data, name, limit))


def test_decompression_stops_at_the_limit():
    bomb = gzip.compress(bytes(8 * MiB))
    (only,) = _documents(bomb, "bomb.json.gz", limit=MiB)
    assert type(only[1]) is Unreadable and only[1].too_large and "once decompressed" in only[1].reason
    assert _documents(b"x" * (MiB + 1), "plain.json", limit=MiB)[0][1].too_large  # the compressed bytes too


def test_every_gzip_member_is_read_and_zero_padding_ignored():
    members = b"".join(gzip.compress(json.dumps({"Records": [DENIED]}).encode()) for _ in range(3))
    got = _documents(members + bytes(512), "cat.json.gz")
    assert [o for o, _ in got] == ["cat.json.gz#0", "cat.json.gz:2#0", "cat.json.gz:3#0"]


def test_bytes_after_the_gzip_stream_or_a_bad_checksum_are_named_after_the_records():
    one = gzip.compress(json.dumps({"Records": [DENIED]}).encode())
    got = _documents(one + b"garbage", "tail.json.gz")
    assert type(got[0][1]) is dict and type(got[-1][1]) is Unreadable and "after the gzip stream" in got[-1][1].reason
    bad_crc = one[:-8] + bytes(4) + one[-4:]
    got = _documents(bad_crc, "crc.json.gz")
    assert type(got[0][1]) is dict and "incorrect data check" in got[-1][1].reason


def test_a_document_that_breaks_off_keeps_every_complete_record():
    text = json.dumps({"Records": [dict(DENIED, eventID=str(i)) for i in range(5)]}, indent=2)
    got = _documents(text[: len(text) * 7 // 10].encode(), "cut.json")
    records = [r["eventID"] for _, r in got if type(r) is dict]
    assert records == [str(i) for i in range(len(records))] and 2 <= len(records) < 5
    assert got[-1][1].reason == f"the JSON breaks off after {len(records)} complete record(s)"


def test_a_damaged_document_names_where_and_json_lines_stay_per_line():
    text = json.dumps({"Records": [DENIED, DENIED]})
    at = text.index('"eventSource"', len(text) // 2)
    got = _documents((text[:at] + "@" + text[at + 1:]).encode(), "bad.json")
    assert len([r for _, r in got if type(r) is dict]) == 1
    assert got[-1][1].reason.startswith("the JSON is damaged at character") and got[-1][1].reason.endswith("after 1 complete record(s)")
    lines = json.dumps(DENIED) + "\n{broken\n" + json.dumps(DENIED)[:-5]
    assert [type(r).__name__ for _, r in _documents(lines.encode(), "x.jsonl")] == ["dict", "Malformed", "Malformed"]


def test_concatenated_pretty_printed_records_are_each_read_and_a_bad_first_line_stays_per_line():
    two = (json.dumps(DENIED, indent=2) + "\n" + json.dumps(DENIED, indent=2)).encode()
    assert [o for o, r in _documents(two, "two.json") if type(r) is dict] == ["two.json#0", "two.json:2#0"]
    lines = ("{broken\n" + json.dumps(DENIED)).encode()
    assert [type(r).__name__ for _, r in _documents(lines, "x.jsonl")] == ["Malformed", "dict"]


def test_an_athena_csv_field_larger_than_csv_s_default_limit_is_read():
    big = dict(DENIED, errorMessage="x" * 200_000)
    data = ('"record"\n"' + json.dumps(big).replace('"', '""') + '"\n').encode()
    ((origin, record),) = _documents(data, "results.csv")
    assert origin == "results.csv:2" and record["eventName"] == "GetSecretValue"


def test_read_bounded_never_reads_past_the_limit():
    import io

    class Counting(io.BytesIO):
        asked = 0

        def read(self, n=-1):
            assert n is not None and n >= 0  # always a bounded read
            Counting.asked += n
            return super().read(n)

    assert read_bounded(Counting(b"abc"), 3) == b"abc"
    assert read_bounded(Counting(bytes(5 * MiB)), 2 * MiB) is None and Counting.asked <= 4 * MiB + 2
    assert read_bounded(Counting(b"abcd"), 3, size=4) is None  # a known size over the limit: nothing read


@pytest.mark.parametrize(
    "message, policy_type, explicit",
    [
        ("User: arn:aws:iam::1:user/a is not authorized to perform: kms:Decrypt on resource: arn:aws:kms:us-east-1:1:key/k because no identity-based policy allows the kms:Decrypt action", "identity-based", False),
        ("User: u is not authorized to perform: secretsmanager:GetSecretValue on resource: s with an explicit deny in a resource-based policy", "resource-based", True),
        ("... because no resource-based policy allows the secretsmanager:GetSecretValue action", "resource-based", False),
        ("... with an explicit deny in a permissions boundary", "permissions boundary", True),
        ("... because no permissions boundary allows the kms:Decrypt action", "permissions boundary", False),
        ("... because no session policy allows the kms:Decrypt action", "session", False),
        ("... with an explicit deny in a session policy", "session", True),
        ("... because no VPC endpoint policy allows the secretsmanager:GetSecretValue action", "vpc endpoint", False),
        ("... with an explicit deny in a VPC endpoint policy", "vpc endpoint", True),
        ("... due to an explicit deny in a Service Control Policy", "service control", True),
        ("... because no service control policy allows the kms:Decrypt action", "service control", False),
        ("... with an explicit deny in a resource control policy", "resource control", True),
        ("User: arn:aws:iam::1:user/a is not authorized to perform: kms:Decrypt on resource: k", "", False),
        # IAM's guide: look for the Deny in the SCP, not in the VPC endpoint policy
        ("... with an explicit deny in a VPC endpoint policy transitively through a service control policy", "service control", True),
        # the older form names no policy type, but is explicit
        ("User: arn:aws:iam::1:user/a is not authorized to perform: secretsmanager:PutSecretValue on resource: s with an explicit deny", "", True),
        # KMS's hedge for a ciphertext's key it will not describe
        ("User: r is not authorized to perform: kms:Decrypt on the resource associated with this ciphertext because the resource "
         "does not exist in this Region, no resource-based policies allow access, or a resource-based policy explicitly denies access",
         "resource-based", False),
    ],
)
def test_access_denied_messages_name_the_policy_type(message, policy_type, explicit):
    denial = parse_denial(message)
    assert (denial.policy_type, denial.explicit) == (policy_type, explicit)
    assert denial.hedged == ("no resource-based policies allow" in message)  # KMS would not say which


def test_denial_names_the_action_and_resource():
    d = parse_denial(DENIED["errorMessage"])
    assert d.action == "secretsmanager:GetSecretValue" and d.resource == "prod/api-key"


# parse_denial reads IAM's "User: <caller ARN> is not authorized to perform: ..." from the space after
# the ARN (one memo entry per denial, not per session): the same Denial as reading the whole message.
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from auditor.denial import _parse_denial  # noqa: E402

_WORDS = st.sampled_from(["xplicit", "deny", "explicit deny", " in a", "an", "the", "service control", "policy", "VPC",
                          "endpoint", "because no", "ecause", "no", "identity-based", "resource-based", "session",
                          "permissions boundary", "transitively through", "arn:aws:iam::1:policy/p", "kms:Decrypt", "on",
                          "resource:", "resource", "*", "not authorized to perform", "no resource-based policies allow",
                          "due to a VPC endpoint policy", ":", ".", "\"", "a b"])


@settings(max_examples=500, deadline=None)
@given(st.text(st.characters(blacklist_characters=" "), max_size=30) | st.lists(_WORDS, max_size=4).map("".join),
       st.lists(_WORDS | st.text(max_size=8), max_size=12).map(" ".join))
def test_denial_of_iam_form_is_read_after_the_caller(caller, rest):
    for message in (f"User: {caller} is not authorized to perform{rest}", f"User: {caller} is not authorized to perform: {rest}",
                    f"User: {caller} {rest}", f"User: {caller}{rest}"):
        assert parse_denial(message) == _parse_denial.__wrapped__(message), message


@pytest.mark.parametrize("source", ["secretsmanager.amazonaws.com", "kms.amazonaws.com", "secretsmanager.us-east-1.amazonaws.com",
                                    "kms.example", "s3.amazonaws.com", "iam.amazonaws.com"])
@pytest.mark.parametrize("action", ["GetSecretValue", "RotationFailed", "PutResourcePolicy", "DisableKey", "PutKeyPolicy",
                                    "ScheduleKeyDeletion", "DetachRolePolicy", "Decrypt"])
@pytest.mark.parametrize("error_code", [None, "", "AccessDeniedException"])
def test_a_successful_record_is_a_success_unless_its_action_is_a_failure_event_or_a_change(source, action, error_code):
    """parse_record's shortcut for successes of our usual sources gives what asking both questions gives."""
    from auditor.changes import CHANGE_ACTIONS
    from auditor.records import FAILURE_SERVICE_EVENTS, Change

    record = {**DENIED, "eventSource": source, "eventName": action, "errorCode": error_code}
    found = parse_record(record)
    service = source.partition(".")[0]
    if service not in ("secretsmanager", "kms"):
        expected = Change if action in CHANGE_ACTIONS.get(source, ()) and not error_code else OTHER_SERVICE
    elif error_code:
        expected = FailedCall
    elif action in FAILURE_SERVICE_EVENTS and service == "secretsmanager":
        expected = FailedCall
    elif action in CHANGE_ACTIONS.get(source, ()):
        expected = Change
    else:
        expected = SUCCESS
    if expected is FailedCall:
        assert type(found) is FailedCall
    elif expected is Change:  # parse_change finds nothing an incident can be rooted in: the success it is
        assert type(found) is Change or found is (SUCCESS if service in ("secretsmanager", "kms") else OTHER_SERVICE)
    else:
        assert found is expected
