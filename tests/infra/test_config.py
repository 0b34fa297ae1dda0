"""cdk.json context: defaults, string forms from `cdk synth -c`, and clear errors."""

from __future__ import annotations

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
    ],
)
def test_invalid_values_fail_with_a_message_naming_key_and_value(key, value, says):
    with pytest.raises(ConfigError) as err:
        config(**{key: value})
    assert key in str(err.value) and says in str(err.value)


def test_app_exits_with_the_message(tmp_path):
    import subprocess
    import sys
    from .conftest import REPO

    result = subprocess.run([sys.executable, "app.py"], cwd=REPO, capture_output=True, text=True,
                            env={**__import__("os").environ, "CDK_OUTDIR": str(tmp_path), "CDK_CONTEXT_JSON": '{"dedupWindowMinutes": 0}'})
    assert result.returncode != 0 and "dedupWindowMinutes" in result.stderr
