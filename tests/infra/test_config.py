"""cdk.json context: defaults, string forms from `cdk synth -c`, and clear errors."""

from __future__ import annotations

import json
import re

import pytest

from infra.config import ConfigError, load

pytestmark = pytest.mark.infra


def config(**context):
    return load(context.get)


def test_defaults():
    c = config()
    assert (c.stack_name, c.log_retention_days, c.create_trail) == ("SecretsKmsFailureAuditor", 30, False)
    # auditor/config.py's defaults, in minutes and days
    assert (c.incident_update_minutes, c.incident_quiet_minutes, c.change_retention_days) == (15, 30, 7)
    assert (c.account, c.region) == (None, None)


def test_incident_defaults_are_the_functions_own():
    """The stack passes its defaults explicitly; they are the ones the function falls back to."""
    from auditor.config import DEFAULT_QUIET_SECONDS, DEFAULT_UPDATE_SECONDS, Config

    c = config()
    assert c.incident_quiet_minutes * 60 == DEFAULT_QUIET_SECONDS
    assert c.incident_update_minutes * 60 == DEFAULT_UPDATE_SECONDS
    assert c.change_retention_days == Config(topic_arn="arn:aws:sns:us-east-1:111122223333:t").change_retention_days


def test_string_values_from_the_command_line():
    c = config(notificationEmails='["a@example.com"]', incidentUpdateMinutes="30", createTrail="true", logRetentionDays="90",
               incidentQuietMinutes="120", changeRetentionDays="14", account="111122223333", region="eu-west-1")
    assert c.notification_emails == ("a@example.com",) and c.incident_update_minutes == 30 and c.create_trail and c.log_retention_days == 90
    assert (c.incident_quiet_minutes, c.change_retention_days, c.account, c.region) == (120, 14, "111122223333", "eu-west-1")
    assert config(notificationEmails="a@example.com,b@example.com").notification_emails == ("a@example.com", "b@example.com")


@pytest.mark.parametrize(
    "key, value, says",
    [
        ("incidentUpdateMinutes", 0, "from 1 to 1440"),
        ("incidentUpdateMinutes", "soon", "whole number"),
        ("incidentUpdateMinutes", 1441, "from 1 to 1440"),
        ("incidentQuietMinutes", 0, "from 1 to 10080"),
        ("incidentQuietMinutes", "30.5", "whole number"),
        ("incidentQuietMinutes", 10081, "from 1 to 10080"),
        ("changeRetentionDays", 0, "from 1 to 90"),
        ("changeRetentionDays", 91, "from 1 to 90"),
        ("changeRetentionDays", False, "whole number"),
        ("dedupWindowMinutes", 15, "replaced by 'incidentUpdateMinutes'"),
        ("dedupWindowMinutes", "30", "'incidentQuietMinutes'"),
        ("account", "12345", "12-digit account id"),
        ("region", "Europe", "region name"),
        ("logRetentionDays", 31, "CloudWatch Logs allows"),
        ("createTrail", "yes", "true or false"),
        ("notificationEmails", ["not-an-address"], "e-mail addresses"),
        ("httpsEndpoints", ["http://insecure.example.com"], "https:// URLs"),
        ("slack", {"workspaceId": "T1"}, "channelId"),
        ("stackName", "1bad name", "letters"),
        ("consistencyWindowMinutes", -5, "from 1 to 1440"),
        ("findingsSpikeThreshold", 0, "whole number"),
        ("findingsSpikeThreshold", True, "whole number"),
        ("simulatePolicies", "maybe", "true or false"),
        ("logRetentionDays", "thirty", "whole number"),
        ("slack", '{"workspaceId": "T1", "channelId": ""}', "channelId"),
        ("notificationEmails", {"to": "a@example.com"}, "e-mail addresses"),
        ("httpsEndpoints", "https://", "https:// URLs"),
        ("pagerduty", "yes", "expected an object"),
        ("opsgenie", ["s"], "expected an object"),
    ],
)
def test_invalid_values_fail_with_a_message_naming_key_and_value(key, value, says):
    with pytest.raises(ConfigError) as err:
        config(**{key: value})
    message = str(err.value)
    assert key in message and says in message
    shown = {repr(value), str(value)} | ({repr(json.loads(value))} if isinstance(value, str) and value[:1] == "{" else set())
    assert any(v in message for v in shown), message  # the bad value itself (as given, or as parsed from JSON)


