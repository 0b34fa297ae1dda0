"""Enrichment against a moto server: every outcome, including denied, throttled and timed-out lookups."""

from __future__ import annotations

import copy
import socket
import threading
import time
import uuid

import boto3
import pytest
from botocore.stub import Stubber

from auditor.classify import classify
from auditor.enrich import Enricher
from auditor.trail import parse_record

pytestmark = pytest.mark.integration
ACCOUNT = "123456789012"  # moto's account


def sm_failure(secret_id: str, code="ResourceNotFoundException", message="Secrets Manager can't find the specified secret.",
               action="GetSecretValue", when="2026-11-23T14:07:31Z", kms_key=""):
    params = {"secretId": secret_id}
    if kms_key:
        params["kmsKeyId"] = kms_key
    return parse_record({
        "eventSource": "secretsmanager.amazonaws.com", "eventName": action, "awsRegion": "us-east-1",
        "recipientAccountId": ACCOUNT, "eventTime": when, "errorCode": code, "errorMessage": message,
        "userIdentity": {"type": "IAMUser", "arn": f"arn:aws:iam::{ACCOUNT}:user/app"}, "requestParameters": params,
    })


def kms_failure(key_id: str, code: str, message: str, action="GenerateDataKey"):
    return parse_record({
        "eventSource": "kms.amazonaws.com", "eventName": action, "awsRegion": "us-east-1", "recipientAccountId": ACCOUNT,
        "errorCode": code, "errorMessage": message, "requestParameters": {"keyId": key_id},
        "userIdentity": {"type": "AssumedRole", "arn": f"arn:aws:sts::{ACCOUNT}:assumed-role/app/s", "invokedBy": "secretsmanager.amazonaws.com"},
    })


@pytest.fixture
def enricher(moto_server):
    return Enricher(timeout_seconds=2)


def test_partial_arn_is_confirmed_by_describing_the_name(aws, enricher):
    name = f"MySecret-{uuid.uuid4().hex[:6]}"
    arn = aws("secretsmanager").create_secret(Name=name, SecretString="x")["ARN"]
    call = sm_failure(f"arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:{name}")
    facts = enricher.facts_for(call)
    assert facts.secret.found and facts.secret.arn == arn
    finding = classify(call, facts)
    assert (finding.cause, finding.confidence) == ("secret.partial-arn", "high")
    assert any(arn in e for e in finding.evidence)


def test_not_found_is_confirmed(enricher):
    finding = classify(call := sm_failure("nothing/here"), enricher.facts_for(call))
    assert (finding.cause, finding.confidence) == ("secret.not-found", "high")


def test_pending_deletion_is_confirmed(aws, enricher):
    name = f"old/{uuid.uuid4().hex[:6]}"
    sm = aws("secretsmanager")
    sm.create_secret(Name=name, SecretString="x")
    sm.delete_secret(SecretId=name, RecoveryWindowInDays=7)
    call = sm_failure(name, "InvalidRequestException", "You can't perform this operation on the secret because it was marked for deletion.")
    finding = classify(call, enricher.facts_for(call))
    assert finding.cause == "secret.pending-deletion" and any("DeletedDate" in e for e in finding.evidence)


def test_a_secret_created_just_before_the_failure_is_eventual_consistency(aws, enricher):
    name = f"new/{uuid.uuid4().hex[:6]}"
    created = aws("secretsmanager").create_secret(Name=name, SecretString="x")
    described = aws("secretsmanager").describe_secret(SecretId=name)
    when = described["CreatedDate"].timestamp() + 3
    call = sm_failure(name, when=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(when)))
    finding = classify(call, enricher.facts_for(call))
    assert finding.cause == "consistency.not-yet-visible", finding.evidence
    assert created["ARN"] in finding.evidence[0]


def test_asymmetric_key_is_confirmed_by_describe_key(aws, enricher):
    key = aws("kms").create_key(KeySpec="RSA_2048", KeyUsage="ENCRYPT_DECRYPT")["KeyMetadata"]["KeyId"]
    call = sm_failure("prod/new", "EncryptionFailure", "Secrets Manager can't encrypt the protected secret text.", "CreateSecret", kms_key=key)
    finding = classify(call, enricher.facts_for(call))
    assert finding.cause == "kms.asymmetric-key" and any("RSA_2048" in e for e in finding.evidence)


