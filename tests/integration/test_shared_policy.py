"""One change, many callers (issue 20), through the real handler in SQS batches of 20 with the IAM
world in moto: a shared managed policy's new default version breaking many roles, a boundary's,
a key disabled and enabled again before it is described, the fix named when it resolves, and the
CLI's --incidents giving the same answer over the same records."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import time

import pytest

from demo import scenarios as s

from .test_incidents import resolve, send

pytestmark = pytest.mark.integration

SECRET_READ = json.dumps({"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": "*"}]})


def iam_world(aws, tag: str, roles: int, *, attach: str = "", boundary: str = "") -> tuple[str, list[str]]:
    """Roles ``<tag>-<i>`` with the policy ``<tag>-shared`` attached (``attach``) or as their
    permissions boundary (``boundary``); the policy's ARN and the role names."""
    iam = aws("iam")
    arn = iam.create_policy(PolicyName=f"{tag}-shared", PolicyDocument=SECRET_READ)["Policy"]["Arn"]
    names = []
    trust = json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]})
    for i in range(roles):
        name = f"{tag}-{i}"
        kwargs = {"PermissionsBoundary": arn} if boundary else {}
        iam.create_role(RoleName=name, AssumeRolePolicyDocument=trust, **kwargs)
        if attach:
            iam.attach_role_policy(RoleName=name, PolicyArn=arn)
        names.append(name)
    return arn, names


@pytest.fixture
def quiet(monkeypatch):
    monkeypatch.setenv("INCIDENT_QUIET_SECONDS", "1")


def test_a_shared_policy_version_breaking_forty_roles_is_one_alert_naming_that_version(stack, aws, quiet):
    arn, roles = iam_world(aws, "orders", 40, attach="yes")
    other, others = iam_world(aws, "guard", 5, boundary="yes")
    start = s.since_t0() - 90
    change = s.create_policy_version(start, arn)
    later_boundary = s.create_policy_version(start + 20, other, actor=s.role_identity("someone-else", "bob"))  # wrong kind
    failures = [s.identity_denied(start + 40 + i, role, "prod/orders/db") for i, role in enumerate(roles)]
    send([change, later_boundary] + failures, batch_size=20)
    (opened,) = stack.drain()
    incident = opened.body["incident"]
    assert opened.attributes["status"] == "opened" and incident["root"]["kind"] == "iam-policy"
    assert incident["root"]["id"] == f"policy:{arn}" and incident["principals"]["count"] == 18  # the first batch's
    assert incident["change"]["action"] == "CreatePolicyVersion" and incident["change"]["event_id"] == change["eventID"]
    assert incident["change"]["tier"] == 0
    assert later_boundary["eventID"] not in json.dumps(incident)  # never named, not even as "may apply"
    assert "set-default-policy-version" in incident["remediation"]
    fix = s.set_default_policy_version(s.since_t0() + 0.5, arn)
    send([fix], prefix="fix")
    (resolved,) = resolve(stack)
    assert resolved.attributes["status"] == "resolved"  # every caller in the one incident, none paged on its own
    assert resolved.body["incident"]["failures"] == 40 and resolved.body["incident"]["principals"]["count"] == 40
    assert resolved.body["incident"]["ended_by"]["action"] == "SetDefaultPolicyVersion"


def test_a_boundary_version_breaking_twenty_roles_is_one_alert(stack, aws, quiet):
    arn, roles = iam_world(aws, "bounded", 20, boundary="yes")
    start = s.since_t0() - 60
    change = s.create_policy_version(start, arn)
    send([change] + [s.boundary_denied(start + 10 + i, role, "prod/x") for i, role in enumerate(roles)], batch_size=20)
    (opened,) = stack.drain()
    incident = opened.body["incident"]
    assert incident["root"]["kind"] == "iam-policy" and incident["root"]["id"] == f"policy:{arn}"
    assert "permissions boundary" in incident["root"]["label"] and incident["principals"]["count"] == 19
    assert incident["change"]["event_id"] == change["eventID"]


def test_an_identity_denial_never_names_a_boundary_change_and_says_what_it_searched(stack, aws, quiet):
    arn, (role,) = iam_world(aws, "lonely", 1, boundary="yes")  # the policy is its boundary, not an identity policy
    start = s.since_t0() - 60
    send([s.create_policy_version(start, arn), s.identity_denied(start + 10, role, "prod/x")])
    (opened,) = stack.drain()
    incident = opened.body["incident"]
    assert incident["root"]["kind"] == "principal-permissions" and incident["change"] is None
    assert "identity-policy" in incident["searched"] and "boundary" not in incident["searched"].split(";")[0]


def test_a_key_disabled_and_enabled_again_before_it_is_described_is_still_the_disabled_key(stack, aws, quiet):
    kms = aws("kms", "eu-west-1")
    key = kms.create_key()["KeyMetadata"]
    key_arn = key["Arn"].replace(key["Arn"].split(":")[4], s.ACCOUNT)
    start = s.since_t0() - 60
    records = [s.disable_key(start, key_arn)] + [s.decrypt_disabled(start + 10 + i, role, "s3.amazonaws.com", key_arn)
                                                 for i, role in enumerate(("ingest", "ledger"))]
    kms.enable_key(KeyId=key["KeyId"])  # enabled again before the function describes it
    send(records + [s.enable_key(start + 30, key_arn)])
    (opened,) = stack.drain()
    incident = opened.body["incident"]
    assert incident["cause"] == "kms.key-disabled" and incident["root"]["kind"] == "key-state"
    assert incident["principals"]["count"] == 2 and incident["change"]["action"] == "DisableKey"
    (resolved,) = resolve(stack)
    assert resolved.body["incident"]["ended_by"]["action"] == "EnableKey"


