#!/usr/bin/env python3
"""CDK entry point: builds the auditor stack from cdk.json context (see infra/config.py)."""

import os

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks

from infra.config import ConfigError, load
from infra.stack import AuditorStack


def build(app: cdk.App) -> AuditorStack:
    config = load(app.node.try_get_context)
    stack = AuditorStack(app, config.stack_name, config=config)
    if app.node.try_get_context("nag") not in (False, "false"):
        cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    return stack


if __name__ == "__main__":
    # The CDK CLI sets CDK_OUTDIR; `python app.py` (make synth) writes to cdk.out.
    app = cdk.App(outdir=os.environ.get("CDK_OUTDIR", "cdk.out"))
    try:
        build(app)
    except ConfigError as exc:
        raise SystemExit(f"cdk.json context: {exc}") from None
    app.synth()
