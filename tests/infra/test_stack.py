"""The synthesized template, property by property: what a security review and on-call rely on."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from auditor.contract import CHANGE_EVENTS
from infra.pattern import CHANGE_PATTERN, CHANGE_RULE_STATE, DETECTION_PATTERN, RULE_STATE, change_pattern, detection_pattern

from .conftest import REPO, resources

pytestmark = pytest.mark.infra

FORBIDDEN = {
    "secretsmanager:GetSecretValue", "secretsmanager:BatchGetSecretValue", "secretsmanager:PutSecretValue",
    "secretsmanager:UpdateSecret", "secretsmanager:CreateSecret", "secretsmanager:DeleteSecret",
    "secretsmanager:PutResourcePolicy", "secretsmanager:RotateSecret", "kms:Encrypt", "kms:ReEncrypt*",
    "kms:CreateKey", "kms:PutKeyPolicy", "kms:ScheduleKeyDeletion", "kms:DisableKey", "kms:CreateGrant",
}


def statements(template: dict) -> list[dict]:
    out = []
    for res in template["Resources"].values():
        if res["Type"] in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            out += res["Properties"]["PolicyDocument"]["Statement"]
        if res["Type"] == "AWS::IAM::Role":
            for policy in res["Properties"].get("Policies", []):
                out += policy["PolicyDocument"]["Statement"]
    return out


def actions(stmt: dict) -> list[str]:
    a = stmt.get("Action", [])
    return [a] if isinstance(a, str) else a


def function(template: dict) -> dict:
    fns = {k: v for k, v in resources(template, "AWS::Lambda::Function").items()
           if v["Properties"].get("Handler") == "auditor.handler.handler"}
    assert len(fns) == 1
    return next(iter(fns.values()))["Properties"]


def pattern_rules(template: dict) -> dict[str, dict]:
    """Logical id -> Properties of every rule with an event pattern (the schedule has none)."""
    return {k: r["Properties"] for k, r in resources(template, "AWS::Events::Rule").items() if "EventPattern" in r["Properties"]}


def test_two_rules_one_for_failures_one_for_changes(template):
    rules = pattern_rules(template)
    assert sorted(k.rstrip("0123456789ABCDEF") for k in rules) == ["DetectionChanges", "DetectionFailedCalls"]
    (failures,) = [p for k, p in rules.items() if k.startswith("DetectionFailedCalls")]
    assert failures["State"] == RULE_STATE == "ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS"  # read-only calls included
    assert failures["EventPattern"] == DETECTION_PATTERN == detection_pattern(template)
    assert failures["EventPattern"]["$or"][0]["detail"] == {"errorCode": [{"exists": True}]}
    (changes,) = [p for k, p in rules.items() if k.startswith("DetectionChanges")]
    assert changes["State"] == CHANGE_RULE_STATE == "ENABLED"  # write calls: no need for read-only management events
    assert changes["EventPattern"] == CHANGE_PATTERN == change_pattern(template)


def test_the_change_rule_matches_every_change_event_and_only_successful_calls(template):
    pattern = change_pattern(template)
    detail = pattern["detail"]
    assert detail["errorCode"] == [{"exists": False}]
    assert set(detail["eventSource"]) == set(CHANGE_EVENTS)
    assert set(detail["eventName"]) == {name for names in CHANGE_EVENTS.values() for name in names}
    assert set(pattern["source"]) == {"aws." + source.split(".")[0] for source in CHANGE_EVENTS}
    assert pattern["detail-type"] == ["AWS API Call via CloudTrail"]


#: EventBridge's quota on an event pattern's size (characters), unless raised for the account.
PATTERN_LIMIT = 2048


@pytest.mark.parametrize("which", ["template", "full_template"])
def test_every_rule_pattern_fits_eventbridges_size_limit(which, request):
    rules = pattern_rules(request.getfixturevalue(which))
    assert len(rules) == 2
    for logical_id, props in rules.items():
        size = len(json.dumps(props["EventPattern"], separators=(",", ":")))
        assert size <= PATTERN_LIMIT, (logical_id, size)
        # Even as CloudFormation might spell it (with spaces), with room for a few more event names.
        assert len(json.dumps(props["EventPattern"])) <= PATTERN_LIMIT - 200, logical_id


def test_both_rules_deliver_to_the_ingestion_queue_with_retries_and_an_encrypted_dead_letter_queue(template):
    rules = pattern_rules(template)
    dead_letters = set()
    for props in rules.values():
        (target,) = props["Targets"]
        assert target["RetryPolicy"] == {"MaximumEventAgeInSeconds": 7200, "MaximumRetryAttempts": 8}
        assert target["Arn"]["Fn::GetAtt"][0].startswith("IngestionEvents")
        dlq_id = target["DeadLetterConfig"]["Arn"]["Fn::GetAtt"][0]
        assert template["Resources"][dlq_id]["Properties"]["SqsManagedSseEnabled"] is True
        dead_letters.add(dlq_id)
    assert len(dead_letters) == 1  # one UndeliveredEvents queue, alarmed


def test_the_schedule_invokes_the_function_every_minute_and_nothing_else_may(template):
    (rule_id, rule), = [(k, r["Properties"]) for k, r in resources(template, "AWS::Events::Rule").items()
                        if "ScheduleExpression" in r["Properties"]]
    assert rule["ScheduleExpression"] == "rate(1 minute)" and rule["State"] == "ENABLED"
    (target,) = rule["Targets"]
    fn_id = next(k for k, f in resources(template, "AWS::Lambda::Function").items()
                 if f["Properties"].get("Handler") == "auditor.handler.handler")
    assert target["Arn"] == {"Fn::GetAtt": [fn_id, "Arn"]}
    assert "Input" not in target and "InputPath" not in target and "InputTransformer" not in target  # the Scheduled Event itself
    # EventBridge does not retry a tick: the next one, a minute later, does the same work.
    assert target["RetryPolicy"] == {"MaximumRetryAttempts": 0, "MaximumEventAgeInSeconds": 60}
    # The only way in from outside: this rule (aws:SourceArn), no other rule, account or service.
    (permission,) = [p["Properties"] for p in resources(template, "AWS::Lambda::Permission").values()]
    assert permission["Action"] == "lambda:InvokeFunction" and permission["Principal"] == "events.amazonaws.com"
    assert permission["SourceArn"] == {"Fn::GetAtt": [rule_id, "Arn"]}
    assert permission["FunctionName"] == {"Fn::GetAtt": [fn_id, "Arn"]}
    # Lambda does not retry a failed scheduled run either, nor keep one waiting more than a minute.
    (invoke,) = [c["Properties"] for c in resources(template, "AWS::Lambda::EventInvokeConfig").values()]
    assert invoke["FunctionName"] == {"Ref": fn_id} and invoke["Qualifier"] == "$LATEST"
    assert (invoke["MaximumRetryAttempts"], invoke["MaximumEventAgeInSeconds"]) == (0, 60)
    assert "DestinationConfig" not in invoke


def test_the_scheduled_event_is_what_the_handler_resolves_incidents_on():
    """The rule sends EventBridge's scheduled event unchanged; its detail-type is the one the handler tests."""
    import inspect

    from auditor import handler
    from auditor.contract import SCHEDULED_EVENT

    assert SCHEDULED_EVENT == "Scheduled Event"
    assert "SCHEDULED_EVENT" in inspect.getsource(handler.handler)


