"""What changed: the successful calls that can start an incident, parsed into the resources they
touch, spelled the way a failure's root spells them."""

from __future__ import annotations

import pytest

from auditor.changes import CHANGE_ACTIONS, Change, key_key, principal_key, secret_key
from auditor.contract import CHANGE_EVENTS
from auditor.records import OTHER_SERVICE, SUCCESS, parse_record
from demo.envelope import to_eventbridge
from demo import scenarios as s


def keys(record) -> dict[str, str]:
    outcome = parse_record(record)
    assert isinstance(outcome, Change), outcome
    return dict(outcome.keys)


def test_a_key_policy_change_names_the_key_by_arn_with_its_topic():
    change = parse_record(to_eventbridge(s.put_key_policy(0)))
    assert isinstance(change, Change)
    assert change.action == "PutKeyPolicy" and change.actor == s.ADMIN and change.event_time == s.at(0)
    assert dict(change.keys) == {"key:" + s.KEY_ARN: "policy"}
    assert "policy" not in change.to_dict() and "Statement" not in repr(change)  # never the document


def test_disable_key_named_by_id_without_resources_becomes_the_same_key_arn():
    record = s.disable_key(0)
    del record["resources"]
    record["requestParameters"] = {"keyId": s.KEY_ID}
    assert keys(record) == {"key:" + s.KEY_ARN: "state"}


@pytest.mark.parametrize("region, partition", [("cn-north-1", "aws-cn"), ("us-gov-west-1", "aws-us-gov"),
                                               ("us-isob-east-1", "aws-iso-b"), ("eu-west-1", "aws")])
def test_a_key_named_by_id_outside_the_commercial_partition_is_spelled_as_its_record_spells_it(region, partition):
    """A key's ARN built from its id carries the partition of the record's Region, so a failure that
    names the key by id and a change whose record carries the key's ARN (or the other way round)
    are about the same key: in China, GovCloud and the isolated Regions too."""
    arn = f"arn:{partition}:kms:{region}:{s.ACCOUNT}:key/{s.KEY_ID}"
    by_id = s.disable_key(0)
    del by_id["resources"]
    by_id.update(awsRegion=region, requestParameters={"keyId": s.KEY_ID})
    by_arn = s.disable_key(0, key_arn=arn)
    by_arn["awsRegion"] = region
    assert keys(by_id) == keys(by_arn) == {"key:" + arn: "state"}
    failure = s.decrypt_disabled(0, "app", "secretsmanager.amazonaws.com", key_arn=arn)
    del failure["resources"]
    failure.update(awsRegion=region, requestParameters={"keyId": s.KEY_ID})
    assert parse_record(failure).key_arn == arn


def test_every_region_botocore_knows_is_in_its_partition():
    """partition_of_region agrees with botocore's partitions (a new partition fails here first)."""
    from auditor.aws import partition_of_region

    from .conftest import botocore_regions

    regions = botocore_regions()
    assert len(regions) > 30 and set(regions.values()) >= {"aws", "aws-cn", "aws-us-gov", "aws-iso-b"}
    assert [(r, p) for r, p in sorted(regions.items()) if partition_of_region(r) != p] == []


def test_alias_changes_touch_the_alias_and_the_key():
    record = s.record("kms", "UpdateAlias", 0, s.admin_identity(), {"aliasName": "alias/orders", "targetKeyId": s.KEY_ID})
    assert keys(record) == {f"key:{s.KEY_ARN}": "alias", f"alias:{s.ACCOUNT}:{s.REGION}:alias/orders": "alias"}


def test_secret_changes_name_the_secret_without_its_random_suffix():
    record = s.record("secretsmanager", "PutResourcePolicy", 0, s.admin_identity(),
                      {"secretId": "prod/orders/db", "resourcePolicy": "{...}"},
                      response={"arn": s.secret_arn("prod/orders/db"), "name": "prod/orders/db"})
    assert keys(record) == {f"secret:{s.ACCOUNT}:{s.REGION}:prod/orders/db": "policy"}
    assert secret_key(s.secret_arn("prod/orders/db"), "x", "y") == secret_key("prod/orders/db", s.ACCOUNT, s.REGION)


def test_update_secret_is_a_change_only_when_it_changes_the_key():
    touch = s.record("secretsmanager", "UpdateSecret", 0, s.admin_identity(), {"secretId": "prod/a", "description": "x"})
    assert parse_record(touch) is SUCCESS
    rekey = s.record("secretsmanager", "UpdateSecret", 0, s.admin_identity(), {"secretId": "prod/a", "kmsKeyId": s.KEY_ARN})
    assert keys(rekey) == {f"secret:{s.ACCOUNT}:{s.REGION}:prod/a": "key", "key:" + s.KEY_ARN: "key"}


