"""The EventBridge rule that hands every failed Secrets Manager / KMS call to the ingestion queue."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from .queues import parking_queue
from .pattern import DETECTION_PATTERN, RULE_STATE


class Detection(Construct):
    def __init__(self, scope: Construct, id: str, *, queue: sqs.IQueue) -> None:
        super().__init__(scope, id)
        self.dead_letters = parking_queue(self, "UndeliveredEvents")
        self.rule = events.Rule(
            self,
            "FailedCalls",
            description="Failed Secrets Manager and KMS calls (read-only included) and rotation failures",
            # Placeholder pattern, replaced below: the L2 EventPattern type cannot express "$or".
            event_pattern=events.EventPattern(source=DETECTION_PATTERN["source"]),
        )
        cfn = self.rule.node.default_child
        cfn.add_property_override("EventPattern", DETECTION_PATTERN)
        # Read-only calls (GetSecretValue, Decrypt, ...) reach only rules in this state.
        cfn.add_property_override("State", RULE_STATE)
        self.rule.add_target(
            targets.SqsQueue(
                queue,
                dead_letter_queue=self.dead_letters,
                retry_attempts=8,
                max_event_age=Duration.hours(2),
            )
        )
