#!/usr/bin/env python3
"""CDK entry point: builds the auditor's stacks from cdk.json context (see infra/config.py).

Run by the CDK CLI (`cdk deploy`), which passes cdk.json's context and the account and region
of your credentials (CDK_DEFAULT_ACCOUNT, CDK_DEFAULT_REGION), or directly (`python app.py`,
`make synth`), in which case cdk.json's context is read here.

The stacks:

* ``<stackName>``: the auditor (always);
* ``<stackName>-global-changes``, in us-east-1 of the same account: single-account mode when the
  auditor's region is known at synthesis and is not us-east-1. EventBridge receives IAM and
  Organizations events in us-east-1 only; this stack forwards them to the auditor's region
  (infra/global_events.py). Deploy both with ``cdk deploy --all``;
* ``<stackName>-management``, in us-east-1 of the management account: organization mode with
  ``organization.managementAccount``. Organizations records its events there, where the
  StackSet's forwarders never go; deploy it with the management account's credentials.
"""

import json
import os
from pathlib import Path
from typing import Mapping

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks

from auditor.contract import GLOBAL_EVENTS_REGION
from infra.config import AuditorConfig, ConfigError, load
from infra.global_events import GlobalChangesStack, central_bus_arn, default_bus_arn, undelivered_queue_name
from infra.organization import central_bus_name
from infra.stack import AuditorStack

CDK_JSON = Path(__file__).resolve().with_name("cdk.json")
GLOBAL_CHANGES_SUFFIX = "-global-changes"
MANAGEMENT_SUFFIX = "-management"
STACK_NAME_MAX = 128
#: The id of the warning an environment-agnostic synthesis carries (tests look for it).
REGION_UNKNOWN = "auditor:globalChangesRegionUnknown"
US_EAST_1_NOT_COVERED = "auditor:organizationWithoutUsEast1"


def new_app(outdir: str | None = None, context: dict | None = None) -> cdk.App:
    """An App with cdk.json's context, then ``context``, then whatever the CDK CLI passes.

    cdk.json is always the base (the App lets the CLI's values win), so the feature flags the
    constructs rely on are set even when the app runs without the CLI, or with a partial
    CDK_CONTEXT_JSON (as the tests do).
    """
    merged = dict(json.loads(CDK_JSON.read_text()).get("context", {}))
    merged.update(context or {})
    return cdk.App(outdir=outdir or os.environ.get("CDK_OUTDIR", "cdk.out"), context=merged)


def environment(config: AuditorConfig, environ: Mapping[str, str]) -> tuple[str | None, str | None]:
    """(account, region) the auditor deploys to, None where unknown at synthesis.

    Organization mode: the audit account and home region (the CLI then refuses credentials
    for another account). Otherwise the ``account``/``region`` context, else the CDK CLI's
    CDK_DEFAULT_ACCOUNT/CDK_DEFAULT_REGION (your credentials' account and region)."""
    if config.organization is not None:
        return config.organization.audit_account, config.organization.home_region
    return (config.account or environ.get("CDK_DEFAULT_ACCOUNT") or None,
            config.region or environ.get("CDK_DEFAULT_REGION") or None)


def _stack_name(config: AuditorConfig, suffix: str) -> str:
    name = config.stack_name + suffix
    if len(name) > STACK_NAME_MAX:
        raise ConfigError(f"context 'stackName' is {len(config.stack_name)} characters long: at most "
                          f"{STACK_NAME_MAX - len(suffix)} here, so that the stack '<stackName>{suffix}' fits in {STACK_NAME_MAX}")
    return name


def build(app: cdk.App, environ: Mapping[str, str] | None = None) -> AuditorStack:
    """The auditor's stack (returned) and, where needed, its global-changes stacks."""
    config = load(app.node.try_get_context)
    account, region = environment(config, os.environ if environ is None else environ)
    env = cdk.Environment(account=account, region=region) if account or region else None
    org = config.organization
    forward_globals = org is None and region is not None and region != GLOBAL_EVENTS_REGION
    remote = ()
    if forward_globals:
        remote = (("UndeliveredChanges", GLOBAL_EVENTS_REGION, undelivered_queue_name(config.stack_name)),)
    stack = AuditorStack(app, config.stack_name, config=config, env=env, remote_queues=remote)
    if forward_globals:
        GlobalChangesStack(app, _stack_name(config, GLOBAL_CHANGES_SUFFIX), bus_arn=default_bus_arn(region),
                           auditor_stack_name=config.stack_name, purpose=f"the auditor runs in {region}",
                           env=cdk.Environment(account=account, region=GLOBAL_EVENTS_REGION))
    elif org is None and region is None:
        cdk.Annotations.of(stack).add_warning_v2(REGION_UNKNOWN, (
            f"The auditor's region is not known at synthesis, so no stack forwards IAM and Organizations changes from "
            f"{GLOBAL_EVENTS_REGION} (EventBridge delivers them there only): in any other region incidents will not name "
            f"a detached role policy or an attached SCP. Synthesize with the CDK CLI and credentials (it sets "
            f"CDK_DEFAULT_REGION), or set the context 'region' (and 'account'), then deploy with `cdk deploy --all`."))
    if org is not None:
        if GLOBAL_EVENTS_REGION not in org.regions:
            cdk.Annotations.of(stack).add_warning_v2(US_EAST_1_NOT_COVERED, (
                f"'organization.regions' has no {GLOBAL_EVENTS_REGION}: EventBridge delivers IAM changes there only, so no "
                f"forwarder carries them and incidents will not name a detached role policy. Add {GLOBAL_EVENTS_REGION}."))
        if org.management_account is not None:
            GlobalChangesStack(app, _stack_name(config, MANAGEMENT_SUFFIX),
                               bus_arn=central_bus_arn(org.home_region, org.audit_account, central_bus_name(config.stack_name)),
                               auditor_stack_name=config.stack_name, purpose="organization management account",
                               env=cdk.Environment(account=org.management_account, region=GLOBAL_EVENTS_REGION))
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
