"""Organization mode: the central stack, the forwarder StackSet, and events flowing from a member
bus through the central bus and the queue to the subscriber (moto server)."""

from __future__ import annotations

import json
import time
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from auditor.contract import GLOBAL_EVENTS_REGION
from infra.config import ConfigError, load
from infra.organization import forwarder_rule_name
from infra.pattern import CHANGE_PATTERN, DETECTION_PATTERN, GLOBAL_CHANGE_PATTERN, RULE_STATE

from .conftest import resources, synth, template_of
from .policies import render, role_statements

pytestmark = pytest.mark.infra

ORG = {"id": "o-a1b2c3d4e5", "auditAccount": "111122223333", "homeRegion": "us-east-1",
       "regions": ["us-east-1", "eu-west-1"], "organizationalUnits": ["ou-ab12-cdef3456", "ou-ab12-99887766"]}


@pytest.fixture(scope="session")
def org_synth(tmp_path_factory):
    return synth({"organization": ORG}, tmp_path_factory.mktemp("cdk-org"))


@pytest.fixture(scope="session")
def central(org_synth):
    assert org_synth[2] is None, org_synth[2]
    return org_synth[0]


@pytest.fixture(scope="session")
def forwarder(central):
    (stack_set,) = resources(central, "AWS::CloudFormation::StackSet").values()
    return json.loads(stack_set["Properties"]["TemplateBody"])


MANAGEMENT = "999988887777"
MANAGEMENT_STACK = "SecretsKmsFailureAuditor-management"


@pytest.fixture(scope="session")
def management_synth(tmp_path_factory):
    """Home region eu-west-1 (not us-east-1), with the management account's stack."""
    org = {**ORG, "homeRegion": "eu-west-1", "managementAccount": MANAGEMENT}
    return synth({"organization": org}, tmp_path_factory.mktemp("cdk-org-management"))


def rule(template: dict, prefix: str) -> tuple[str, dict]:
    (item,) = [(k, r["Properties"]) for k, r in resources(template, "AWS::Events::Rule").items() if k.startswith(prefix)]
    return item


def stacks_of(outdir) -> dict[str, dict]:
    manifest = json.loads((outdir / "manifest.json").read_text())
    return {k: v for k, v in manifest["artifacts"].items() if v["type"] == "aws:cloudformation:stack"}


def test_organization_context_is_validated_with_clear_messages():
    assert load({"organization": json.dumps(ORG)}.get).organization.id == "o-a1b2c3d4e5"  # -c organization='{...}'
    for bad, says in [({**ORG, "id": "a1b2"}, "organization.id"), ({**ORG, "homeRegion": "mars-1"}, "homeRegion"),
                      ({**ORG, "homeRegion": "us-west-2"}, "must be one of"), ({**ORG, "regions": []}, "non-empty list"),
                      ({**ORG, "organizationalUnits": ["finance"]}, "OU ids"), ({**ORG, "extra": 1}, "unknown keys"),
                      ("not json", "expected an object")]:
        with pytest.raises(ConfigError) as err:
            load({"organization": bad}.get)
        assert says in str(err.value)
    assert load({"organization": {**ORG, "managementAccount": MANAGEMENT}}.get).organization.management_account == MANAGEMENT
    assert load({"organization": ORG}.get).organization.management_account is None
    for bad, says in [({**ORG, "managementAccount": "mgmt"}, "organization.managementAccount"),
                      ({**ORG, "managementAccount": 999988887777}, "12-digit account id"),
                      # the audit account is the management account, in us-east-1: its own change rule reads them already
                      ({**ORG, "managementAccount": ORG["auditAccount"]}, "leave managementAccount out")]:
        with pytest.raises(ConfigError) as err:
            load({"organization": bad}.get)
        assert says in str(err.value)
    long_name = "A" * 118  # fine alone; "<stackName>-forwarders" would exceed the StackSet name's 128
    assert load({"stackName": long_name}.get).stack_name == long_name
    with pytest.raises(ConfigError, match="at most 117"):
        load({"stackName": long_name, "organization": ORG}.get)


