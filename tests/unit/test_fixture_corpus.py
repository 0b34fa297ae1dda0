"""The fixture corpus itself is well formed (independent of the classifier).

Every ``tests/fixtures/<cause>/<name>.json`` is exactly one bare CloudTrail record with the
fields every CloudTrail record carries; failures carry an ``errorCode`` (except Secrets
Manager rotation service events, which report failure by event name and ``errorMessage``);
``success/`` holds no failure; ``.facts`` sidecars are JSON objects next to a record; no
secret value other than the deliberate canaries appears.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"

CAUSES = {
    "access-denied.identity-policy", "access-denied.explicit-deny", "access-denied.resource-policy",
    "access-denied.organizations-policy", "access-denied.permissions-boundary",
    "access-denied.session-policy", "access-denied.vpc-endpoint-policy", "access-denied.kms-key",
    "access-denied.condition", "access-denied.temporary-credentials", "access-denied.unspecified",
    "credentials.expired", "credentials.invalid-signature", "consistency.not-yet-visible",
    "kms.asymmetric-key", "secret.partial-arn", "secret.service-managed", "secret.not-found",
    "secret.pending-deletion", "kms.key-disabled", "kms.key-pending-deletion", "kms.key-not-found",
    "kms.invalid-ciphertext", "throttling", "validation", "rotation.failed", "unknown",
}
REQUIRED = ("eventVersion", "eventTime", "eventSource", "eventName", "awsRegion",
            "recipientAccountId", "eventID", "userIdentity")
FACTS_REQUIRED = {"consistency.not-yet-visible", "access-denied.condition"}
SOURCES = {"secretsmanager.amazonaws.com", "kms.amazonaws.com"}
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def _records():
    return sorted(FIXTURES.glob("*/*.json"))


RECORDS = _records()


def test_every_cause_and_success_has_a_directory_with_enough_records():
    dirs = {p.name for p in FIXTURES.iterdir() if p.is_dir()}
    assert dirs == CAUSES | {"success"}, sorted(dirs ^ (CAUSES | {"success"}))
    for d in dirs:
        n = len(list((FIXTURES / d).glob("*.json")))
        assert n >= (8 if d == "success" else 3), f"{d}: {n} records"


@pytest.mark.parametrize("path", RECORDS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_record_is_one_well_formed_cloudtrail_record(path: Path):
    text = path.read_text(encoding="utf-8")
    record = json.loads(text)
    assert isinstance(record, dict), "exactly one bare record (not a list, not a Records envelope)"
    assert "Records" not in record and "detail" not in record
    for field in REQUIRED:
        assert field in record, f"missing {field}"
    assert record["eventSource"] in SOURCES
    assert record["eventVersion"] in {"1.05", "1.08", "1.09", "1.10", "1.11"}
    assert ISO.match(record["eventTime"]), record["eventTime"]
    assert UUID.match(record["eventID"]), record["eventID"]
    assert re.fullmatch(r"\d{12}", record["recipientAccountId"])
    assert isinstance(record["userIdentity"], dict) and record["userIdentity"]
    assert record.get("eventType") in {"AwsApiCall", "AwsServiceEvent", "AwsVpceEvent"}

    cause = path.parent.name
    if record["eventType"] == "AwsVpceEvent":
        # A CloudTrail network activity event (cloudtrail-events.html#cloudtrail-network-events): no request
        # or response, the endpoint and its owner named; denied only by the endpoint's policy, in fixed words.
        assert record["eventCategory"] == "NetworkActivity" and cause in {"success", "access-denied.vpc-endpoint-policy"}
        assert record["vpcEndpointId"].startswith("vpce-") and re.fullmatch(r"\d{12}", record["vpcEndpointAccountId"])
        assert "requestParameters" not in record and "responseElements" not in record
        if cause != "success":
            assert (record["errorCode"], record["errorMessage"]) == (
                "VpceAccessDenied", "The request was denied due to a VPC endpoint policy")
        return
    if cause == "success":
        assert "errorCode" not in record, "success/ holds no failed call"
        assert not record.get("errorMessage"), "success/ holds no failed service event"
    elif cause == "rotation.failed":
        assert record["eventType"] == "AwsServiceEvent"
        assert record["eventName"] in {"RotationFailed", "TestRotationFailed", "RotationAbandoned"}
        assert (record.get("additionalEventData") or {}).get("SecretId")
    else:
        assert record.get("errorCode"), f"{cause} record without errorCode"
        assert record["eventType"] == "AwsApiCall"
        assert record.get("responseElements") is None, "failed calls have null responseElements"


@pytest.mark.parametrize("path", RECORDS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_no_secret_material_except_canaries(path: Path):
    record = json.loads(path.read_text(encoding="utf-8"))
    params = record.get("requestParameters") or {}
    for field in ("secretString", "secretBinary"):
        if field in params:
            value = params[field]
            assert value == "HIDDEN_DUE_TO_SECURITY_REASONS" or str(value).startswith("CANARY-SECRET-VALUE-"), (
                f"{field} must be redacted or an obvious canary")
    assert "plaintext" not in json.dumps(record.get("responseElements") or {}).lower()


def test_canaries_exist_for_the_leak_tests():
    canaries = [p for p in RECORDS if "CANARY-SECRET-VALUE-" in p.read_text(encoding="utf-8")]
    assert len(canaries) >= 2


def test_facts_sidecars():
    for cause in FACTS_REQUIRED:
        for path in (FIXTURES / cause).glob("*.json"):
            assert path.with_suffix(".facts").exists(), f"{path.name} needs a .facts sidecar"
    for facts_path in FIXTURES.glob("*/*.facts"):
        assert facts_path.with_suffix(".json").exists(), f"orphan {facts_path}"
        facts = json.loads(facts_path.read_text(encoding="utf-8"))
        assert isinstance(facts, dict) and set(facts) <= {"secret", "key", "simulation"}, facts_path
        if "simulation" in facts:
            sim = facts["simulation"]
            assert sim["decision"] in {"implicitDeny", "explicitDeny"}
            assert sim["condition_keys"] and isinstance(sim["allowed_without_context"], bool)
        if facts_path.parent.name == "consistency.not-yet-visible":
            secret = facts["secret"]
            assert secret["found"] is True and secret["arn"].startswith("arn:aws:secretsmanager:")
            event_time = json.loads(facts_path.with_suffix(".json").read_text(encoding="utf-8"))["eventTime"]
            changed = secret.get("last_changed_date") or secret["created_date"]
            assert changed.replace("+00:00", "Z")[:19] <= event_time[:19], "the change precedes the failure"
