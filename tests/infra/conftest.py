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