def test_function_consumes_the_queue_in_batches_with_partial_failures_and_a_concurrency_cap(template):
    (mapping,) = [m["Properties"] for m in resources(template, "AWS::Lambda::EventSourceMapping").values()]
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["ScalingConfig"] == {"MaximumConcurrency": 5}
    assert (mapping["BatchSize"], mapping["MaximumBatchingWindowInSeconds"]) == (100, 5)
    queue = template["Resources"][mapping["EventSourceArn"]["Fn::GetAtt"][0]]["Properties"]
    assert queue["RedrivePolicy"]["maxReceiveCount"] == 5
    assert queue["VisibilityTimeout"] == 180 and queue["SqsManagedSseEnabled"] is True


def test_every_queue_is_encrypted_and_tls_only_and_dead_letters_are_kept_14_days(template):
    queues = resources(template, "AWS::SQS::Queue")
    assert len(queues) == 3
    for logical_id, q in queues.items():
        assert q["Properties"]["SqsManagedSseEnabled"] is True
        if "RedrivePolicy" not in q["Properties"]:
            assert q["Properties"]["MessageRetentionPeriod"] == 14 * 24 * 3600, logical_id
    policies = json.dumps(resources(template, "AWS::SQS::QueuePolicy"))
    assert policies.count('"aws:SecureTransport": "false"') >= 3