def test_iam_changes_name_what_they_change_by_the_kind_of_denial_they_can_cause():
    policy = "arn:aws:iam::111122223333:policy/p"
    assert keys(s.detach_role_policy(0, "checkout", policy)) == {
        f"role:{s.ACCOUNT}:checkout": "identity-policy", f"policy:{policy}": "attachment"}  # the link, on the policy too
    assert keys(s.put_role_boundary(0, "checkout", policy)) == {
        f"role:{s.ACCOUNT}:checkout": "boundary", f"policy:{policy}": "boundary-set"}
    assert keys(s.create_policy_version(0, policy)) == {f"policy:{policy}": "policy-version", f"iam-policies:{s.ACCOUNT}": "policy-version"}
    not_default = s.create_policy_version(0, policy)
    not_default["requestParameters"]["setAsDefault"] = False
    assert parse_record(not_default) is OTHER_SERVICE  # what nobody is allowed changed: no change
    assert keys(s.set_default_policy_version(0, policy)) == {f"policy:{policy}": "policy-version",
                                                             f"iam-policies:{s.ACCOUNT}": "policy-version"}
    key_off = s.record("iam", "UpdateAccessKey", 0, s.admin_identity(), {"userName": "ci", "accessKeyId": "AKIA...", "status": "Inactive"})
    assert keys(key_off) == {f"user:{s.ACCOUNT}:ci": "credentials"}
    trust = s.record("iam", "UpdateAssumeRolePolicy", 0, s.admin_identity(), {"roleName": "checkout", "policyDocument": "{}"})
    assert keys(trust) == {f"role:{s.ACCOUNT}:checkout": "trust"}


def test_links_from_records_follow_attach_detach_and_boundary_in_time():
    from auditor.changes import links_from_records
    from auditor.incidents import change_entries, epoch

    p, q, b = (f"arn:aws:iam::111122223333:policy/{n}" for n in ("p", "q", "b"))
    history = [s.attach_role_policy(-300, "checkout", p), s.attach_role_policy(-200, "checkout", q),
               s.detach_role_policy(-100, "checkout", q), s.put_role_boundary(-50, "checkout", b),
               s.attach_role_policy(100, "checkout", q)]  # after the failure: not yet
    entries = [e for r in history for e in change_entries(parse_record(r))]
    links = links_from_records(f"role:{s.ACCOUNT}:checkout", entries, epoch(s.at(0)))
    assert links.policies == (p,) and links.boundary == b and links.source == "records" and not links.known
    assert links_from_records(f"role:{s.ACCOUNT}:other", entries, epoch(s.at(0))) is None


def test_organizations_and_vpc_endpoint_changes():
    assert keys(s.attach_scp(0, "p-abc12345", s.ACCOUNT)) == {"org-policy:p-abc12345": "policy", f"org-policies:{s.ACCOUNT}": "policy",
                                                           "org-policies": "policy"}  # attached to that account
    endpoint = s.record("ec2", "ModifyVpcEndpoint", 0, s.admin_identity(),
                        {"ModifyVpcEndpointRequest": {"VpcEndpointId": "vpce-0a1b2c3d", "PolicyDocument": "{}"}})
    assert keys(endpoint) == {"vpce:vpce-0a1b2c3d": "policy"}
    tags_only = s.record("ec2", "ModifyVpcEndpoint", 0, s.admin_identity(),
                         {"ModifyVpcEndpointRequest": {"VpcEndpointId": "vpce-0a1b2c3d", "AddSecurityGroupId": "sg-1"}})
    assert parse_record(tags_only) is OTHER_SERVICE  # no policy change: nothing that can deny


def test_a_failed_change_is_a_failure_or_nothing_never_a_change():
    failed = s.put_key_policy(0)
    failed.update(errorCode="AccessDeniedException", errorMessage="User: x is not authorized to perform: kms:PutKeyPolicy")
    assert type(parse_record(failed)).__name__ == "FailedCall"  # a KMS failure is ours to classify
    iam_failed = s.detach_role_policy(0, "r", "arn:aws:iam::aws:policy/X")
    iam_failed["errorCode"] = "NoSuchEntity"
    assert parse_record(iam_failed) is OTHER_SERVICE  # another service's failure: not ours


def test_other_services_successes_stay_other_services():
    record = s.record("iam", "ListRoles", 0, s.admin_identity(), {})
    assert parse_record(record) is OTHER_SERVICE
    record = s.record("s3", "PutBucketPolicy", 0, s.admin_identity(), {"bucketName": "b"})
    assert parse_record(record) is OTHER_SERVICE


@pytest.mark.parametrize("source", sorted(CHANGE_EVENTS))
def test_every_change_event_of_the_rule_parses_without_error_on_a_bare_record(source):
    for action in CHANGE_ACTIONS[source]:
        record = s.record(source.split(".")[0], action, 0, s.admin_identity(), {})
        outcome = parse_record(record)
        assert outcome in (SUCCESS, OTHER_SERVICE) or isinstance(outcome, Change)


def test_keys_are_spelled_alike_for_failures_and_changes():
    assert key_key(s.KEY_ID, s.ACCOUNT, s.REGION) == "key:" + s.KEY_ARN == key_key(s.KEY_ARN, "", "")
    assert key_key("alias/x", "1", "r") == "alias:1:r:alias/x" == key_key("arn:aws:kms:r:1:alias/x", "", "")
    assert principal_key("arn:aws:iam::111122223333:role/service-role/path/app") == "role:111122223333:app"
    assert principal_key("arn:aws:iam::111122223333:user/ci") == "user:111122223333:ci"
