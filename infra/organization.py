"""Organization mode: one auditor for every account and region.

* In the audit account (home region): a custom event bus whose policy admits PutEvents only
  from principals of the organization (``aws:PrincipalOrgID``), and a rule on it that feeds
  the same ingestion queue as the account's own rule.
* In every member account and region: a forwarder — the same detection rule on the default
  bus, whose target is the central bus through a role that may put events on that bus and
  nothing else — rolled out as a service-managed CloudFormation StackSet that deploys
  automatically to accounts joining the configured OUs.

Why ``CfnStackSet`` with an inline template rather than the cdk-stacksets library: the
forwarder has no assets (no code, no files), so its synthesized template fits in
``TemplateBody`` and needs no asset bucket shared across the organization, no extra
dependency, and the whole rollout is one resource in the central stack.
"""

from __future__ import annotations

import hashlib
import json

import aws_cdk as cdk
from aws_cdk import Duration, Stack
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from .config import Organization
from .queues import parking_queue
from .pattern import DETECTION_PATTERN, RULE_STATE


def central_bus_name(stack_name: str) -> str:
    return f"{stack_name}-central"


def forwarder_rule_name(stack_name: str) -> str:
    """The forwarder rule's name, the same in every member account and region: known before the
    rule exists, so its role's trust policy can name the rule's ARN (the rule's generated ARN
    would depend on the role, which the rule's target references: a cycle). One per auditor
    (its stack name); EventBridge allows 64 characters."""
    name = f"{stack_name}-forward"
    if len(name) <= 64:
        return name
    return f"{stack_name[:47]}-forward-{hashlib.sha256(stack_name.encode()).hexdigest()[:8]}"


class CentralBus(Construct):
    """The audit account's bus for the organization's forwarded failures."""

    def __init__(self, scope: Construct, id: str, *, org: Organization, stack_name: str, queue: sqs.IQueue) -> None:
        super().__init__(scope, id)
        self.bus = events.EventBus(self, "Bus", event_bus_name=central_bus_name(stack_name))
        self.bus.add_to_resource_policy(iam.PolicyStatement(
            sid="OrganizationMembersPutEvents",
            principals=[iam.AnyPrincipal()],
            actions=["events:PutEvents"],
            resources=[self.bus.event_bus_arn],
            conditions={"StringEquals": {"aws:PrincipalOrgID": org.id}},
        ))
        self.dead_letters = parking_queue(self, "UndeliveredForwardedEvents")
        self.rule = events.Rule(self, "ForwardedFailures", event_bus=self.bus,
                                description="Failures forwarded from the organization's accounts and regions",
                                event_pattern=events.EventPattern(source=DETECTION_PATTERN["source"]))
        self.rule.node.default_child.add_property_override("EventPattern", DETECTION_PATTERN)
        # Forwarded read-only calls (GetSecretValue, Decrypt, ...) are still read-only management
        # events: a rule on a custom bus matches them only in this state, as on the default bus.
        self.rule.node.default_child.add_property_override("State", RULE_STATE)
        self.rule.add_target(targets.SqsQueue(queue, dead_letter_queue=self.dead_letters, retry_attempts=8,
                                              max_event_age=Duration.hours(2)))


