"""Roots, pairing and grouping, pure: the rule each cause chooses, the records that are one
failure, the change that most likely started an incident, and the CLI's book over history."""

from __future__ import annotations

import copy

from auditor.classify import classify
from auditor.facts import Facts
from auditor.cli.triage import Book
from auditor.incidents import Failure, attribute, change_entries, epoch
from auditor.lifecycle import Settings
from auditor.pairing import half_of, pair
from auditor.records import parse_record
from auditor import roots
from auditor.classify import root_of
from auditor.roots import affected
from demo import scenarios as s

from .conftest import fixture_records

KINDS = {"key-policy", "key-state", "key-spec", "key-id", "secret-policy", "secret-state", "secret-id", "secret-owner",
         "rotation", "principal-permissions", "principal-credentials", "org-policy", "vpc-endpoint", "request-rate",
         "request", "unknown"}


def failure_of(record, facts=None, key="k"):
    call = parse_record(record)
    finding = classify(call, facts)
    return call, Failure(finding, root_of(finding.cause, call, facts), (key,), (call.event_id,),
                         call.principal.identity_arn, affected(call), epoch(call.event_time) or 0.0)


def test_every_cause_names_its_rule_and_every_fixture_a_root_of_a_known_kind():
    from auditor.causes import CATALOG

    rules = [v for name, v in vars(roots).items() if callable(v) and not name.startswith("_")]
    for cause in CATALOG:  # a rule of auditor.roots, chosen in the cause's module
        assert any(cause.root is rule for rule in rules), cause.id
    assert root_of("no.such-cause", failure_of(s.identity_denied(0, "checkout", "prod/a"))[0]).kind == "unknown"
    for cause, path, record, facts in fixture_records():
        if cause == "success":
            continue
        _, failure = failure_of(record, Facts.from_dict(facts) if facts else None)
        assert failure.root.kind in KINDS, (path, failure.root)
        assert failure.root.id and failure.root.incident_id.startswith(failure.root.kind + "-")


def test_roots_name_what_must_change():
    assert failure_of(s.identity_denied(0, "checkout", "prod/a"))[1].root.id == "role:111122223333:checkout"
    assert failure_of(s.decrypt_disabled(0, "a", "s3.amazonaws.com"))[1].root.id == "key:" + s.KEY_ARN
    kms = failure_of(s.decrypt_for_secret_denied(0, "a", "prod/a"))[1].root
    assert (kms.kind, kms.id) == ("key-policy", "key:" + s.KEY_ARN)
    identity = failure_of(s.decrypt_for_secret_denied(0, "a", "prod/a", policy="identity-based"))[1].root
    assert (identity.kind, identity.id) == ("principal-permissions", "role:111122223333:a")  # the caller's policy refused
    scp = "arn:aws:organizations::999988887777:policy/o-a1b2c3d4e5/service_control_policy/p-x1"
    assert failure_of(s.scp_denied(0, "a", "prod/a", scp))[1].root.id == "org-policy:p-x1"
    throttled = s.record("kms", "Decrypt", 0, s.role_identity("a"), {}, error="ThrottlingException", message="Rate exceeded")
    assert failure_of(throttled)[1].root.id == f"rate:{s.ACCOUNT}:{s.REGION}:kms:Decrypt"


def test_secrets_managers_own_kms_denial_names_no_key_and_no_policy_so_its_root_waits():
    root = failure_of(s.get_secret_value_kms_denied(0, "a", "prod/a"))[1].root
    assert root.kind == "key-policy" and not root.known


def test_a_secrets_manager_call_and_the_kms_call_it_made_are_one_failure_joining_both():
    sm_call, sm = failure_of(s.get_secret_value_kms_denied(0, "a", "prod/a"), key="m1")
    kms_call, kms = failure_of(s.decrypt_for_secret_denied(1, "a", "prod/a"), key="m2")
    halves = [half_of(sm_call, sm), half_of(kms_call, kms)]
    assert [h.side for h in halves] == ["sm", "kms"] and halves[0].join == halves[1].join
    (joined,), left = pair(halves)
    assert left == []
    assert joined.root == kms.root and joined.keys == ("m1", "m2")
    f = joined.finding
    assert f.action == "GetSecretValue" and f.resource == "prod/a"  # the call the caller made
    assert any("no resource-based policy allows" in e for e in f.evidence)  # which policy refused: from KMS
    assert f.joined[0]["event_id"] == kms_call.event_id and f.policy["Resource"] == s.KEY_ARN


