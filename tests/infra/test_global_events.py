"""IAM and Organizations changes reach an auditor in any region. EventBridge delivers their
CloudTrail events in us-east-1 only: a single-account auditor elsewhere gets a small stack in
us-east-1 that forwards them to its region's default bus (deployed with `cdk deploy --all`);
in us-east-1 nothing is added; when the region is unknown at synthesis, a warning says so."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from auditor.contract import CHANGE_EVENTS, GLOBAL_EVENT_SOURCES, GLOBAL_EVENTS_REGION
from infra.pattern import CHANGE_PATTERN, GLOBAL_CHANGE_PATTERN

from .conftest import REPO, resources, synth, template_of
from .policies import render, role_statements

pytestmark = pytest.mark.infra

ACCOUNT, REGION = "111122223333", "eu-west-1"
CLI_ENVIRON = {"CDK_DEFAULT_ACCOUNT": ACCOUNT, "CDK_DEFAULT_REGION": REGION}  # what the CDK CLI sets from your credentials
GLOBAL_STACK = "SecretsKmsFailureAuditor-global-changes"


@pytest.fixture(scope="session")
def regional_synth(tmp_path_factory):
    """As `cdk deploy --all` synthesizes it with credentials for eu-west-1."""
    return synth(None, tmp_path_factory.mktemp("cdk-eu-west-1"), environ=CLI_ENVIRON)


@pytest.fixture(scope="session")
def global_stack(regional_synth):
    assert regional_synth[2] is None, regional_synth[2]
    return template_of(regional_synth[3], GLOBAL_STACK)


def manifest_stacks(outdir: Path) -> dict[str, dict]:
    manifest = json.loads((outdir / "manifest.json").read_text())
    return {k: v for k, v in manifest["artifacts"].items() if v["type"] == "aws:cloudformation:stack"}


def warnings(outdir: Path) -> list[str]:
    out = []
    for path in outdir.glob("*.metadata.json"):
        for entries in json.loads(path.read_text()).values():
            out += [e["data"] for e in entries if e["type"] == "aws:cdk:warning"]
    return out


def test_the_global_pattern_is_the_iam_and_organizations_part_of_the_change_pattern():
    assert set(GLOBAL_CHANGE_PATTERN["detail"]["eventSource"]) == set(GLOBAL_EVENT_SOURCES) == {"iam.amazonaws.com", "organizations.amazonaws.com"}
    assert set(GLOBAL_CHANGE_PATTERN["detail"]["eventName"]) == {n for s in GLOBAL_EVENT_SOURCES for n in CHANGE_EVENTS[s]}
    assert set(GLOBAL_CHANGE_PATTERN["detail"]["eventName"]) <= set(CHANGE_PATTERN["detail"]["eventName"])
    assert GLOBAL_CHANGE_PATTERN["detail"]["errorCode"] == [{"exists": False}] and GLOBAL_EVENTS_REGION == "us-east-1"


def test_a_known_region_other_than_us_east_1_adds_the_forwarding_stack_in_us_east_1(regional_synth):
    _, report, error, outdir = regional_synth
    assert error is None, error
    stacks = manifest_stacks(outdir)
    assert set(stacks) == {"SecretsKmsFailureAuditor", GLOBAL_STACK}
    assert stacks["SecretsKmsFailureAuditor"]["environment"] == f"aws://{ACCOUNT}/{REGION}"
    assert stacks[GLOBAL_STACK]["environment"] == f"aws://{ACCOUNT}/{GLOBAL_EVENTS_REGION}"
    # No bootstrap needed in us-east-1: no asset, no bootstrap role, the template goes to CloudFormation inline.
    props = stacks[GLOBAL_STACK]["properties"]
    assert "assumeRoleArn" not in props and "stackTemplateAssetObjectUrl" not in props
    assert (outdir / f"{GLOBAL_STACK}.template.json").stat().st_size < 50 * 1024
    assert not any("not known at synthesis" in w for w in warnings(outdir))
    assert [v for p in report.get("pluginReports", []) for v in p["violations"]] == []


def test_its_rule_forwards_iam_and_organizations_changes_to_the_auditors_default_bus(global_stack):
    ((rule_id, rule),) = [(k, r["Properties"]) for k, r in resources(global_stack, "AWS::Events::Rule").items()]
    assert rule["EventPattern"] == GLOBAL_CHANGE_PATTERN and rule["State"] == "ENABLED"
    assert rule["Name"] == "SecretsKmsFailureAuditor-global-changes"
    (target,) = rule["Targets"]
    bus = {"Fn::Sub": f"arn:${{AWS::Partition}}:events:{REGION}:${{AWS::AccountId}}:event-bus/default"}
    assert target["Arn"] == bus
    assert target["RetryPolicy"] == {"MaximumRetryAttempts": 8, "MaximumEventAgeInSeconds": 7200}
    dlq = global_stack["Resources"][target["DeadLetterConfig"]["Arn"]["Fn::GetAtt"][0]]["Properties"]
    assert dlq["SqsManagedSseEnabled"] is True and dlq["MessageRetentionPeriod"] == 14 * 86400
    # The role may put events on that bus and nothing else...
    role_id = target["RoleArn"]["Fn::GetAtt"][0]
    assert role_statements(global_stack, role_id) == [{"Action": "events:PutEvents", "Effect": "Allow", "Resource": bus}]
    # ...and only EventBridge may assume it, for this rule of this account (confused deputy).
    (trust,) = global_stack["Resources"][role_id]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "events.amazonaws.com"} and trust["Action"] == "sts:AssumeRole"
    assert set(trust["Condition"]) == {"StringEquals", "ArnEquals"}
    assert trust["Condition"]["StringEquals"] == {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}
    assert {k: render(v) for k, v in trust["Condition"]["ArnEquals"].items()} == {
        "aws:SourceArn": "arn:${AWS::Partition}:events:${AWS::Region}:${AWS::AccountId}:rule/SecretsKmsFailureAuditor-global-changes"}
    # Only that rule may park events in the dead-letter queue, over TLS.
    (policy,) = resources(global_stack, "AWS::SQS::QueuePolicy").values()
    (allow,) = [s for s in policy["Properties"]["PolicyDocument"]["Statement"] if s["Effect"] == "Allow"]
    assert allow["Condition"] == {"ArnEquals": {"aws:SourceArn": {"Fn::GetAtt": [rule_id, "Arn"]}}}


def test_the_auditors_change_rule_reads_the_default_bus_the_changes_arrive_on(regional_synth):
    main = regional_synth[0]
    (changes,) = [r["Properties"] for k, r in resources(main, "AWS::Events::Rule").items() if k.startswith("DetectionChanges")]
    assert "EventBusName" not in changes  # the default bus
    assert set(GLOBAL_CHANGE_PATTERN["detail"]["eventName"]) <= set(changes["EventPattern"]["detail"]["eventName"])


def test_the_dashboard_graphs_the_us_east_1_dead_letter_queue(regional_synth, global_stack):
    from .dashboard import metric_rows, widgets

    (queue,) = resources(global_stack, "AWS::SQS::Queue").values()
    rows = metric_rows(widgets(regional_synth[0])["Dead-letter queue depth"])
    remote = [r for r in rows if isinstance(r[-1], dict) and r[-1].get("region") == GLOBAL_EVENTS_REGION]
    assert [(r[0], r[1], r[2], r[3]) for r in remote] == [
        ("AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", queue["Properties"]["QueueName"])]


def test_the_stack_is_the_same_whether_its_environment_is_known_or_not(regional_synth, template):
    """The same resources; the function's policies name the account as a pseudo-parameter either
    way (the cdk-nag acknowledgments name exactly those resources)."""
    main = regional_synth[0]
    assert set(main["Resources"]) == set(template["Resources"])
    policies = [r for r in main["Resources"].values() if r["Type"] == "AWS::IAM::Policy"]
    assert policies and ACCOUNT not in json.dumps(policies)


@pytest.mark.parametrize("context, environ", [({"region": GLOBAL_EVENTS_REGION}, {}),
                                              ({}, {"CDK_DEFAULT_ACCOUNT": ACCOUNT, "CDK_DEFAULT_REGION": GLOBAL_EVENTS_REGION})])
def test_in_us_east_1_nothing_is_added(tmp_path, context, environ):
    _, _, error, outdir = synth(context, tmp_path, environ=environ)
    assert error is None, error
    assert set(manifest_stacks(outdir)) == {"SecretsKmsFailureAuditor"}
    assert not any("not known at synthesis" in w for w in warnings(outdir))


def test_the_region_from_context_wins_over_the_clis(tmp_path):
    _, _, error, outdir = synth({"region": "ap-southeast-2", "account": "444455556666"}, tmp_path, environ=CLI_ENVIRON)
    assert error is None, error
    stacks = manifest_stacks(outdir)
    assert stacks["SecretsKmsFailureAuditor"]["environment"] == "aws://444455556666/ap-southeast-2"
    assert stacks[GLOBAL_STACK]["environment"] == "aws://444455556666/us-east-1"
    target = next(iter(resources(template_of(outdir, GLOBAL_STACK), "AWS::Events::Rule").values()))["Properties"]["Targets"][0]
    assert ":events:ap-southeast-2:" in target["Arn"]["Fn::Sub"]


def test_an_unknown_region_warns_and_says_how_to_set_it(default_synth):
    outdir = default_synth[3]
    assert set(manifest_stacks(outdir)) == {"SecretsKmsFailureAuditor"}
    (warning,) = [w for w in warnings(outdir) if "not known at synthesis" in w]
    for hint in ("us-east-1", "CDK_DEFAULT_REGION", "'region'", "cdk deploy --all", "IAM"):
        assert hint in warning, hint


def test_a_long_stack_name_that_leaves_no_room_for_the_suffix_is_a_clear_error(tmp_path):
    from app import build, new_app
    from infra.config import ConfigError

    app = new_app(str(tmp_path), {"stackName": "A" * 120})
    with pytest.raises(ConfigError, match="at most 113"):
        build(app, CLI_ENVIRON)


def test_cfn_lint_is_clean_on_every_template_of_the_regional_synthesis(regional_synth):
    outdir = regional_synth[3]
    templates = [str(p) for p in outdir.glob("*.template.json")]
    assert len(templates) == 2
    cfn_lint = str(Path(sys.executable).with_name("cfn-lint"))
    result = subprocess.run([cfn_lint, "--ignore-checks", "W3005", "--", *templates], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.integration
def test_an_iam_change_travels_from_us_east_1_to_the_auditors_queue_and_nothing_else_does(global_stack, regional_synth, aws):
    """us-east-1 default bus -(global rule)-> eu-west-1 default bus -(change rule)-> ingestion queue, on moto
    (each region's default bus stood in for by a bus of its own)."""
    from demo.envelope import to_eventbridge
    from demo import scenarios as s

    events, sqs = aws("events"), aws("sqs")
    tag = uuid.uuid4().hex[:6]
    east, home = f"east-{tag}", f"home-{tag}"
    home_arn = events.create_event_bus(Name=home)["EventBusArn"]
    events.create_event_bus(Name=east)
    queue = sqs.create_queue(QueueName=f"ingest-{tag}")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    (forwarder,) = [r["Properties"] for r in resources(global_stack, "AWS::Events::Rule").values()]
    events.put_rule(Name="global", EventBusName=east, EventPattern=json.dumps(forwarder["EventPattern"]), State="ENABLED")
    events.put_targets(Rule="global", EventBusName=east, Targets=[{"Id": "home", "Arn": home_arn}])
    (changes,) = [r["Properties"] for k, r in resources(regional_synth[0], "AWS::Events::Rule").items() if k.startswith("DetectionChanges")]
    events.put_rule(Name="changes", EventBusName=home, EventPattern=json.dumps(changes["EventPattern"]), State="ENABLED")
    events.put_targets(Rule="changes", EventBusName=home, Targets=[{"Id": "q", "Arn": queue_arn}])

    detached = s.detach_role_policy(-120, "checkout", "arn:aws:iam::111122223333:policy/read-checkout-secrets")
    failed_detach = dict(detached, eventID=str(uuid.uuid4()), errorCode="AccessDenied", errorMessage="not authorized")
    key_change = s.put_key_policy(-900)  # regional: the auditor's own region sees it, us-east-1 must not forward it
    for record in (detached, failed_detach, key_change):
        envelope = to_eventbridge(record)
        events.put_events(Entries=[{"Source": envelope["source"], "DetailType": envelope["detail-type"],
                                    "Detail": json.dumps(record), "EventBusName": east}])
    arrived = []
    while batch := sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", []):
        for m in batch:
            arrived.append(json.loads(m["Body"])["detail"]["eventID"])
            sqs.delete_message(QueueUrl=queue, ReceiptHandle=m["ReceiptHandle"])
    assert arrived == [detached["eventID"]]