def history_records() -> list[dict]:
    """A shared policy's new version breaking six roles (their attach records included), a key
    disabled, expired credentials: three incidents."""
    arn = s.policy_arn("history-shared")
    roles = [f"history-{i}" for i in range(6)]
    start = s.since_t0() - 120
    records = [s.attach_role_policy(start - 600 + i, role, arn) for i, role in enumerate(roles)]
    records.append(s.create_policy_version(start, arn))
    records += [s.identity_denied(start + 10 + i, role, "prod/h") for i, role in enumerate(roles)]
    other_key = s.KEY_ARN.replace("1234abcd", "4444bbbb")
    records += [s.disable_key(start + 5, other_key)] + [s.decrypt_disabled(start + 20 + i, "ingest", "s3.amazonaws.com", other_key)
                                                        for i in range(3)]
    records += [s.expired(start + 30, "batch-job", "prod/b")]
    return records


def history(records: list[dict], tmp_path) -> dict[str, dict]:
    """The incidents ``auditor classify --incidents`` finds in ``records``, by id."""
    path = tmp_path / "history.json.gz"
    path.write_bytes(gzip.compress(json.dumps({"Records": records}).encode()))
    out = subprocess.run([sys.executable, "-m", "auditor.cli", "classify", str(path), "--incidents", "--format", "jsonl"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return {i["id"]: i for i in map(json.loads, out.stdout.splitlines())}


def answer(incident: dict) -> tuple:
    change = incident["change"] or {}
    return (incident["root"]["kind"], incident["root"]["id"], incident["failures"], incident["principals"]["count"],
            change.get("event_id"), incident["cause"])


def test_history_gives_the_same_answer_as_the_function(stack, aws, quiet, tmp_path):
    """One set of records (attach records included) through the handler and through the CLI's
    --incidents: the same incidents, roots, counts and named changes."""
    records = history_records()
    send(records, batch_size=20)
    function = {m.body["incident"]["id"]: m.body["incident"] for m in stack.drain()}
    cli = history(records, tmp_path)
    assert set(cli) == set(function) and len(cli) == 3
    assert {k: answer(v) for k, v in cli.items()} == {k: answer(v) for k, v in function.items()}


def test_history_and_the_function_agree_when_the_function_is_given_every_record_twice(stack, aws, quiet, tmp_path):
    """At least once: every record delivered again, in other batches. The incidents the function
    resolves count what the CLI counts in the records once."""
    records = history_records()
    send(records, batch_size=20)
    send(records, batch_size=7, prefix="again")
    stack.drain()
    function = {m.body["incident"]["id"]: m.body["incident"] for m in resolve(stack)}
    cli = history(records, tmp_path)
    assert set(cli) == set(function) and len(cli) == 3
    assert {k: answer(v) for k, v in cli.items()} == {k: answer(v) for k, v in function.items()}


def test_a_policy_version_that_arrives_after_its_failures_takes_their_incidents_over(stack, aws, quiet):
    """The IAM event came late (us-east-1): each role had opened an incident of its own. The
    policy's incident takes them over (one "opened" that says so) and each is resolved as
    superseded (so that an on-call tool closes the alert it opened); what fails afterwards counts
    into the policy's incident, and pages nobody again."""
    arn, roles = iam_world(aws, "late", 6, attach="yes")
    start = s.since_t0() - 120
    send([s.identity_denied(start + 10 + i, role, "prod/late") for i, role in enumerate(roles)], batch_size=20)
    first = stack.drain()
    assert sorted(m.attributes["status"] for m in first) == ["opened"] * 6  # one per role: nothing linked them yet
    send([s.create_policy_version(start, arn)], prefix="iam")  # made before the failures, delivered after them
    messages = stack.drain()
    by_status = {}
    for m in messages:
        by_status.setdefault(m.attributes["status"], []).append(m)
    (opened,) = by_status["opened"]
    incident = opened.body["incident"]
    assert incident["root"]["id"] == f"policy:{arn}" and incident["failures"] == 6 and incident["principals"]["count"] == 6
    assert incident["change"]["action"] == "CreatePolicyVersion" and any("took over 6" in n for n in incident["notes"])
    superseded = by_status["resolved"]
    assert sorted(m.attributes["incident_id"] for m in superseded) == sorted(m.attributes["incident_id"] for m in first)
    assert all(m.body["incident"]["superseded_by"] == incident["id"] for m in superseded)
    send([s.identity_denied(s.since_t0() + 1, role, "prod/late", seed=f"again-{role}") for role in roles], prefix="again")
    assert stack.drain() == []  # counted into the policy's incident: no page per role again


def test_failures_delivered_again_after_the_policys_incident_took_theirs_over_are_not_counted_again(stack, aws, quiet):
    """The IAM event came late and the policy's incident took over the roles' incidents; then SQS
    hands the roles' failures over again: the policy's incident knows them (their events came
    with the incidents it took over), so it counts 6, not 12."""
    arn, roles = iam_world(aws, "again", 6, attach="yes")
    start = s.since_t0() - 120
    failures = [s.identity_denied(start + 10 + i, role, "prod/again") for i, role in enumerate(roles)]
    send(failures, batch_size=20)
    send([s.create_policy_version(start, arn)], prefix="iam")
    stack.drain()
    send(failures, batch_size=20, prefix="again")
    assert stack.drain() == []
    resolved = [m.body["incident"] for m in resolve(stack) if m.body["incident"]["root"]["id"] == f"policy:{arn}"]
    assert [i["failures"] for i in resolved] == [6]