def test_disabled_key_is_confirmed(aws, enricher):
    kms = aws("kms")
    key = kms.create_key()["KeyMetadata"]["KeyId"]
    kms.disable_key(KeyId=key)
    call = kms_failure(key, "DisabledException", f"{key} is disabled.")
    finding = classify(call, enricher.facts_for(call))
    assert finding.cause == "kms.key-disabled" and any("KeyState Disabled" in e for e in finding.evidence)


def stubbed(service: str, method: str, code: str) -> Enricher:
    client = boto3.client(service, region_name="us-east-1")
    stub = Stubber(client)
    for _ in range(3):
        stub.add_client_error(method, service_error_code=code, http_status_code=400 if code != "ThrottlingException" else 429)
    stub.activate()
    enricher = Enricher()
    enricher._clients[(service, "us-east-1")] = client
    return enricher


@pytest.mark.parametrize("code", ["AccessDeniedException", "ThrottlingException"])
def test_a_failed_lookup_lowers_confidence_and_says_so(moto_server, code):
    enricher = stubbed("secretsmanager", "describe_secret", code)
    call = sm_failure(f"arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:MySecret-abcdef")
    facts = enricher.facts_for(call)
    finding = classify(call, facts)
    assert finding.cause == "secret.partial-arn" and finding.confidence == "low"
    assert any(f"DescribeSecret failed ({code})" in e for e in finding.evidence)
    assert enricher.failures == 1


def test_a_lookup_that_hangs_times_out_and_the_event_still_classifies(monkeypatch):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    accepted = []
    threading.Thread(target=lambda: accepted.append(listener.accept()), daemon=True).start()
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{listener.getsockname()[1]}")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    enricher = Enricher(timeout_seconds=0.3)
    started = time.monotonic()
    call = sm_failure("prod/db")
    finding = classify(call, enricher.facts_for(call))
    assert time.monotonic() - started < 3
    assert finding.cause == "secret.not-found" and finding.confidence == "medium"
    assert any("ReadTimeoutError" in e or "Timeout" in e for e in finding.evidence), finding.evidence
    listener.close()


def test_lookups_are_cached_for_a_storm(aws, enricher):
    call = sm_failure("storm/secret")
    for _ in range(50):
        enricher.facts_for(call)
    assert enricher.lookups == 1


def test_resources_of_other_accounts_are_not_looked_up(enricher):
    call = sm_failure("arn:aws:secretsmanager:us-east-1:999999999999:secret:theirs-AbCdEf")
    facts = enricher.facts_for(call)
    assert enricher.lookups == 0 and any("another account" in n for n in facts.notes)


def test_successful_enrichment_is_not_needed_for_most_failures(enricher):
    throttled = parse_record({"eventSource": "kms.amazonaws.com", "eventName": "Decrypt", "errorCode": "ThrottlingException"})
    assert enricher.facts_for(throttled) is None and enricher.lookups == 0


def test_policy_simulation_names_the_condition(moto_server):
    client = boto3.client("iam", region_name="us-east-1")
    stub = Stubber(client)
    denied = {"EvalActionName": "secretsmanager:GetSecretValue", "EvalDecision": "explicitDeny",
              "MatchedStatements": [{"SourcePolicyId": "DenyOutsideOffice", "SourcePolicyType": "IAM Policy"}]}
    stub.add_response("simulate_principal_policy", {"EvaluationResults": [denied]})
    stub.add_response("simulate_principal_policy", {"EvaluationResults": [{"EvalActionName": "secretsmanager:GetSecretValue", "EvalDecision": "allowed"}]})
    stub.activate()
    enricher = Enricher(simulate_policies=True)
    enricher._clients[("iam", "us-east-1")] = client
    record = {
        "eventSource": "secretsmanager.amazonaws.com", "eventName": "GetSecretValue", "awsRegion": "us-east-1",
        "recipientAccountId": ACCOUNT, "eventTime": "2026-11-23T02:00:00Z", "sourceIPAddress": "192.0.2.7",
        "errorCode": "AccessDeniedException", "userIdentity": {"type": "IAMUser", "arn": f"arn:aws:iam::{ACCOUNT}:user/night"},
        "errorMessage": f"User: arn:aws:iam::{ACCOUNT}:user/night is not authorized to perform: secretsmanager:GetSecretValue "
                        f"on resource: arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:x-AbCdEf with an explicit deny in an identity-based policy",
    }
    call = parse_record(copy.deepcopy(record))
    facts = enricher.facts_for(call)
    finding = classify(call, facts)
    assert finding.cause == "access-denied.condition", finding.evidence
    assert any("aws:SourceIp" in e for e in finding.evidence)
    stub.assert_no_pending_responses()