def test_function_runtime_layer_tracing_and_environment(template):
    fn = function(template)
    assert (fn["Runtime"], fn["Architectures"], fn["TracingConfig"]) == ("python3.13", ["arm64"], {"Mode": "Active"})
    assert fn["MemorySize"] == 256 and fn["Timeout"] == 30
    env = fn["Environment"]["Variables"]
    assert set(env) == {"FINDINGS_TOPIC_ARN", "DEDUP_TABLE_NAME", "INCIDENT_QUIET_SECONDS", "INCIDENT_UPDATE_SECONDS",
                        "CHANGE_RETENTION_DAYS", "CONSISTENCY_WINDOW_SECONDS", "SIMULATE_POLICIES", "POWERTOOLS_SERVICE_NAME",
                        "POWERTOOLS_METRICS_NAMESPACE", "POWERTOOLS_LOG_LEVEL", "INCIDENT_BUS_NAME", "AUDITOR_TIMEOUT_SECONDS"}
    # the incidents bus by its name, a literal (docs/events.md): the stack names it <stackName>-incidents
    assert env["INCIDENT_BUS_NAME"] == "SecretsKmsFailureAuditor-incidents"
    (bus,) = resources(template, "AWS::Events::EventBus").values()
    assert bus["Properties"]["Name"] == env["INCIDENT_BUS_NAME"] and "Policy" not in bus["Properties"]
    assert (env["INCIDENT_QUIET_SECONDS"], env["INCIDENT_UPDATE_SECONDS"], env["CHANGE_RETENTION_DAYS"]) == ("1800", "900", "7")
    assert env["POWERTOOLS_METRICS_NAMESPACE"] == "SecretsKmsAuditor" and env["POWERTOOLS_SERVICE_NAME"] == "secrets-kms-auditor"
    (table_id,) = resources(template, "AWS::DynamoDB::Table")
    assert env["FINDINGS_TOPIC_ARN"] == {"Ref": next(iter(resources(template, "AWS::SNS::Topic")))}
    assert env["DEDUP_TABLE_NAME"] == {"Ref": table_id}  # the incident state table, under the variable's first name
    pin = next(l for l in (REPO / "requirements.txt").read_text().splitlines() if l.startswith("aws-lambda-powertools=="))
    version = pin.split("==")[1]
    layer_param = fn["Layers"][0]["Ref"]
    assert template["Parameters"][layer_param]["Default"] == f"/aws/service/powertools/python/arm64/python3.13/{version}"


def test_log_group_has_retention(template):
    groups = resources(template, "AWS::Logs::LogGroup")
    assert [g["Properties"]["RetentionInDays"] for g in groups.values()] == [30]


def test_topic_is_encrypted_with_a_rotating_customer_managed_key_alarms_can_use(template):
    topic = next(iter(resources(template, "AWS::SNS::Topic").values()))["Properties"]
    key_id = topic["KmsMasterKeyId"]["Fn::GetAtt"][0]
    key = template["Resources"][key_id]["Properties"]
    assert key["EnableKeyRotation"] is True
    principals = json.dumps(key["KeyPolicy"])
    assert "cloudwatch.amazonaws.com" in principals
    policy = json.dumps(resources(template, "AWS::SNS::TopicPolicy"))
    assert '"aws:SecureTransport": "false"' in policy and '"Effect": "Deny"' in policy


