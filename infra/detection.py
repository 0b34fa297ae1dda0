"""The EventBridge rules that hand the function what it needs: every failed Secrets Manager /
KMS call (and rotation failure), and the successful calls that can start an incident."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from .pattern import CHANGE_PATTERN, CHANGE_RULE_STATE, DETECTION_PATTERN, RULE_STATE
from .queues import parking_queue


def pattern_rule(scope: Construct, id: str, *, pattern: dict, state: str, description: str,
                 event_bus: events.IEventBus | None = None) -> events.Rule:
    """A rule with ``pattern`` (which the L2 EventPattern type cannot express: "$or",
    "exists": false) and ``state`` (ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS has no L2 enum)."""
    rule = events.Rule(scope, id, description=description, event_bus=event_bus,
                       # placeholder, replaced below
                       event_pattern=events.EventPattern(source=pattern.get("source", ["aws.kms"])))
    cfn = rule.node.default_child
    cfn.add_property_override("EventPattern", pattern)
    cfn.add_property_override("State", state)
    return rule


class Detection(Construct):
    def __init__(self, scope: Construct, id: str, *, queue: sqs.IQueue) -> None:
        super().__init__(scope, id)
        self.dead_letters = parking_queue(self, "UndeliveredEvents")
        self.rule = pattern_rule(self, "FailedCalls", pattern=DETECTION_PATTERN, state=RULE_STATE,
                                 description="Failed Secrets Manager and KMS calls (read-only included) and rotation failures")
        self.change_rule = pattern_rule(
            self, "Changes", pattern=CHANGE_PATTERN, state=CHANGE_RULE_STATE,
            description="Successful KMS, Secrets Manager, IAM, Organizations and VPC endpoint changes that can start an incident")
        for rule in (self.rule, self.change_rule):
            rule.add_target(targets.SqsQueue(queue, dead_letter_queue=self.dead_letters, retry_attempts=8,
                                             max_event_age=Duration.hours(2)))