def test_single_account_mode_has_no_organization_resources(template):
    assert not resources(template, "AWS::CloudFormation::StackSet")
    # its only bus is the incidents bus (infra/oncall.py), which has no policy: no other account puts on it
    assert [b["Properties"]["Name"] for b in resources(template, "AWS::Events::EventBus").values()] == ["SecretsKmsFailureAuditor-incidents"]
    assert not resources(template, "AWS::Events::EventBusPolicy")


def test_central_bus_admits_only_the_organization(central):
    (policy,) = [p["Properties"] for p in resources(central, "AWS::Events::EventBusPolicy").values()]
    statement = policy["Statement"]
    assert statement["Action"] == "events:PutEvents" and statement["Effect"] == "Allow"
    assert statement["Condition"] == {"StringEquals": {"aws:PrincipalOrgID": "o-a1b2c3d4e5"}}
    assert sorted(b["Properties"]["Name"] for b in resources(central, "AWS::Events::EventBus").values()) == [
        "SecretsKmsFailureAuditor-central", "SecretsKmsFailureAuditor-incidents"]
    assert policy["EventBusName"] == {"Ref": next(k for k in resources(central, "AWS::Events::EventBus") if k.startswith("Organization"))}


def test_central_rules_feed_the_same_ingestion_queue(central):
    rules = {k: r["Properties"] for k, r in resources(central, "AWS::Events::Rule").items() if "EventPattern" in r["Properties"]}
    patterns = sorted(json.dumps(r["EventPattern"], sort_keys=True) for r in rules.values())
    assert patterns == sorted([json.dumps(DETECTION_PATTERN, sort_keys=True)] * 2 + [json.dumps(CHANGE_PATTERN, sort_keys=True)] * 2)
    targets = {r["Targets"][0]["Arn"]["Fn::GetAtt"][0] for r in rules.values()}
    assert len(targets) == 1 and next(iter(targets)).startswith("IngestionEvents")
    on_bus = {k: r for k, r in rules.items() if "EventBusName" in r}
    assert sorted(k.rstrip("0123456789ABCDEF") for k in on_bus) == ["OrganizationForwardedChanges", "OrganizationForwardedFailures"]
    for r in on_bus.values():
        assert r["Targets"][0]["DeadLetterConfig"] and r["Targets"][0]["RetryPolicy"]["MaximumRetryAttempts"] == 8
    _, changes = rule(central, "OrganizationForwardedChanges")
    assert changes["EventPattern"] == CHANGE_PATTERN and changes["State"] == "ENABLED"
    # The ingestion queue admits exactly the four rules, each by its own ARN.
    queue_id = next(iter(targets))
    senders = {s["Condition"]["ArnEquals"]["aws:SourceArn"]["Fn::GetAtt"][0]
               for p in resources(central, "AWS::SQS::QueuePolicy").values() if {"Ref": queue_id} in p["Properties"]["Queues"]
               for s in p["Properties"]["PolicyDocument"]["Statement"] if s["Effect"] == "Allow"}
    assert senders == set(rules)


def test_stack_set_auto_deploys_the_forwarder_to_the_ous_in_every_region(central):
    (props,) = [s["Properties"] for s in resources(central, "AWS::CloudFormation::StackSet").values()]
    assert props["PermissionModel"] == "SERVICE_MANAGED"
    assert props["AutoDeployment"] == {"Enabled": True, "RetainStacksOnAccountRemoval": False}
    (group,) = props["StackInstancesGroup"]
    assert group["DeploymentTargets"]["OrganizationalUnitIds"] == ORG["organizationalUnits"]
    assert group["Regions"] == ORG["regions"]
    assert props["CallAs"] == "DELEGATED_ADMIN" and props["Capabilities"] == ["CAPABILITY_IAM"]