def test_alarms_may_publish_to_the_topic_its_own_policy_replaces_the_default_one(template):
    """A topic policy replaces SNS's default policy, so CloudWatch alarm actions need an Allow
    in it ("...alarm:X is not authorized to perform: SNS:Publish" otherwise)."""
    topic_id = next(iter(resources(template, "AWS::SNS::Topic")))
    (policy,) = resources(template, "AWS::SNS::TopicPolicy").values()
    assert policy["Properties"]["Topics"] == [{"Ref": topic_id}]
    allows = [s for s in policy["Properties"]["PolicyDocument"]["Statement"] if s["Effect"] == "Allow"]
    (alarms,) = [s for s in allows if s["Principal"] == {"Service": "cloudwatch.amazonaws.com"}]
    assert alarms["Action"] == "sns:Publish" and alarms["Resource"] == {"Ref": topic_id}
    source = json.dumps(alarms["Condition"]["ArnLike"]["aws:SourceArn"])
    assert ":cloudwatch:" in source and "AWS::AccountId" in source and ":alarm:*" in source
    # both keys of CloudWatch's confused-deputy example: the alarms' account, not only their ARN
    assert alarms["Condition"]["StringEquals"] == {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}
    assert set(alarms["Condition"]) == {"ArnLike", "StringEquals"}
    assert len(allows) == 1  # nobody else is let in through the topic policy


