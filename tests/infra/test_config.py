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
    assert (c.stack_name, c.dedup_window_minutes, c.log_retention_days, c.create_trail) == ("SecretsKmsFailureAuditor", 15, 30, False)


def test_string_values_from_the_command_line():
    c = config(notificationEmails='["a@example.com"]', dedupWindowMinutes="30", createTrail="true", logRetentionDays="90")
    assert c.notification_emails == ("a@example.com",) and c.dedup_window_minutes == 30 and c.create_trail and c.log_retention_days == 90
    assert config(notificationEmails="a@example.com,b@example.com").notification_emails == ("a@example.com", "b@example.com")


@pytest.mark.parametrize(
    "key, value, says",
    [
        ("dedupWindowMinutes", 0, "from 1 to 1440"),
        ("dedupWindowMinutes", "soon", "whole number"),
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
    for key, default in (("stackName", c.stack_name), ("dedupWindowMinutes", c.dedup_window_minutes),
                         ("consistencyWindowMinutes", c.consistency_window_minutes), ("logRetentionDays", c.log_retention_days),
                         ("createTrail", "false"), ("simulatePolicies", "false"), ("findingsSpikeThreshold", c.findings_spike_threshold),
                         ("notificationEmails", "[]"), ("httpsEndpoints", "[]"), ("slack", "null")):
        assert re.search(rf"^\| `{key}` \| `{re.escape(str(default))}` \|", doc, re.MULTILINE), key


def test_app_exits_with_the_message(tmp_path):
    import subprocess
    import sys
    from .conftest import REPO

    result = subprocess.run([sys.executable, "app.py"], cwd=REPO, capture_output=True, text=True,
                            env={**__import__("os").environ, "CDK_OUTDIR": str(tmp_path), "CDK_CONTEXT_JSON": '{"dedupWindowMinutes": 0}'})
    assert result.returncode != 0 and "dedupWindowMinutes" in result.stderr


def test_context_reaches_the_function(full_template):
    """FULL_CONTEXT passes these as strings, as `cdk synth -c` does."""
    from .conftest import resources

    (fn,) = [f["Properties"] for f in resources(full_template, "AWS::Lambda::Function").values()
             if f["Properties"].get("Handler") == "auditor.handler.handler"]
    env = fn["Environment"]["Variables"]
    assert (env["DEDUP_WINDOW_SECONDS"], env["CONSISTENCY_WINDOW_SECONDS"], env["SIMULATE_POLICIES"]) == ("1800", "300", "true")
    assert (env["POWERTOOLS_SERVICE_NAME"], env["POWERTOOLS_METRICS_NAMESPACE"], env["POWERTOOLS_LOG_LEVEL"]) == (
        "secrets-kms-auditor", "SecretsKmsAuditor", "INFO")
    assert [g["Properties"]["RetentionInDays"] for g in resources(full_template, "AWS::Logs::LogGroup").values()] == [90]


def test_defaults_reach_the_function(template):
    from .conftest import resources

    (fn,) = [f["Properties"] for f in resources(template, "AWS::Lambda::Function").values()
             if f["Properties"].get("Handler") == "auditor.handler.handler"]
    env = fn["Environment"]["Variables"]
    assert (env["DEDUP_WINDOW_SECONDS"], env["CONSISTENCY_WINDOW_SECONDS"], env["SIMULATE_POLICIES"]) == ("900", "600", "false")


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