def test_json_strings_from_the_command_line():
    c = config(slack='{"workspaceId": "T0123", "channelId": "C0456"}', httpsEndpoints='["https://a.example.com/x"]',
               simulatePolicies="false", findingsSpikeThreshold="7", consistencyWindowMinutes="3")
    assert (c.slack.workspace_id, c.slack.channel_id) == ("T0123", "C0456")
    assert c.https_endpoints == ("https://a.example.com/x",) and c.simulate_policies is False
    assert (c.findings_spike_threshold, c.consistency_window_minutes) == (7, 3)
    assert config(slack="null").slack is None


def test_documented_defaults_match_cdk_json_and_deploy_doc():
    """cdk.json ships the defaults, and docs/deploy.md's table states the same ones."""
    from .conftest import REPO

    shipped = json.loads((REPO / "cdk.json").read_text())["context"]
    assert config(**{k: v for k, v in shipped.items() if not k.startswith("@")}) == config()
    doc = (REPO / "docs" / "deploy.md").read_text()
    c = config()
    for key, default in (("stackName", c.stack_name), ("incidentUpdateMinutes", c.incident_update_minutes),
                         ("incidentQuietMinutes", c.incident_quiet_minutes), ("changeRetentionDays", c.change_retention_days),
                         ("consistencyWindowMinutes", c.consistency_window_minutes), ("logRetentionDays", c.log_retention_days),
                         ("createTrail", "false"), ("simulatePolicies", "false"), ("findingsSpikeThreshold", c.findings_spike_threshold),
                         ("notificationEmails", "[]"), ("httpsEndpoints", "[]"), ("slack", "null"), ("account", "null"),
                         ("region", "null"), ("maxConcurrency", c.max_concurrency), ("pagerduty", "null"), ("opsgenie", "null")):
        assert re.search(rf"^\| `{key}` \| `{re.escape(str(default))}` \|", doc, re.MULTILINE), key


@pytest.mark.parametrize("context, says", [({"incidentQuietMinutes": 0}, "incidentQuietMinutes"),
                                           ({"dedupWindowMinutes": 15}, "replaced by 'incidentUpdateMinutes'")])
def test_app_exits_with_the_message(tmp_path, context, says):
    import subprocess
    import sys
    from .conftest import REPO

    result = subprocess.run([sys.executable, "app.py"], cwd=REPO, capture_output=True, text=True,
                            env={**__import__("os").environ, "CDK_OUTDIR": str(tmp_path), "CDK_CONTEXT_JSON": json.dumps(context)})
    assert result.returncode != 0 and says in result.stderr and "Traceback" not in result.stderr


def test_context_reaches_the_function(full_template):
    """FULL_CONTEXT passes these as strings, as `cdk synth -c` does."""
    from .conftest import resources

    (fn,) = [f["Properties"] for f in resources(full_template, "AWS::Lambda::Function").values()
             if f["Properties"].get("Handler") == "auditor.handler.handler"]
    env = fn["Environment"]["Variables"]
    assert (env["INCIDENT_UPDATE_SECONDS"], env["INCIDENT_QUIET_SECONDS"], env["CHANGE_RETENTION_DAYS"]) == ("1800", "2700", "3")
    assert (env["CONSISTENCY_WINDOW_SECONDS"], env["SIMULATE_POLICIES"]) == ("300", "true")
    assert (env["POWERTOOLS_SERVICE_NAME"], env["POWERTOOLS_METRICS_NAMESPACE"], env["POWERTOOLS_LOG_LEVEL"]) == (
        "secrets-kms-auditor", "SecretsKmsAuditor", "INFO")
    assert [g["Properties"]["RetentionInDays"] for g in resources(full_template, "AWS::Logs::LogGroup").values()] == [90]


def test_defaults_reach_the_function(template):
    from .conftest import resources

    (fn,) = [f["Properties"] for f in resources(template, "AWS::Lambda::Function").values()
             if f["Properties"].get("Handler") == "auditor.handler.handler"]
    env = fn["Environment"]["Variables"]
    assert (env["INCIDENT_UPDATE_SECONDS"], env["INCIDENT_QUIET_SECONDS"], env["CHANGE_RETENTION_DAYS"]) == ("900", "1800", "7")
    assert (env["CONSISTENCY_WINDOW_SECONDS"], env["SIMULATE_POLICIES"]) == ("600", "false")
    assert "DEDUP_WINDOW_SECONDS" not in env  # the function no longer reads it