def test_pairs_need_the_same_caller_the_same_secret_and_seconds_apart():
    def halves(*records):
        out = []
        for r in records:
            call, failure = failure_of(r)
            out.append(half_of(call, failure))
        return out

    other_role = halves(s.get_secret_value_kms_denied(0, "a", "prod/a"), s.decrypt_for_secret_denied(1, "b", "prod/a"))
    assert pair(other_role)[0] == []
    other_secret = halves(s.get_secret_value_kms_denied(0, "a", "prod/a"), s.decrypt_for_secret_denied(1, "a", "prod/b"))
    assert pair(other_secret)[0] == []
    an_hour = halves(s.get_secret_value_kms_denied(0, "a", "prod/a"), s.decrypt_for_secret_denied(3600, "a", "prod/a"))
    assert pair(an_hour)[0] == []
    retries = halves(*[s.get_secret_value_kms_denied(t, "a", "prod/a") for t in (0, 60)],
                     *[s.decrypt_for_secret_denied(t + 0.5, "a", "prod/a") for t in (60, 0)])
    joined, left = pair(retries)
    assert len(joined) == 2 and left == []  # each retry with its own KMS call (the nearest)


def test_a_rotation_failure_and_the_rotation_functions_failing_calls_are_one_failure():
    secret = s.secret_arn("prod/db")
    rotation_role = s.role_identity("SecretsManagerRotationRole", "SecretsManagerMySQLRotation")
    put = s.record("secretsmanager", "PutSecretValue", 0, rotation_role,
                   {"secretId": secret, "clientRequestToken": "t-1", "versionStages": ["AWSPENDING"]},
                   error="AccessDeniedException",
                   message=("User: arn:aws:sts::111122223333:assumed-role/SecretsManagerRotationRole/x is not authorized "
                            "to perform: secretsmanager:PutSecretValue on resource: prod/db because no identity-based "
                            "policy allows the secretsmanager:PutSecretValue action"))
    event = s.record("secretsmanager", "RotationFailed", 30, {"accountId": s.ACCOUNT, "invokedBy": "secretsmanager.amazonaws.com"},
                     None, message="Error when executing lambda ... during createSecret step")
    event.pop("errorCode", None)
    event["eventType"] = "AwsServiceEvent"
    event["additionalEventData"] = {"SecretId": secret}
    (call_a, fa), (call_b, fb) = failure_of(put), failure_of(event)
    assert fa.root == fb.root and fa.root.kind == "rotation"
    (joined,), left = pair([half_of(call_a, fa), half_of(call_b, fb)])
    assert left == [] and joined.finding.cause == "access-denied.identity-policy"  # the reason it failed
    assert any("RotationFailed" in e for e in joined.finding.evidence)


def test_attribution_takes_the_latest_change_of_a_topic_that_can_break_the_root_before_the_first_failure():
    _, failure = failure_of(s.decrypt_disabled(0, "a", "s3.amazonaws.com"))
    history = [e for c in (s.put_key_policy(-30), s.disable_key(-600), s.disable_key(-120), s.disable_key(60))
               for e in change_entries(parse_record(c))]
    found = attribute(failure.root, epoch(failure.finding.event_time), history)
    assert found.change["action"] == "DisableKey" and found.change["lead_seconds"] == 120  # not the PutKeyPolicy, not the later one
    nothing = attribute(failure.root, epoch(failure.finding.event_time), [])
    assert nothing.change is None and "state changes to key:" + s.KEY_ARN in nothing.searched


def test_the_book_groups_history_into_incidents_split_by_the_quiet_period():
    book = Book(Settings(quiet=1800, update_window=900))
    for c in (s.put_key_policy(-900), s.detach_role_policy(-60, "checkout", "arn:aws:iam::111122223333:policy/p")):
        book.add_change(parse_record(c))
    for t in (0, 600, 1200, 9000):  # a gap of more than the quiet period before the last one
        for record in (s.identity_denied(t, "checkout", "prod/a"),):
            book.add_failure(failure_of(record)[1])
    incidents = book.incidents(now=None)
    assert [(i.root.kind, i.failures, i.occurrence, i.status) for i in incidents] == [
        ("principal-permissions", 3, 1, "resolved"), ("principal-permissions", 1, 2, "open")]
    assert incidents[0].attribution.change["action"] == "DetachRolePolicy"
    assert incidents[0].id == incidents[1].id  # one root, one dedup key, two occurrences


def test_a_copied_failure_record_with_another_event_id_is_another_failure_of_the_same_incident():
    record = s.identity_denied(0, "checkout", "prod/a")
    again = copy.deepcopy(record)
    again["eventID"] = "another"
    assert failure_of(record)[1].root == failure_of(again)[1].root
