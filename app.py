#!/usr/bin/env python3
"""CDK entry point: builds the auditor stack from cdk.json context (see infra/config.py).

Run by the CDK CLI (`cdk deploy`), which passes cdk.json's context, or directly
(`python app.py`, `make synth`), in which case cdk.json's context is read here.
"""

import json
import os
from pathlib import Path

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks

from infra.config import ConfigError, load
from infra.stack import AuditorStack

CDK_JSON = Path(__file__).resolve().with_name("cdk.json")


def new_app(outdir: str | None = None, context: dict | None = None) -> cdk.App:
    """An App with cdk.json's context, then ``context``, then whatever the CDK CLI passes.

    cdk.json is always the base (the App lets the CLI's values win), so the feature flags the
    constructs rely on are set even when the app runs without the CLI, or with a partial
    CDK_CONTEXT_JSON (as the tests do).
    """
    merged = dict(json.loads(CDK_JSON.read_text()).get("context", {}))
    merged.update(context or {})
    return cdk.App(outdir=outdir or os.environ.get("CDK_OUTDIR", "cdk.out"), context=merged)


def build(app: cdk.App) -> AuditorStack:
    config = load(app.node.try_get_context)
    stack = AuditorStack(app, config.stack_name, config=config)
    if app.node.try_get_context("nag") not in (False, "false"):
        cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    return stack


if __name__ == "__main__":
    app = new_app()
    try:
        build(app)
    except ConfigError as exc:
        raise SystemExit(f"cdk.json context: {exc}") from None
    app.synth()
