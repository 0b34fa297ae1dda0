"""The parser: every input shape CloudTrail and EventBridge produce, and bad input never crashes."""

from __future__ import annotations

import gzip
import json

import pytest

from auditor.documents import iter_outcomes
from auditor.records import (
    OTHER_SERVICE,
    SUCCESS,
    FailedCall,
    Malformed,
    parse_denial,
    parse_record,
    to_eventbridge,
)

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


def test_truncated_gzip_is_one_malformed_outcome():
    data = gzip.compress(json.dumps({"Records": [DENIED]}).encode())[:-10]
    outcomes = _outcomes(data, "cut.json.gz")
    assert len(outcomes) == 1 and isinstance(outcomes[0], Malformed) and "gzip" in outcomes[0].reason


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