def test_central_rule_matches_forwarded_read_only_calls_and_its_dead_letters_are_alarmed(central):
    _, forwarded = rule(central, "OrganizationForwardedFailures")
    assert forwarded["State"] == RULE_STATE  # forwarded GetSecretValue/Decrypt failures are read-only management events
    parked = {forwarded["Targets"][0]["DeadLetterConfig"]["Arn"]["Fn::GetAtt"][0]}
    for r in resources(central, "AWS::Events::Rule").values():
        parked |= {t["DeadLetterConfig"]["Arn"]["Fn::GetAtt"][0] for t in r["Properties"]["Targets"] if "DeadLetterConfig" in t}
    for q in resources(central, "AWS::SQS::Queue").values():
        if "RedrivePolicy" in q["Properties"]:
            parked.add(q["Properties"]["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0])
    watched = {a["Properties"]["Dimensions"][0]["Value"]["Fn::GetAtt"][0] for a in resources(central, "AWS::CloudWatch::Alarm").values()
               if a["Properties"].get("MetricName") == "ApproximateNumberOfMessagesVisible"}
    assert len(parked) == 3 and parked <= watched  # undelivered, undelivered-forwarded, failed


def test_stack_set_waits_for_the_bus_and_rolls_out_half_the_accounts_at_a_time(central):
    (stack_set,) = resources(central, "AWS::CloudFormation::StackSet").values()
    bus_resources = {i for i, r in central["Resources"].items() if r["Type"] in ("AWS::Events::EventBus", "AWS::Events::EventBusPolicy")
                     and i.startswith("Organization")}  # the central bus (not the incidents bus)
    assert len(bus_resources) == 2 and bus_resources <= set(stack_set["DependsOn"])
    prefs = stack_set["Properties"]["OperationPreferences"]
    assert prefs["ConcurrencyMode"] == "SOFT_FAILURE_TOLERANCE" and prefs["MaxConcurrentPercentage"] == 50


def test_forwarder_rule_role_and_dead_letter_queue(forwarder):
    bus_arn = {"Fn::Sub": "arn:${AWS::Partition}:events:us-east-1:111122223333:event-bus/SecretsKmsFailureAuditor-central"}
    _, props = rule(forwarder, "FailedCalls")
    assert props["EventPattern"] == DETECTION_PATTERN
    # Enabled everywhere but where the auditor's own rule reads the default bus (no double delivery).
    (condition,) = forwarder["Conditions"]
    assert props["State"] == {"Fn::If": [condition, "DISABLED", RULE_STATE]}
    assert forwarder["Conditions"][condition] == {"Fn::And": [
        {"Fn::Equals": [{"Ref": "AWS::AccountId"}, ORG["auditAccount"]]},
        {"Fn::Equals": [{"Ref": "AWS::Region"}, ORG["homeRegion"]]}]}
    target = props["Targets"][0]
    assert target["Arn"] == bus_arn and target["RetryPolicy"]["MaximumRetryAttempts"] == 8
    role_id = target["RoleArn"]["Fn::GetAtt"][0]
    assert role_statements(forwarder, role_id) == [{"Action": "events:PutEvents", "Effect": "Allow", "Resource": bus_arn}]
    (queue,) = resources(forwarder, "AWS::SQS::Queue").values()
    assert queue["Properties"]["SqsManagedSseEnabled"] is True
    assert not forwarder.get("Parameters") and not forwarder.get("Rules")  # no CDK bootstrap needed in member accounts


def test_forwarder_role_trusts_only_eventbridge_acting_for_its_own_rule(forwarder):
    """Confused deputy: EventBridge may assume the role only for this stack instance's forwarder
    rule (aws:SourceArn = the rule ARN, aws:SourceAccount = its account), in whatever member
    account and region the StackSet put it: pseudo parameters, no literal account or region."""
    _, failed_calls = rule(forwarder, "FailedCalls")  # (the change rule has a role of its own: next test)
    role_id = failed_calls["Targets"][0]["RoleArn"]["Fn::GetAtt"][0]
    role = forwarder["Resources"][role_id]
    name = failed_calls["Name"]
    assert name == forwarder_rule_name("SecretsKmsFailureAuditor") == "SecretsKmsFailureAuditor-forward"
    (trust,) = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "events.amazonaws.com"} and trust["Action"] == "sts:AssumeRole"
    assert trust["Condition"]["StringEquals"] == {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}
    assert {k: render(v) for k, v in trust["Condition"]["ArnEquals"].items()} == {
        "aws:SourceArn": f"arn:${{AWS::Partition}}:events:${{AWS::Region}}:${{AWS::AccountId}}:rule/{name}"}
    assert set(trust["Condition"]) == {"StringEquals", "ArnEquals"}
    assert ORG["auditAccount"] not in json.dumps(role) and ORG["homeRegion"] not in json.dumps(role)


def test_forwarder_rule_names_fit_eventbridge_and_differ_per_auditor():
    import re

    names = {forwarder_rule_name(stack) for stack in ("A", "Auditor-" + "x" * 100, "Auditor-" + "x" * 101, "B" * 117)}
    assert len(names) == 4
    assert all(len(n) <= 64 and re.fullmatch(r"[.\-_A-Za-z0-9]+", n) for n in names)


def test_forwarder_change_rule_carries_changes_and_in_us_east_1_iam_to_the_central_bus(forwarder):
    bus_arn = {"Fn::Sub": "arn:${AWS::Partition}:events:us-east-1:111122223333:event-bus/SecretsKmsFailureAuditor-central"}
    rule_id, props = rule(forwarder, "Changes")
    # The whole change pattern: in us-east-1 it includes IAM (and Organizations, never seen in members).
    assert props["EventPattern"] == CHANGE_PATTERN and "iam.amazonaws.com" in props["EventPattern"]["detail"]["eventSource"]
    assert props["Name"] == "SecretsKmsFailureAuditor-forwarded-changes"
    (condition,) = forwarder["Conditions"]  # the same: not where the auditor's own change rule reads the default bus
    assert props["State"] == {"Fn::If": [condition, "DISABLED", "ENABLED"]}
    (target,) = props["Targets"]
    assert target["Arn"] == bus_arn and target["RetryPolicy"] == {"MaximumRetryAttempts": 8, "MaximumEventAgeInSeconds": 7200}
    _, failures = rule(forwarder, "FailedCalls")
    assert target["DeadLetterConfig"] == failures["Targets"][0]["DeadLetterConfig"]  # one alarmed... one dead-letter queue
    role_id = target["RoleArn"]["Fn::GetAtt"][0]
    assert role_statements(forwarder, role_id) == [{"Action": "events:PutEvents", "Effect": "Allow", "Resource": bus_arn}]
    (trust,) = forwarder["Resources"][role_id]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "events.amazonaws.com"}
    assert set(trust["Condition"]) == {"StringEquals", "ArnEquals"}
    assert trust["Condition"]["StringEquals"] == {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}
    assert {k: render(v) for k, v in trust["Condition"]["ArnEquals"].items()} == {
        "aws:SourceArn": "arn:${AWS::Partition}:events:${AWS::Region}:${AWS::AccountId}:rule/SecretsKmsFailureAuditor-forwarded-changes"}
    (dlq_policy,) = resources(forwarder, "AWS::SQS::QueuePolicy").values()
    senders = {s["Condition"]["ArnEquals"]["aws:SourceArn"]["Fn::GetAtt"][0]
               for s in dlq_policy["Properties"]["PolicyDocument"]["Statement"] if s["Effect"] == "Allow"}
    assert senders == set(resources(forwarder, "AWS::Events::Rule"))


