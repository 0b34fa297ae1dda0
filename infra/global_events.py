"""IAM and Organizations changes, wherever the auditor runs.

EventBridge receives the CloudTrail events of global services (IAM, Organizations) in
us-east-1 only. An auditor in another region therefore never sees a role policy detached or an
SCP attached unless a rule in us-east-1 forwards them:

* single account (the stack's region known at synthesis and not us-east-1): app.py adds
  ``GlobalChangesStack`` in us-east-1 of the same account, whose rule puts
  ``GLOBAL_CHANGE_PATTERN`` on the auditor's region's default bus, where the stack's own change
  rule feeds them to the function;
* organization mode: each member account's forwarder in us-east-1 carries them (its change rule
  forwards the whole change pattern to the central bus), and Organizations events, recorded in
  the management account only (where service-managed StackSets never deploy), come from
  ``GlobalChangesStack`` deployed in the management account (``organization.managementAccount``)
  with the central bus as its target.

Both stacks use the CLI's credentials (``LegacyStackSynthesizer``: no bootstrap roles or bucket
needed there; they have no assets and a template far below the 50 KB CloudFormation takes
inline), so the management account needs no CDK bootstrap.
"""

from __future__ import annotations

import hashlib

import aws_cdk as cdk
from aws_cdk import Stack
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from constructs import Construct

from auditor.contract import GLOBAL_EVENTS_REGION

from .detection import pattern_rule
from .pattern import CHANGE_RULE_STATE, GLOBAL_CHANGE_PATTERN
from .queues import parking_queue

#: What a forwarding target does when the bus does not answer: as the stack's own rules.
RETRY_POLICY = {"MaximumRetryAttempts": 8, "MaximumEventAgeInSeconds": 7200}
RULE_NAME_MAX = 64


def rule_name(stack_name: str, suffix: str) -> str:
    """A rule name unique per auditor (``<stackName>-<suffix>``), within EventBridge's 64 characters.

    Named, so that the role the rule uses can name it in its trust policy (``aws:SourceArn``)
    without a circular reference between the role and the rule."""
    name = f"{stack_name}-{suffix}"
    if len(name) <= RULE_NAME_MAX:
        return name
    digest = hashlib.sha256(stack_name.encode()).hexdigest()[:8]
    return f"{stack_name[:RULE_NAME_MAX - len(suffix) - len(digest) - 2]}-{digest}-{suffix}"


def undelivered_queue_name(stack_name: str) -> str:
    """The global-changes stack's dead-letter queue (SQS names: at most 80 characters)."""
    return rule_name(stack_name, "global-changes-undelivered")[:80]


def events_role(scope: Construct, id: str, *, rule: str, description: str) -> iam.Role:
    """A role only EventBridge may assume, and only for the rule named ``rule`` on this
    account's default bus in this region (confused-deputy conditions: aws:SourceAccount and
    aws:SourceArn). The rule's event-bus target grants it events:PutEvents on its bus."""
    # As the forwarder's failure rule's role (infra/organization.py): EventBridge's confused-deputy
    # page, "for EventBridge event bus rule targets, the value of aws:SourceArn must be the rule ARN".
    rule_arn = f"arn:{cdk.Aws.PARTITION}:events:{cdk.Aws.REGION}:{cdk.Aws.ACCOUNT_ID}:rule/{rule}"
    principal = iam.ServicePrincipal("events.amazonaws.com").with_conditions({
        "StringEquals": {"aws:SourceAccount": cdk.Aws.ACCOUNT_ID},
        "ArnEquals": {"aws:SourceArn": rule_arn},
    })
    return iam.Role(scope, id, assumed_by=principal, description=description)


def forward(rule: events.Rule, *, bus_arn: str, role: iam.IRole, dead_letters) -> None:
    """Target ``rule`` at the bus ``bus_arn`` (any region, any account whose bus policy admits
    this one) through ``role``, with retries and a dead-letter queue."""
    rule.add_target(targets.EventBus(events.EventBus.from_event_bus_arn(rule, "TargetBus", bus_arn),
                                     role=role, dead_letter_queue=dead_letters))
    # The L2 event-bus target takes no retry policy; EventBridge supports one on every target.
    # (The rule's only target, so Targets.0.)
    rule.node.default_child.add_property_override("Targets.0.RetryPolicy", RETRY_POLICY)


class GlobalChangesStack(Stack):
    """In us-east-1: IAM and Organizations changes -> the auditor's bus (another region, or the
    organization's central bus)."""

    def __init__(self, scope: Construct, id: str, *, bus_arn: str, auditor_stack_name: str, purpose: str, **kwargs) -> None:
        super().__init__(scope, id, synthesizer=cdk.LegacyStackSynthesizer(),
                         description=f"Forwards IAM and Organizations changes from {GLOBAL_EVENTS_REGION} to the Secrets "
                                     f"Manager and KMS failure auditor ({purpose})", **kwargs)
        self.bus_arn = bus_arn
        name = rule_name(auditor_stack_name, "global-changes")
        # Named, so that the auditor's dashboard (another region) can graph its depth.
        self.dead_letters = parking_queue(self, "UndeliveredChanges", queue_name=undelivered_queue_name(auditor_stack_name))
        self.role = events_role(self, "PutOnAuditorBus", rule=name,
                                description="May put events on the Secrets Manager and KMS failure auditor's bus, nothing else")
        self.rule = pattern_rule(self, "GlobalChanges", pattern=GLOBAL_CHANGE_PATTERN, state=CHANGE_RULE_STATE, rule_name=name,
                                 description="IAM and Organizations changes (delivered in us-east-1 only), forwarded to the auditor")
        forward(self.rule, bus_arn=bus_arn, role=self.role, dead_letters=self.dead_letters)
        cdk.Validations.of(self.dead_letters).acknowledge(cdk.Acknowledgment(
            id="AwsSolutions-SQS3", reason="This queue is itself the global-changes rule's dead-letter queue."))


def default_bus_arn(region: str) -> str:
    """The default bus of the deploying account in ``region`` (for a stack in the same account)."""
    return cdk.Fn.sub(f"arn:${{AWS::Partition}}:events:{region}:${{AWS::AccountId}}:event-bus/default")


def central_bus_arn(home_region: str, audit_account: str, bus_name: str) -> str:
    return cdk.Fn.sub(f"arn:${{AWS::Partition}}:events:{home_region}:{audit_account}:event-bus/{bus_name}")