def test_the_environment_the_function_reads_is_the_one_the_stack_sets(full_template):
    """Every variable auditor/config.py reads (contract.Env) is set, except the opt-in tracing
    switch, and the function builds its Config from exactly this environment."""
    from auditor.config import Config
    from auditor.contract import Env

    from .conftest import resources

    (fn,) = [f["Properties"] for f in resources(full_template, "AWS::Lambda::Function").values()
             if f["Properties"].get("Handler") == "auditor.handler.handler"]
    env = fn["Environment"]["Variables"]
    names = {v for k, v in vars(Env).items() if not k.startswith("_")}
    assert set(env) == names - {Env.TRACE_SUBSEGMENTS}
    resolved = {k: v if isinstance(v, str) else "arn:aws:sns:eu-west-1:111122223333:findings" if k == Env.TOPIC_ARN else "table"
                for k, v in env.items()}
    c = Config.from_env(resolved)
    assert (c.quiet_seconds, c.update_seconds, c.change_retention_days, c.consistency_window_seconds) == (2700, 1800, 3, 300)
    assert (c.table_name, c.simulate_policies) == ("table", True)


def test_cli_context_overrides_cdk_json_and_keeps_its_feature_flags(tmp_path):
    """As the CDK CLI runs the app: CDK_CONTEXT_JSON with only the user's -c values."""
    import os
    import subprocess
    import sys

    from .conftest import REPO

    env = {**os.environ, "CDK_OUTDIR": str(tmp_path), "CDK_CONTEXT_JSON": json.dumps({"createTrail": "true", "stackName": "FromCli"})}
    result = subprocess.run([sys.executable, "app.py"], cwd=REPO, capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    template = json.loads((tmp_path / "FromCli.template.json").read_text())
    kinds = {r["Type"] for r in template["Resources"].values()}
    assert "AWS::CloudTrail::Trail" in kinds


@pytest.mark.parametrize("tool, value, field, says", [
    ("pagerduty", {"secret": "a b"}, "pagerduty.secret", "name or the ARN of a Secrets Manager secret"),
    ("pagerduty", {"secret": "arn:aws:secretsmanager:eu-west-1:1:secret:x"}, "pagerduty.secret", "name or the ARN"),
    ("pagerduty", {"secret": "s", "secretField": "a:b"}, "pagerduty.secretField", "no colon"),
    ("pagerduty", {"secret": "s", "region": "apac"}, "pagerduty.region", '"us" or "eu"'),
    ("pagerduty", {"secret": "s", "changeEvents": "sometimes"}, "pagerduty.changeEvents", "true or false"),
    ("pagerduty", {"secret": "s", "secretKmsKey": "alias/x"}, "pagerduty.secretKmsKey", "customer managed KMS key"),
    ("pagerduty", {"secret": "s", "routingKey": "x"}, "pagerduty", "unknown keys ['routingKey']"),
    ("pagerduty", {"changeEvents": True}, "pagerduty.secret", "name or the ARN"),
    ("opsgenie", {"secret": "s", "rateLimitPerSecond": 0}, "opsgenie.rateLimitPerSecond", "from 1 to 300"),
    ("opsgenie", {"secret": "s", "region": "EU"}, "opsgenie.region", '"us" or "eu"'),
])
def test_on_call_settings_fail_with_a_message_naming_the_field(tool, value, field, says):
    with pytest.raises(ConfigError) as err:
        config(**{tool: value})
    assert f"'{field}'" in str(err.value) and says in str(err.value), str(err.value)


def test_on_call_tools_from_cdk_json_and_from_the_command_line():
    """The keys are never given: only where they are (a secret's name or ARN, a field of its JSON)."""
    from infra.config import Opsgenie, PagerDuty, SecretRef

    assert (config().pagerduty, config().opsgenie) == (None, None)
    c = config(pagerduty={"secret": "oncall/pagerduty", "secretField": "routingKey", "changeEvents": True, "region": "eu",
                          "secretKmsKey": "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"},
               opsgenie='{"secret": "arn:aws:secretsmanager:eu-west-1:111122223333:secret:og-AbCdEf", "rateLimitPerSecond": "5"}')
    assert c.pagerduty == PagerDuty(SecretRef("oncall/pagerduty", "routingKey"), "eu", True,
                                    "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab")
    assert c.opsgenie == Opsgenie(SecretRef("arn:aws:secretsmanager:eu-west-1:111122223333:secret:og-AbCdEf"), "us", 5)
    assert c.opsgenie.key.is_arn and not c.pagerduty.key.is_arn
    assert config(pagerduty="null").pagerduty is None


@pytest.mark.parametrize("tool, key", [("pagerduty", "0123456789abcdef0123456789ABCDEF"),
                                       ("opsgenie", "eb243592-faa2-4ba2-a551-1afdf565c889")])
def test_a_key_given_where_its_secret_goes_is_refused_and_not_repeated(tool, key):
    with pytest.raises(ConfigError) as err:
        config(**{tool: {"secret": key}})
    assert "looks like the key itself" in str(err.value) and key not in str(err.value)