def test_organization_mode_deploys_to_the_audit_account_and_home_region(org_synth):
    stacks = stacks_of(org_synth[3])
    assert set(stacks) == {"SecretsKmsFailureAuditor"}  # no managementAccount: no management stack; no single-account forwarder
    assert stacks["SecretsKmsFailureAuditor"]["environment"] == "aws://111122223333/us-east-1"


def test_management_account_stack_forwards_organizations_and_iam_changes_to_the_central_bus(management_synth):
    _, report, error, outdir = management_synth
    assert error is None, error
    assert [v for p in report.get("pluginReports", []) for v in p["violations"]] == []
    stacks = stacks_of(outdir)
    assert set(stacks) == {"SecretsKmsFailureAuditor", MANAGEMENT_STACK}  # no single-account global stack in organization mode
    assert stacks["SecretsKmsFailureAuditor"]["environment"] == "aws://111122223333/eu-west-1"
    assert stacks[MANAGEMENT_STACK]["environment"] == f"aws://{MANAGEMENT}/{GLOBAL_EVENTS_REGION}"
    # the management account needs no CDK bootstrap: the CLI's credentials, the template inline
    assert "assumeRoleArn" not in stacks[MANAGEMENT_STACK]["properties"]
    assert "stackTemplateAssetObjectUrl" not in stacks[MANAGEMENT_STACK]["properties"]
    management = template_of(outdir, MANAGEMENT_STACK)
    rule_id, props = rule(management, "GlobalChanges")
    assert props["EventPattern"] == GLOBAL_CHANGE_PATTERN and props["State"] == "ENABLED"
    (target,) = props["Targets"]
    bus_arn = {"Fn::Sub": "arn:${AWS::Partition}:events:eu-west-1:111122223333:event-bus/SecretsKmsFailureAuditor-central"}
    assert target["Arn"] == bus_arn and target["RetryPolicy"]["MaximumRetryAttempts"] == 8 and target["DeadLetterConfig"]
    role_id = target["RoleArn"]["Fn::GetAtt"][0]
    assert role_statements(management, role_id) == [{"Action": "events:PutEvents", "Effect": "Allow", "Resource": bus_arn}]
    (trust,) = management["Resources"][role_id]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert set(trust["Condition"]) == {"StringEquals", "ArnEquals"}
    assert render(trust["Condition"]["ArnEquals"]["aws:SourceArn"]).endswith(f":rule/{props['Name']}")
    # the central bus admits it: the management account is a principal of the organization
    central = management_synth[0]
    (policy,) = resources(central, "AWS::Events::EventBusPolicy").values()
    assert policy["Properties"]["Statement"]["Condition"] == {"StringEquals": {"aws:PrincipalOrgID": ORG["id"]}}


