"""Organization mode: the central stack, the forwarder StackSet, and events flowing from a member
bus through the central bus and the queue to the subscriber (moto server)."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from infra.config import ConfigError, load
from infra.organization import forwarder_rule_name
from infra.pattern import DETECTION_PATTERN, RULE_STATE

from .conftest import resources, synth
from .policies import render

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


def test_organization_context_is_validated_with_clear_messages():
    assert load({"organization": json.dumps(ORG)}.get).organization.id == "o-a1b2c3d4e5"  # -c organization='{...}'
    for bad, says in [({**ORG, "id": "a1b2"}, "organization.id"), ({**ORG, "homeRegion": "mars-1"}, "homeRegion"),
                      ({**ORG, "homeRegion": "us-west-2"}, "must be one of"), ({**ORG, "regions": []}, "non-empty list"),
                      ({**ORG, "organizationalUnits": ["finance"]}, "OU ids"), ({**ORG, "extra": 1}, "unknown keys"),
                      ("not json", "expected an object")]:
        with pytest.raises(ConfigError) as err:
            load({"organization": bad}.get)
        assert says in str(err.value)
    long_name = "A" * 118  # fine alone; "<stackName>-forwarders" would exceed the StackSet name's 128
    assert load({"stackName": long_name}.get).stack_name == long_name
    with pytest.raises(ConfigError, match="at most 117"):
        load({"stackName": long_name, "organization": ORG}.get)


def test_single_account_mode_has_no_organization_resources(template):
    assert not resources(template, "AWS::Events::EventBus") and not resources(template, "AWS::CloudFormation::StackSet")


def test_central_bus_admits_only_the_organization(central):
    (policy,) = [p["Properties"] for p in resources(central, "AWS::Events::EventBusPolicy").values()]
    statement = policy["Statement"]
    assert statement["Action"] == "events:PutEvents" and statement["Effect"] == "Allow"
    assert statement["Condition"] == {"StringEquals": {"aws:PrincipalOrgID": "o-a1b2c3d4e5"}}
    (bus,) = resources(central, "AWS::Events::EventBus").values()
    assert bus["Properties"]["Name"] == "SecretsKmsFailureAuditor-central"


def test_central_rule_feeds_the_same_ingestion_queue(central):
    rules = [r["Properties"] for r in resources(central, "AWS::Events::Rule").values()]
    assert len(rules) == 2 and all(r["EventPattern"] == DETECTION_PATTERN for r in rules)
    targets = {r["Targets"][0]["Arn"]["Fn::GetAtt"][0] for r in rules}
    assert len(targets) == 1 and next(iter(targets)).startswith("IngestionEvents")
    on_bus = [r for r in rules if "EventBusName" in r]
    assert len(on_bus) == 1 and on_bus[0]["Targets"][0]["DeadLetterConfig"]


def test_stack_set_auto_deploys_the_forwarder_to_the_ous_in_every_region(central):
    (props,) = [s["Properties"] for s in resources(central, "AWS::CloudFormation::StackSet").values()]
    assert props["PermissionModel"] == "SERVICE_MANAGED"
    assert props["AutoDeployment"] == {"Enabled": True, "RetainStacksOnAccountRemoval": False}
    (group,) = props["StackInstancesGroup"]
    assert group["DeploymentTargets"]["OrganizationalUnitIds"] == ORG["organizationalUnits"]
    assert group["Regions"] == ORG["regions"]
    assert props["CallAs"] == "DELEGATED_ADMIN" and props["Capabilities"] == ["CAPABILITY_IAM"]


def test_central_rule_matches_forwarded_read_only_calls_and_its_dead_letters_are_alarmed(central):
    (rule_id, rule), = [(i, r["Properties"]) for i, r in resources(central, "AWS::Events::Rule").items() if "EventBusName" in r["Properties"]]
    assert rule["State"] == RULE_STATE  # forwarded GetSecretValue/Decrypt failures are read-only management events
    parked = {rule["Targets"][0]["DeadLetterConfig"]["Arn"]["Fn::GetAtt"][0]}
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
    bus_resources = {i for i, r in central["Resources"].items() if r["Type"] in ("AWS::Events::EventBus", "AWS::Events::EventBusPolicy")}
    assert len(bus_resources) == 2 and bus_resources <= set(stack_set["DependsOn"])
    prefs = stack_set["Properties"]["OperationPreferences"]
    assert prefs["ConcurrencyMode"] == "SOFT_FAILURE_TOLERANCE" and prefs["MaxConcurrentPercentage"] == 50


def test_forwarder_rule_role_and_dead_letter_queue(forwarder):
    bus_arn = {"Fn::Sub": "arn:${AWS::Partition}:events:us-east-1:111122223333:event-bus/SecretsKmsFailureAuditor-central"}
    (rule,) = resources(forwarder, "AWS::Events::Rule").values()
    props = rule["Properties"]
    assert props["EventPattern"] == DETECTION_PATTERN
    # Enabled everywhere but where the auditor's own rule reads the default bus (no double delivery).
    (condition,) = forwarder["Conditions"]
    assert props["State"] == {"Fn::If": [condition, "DISABLED", RULE_STATE]}
    assert forwarder["Conditions"][condition] == {"Fn::And": [
        {"Fn::Equals": [{"Ref": "AWS::AccountId"}, ORG["auditAccount"]]},
        {"Fn::Equals": [{"Ref": "AWS::Region"}, ORG["homeRegion"]]}]}
    target = props["Targets"][0]
    assert target["Arn"] == bus_arn and target["RetryPolicy"]["MaximumRetryAttempts"] == 8
    statements = [s for p in resources(forwarder, "AWS::IAM::Policy").values() for s in p["Properties"]["PolicyDocument"]["Statement"]]
    assert statements == [{"Action": "events:PutEvents", "Effect": "Allow", "Resource": bus_arn}]
    (queue,) = resources(forwarder, "AWS::SQS::Queue").values()
    assert queue["Properties"]["SqsManagedSseEnabled"] is True
    assert not forwarder.get("Parameters") and not forwarder.get("Rules")  # no CDK bootstrap needed in member accounts


def test_forwarder_role_trusts_only_eventbridge_acting_for_its_own_rule(forwarder):
    """Confused deputy: EventBridge may assume the role only for this stack instance's forwarder
    rule (aws:SourceArn = the rule ARN, aws:SourceAccount = its account), in whatever member
    account and region the StackSet put it: pseudo parameters, no literal account or region."""
    ((role_id, role),) = resources(forwarder, "AWS::IAM::Role").items()
    (rule,) = resources(forwarder, "AWS::Events::Rule").values()
    assert rule["Properties"]["Targets"][0]["RoleArn"] == {"Fn::GetAtt": [role_id, "Arn"]}
    name = rule["Properties"]["Name"]
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
    from auditor.pipeline import Pipeline
    from auditor.state import State
    from auditor.publish import Publisher
    from auditor.records import to_eventbridge

    from ..integration.conftest import make_stack
    from ..unit.conftest import fixture_records

    events, sqs = aws("events"), aws("sqs")
    tag = uuid.uuid4().hex[:6]
    central_bus = events.create_event_bus(Name=f"central-{tag}")["EventBusArn"]
    member_bus = f"member-{tag}"
    events.create_event_bus(Name=member_bus)
    ingest = sqs.create_queue(QueueName=f"ingest-{tag}")["QueueUrl"]
    ingest_arn = sqs.get_queue_attributes(QueueUrl=ingest, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    central_rule = next(r["Properties"] for r in resources(central, "AWS::Events::Rule").values() if "EventBusName" in r["Properties"])
    events.put_rule(Name="central", EventBusName=f"central-{tag}", EventPattern=json.dumps(central_rule["EventPattern"]), State="ENABLED")
    events.put_targets(Rule="central", EventBusName=f"central-{tag}", Targets=[{"Id": "q", "Arn": ingest_arn}])
    (member_rule,) = [r["Properties"] for r in resources(forwarder, "AWS::Events::Rule").values()]
    events.put_rule(Name="forward", EventBusName=member_bus, EventPattern=json.dumps(member_rule["EventPattern"]), State="ENABLED")
    events.put_targets(Rule="forward", EventBusName=member_bus, Targets=[{"Id": "central", "Arn": central_bus}])

    member_records = [r for c, p, r, _ in fixture_records() if r.get("recipientAccountId") == "444455556666" and c != "success"]
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

        def publish_notices(self, notices):
            if not FlakyOnce.failed:
                FlakyOnce.failed = True
                return [ConnectionError("SNS endpoint reset")] + super().publish_notices(notices[1:])
            return super().publish_notices(notices)

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

    state = State(stack.table, quiet_seconds=1800, update_seconds=900, client=aws("dynamodb"))
    pipe = Pipeline(publisher=FlakyOnce(stack.topic_arn, client=aws("sns")), state=state, metrics=Metrics(), logger=Log())
    import auditor.handler as handler
    monkeypatch.setattr(handler, "_pipeline", pipe)

    class Context:
        function_name, memory_limit_in_mb, aws_request_id = "auditor", 256, "r"
        invoked_function_arn = "arn:aws:lambda:us-east-1:111122223333:function:auditor"

    first = handler.handler({"Records": batch}, Context())
    failed = {f["itemIdentifier"] for f in first["batchItemFailures"]}
    assert len(failed) == 1 and "garbage" not in failed  # malformed: dropped and counted, not retried
    retry = [r for r in batch if r["messageId"] in failed]
    assert handler.handler({"Records": retry}, Context()) == {"batchItemFailures": []}
    received = stack.drain()
    ids = [m.attributes["incident_id"] for m in received]
    assert len(ids) == len(set(ids)) >= 3  # one "opened" per root cause, the failed one once, on its retry
    assert {m.attributes["status"] for m in received} == {"opened"}
    assert {m.attributes["account"] for m in received} == {"444455556666"}
    assert {m.body["region"] for m in received} == {r["awsRegion"] for r in member_records}
    assert Metrics.counts["MalformedEvents"] == 1