def test_incident_state_table(template):
    ((table_id, table),) = [(k, t["Properties"]) for k, t in resources(template, "AWS::DynamoDB::Table").items()]
    assert table_id.startswith("IncidentStateTable")
    assert template["Outputs"]["StateTableName"]["Value"] == {"Ref": table_id}
    assert "DedupTableName" not in template["Outputs"]
    assert table["BillingMode"] == "PAY_PER_REQUEST"
    assert table["KeySchema"] == [{"AttributeName": "pk", "KeyType": "HASH"}]
    assert table["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    assert table["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    assert table["SSESpecification"]["SSEEnabled"] is True


@pytest.mark.parametrize("which", ["template", "full_template"])
def test_least_privilege_no_forbidden_or_wildcard_actions(which, request):
    tpl = request.getfixturevalue(which)
    for stmt in statements(tpl):
        for action in actions(stmt):
            assert action != "*" and not action.endswith(":*"), stmt
            if stmt.get("Effect", "Allow") == "Allow":
                assert action not in FORBIDDEN, stmt
                assert action != "kms:Decrypt" or "TopicKey" in json.dumps(stmt["Resource"]), stmt


def test_function_role_statements(template):
    role_policy = [s for s in statements(template) if s.get("Sid")]
    by_sid = {s["Sid"]: s for s in role_policy}
    assert actions(by_sid["PublishFindings"]) == ["sns:Publish"] or by_sid["PublishFindings"]["Action"] == "sns:Publish"
    assert sorted(actions(by_sid["UseTopicKeyForPublish"])) == ["kms:Decrypt", "kms:GenerateDataKey*"]
    assert actions(by_sid["DescribeSecretsNeverRead"]) in (["secretsmanager:DescribeSecret"],) or by_sid["DescribeSecretsNeverRead"]["Action"] == "secretsmanager:DescribeSecret"
    assert "SimulatePolicies" not in by_sid  # opt-in only
    all_actions = {a for s in statements(template) for a in actions(s)}
    assert "cloudwatch:PutMetricData" not in all_actions  # metrics go out as EMF


def test_policy_simulation_is_opt_in(full_template):
    sids = {s.get("Sid") for s in statements(full_template)}
    assert "SimulatePolicies" in sids


def test_subscriptions_and_chat_channel_from_context(full_template):
    subs = [s["Properties"] for s in resources(full_template, "AWS::SNS::Subscription").values()]
    assert {(s["Protocol"], s["Endpoint"]) for s in subs} == {("email", "oncall@example.com"), ("https", "https://hooks.example.com/aws")}
    slack = next(iter(resources(full_template, "AWS::Chatbot::SlackChannelConfiguration").values()))["Properties"]
    assert slack["SlackChannelId"] == "C0123ABCD" and len(slack["SnsTopicArns"]) == 1
    assert "AWSDenyAll" in json.dumps(slack["GuardrailPolicies"])


def test_opt_in_trail_records_management_events_into_a_private_encrypted_expiring_bucket(template, full_template):
    assert not resources(template, "AWS::CloudTrail::Trail")
    trail = next(iter(resources(full_template, "AWS::CloudTrail::Trail").values()))["Properties"]
    assert trail["IsMultiRegionTrail"] is True and trail["IsLogging"] is True
    bucket_id = trail["S3BucketName"]["Ref"]
    bucket = full_template["Resources"][bucket_id]["Properties"]
    assert bucket["PublicAccessBlockConfiguration"]["BlockPublicPolicy"] is True
    assert bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert bucket["LifecycleConfiguration"]["Rules"][0]["ExpirationInDays"] == 365


def dashboard_body(template: dict) -> str:
    body = next(iter(resources(template, "AWS::CloudWatch::Dashboard").values()))["Properties"]["DashboardBody"]
    return "".join(p if isinstance(p, str) else json.dumps(p) for p in body["Fn::Join"][1])


def test_dashboard_widgets(template):
    body = dashboard_body(template)
    for title in ("Incidents opened, updated and resolved", "Open incidents", "Time to resolve (s)", "Incident log",
                  "Busiest incidents", "Findings by cause", "Findings by service", "Top principals", "Top resources",
                  "Records and notifications", "Auditor failures", "Function errors and throttles", "Function duration",
                  "Incident schedule", "Dead-letter queue depth", "Ingestion backlog", "Findings by account and region"):
        assert f'"title":"{title}"' in body, title
    assert 'MetricName=\\"Findings\\"' in body and "AwsService" in body and "Cause" in body
    assert "stats count(*) as findings by finding.principal.arn" in body
    assert '"stat":"p99"' in body


def test_alarms_publish_to_the_findings_topic(template):
    alarms = resources(template, "AWS::CloudWatch::Alarm")
    names = {a["Properties"]["MetricName"] for a in alarms.values() if "MetricName" in a["Properties"]}
    assert names == {"Errors", "ApproximateNumberOfMessagesVisible", "ApproximateAgeOfOldestMessage", "FindingsTotal",
                     "StateUnavailable", "FailedInvocations"}
    assert len(alarms) == 7
    topic_id = next(iter(resources(template, "AWS::SNS::Topic")))
    for a in alarms.values():
        assert a["Properties"]["AlarmActions"] == [{"Ref": topic_id}]
        assert a["Properties"]["TreatMissingData"] == "notBreaching"


@pytest.mark.parametrize("which", ["default_synth", "full_synth"])
def test_cdk_nag_aws_solutions_has_no_unacknowledged_findings(which, request):
    template, report, error, _ = request.getfixturevalue(which)
    assert error is None, error
    violations = [v["ruleName"] for p in report.get("pluginReports", []) for v in p["violations"]]
    assert violations == []


@pytest.mark.parametrize("which", ["default_synth", "full_synth"])
def test_cfn_lint_has_no_errors(which, request):
    outdir = request.getfixturevalue(which)[3]
    templates = [str(p) for p in outdir.glob("*.template.json")]
    cfn_lint = str(Path(sys.executable).with_name("cfn-lint"))
    result = subprocess.run([cfn_lint, "--ignore-checks", "W3005", "--", *templates],
                            capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stdout + result.stderr