def test_organization_without_us_east_1_warns_that_iam_changes_are_not_forwarded(tmp_path):
    _, _, error, outdir = synth({"organization": {**ORG, "regions": ["us-east-1", "eu-west-1"][1:], "homeRegion": "eu-west-1"}}, tmp_path)
    assert error is None, error
    found = [e["data"] for path in outdir.glob("*.metadata.json") for entries in json.loads(path.read_text()).values()
             for e in entries if e["type"] == "aws:cdk:warning" and "organization.regions" in e["data"]]
    assert len(found) == 1 and "us-east-1" in found[0] and "IAM" in found[0]


def test_cdk_nag_and_cfn_lint_stay_clean_in_organization_mode(org_synth, forwarder, tmp_path):
    _, report, error, outdir = org_synth
    assert error is None and [v for p in report.get("pluginReports", []) for v in p["violations"]] == []
    body = tmp_path / "forwarder.template.json"
    body.write_text(json.dumps(forwarder))
    cfn_lint = str(Path(sys.executable).with_name("cfn-lint"))
    result = subprocess.run([cfn_lint, "--ignore-checks", "W3005", "--", *map(str, outdir.glob("*.template.json")), str(body)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


@pytest.mark.integration
def test_member_failures_reach_the_subscriber_once_through_central_bus_and_queue(central, forwarder, aws, monkeypatch):
    """Member bus -> (forwarder rule) -> central bus -> (central rule) -> SQS -> handler batch -> SNS -> subscriber."""
    from auditor.pipeline import Pipeline, State
    from auditor.publish import Publisher
    from demo.envelope import fresh, to_eventbridge

    from ..integration.conftest import make_stack
    from ..unit.conftest import fixture_records

    events, sqs = aws("events"), aws("sqs")
    tag = uuid.uuid4().hex[:6]
    central_bus = events.create_event_bus(Name=f"central-{tag}")["EventBusArn"]
    member_bus = f"member-{tag}"
    events.create_event_bus(Name=member_bus)
    ingest = sqs.create_queue(QueueName=f"ingest-{tag}")["QueueUrl"]
    ingest_arn = sqs.get_queue_attributes(QueueUrl=ingest, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    _, central_rule = rule(central, "OrganizationForwardedFailures")
    events.put_rule(Name="central", EventBusName=f"central-{tag}", EventPattern=json.dumps(central_rule["EventPattern"]), State="ENABLED")
    events.put_targets(Rule="central", EventBusName=f"central-{tag}", Targets=[{"Id": "q", "Arn": ingest_arn}])
    _, member_rule = rule(forwarder, "FailedCalls")
    events.put_rule(Name="forward", EventBusName=member_bus, EventPattern=json.dumps(member_rule["EventPattern"]), State="ENABLED")
    events.put_targets(Rule="forward", EventBusName=member_bus, Targets=[{"Id": "central", "Arn": central_bus}])

    member_records = [fresh([r])[0] for c, p, r, _ in fixture_records()
                      if r.get("recipientAccountId") == "444455556666" and c != "success"]
    for record in member_records:
        envelope = to_eventbridge(record)
        events.put_events(Entries=[{"Source": envelope["source"], "DetailType": envelope["detail-type"],
                                    "Detail": json.dumps(record), "EventBusName": member_bus}])
    batch = []
    while True:
        got = sqs.receive_message(QueueUrl=ingest, MaxNumberOfMessages=10).get("Messages", [])
        if not got:
            break
        batch += [{"messageId": m["MessageId"], "eventSource": "aws:sqs", "body": m["Body"]} for m in got]
    assert len(batch) == len(member_records) >= 5
    batch.insert(2, {"messageId": "garbage", "eventSource": "aws:sqs", "body": "{\"detail\": 42"})

    stack = make_stack(aws)

    class FlakyOnce(Publisher):
        """The first entry of the first PublishBatch fails transiently, as SNS can report per entry."""

        failed = False

        def send(self, notices):
            if not FlakyOnce.failed:
                FlakyOnce.failed = True
                return [ConnectionError("SNS endpoint reset")] + super().send(notices[1:])
            return super().send(notices)

    class Metrics:
        counts: dict = {}

        def count(self, name, value=1):
            self.counts[name] = self.counts.get(name, 0) + value

        def findings(self, service, cause, value):
            self.count("Findings", value)

        def gauge(self, name, value): pass

        seconds = gauge

    class Log:
        def info(self, *a, **k): pass
        warning = error = exception = info

    state = State.create(stack.table, quiet_seconds=1800, update_seconds=900, client=aws("dynamodb"))
    clock = [time.time()]
    pipe = Pipeline(publisher=FlakyOnce(stack.topic_arn, client=aws("sns")), state=state, metrics=Metrics(), logger=Log(),
                    clock=lambda: clock[0])
    import auditor.handler as handler
    monkeypatch.setattr(handler, "_pipeline", pipe)

    class Context:
        function_name, memory_limit_in_mb, aws_request_id = "auditor", 256, "r"
        invoked_function_arn = "arn:aws:lambda:us-east-1:111122223333:function:auditor"

    first = handler.handler({"Records": batch}, Context())
    assert first == {"batchItemFailures": []}  # malformed: dropped and counted; the failed alert stays owed in the table
    before = len(stack.drain())
    clock[0] += 61  # the next scheduled run after a failed send
    handler.handler({"detail-type": "Scheduled Event", "source": "aws.events", "detail": {}}, Context())
    received = stack.drain()
    assert len(received) == 1  # the one that failed, once
    ids = [m.attributes["incident_id"] for m in received]
    assert before >= 2 and len(ids) == len(set(ids))
    assert {m.attributes["status"] for m in received} == {"opened"}
    assert {m.attributes["account"] for m in received} == {"444455556666"}
    assert Metrics.counts["MalformedEvents"] == 1


def test_cfn_lint_is_clean_on_the_management_stack(management_synth):
    outdir = management_synth[3]
    templates = sorted(str(p) for p in outdir.glob("*.template.json"))
    assert len(templates) == 2
    cfn_lint = str(Path(sys.executable).with_name("cfn-lint"))
    result = subprocess.run([cfn_lint, "--ignore-checks", "W3005", "--", *templates], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


@pytest.mark.integration
def test_member_and_management_changes_reach_the_ingestion_queue_through_the_central_bus(management_synth, aws):
    """Member bus -(forwarder change rule)-> central bus -(central change rule)-> ingestion queue, and the
    management account's us-east-1 bus -(its global rule)-> the same central bus (moto server)."""
    from demo.envelope import to_eventbridge
    from demo import scenarios as s

    central, outdir = management_synth[0], management_synth[3]
    (stack_set,) = resources(central, "AWS::CloudFormation::StackSet").values()
    member_forwarder = json.loads(stack_set["Properties"]["TemplateBody"])
    management = template_of(outdir, MANAGEMENT_STACK)
    events, sqs = aws("events"), aws("sqs")
    tag = uuid.uuid4().hex[:6]
    central_arn = events.create_event_bus(Name=f"central-{tag}")["EventBusArn"]
    ingest = sqs.create_queue(QueueName=f"ingest-{tag}")["QueueUrl"]
    ingest_arn = sqs.get_queue_attributes(QueueUrl=ingest, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    _, central_changes = rule(central, "OrganizationForwardedChanges")
    events.put_rule(Name="changes", EventBusName=f"central-{tag}", EventPattern=json.dumps(central_changes["EventPattern"]), State="ENABLED")
    events.put_targets(Rule="changes", EventBusName=f"central-{tag}", Targets=[{"Id": "q", "Arn": ingest_arn}])
    for name, template, prefix in (("member", member_forwarder, "Changes"), ("management", management, "GlobalChanges")):
        bus = f"{name}-{tag}"
        events.create_event_bus(Name=bus)
        _, props = rule(template, prefix)
        events.put_rule(Name="forward", EventBusName=bus, EventPattern=json.dumps(props["EventPattern"]), State="ENABLED")
        events.put_targets(Rule="forward", EventBusName=bus, Targets=[{"Id": "central", "Arn": central_arn}])

    key_change = s.put_key_policy(-900, s.KEY_ARN.replace("111122223333", "444455556666"))
    detached = s.detach_role_policy(-120, "checkout", "arn:aws:iam::444455556666:policy/read-checkout-secrets")
    scp = s.attach_scp(-300, "p-examplescp", "ou-ab12-cdef3456", management=MANAGEMENT)
    sent = {"member": [key_change, detached], "management": [scp, s.put_key_policy(-60)]}  # a KMS change there is not forwarded
    for name, records in sent.items():
        for record in records:
            envelope = to_eventbridge(record)
            events.put_events(Entries=[{"Source": envelope["source"], "DetailType": envelope["detail-type"],
                                        "Detail": json.dumps(record), "EventBusName": f"{name}-{tag}"}])
    arrived = set()
    while batch := sqs.receive_message(QueueUrl=ingest, MaxNumberOfMessages=10).get("Messages", []):
        for m in batch:
            arrived.add(json.loads(m["Body"])["detail"]["eventID"])
            sqs.delete_message(QueueUrl=ingest, ReceiptHandle=m["ReceiptHandle"])
    assert arrived == {key_change["eventID"], detached["eventID"], scp["eventID"]}