class ForwarderStack(Stack):
    """What each member account and region runs: detection rule -> central bus."""

    def __init__(self, scope: Construct, id: str, *, bus_name: str, rule_name: str, audit_account: str, home_region: str,
                 **kwargs) -> None:
        super().__init__(scope, id, description="Forwards failed Secrets Manager and KMS calls to the organization's auditor",
                         synthesizer=cdk.CliCredentialsStackSynthesizer(), **kwargs)
        # The partition is the one the stack instance runs in (a StackSet never leaves its partition).
        bus_arn = cdk.Fn.sub(f"arn:${{AWS::Partition}}:events:{home_region}:{audit_account}:event-bus/{bus_name}")
        self.dead_letters = parking_queue(self, "UndeliveredEvents")
        # The target grants this role events:PutEvents on the central bus, and nothing else. Only
        # EventBridge acting for this stack instance's own rule may assume it: Amazon EventBridge
        # User Guide, "Cross-service confused deputy prevention in Amazon EventBridge"
        # (https://docs.aws.amazon.com/eventbridge/latest/userguide/cross-service-confused-deputy-prevention.html):
        # "For EventBridge event bus rule targets, the value of aws:SourceArn must be the rule ARN."
        # (and aws:SourceAccount is "the account in which the rule specified by aws:SourceArn exists",
        # eb-use-conditions.html). The template runs in every member account and region: pseudo
        # parameters, not literals; the rule has a known name (a rule on the default bus has the
        # ARN .../rule/<name>), since referencing its generated ARN here would be a cycle.
        rule_arn = f"arn:{cdk.Aws.PARTITION}:events:{cdk.Aws.REGION}:{cdk.Aws.ACCOUNT_ID}:rule/{rule_name}"
        self.role = iam.Role(self, "PutOnCentralBus", assumed_by=iam.ServicePrincipal("events.amazonaws.com").with_conditions({
                                 "StringEquals": {"aws:SourceAccount": cdk.Aws.ACCOUNT_ID},
                                 "ArnEquals": {"aws:SourceArn": rule_arn}}),
                             description="May put events on the auditor's central bus, nothing else")
        rule = events.Rule(self, "FailedCalls", rule_name=rule_name,
                           description="Failed Secrets Manager and KMS calls, forwarded to the auditor "
                           "(disabled in the auditor's own account and region, whose rule reads the default bus itself)",
                           event_pattern=events.EventPattern(source=DETECTION_PATTERN["source"]))
        cfn = rule.node.default_child
        cfn.add_property_override("EventPattern", DETECTION_PATTERN)
        # Where the auditor itself runs (the audit account, home region: the bus's own account and
        # region), its stack's rule already reads the default bus; forwarding too would deliver
        # every failure there twice. The StackSet still deploys here when that account is in an OU.
        at_auditor = cdk.CfnCondition(self, "AtTheAuditor", expression=cdk.Fn.condition_and(
            cdk.Fn.condition_equals(cdk.Aws.ACCOUNT_ID, audit_account), cdk.Fn.condition_equals(cdk.Aws.REGION, home_region)))
        cfn.add_property_override("State", cdk.Fn.condition_if(at_auditor.logical_id, "DISABLED", RULE_STATE))
        rule.add_target(targets.EventBus(events.EventBus.from_event_bus_arn(self, "Central", bus_arn), role=self.role,
                                         dead_letter_queue=self.dead_letters))
        # The L2 event-bus target takes no retry policy; EventBridge supports one on every target.
        cfn.add_property_override("Targets.0.RetryPolicy", {"MaximumRetryAttempts": 8, "MaximumEventAgeInSeconds": 7200})
        cdk.Validations.of(self.dead_letters).acknowledge(cdk.Acknowledgment(
            id="AwsSolutions-SQS3", reason="This queue is itself the forwarder's dead-letter queue."))


def forwarder_template(org: Organization, stack_name: str, *, nag: bool = True) -> dict:
    """Synthesize the forwarder on its own (no assets) and return its template."""
    import tempfile

    app = cdk.App(outdir=tempfile.mkdtemp(prefix="auditor-forwarder-"))
    stack = ForwarderStack(app, "SecretsKmsAuditorForwarder", bus_name=central_bus_name(stack_name),
                           rule_name=forwarder_rule_name(stack_name), audit_account=org.audit_account,
                           home_region=org.home_region)
    if nag:
        from cdk_nag import AwsSolutionsChecks

        cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    assembly = app.synth()
    return assembly.get_stack_artifact(stack.artifact_id).template


class ForwarderRollout(Construct):
    """The forwarder as a service-managed StackSet, deployed automatically to the OUs' accounts."""

    def __init__(self, scope: Construct, id: str, *, org: Organization, stack_name: str, central: CentralBus) -> None:
        super().__init__(scope, id)
        body = json.dumps(forwarder_template(org, stack_name), separators=(",", ":"))
        self.stack_set = cdk.CfnStackSet(
            self, "Forwarders",
            stack_set_name=f"{stack_name}-forwarders",
            description="Forwards failed Secrets Manager and KMS calls of every account and region to the central auditor",
            permission_model="SERVICE_MANAGED",
            auto_deployment=cdk.CfnStackSet.AutoDeploymentProperty(enabled=True, retain_stacks_on_account_removal=False),
            call_as=org.call_as,
            capabilities=["CAPABILITY_IAM"],
            managed_execution={"Active": True},
            # SOFT_FAILURE_TOLERANCE: 50 % of the accounts at once, whatever the tolerance (the default,
            # strict mode, would run only tolerance + 1 accounts at a time); past 20 % failed accounts
            # in a Region the operation stops. (Auto-deployment to joining accounts ignores these.)
            operation_preferences=cdk.CfnStackSet.OperationPreferencesProperty(
                concurrency_mode="SOFT_FAILURE_TOLERANCE", failure_tolerance_percentage=20,
                max_concurrent_percentage=50, region_concurrency_type="PARALLEL"),
            stack_instances_group=[cdk.CfnStackSet.StackInstancesProperty(
                deployment_targets=cdk.CfnStackSet.DeploymentTargetsProperty(organizational_unit_ids=list(org.organizational_units)),
                regions=list(org.regions))],
            template_body=body,
        )
        # Forwarders go live only once the bus and its organization policy exist.
        self.stack_set.node.add_dependency(central)
