"""Incidents on EventBridge and the on-call tools, read from synthesized templates: the incidents
bus always; PagerDuty (forwarder function, rules, dead-letter queue, alarm) and Opsgenie
(connection, API destinations, rules, dead-letter queue, alarm) only when configured; no key in
any template; least privilege; cdk-nag and cfn-lint clean; and what each synthesized target
sends for real incident events and changes (the documented input rules, simulated locally)."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest

from auditor import pagerduty_forwarder as forwarder
from auditor.contract import CHANGE_EVENTS, ForwarderEnv, IncidentEvent
from auditor.incident_event import incident_event
from demo import scenarios as s
from infra.oncall import CHANGE_RECORD, FORWARDER_TIMEOUT, INCIDENT_ID, OPSGENIE_BODY, PAGERDUTY_BODY, delivery_age
from infra.pattern import CHANGE_PATTERN, change_rules

from ..unit import oncall_shapes as shapes
from ..unit.eventbridge_input import api_destination_request, cloudtrail_event, envelope, matches, target_input
from ..unit.incident_samples import scenario_notices
from .conftest import FAKE_OPSGENIE_KEY, FAKE_PAGERDUTY_KEY, REPO, resources
from .policies import actions, as_list, every_statement, grants, render, role_statements, text
from .test_least_privilege import FORBIDDEN

pytestmark = pytest.mark.infra

OPSGENIE_ARN = "arn:aws:secretsmanager:eu-west-1:111122223333:secret:oncall/opsgenie-AbCdEf"
KMS_KEY = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
TOOL_TYPES = ("AWS::Events::Connection", "AWS::Events::ApiDestination", "AWS::Lambda::EventInvokeConfig")


def rules_on_bus(template: dict, bus_prefix: str) -> dict[str, dict]:
    (bus_id,) = [k for k in resources(template, "AWS::Events::EventBus") if k.startswith(bus_prefix)]
    return {k: r["Properties"] for k, r in resources(template, "AWS::Events::Rule").items()
            if r["Properties"].get("EventBusName") == {"Ref": bus_id}}


def forwarder_fn(template: dict) -> tuple[str, dict]:
    (item,) = [(k, f["Properties"]) for k, f in resources(template, "AWS::Lambda::Function").items()
               if f["Properties"].get("Handler") == "auditor.pagerduty_forwarder.handler"]
    return item


def by_prefix(template: dict, kind: str, prefix: str) -> tuple[str, dict]:
    (item,) = [(k, r["Properties"]) for k, r in resources(template, kind).items() if k.startswith(prefix)]
    return item


def strings(node) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [x for k, v in node.items() for x in strings(k) + strings(v)]
    if isinstance(node, list):
        return [x for v in node for x in strings(v)]
    return []


# ---- only when configured ------------------------------------------------------------------------
@pytest.mark.parametrize("which", ["template", "full_template"])
def test_without_tools_there_is_the_incidents_bus_and_nothing_else(which, request):
    template = request.getfixturevalue(which)
    assert [b["Properties"]["Name"] for b in resources(template, "AWS::Events::EventBus").values()] in (
        [["SecretsKmsFailureAuditor-incidents"], ["AuditorUnderTest-incidents"]])
    assert rules_on_bus(template, "IncidentsBus") == {}
    for kind in TOOL_TYPES:
        assert not resources(template, kind) or kind == "AWS::Lambda::EventInvokeConfig" and len(resources(template, kind)) == 1
    assert [f["Properties"]["Handler"] for f in resources(template, "AWS::Lambda::Function").values()
            if "Handler" in f["Properties"]] == ["auditor.handler.handler"]
    assert not [k for k in template["Resources"] if k.startswith("OnCall")]
    assert "secretsmanager:GetSecretValue" not in text(template)
    assert template["Outputs"]["IncidentBusName"]["Value"].endswith("-incidents")


def test_pagerduty_alone_brings_its_forwarder_rule_queue_and_alarm_and_nothing_of_opsgenie(pagerduty_only_synth):
    template, report, error, _ = pagerduty_only_synth
    assert error is None, error
    assert not resources(template, "AWS::Events::Connection") and not resources(template, "AWS::Events::ApiDestination")
    (rule,) = rules_on_bus(template, "IncidentsBus").values()
    (target,) = rule["Targets"]
    assert target["InputPath"] == PAGERDUTY_BODY and target["Arn"] == {"Fn::GetAtt": [forwarder_fn(template)[0], "Arn"]}
    # no change events unless asked: the only change rule is the auditor's own
    assert [k for k, r in resources(template, "AWS::Events::Rule").items()
            if r["Properties"].get("EventPattern") == CHANGE_PATTERN] == [k for k in resources(template, "AWS::Events::Rule")
                                                                          if k.startswith("DetectionChanges")]
    queue_id, _ = by_prefix(template, "AWS::SQS::Queue", "OnCallPagerDutyUndelivered")
    assert alarmed_queues(template) >= {queue_id}
    assert [v["ruleName"] for p in report.get("pluginReports", []) for v in p["violations"]] == []


def alarmed_queues(template: dict) -> set[str]:
    topic = {"Ref": next(iter(resources(template, "AWS::SNS::Topic")))}
    out = set()
    for alarm in resources(template, "AWS::CloudWatch::Alarm").values():
        p = alarm["Properties"]
        if p.get("MetricName") == "ApproximateNumberOfMessagesVisible":
            assert p["AlarmActions"] == [topic] and (p["Threshold"], p["ComparisonOperator"]) == (0, "GreaterThanThreshold")
            out.add(p["Dimensions"][0]["Value"]["Fn::GetAtt"][0])
    return out


# ---- the resources, as configured ------------------------------------------------------------------
def test_opsgenie_connection_keeps_the_key_out_of_the_template(oncall_template):
    (_, connection), = resources(oncall_template, "AWS::Events::Connection").items()
    props = connection["Properties"]
    assert props["AuthorizationType"] == "API_KEY"
    assert props["AuthParameters"] == {"ApiKeyAuthParameters": {
        "ApiKeyName": "Authorization",
        "ApiKeyValue": "GenieKey {{resolve:secretsmanager:" + OPSGENIE_ARN + ":SecretString:apiKey::}}"}}
    assert "InvocationHttpParameters" not in props["AuthParameters"]


def test_opsgenie_api_destinations_create_and_close_by_alias_with_a_rate_limit(oncall_template):
    destinations = {k: r["Properties"] for k, r in resources(oncall_template, "AWS::Events::ApiDestination").items()}
    endpoints = sorted((d["InvocationEndpoint"], d["HttpMethod"], d["InvocationRateLimitPerSecond"]) for d in destinations.values())
    assert endpoints == [("https://api.eu.opsgenie.com/v2/alerts", "POST", 2), ("https://api.eu.opsgenie.com/v2/alerts/*/close", "POST", 2)]
    (connection_id,) = resources(oncall_template, "AWS::Events::Connection")
    assert all(d["ConnectionArn"] == {"Fn::GetAtt": [connection_id, "Arn"]} for d in destinations.values())


def test_rules_on_the_incidents_bus_match_the_auditors_events_and_pass_bodies_verbatim(oncall_template):
    rules = rules_on_bus(oncall_template, "IncidentsBus")
    assert len(rules) == 3
    age = delivery_age(30).to_seconds()
    assert age == 600
    # a trigger's two retrying hops and the forwarder's own retries end before its incident can resolve
    assert 2 * age + FORWARDER_TIMEOUT.to_seconds() < 30 * 60
    assert [delivery_age(m).to_seconds() for m in (1, 5, 30, 600)] == [60, 100, 600, 3600]
    seen = {}
    for rule in rules.values():
        assert rule["State"] == "ENABLED" and rule["EventPattern"]["source"] == [IncidentEvent.SOURCE]
        (target,) = rule["Targets"]
        assert "InputTransformer" not in target and "Input" not in target  # no templating of incident text
        assert target["RetryPolicy"] == {"MaximumRetryAttempts": 8, "MaximumEventAgeInSeconds": age}
        dlq = oncall_template["Resources"][target["DeadLetterConfig"]["Arn"]["Fn::GetAtt"][0]]["Properties"]
        assert dlq["SqsManagedSseEnabled"] is True and dlq["MessageRetentionPeriod"] == 14 * 24 * 3600
        seen[tuple(rule["EventPattern"]["detail-type"])] = target
    assert seen[("Incident Opened", "Incident Updated", "Incident Resolved")]["InputPath"] == PAGERDUTY_BODY
    assert seen[("Incident Opened", "Incident Updated")]["InputPath"] == OPSGENIE_BODY
    close = seen[("Incident Resolved",)]
    assert close["InputPath"] == OPSGENIE_BODY
    assert close["HttpParameters"] == {"PathParameterValues": [INCIDENT_ID], "QueryStringParameters": {"identifierType": "alias"}}


def test_pagerduty_change_events_read_the_same_buses_as_the_auditors_change_rules(oncall_template):
    fn_id, _ = forwarder_fn(oncall_template)
    change = {k: r["Properties"] for k, r in resources(oncall_template, "AWS::Events::Rule").items()
              if r["Properties"].get("EventPattern") == CHANGE_PATTERN}
    auditors = {k: p for k, p in change.items() if not k.startswith("OnCall")}
    pagers = {k: p for k, p in change.items() if k.startswith("OnCall")}
    assert sorted(p.get("EventBusName", {"Ref": "default"})["Ref"].rstrip("0123456789ABCDEF") for p in auditors.values()) == \
        sorted(p.get("EventBusName", {"Ref": "default"})["Ref"].rstrip("0123456789ABCDEF") for p in pagers.values()) == \
        ["OrganizationBus", "default"]
    for rule in pagers.values():
        (target,) = rule["Targets"]
        assert (target["Arn"], target["InputPath"], rule["State"]) == ({"Fn::GetAtt": [fn_id, "Arn"]}, CHANGE_RECORD, "ENABLED")
        assert target["RetryPolicy"]["MaximumRetryAttempts"] == 8 and "DeadLetterConfig" in target
    assert set(change_rules(oncall_template)) == set(auditors)  # the demo and the tests still find the auditor's own only


def test_the_forwarder_runs_from_the_auditors_asset_retries_itself_and_keeps_failures(oncall_template):
    fn_id, fn = forwarder_fn(oncall_template)
    (auditor,) = [f["Properties"] for f in resources(oncall_template, "AWS::Lambda::Function").values()
                  if f["Properties"].get("Handler") == "auditor.handler.handler"]
    assert fn["Code"] == auditor["Code"]  # one asset, one bytecode build
    assert (fn["Runtime"], fn["Architectures"], fn["MemorySize"]) == ("python3.13", ["arm64"], 128)
    budget = forwarder.MAX_ATTEMPTS * forwarder.TIMEOUT_SECONDS + (forwarder.MAX_ATTEMPTS - 1) * forwarder.RETRY_AFTER_CAP
    assert fn["Timeout"] > budget + forwarder.RESERVE_SECONDS
    env = fn["Environment"]["Variables"]
    queue_id, _ = by_prefix(oncall_template, "AWS::SQS::Queue", "OnCallPagerDutyUndelivered")
    assert env == {ForwarderEnv.SECRET_ID: "oncall/pagerduty", ForwarderEnv.SECRET_FIELD: "routingKey",
                   ForwarderEnv.DEAD_LETTER_URL: {"Ref": queue_id},
                   ForwarderEnv.EVENTS_URL: "https://events.eu.pagerduty.com/v2/enqueue",
                   ForwarderEnv.CHANGE_EVENTS_URL: "https://events.eu.pagerduty.com/v2/change/enqueue"}
    (invoke,) = [c["Properties"] for c in resources(oncall_template, "AWS::Lambda::EventInvokeConfig").values()
                 if c["Properties"]["FunctionName"] == {"Ref": fn_id}]
    assert (invoke["MaximumRetryAttempts"], invoke["MaximumEventAgeInSeconds"]) == (0, 600)
    assert invoke["DestinationConfig"]["OnFailure"]["Destination"] == {"Fn::GetAtt": [queue_id, "Arn"]}
    # EventBridge may invoke it for its own rules only
    permissions = [p["Properties"] for p in resources(oncall_template, "AWS::Lambda::Permission").values()
                   if p["Properties"]["FunctionName"] == {"Fn::GetAtt": [fn_id, "Arn"]}]
    rules = {k for k, r in resources(oncall_template, "AWS::Events::Rule").items() if k.startswith("OnCallPagerDuty")}
    assert {p["SourceArn"]["Fn::GetAtt"][0] for p in permissions} == rules and len(rules) == 3
    assert all(p["Principal"] == "events.amazonaws.com" for p in permissions)


def test_each_tools_dead_letter_queue_is_alarmed_and_graphed(oncall_template):
    queues = {by_prefix(oncall_template, "AWS::SQS::Queue", f"OnCall{tool}Undelivered")[0] for tool in ("PagerDuty", "Opsgenie")}
    assert queues <= alarmed_queues(oncall_template)
    body = json.dumps(next(iter(resources(oncall_template, "AWS::CloudWatch::Dashboard").values())))
    assert all(q in body for q in queues)
    policies = [p["Properties"] for p in resources(oncall_template, "AWS::SQS::QueuePolicy").values()
                if {q["Ref"] for q in p["Properties"]["Queues"]} & queues]
    assert len(policies) == 2
    for policy in policies:  # only EventBridge for the tools' own rules may send there, and only over TLS
        for statement in policy["PolicyDocument"]["Statement"]:
            if statement["Effect"] == "Allow":
                assert statement["Principal"] == {"Service": "events.amazonaws.com"}
                assert statement["Condition"]["ArnEquals"]["aws:SourceArn"]["Fn::GetAtt"][0].startswith("OnCall")
            else:
                assert statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


# ---- no key anywhere -------------------------------------------------------------------------------
def test_no_key_is_in_any_file_of_the_cloud_assembly(oncall_synth):
    outdir = oncall_synth[3]
    for path in Path(outdir).rglob("*"):
        if path.is_file():
            content = path.read_bytes()
            assert FAKE_PAGERDUTY_KEY.encode() not in content and FAKE_OPSGENIE_KEY.encode() not in content, path
    template = oncall_synth[0]
    assert "routing_key" not in text(template) and "routingKey\"" not in text(template).replace('"routingKey"', "")
    # the secrets are named, only: by name or ARN, in a dynamic reference or an environment variable
    mentions = [x for x in strings(template) if "oncall/" in x]
    assert all(x in ("oncall/pagerduty", "GenieKey {{resolve:secretsmanager:" + OPSGENIE_ARN + ":SecretString:apiKey::}}")
               or x.endswith(":secret:oncall/pagerduty-??????") for x in mentions), mentions


def test_a_key_given_where_the_secret_goes_stops_the_synthesis_without_showing_it(tmp_path):
    import os

    key = "0123456789abcdef0123456789abcdef"
    result = subprocess.run([sys.executable, "app.py"], cwd=REPO, capture_output=True, text=True,
                            env={**os.environ, "CDK_OUTDIR": str(tmp_path),
                                 "CDK_CONTEXT_JSON": json.dumps({"pagerduty": {"secret": key}})})
    assert result.returncode != 0 and "looks like the key itself" in result.stderr
    assert key not in result.stderr + result.stdout and not list(tmp_path.glob("*.template.json"))


# ---- least privilege -----------------------------------------------------------------------------
def test_the_forwarder_role_reads_one_secret_and_decrypts_it_only_through_secrets_manager(oncall_template):
    fn_id, fn = forwarder_fn(oncall_template)
    role_id = fn["Role"]["Fn::GetAtt"][0]
    role = oncall_template["Resources"][role_id]["Properties"]
    assert role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {"Service": "lambda.amazonaws.com"}
    assert "ManagedPolicyArns" not in role
    by_sid = {st.get("Sid"): st for st in role_statements(oncall_template, role_id)}
    assert set(by_sid) == {"WriteOwnLogs", "ReadRoutingKey", "DecryptRoutingKeyThroughSecretsManager", None}
    assert actions(by_sid["ReadRoutingKey"]) == ["secretsmanager:GetSecretValue"]
    assert render(by_sid["ReadRoutingKey"]["Resource"]) == \
        "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:oncall/pagerduty-??????"
    decrypt = by_sid["DecryptRoutingKeyThroughSecretsManager"]
    assert (actions(decrypt), decrypt["Resource"]) == (["kms:Decrypt"], KMS_KEY)
    assert {k: render(v) for k, v in decrypt["Condition"]["StringEquals"].items()} == {
        "kms:ViaService": "secretsmanager.${AWS::Region}.amazonaws.com"}
    queue_id, _ = by_prefix(oncall_template, "AWS::SQS::Queue", "OnCallPagerDutyUndelivered")
    assert sorted(actions(by_sid[None])) == ["sqs:GetQueueAttributes", "sqs:GetQueueUrl", "sqs:SendMessage"]
    assert by_sid[None]["Resource"] == {"Fn::GetAtt": [queue_id, "Arn"]}


def test_a_secret_named_by_arn_is_granted_as_given_and_with_secrets_managers_suffix(pagerduty_only_synth):
    template = pagerduty_only_synth[0]
    fn_id, fn = forwarder_fn(template)
    (read,) = [st for st in role_statements(template, fn["Role"]["Fn::GetAtt"][0]) if st.get("Sid") == "ReadRoutingKey"]
    arn = "arn:aws:secretsmanager:eu-west-1:111122223333:secret:pd"
    assert as_list(read["Resource"]) == [arn, arn + "-??????"]
    assert fn["Environment"]["Variables"][ForwarderEnv.EVENTS_URL] == "https://events.pagerduty.com/v2/enqueue"


def test_only_the_forwarder_may_read_a_secret_and_nothing_allows_a_wildcard_action(oncall_template):
    fn_id, fn = forwarder_fn(oncall_template)
    forwarder_role = fn["Role"]["Fn::GetAtt"][0]
    forwarder_policy = next(k for k, r in resources(oncall_template, "AWS::IAM::Policy").items()
                            if {"Ref": forwarder_role} in r["Properties"]["Roles"])
    for logical_id, kind, statement in every_statement(oncall_template):
        for action in actions(statement):
            if statement["Effect"] == "Allow":
                assert action != "*" and not action.endswith(":*"), (logical_id, statement)
            if statement["Effect"] != "Allow" or (kind == "AWS::KMS::Key" and ":root" in text(statement.get("Principal"))):
                continue
            for forbidden in FORBIDDEN:
                if grants(action, forbidden):
                    # the one exception: the routing key's own secret, by the forwarder (tested above)
                    assert (forbidden, logical_id) == ("secretsmanager:GetSecretValue", forwarder_policy), (logical_id, statement)


def test_api_destination_roles_may_invoke_their_destination_only(oncall_template):
    roles = {k: r for k, r in resources(oncall_template, "AWS::IAM::Role").items() if k.startswith("OnCallOpsgenie")}
    assert len(roles) == 2
    destinations = set(resources(oncall_template, "AWS::Events::ApiDestination"))
    for role_id, role in roles.items():
        assert role["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {"Service": "events.amazonaws.com"}
        (statement,) = role_statements(oncall_template, role_id)
        assert actions(statement) == ["events:InvokeApiDestination"]
        assert statement["Resource"]["Fn::GetAtt"][0] in destinations


def test_cdk_nag_is_clean_and_cfn_lint_too(oncall_synth):
    template, report, error, outdir = oncall_synth
    assert error is None, error
    assert [v["ruleName"] for p in report.get("pluginReports", []) for v in p["violations"]] == []
    cfn_lint = str(Path(sys.executable).with_name("cfn-lint"))
    result = subprocess.run([cfn_lint, "--ignore-checks", "W3005", "--", *map(str, Path(outdir).glob("*.template.json"))],
                            capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stdout + result.stderr


# ---- what the synthesized targets send ----------------------------------------------------------------
HOSTILE = ['a "quoted" name', "back\\slash", "new\nline", "ключ 鍵 🔑", "{\"json\": 1}"]


def _notices(status: str):
    for kind, (incident, finding) in scenario_notices(status).items():
        yield kind, incident, finding
        for t in HOSTILE:
            inc, fnd = copy.deepcopy(incident), copy.deepcopy(finding)
            inc["root"]["label"], inc["title"], inc["remediation"] = f"root {t}", t, t
            fnd["error_message"] = t
            yield f"{kind}+{t!r}", inc, fnd


def _resource(template: dict, arn) -> dict:
    return template["Resources"][arn["Fn::GetAtt"][0]]


@pytest.mark.parametrize("status", ["opened", "updated", "resolved"])
def test_every_synthesized_target_sends_a_valid_request_for_real_incident_events(oncall_template, status):
    rules = rules_on_bus(oncall_template, "IncidentsBus")
    (connection,) = [r["Properties"] for r in resources(oncall_template, "AWS::Events::Connection").values()]
    sent = {"pagerduty": 0, "opsgenie": 0}
    for name, incident, finding in _notices(status):
        event = envelope(incident_event(status, incident, finding, source=IncidentEvent.SOURCE, bus_name="OnCallUnderTest-incidents"))
        for rule in rules.values():
            if not matches(rule["EventPattern"], event):
                continue
            (target,) = rule["Targets"]
            resource = _resource(oncall_template, target["Arn"])
            if resource["Type"] == "AWS::Lambda::Function":  # PagerDuty: what the forwarder does with its input
                kind, body, why = forwarder.request_for(json.loads(target_input(target, event)))
                assert kind == "alert" and body is not None, (name, why)
                requests = []
                outcome = forwarder.deliver("https://pagerduty.invalid/v2/enqueue", body, "KEY",
                                            send=lambda url, data, timeout: requests.append(json.loads(data)) or (202, "", 0.0))
                assert outcome.delivered
                (request,) = requests
                shapes.pagerduty_alert(request, key="KEY")
                assert request["dedup_key"] == incident["id"]
                assert request["event_action"] == ("resolve" if status == "resolved" else "trigger")
                sent["pagerduty"] += 1
            else:  # Opsgenie: the API destination's request
                request = api_destination_request(resource["Properties"], connection, target, event)
                assert request.headers["Authorization"].startswith("GenieKey {{resolve:secretsmanager:")
                if status == "resolved":
                    assert request.url == f"https://api.eu.opsgenie.com/v2/alerts/{incident['id']}/close?identifierType=alias"
                    shapes.opsgenie_close(request.json())
                else:
                    assert request.url == "https://api.eu.opsgenie.com/v2/alerts"
                    shapes.opsgenie_create(request.json())
                    assert request.json()["alias"] == incident["id"]
                sent["opsgenie"] += 1
    per_tool = 5 * (1 + len(HOSTILE))
    assert sent == {"pagerduty": per_tool, "opsgenie": per_tool}  # each event reached each tool once


def test_the_change_rules_send_changes_as_pagerduty_change_events(oncall_template):
    pagers = [r["Properties"] for k, r in resources(oncall_template, "AWS::Events::Rule").items()
              if k.startswith("OnCallPagerDutyChanges")]
    records = [s.put_key_policy(-900), s.disable_key(-300), s.detach_role_policy(-60, "checkout", "arn:aws:iam::111122223333:policy/p"),
               s.attach_scp(-60, "p-12345678", "111122223333")]
    assert {r["eventSource"] for r in records} <= set(CHANGE_EVENTS)
    for record in records:
        event = cloudtrail_event(record)
        for rule in pagers:
            assert matches(rule["EventPattern"], event), record["eventName"]
            kind, body, why = forwarder.request_for(json.loads(target_input(rule["Targets"][0], event)))
            assert kind == "change", why
            shapes.pagerduty_change({"routing_key": "KEY", **body}, key="KEY")
    failed = cloudtrail_event(dict(s.put_key_policy(0), errorCode="AccessDenied"))
    assert not any(matches(rule["EventPattern"], failed) for rule in pagers)  # a failed change changed nothing
