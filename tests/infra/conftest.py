"""Synthesize the stack once per session (synthesis is slow) in the configurations under test."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
os.environ.setdefault("JSII_SILENCE_WARNING_UNTESTED_NODE_VERSION", "1")
os.environ["PATH"] = f"{REPO / '.venv' / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"

FULL_CONTEXT = {
    "notificationEmails": ["oncall@example.com"],
    "httpsEndpoints": ["https://hooks.example.com/aws"],
    "slack": {"workspaceId": "T0123ABCD", "channelId": "C0123ABCD"},
    "createTrail": True,
    "simulatePolicies": True,
    # as `cdk synth -c key=value` passes them: strings
    "stackName": "AuditorUnderTest",
    "incidentUpdateMinutes": "30",
    "incidentQuietMinutes": "45",
    "changeRetentionDays": "3",
    "consistencyWindowMinutes": 5,
    "logRetentionDays": "90",
    "findingsSpikeThreshold": "250",
}


def synth(context: dict | None, outdir: Path, environ: dict | None = None):
    """(template dict, validation report, error, outdir) for the app as `app.py` builds it, cdk-nag
    included. ``environ`` stands for the CDK CLI's environment (CDK_DEFAULT_ACCOUNT/REGION): none
    by default, an environment-agnostic synthesis whatever the shell running the tests has set."""
    from app import build, new_app

    app = new_app(str(outdir), context)
    stack = build(app, environ or {})
    error = None
    try:
        app.synth()
    except RuntimeError as exc:  # cdk-nag violations fail synthesis
        error = exc
    report = json.loads((outdir / "validation-report.json").read_text()) if (outdir / "validation-report.json").exists() else {}
    template = json.loads((outdir / f"{stack.stack_name}.template.json").read_text()) if error is None else {}
    return template, report, error, outdir


@pytest.fixture(scope="session")
def default_synth(tmp_path_factory):
    return synth(None, tmp_path_factory.mktemp("cdk-default"))


@pytest.fixture(scope="session")
def full_synth(tmp_path_factory):
    return synth(FULL_CONTEXT, tmp_path_factory.mktemp("cdk-full"))


@pytest.fixture(scope="session")
def template(default_synth):
    assert default_synth[2] is None, default_synth[2]
    return default_synth[0]


@pytest.fixture(scope="session")
def full_template(full_synth):
    assert full_synth[2] is None, full_synth[2]
    return full_synth[0]


def resources(template: dict, kind: str) -> dict:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == kind}


def template_of(outdir: Path, stack_name: str) -> dict:
    """Another stack of the same synthesis (the global-changes and management stacks)."""
    return json.loads((outdir / f"{stack_name}.template.json").read_text())


#: What a user's shell may hold while synthesizing: keys the app must never read into a template.
FAKE_PAGERDUTY_KEY = "pdkey-0ncall-FAKE-9f1c2e7d4b3a"
FAKE_OPSGENIE_KEY = "ogkey-0ncall-FAKE-5e8d1a2b7c6f"
#: Both on-call tools, in organization mode (change events on the default and the central bus).
ONCALL_CONTEXT = {
    "stackName": "OnCallUnderTest",
    "organization": {"id": "o-a1b2c3d4e5", "auditAccount": "111122223333", "homeRegion": "eu-west-1",
                     "regions": ["us-east-1", "eu-west-1"], "organizationalUnits": ["ou-ab12-cdef3456"]},
    "pagerduty": {"secret": "oncall/pagerduty", "secretField": "routingKey", "changeEvents": True, "region": "eu",
                  "secretKmsKey": "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"},
    "opsgenie": '{"secret": "arn:aws:secretsmanager:eu-west-1:111122223333:secret:oncall/opsgenie-AbCdEf", '
                '"secretField": "apiKey", "region": "eu", "rateLimitPerSecond": "2"}',
}
#: PagerDuty alone, single account, no change events: only what that needs.
PAGERDUTY_ONLY_CONTEXT = {"stackName": "PagerDutyOnly", "region": "eu-west-1", "account": "111122223333",
                          "pagerduty": {"secret": "arn:aws:secretsmanager:eu-west-1:111122223333:secret:pd"}}


@pytest.fixture(scope="session")
def oncall_synth(tmp_path_factory):
    """The app with both tools configured, synthesized while the shell holds fake keys in its environment."""
    from demo.stand_in import environment

    with environment(PAGERDUTY_ROUTING_KEY=FAKE_PAGERDUTY_KEY, OPSGENIE_API_KEY=FAKE_OPSGENIE_KEY):
        return synth(ONCALL_CONTEXT, tmp_path_factory.mktemp("cdk-oncall"))


@pytest.fixture(scope="session")
def oncall_template(oncall_synth):
    assert oncall_synth[2] is None, oncall_synth[2]
    return oncall_synth[0]


@pytest.fixture(scope="session")
def pagerduty_only_synth(tmp_path_factory):
    return synth(PAGERDUTY_ONLY_CONTEXT, tmp_path_factory.mktemp("cdk-pagerduty-only"))
