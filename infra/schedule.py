"""The incident clock: an EventBridge schedule that invokes the function every minute with
EventBridge's ``Scheduled Event``. Each run resolves the incidents that stayed quiet for the
quiet period, counts the records that waited long enough for their partner, and emits the
``OpenIncidents`` gauge.

A run that fails is not retried, by EventBridge or by Lambda: the next tick, a minute later,
does the same work (the runs are idempotent: every resolution is a conditional write), and a
retry arriving next to it would only race it. Events older than a minute are dropped for the
same reason.
"""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

EVERY = Duration.minutes(1)
#: The shortest age EventBridge and Lambda accept: a tick older than this is superseded by the next one.
MAX_AGE = Duration.seconds(60)


class IncidentSchedule(Construct):
    def __init__(self, scope: Construct, id: str, *, function: lambda_.Function) -> None:
        super().__init__(scope, id)
        self.rule = events.Rule(self, "EveryMinute", schedule=events.Schedule.rate(EVERY),
                                description="Resolves quiet incidents and counts records that waited for their partner")
        # The target adds the function's invoke permission for this rule only (aws:SourceArn).
        self.rule.add_target(targets.LambdaFunction(function, retry_attempts=0, max_event_age=MAX_AGE))
        # Asynchronous invocations (this schedule is the function's only asynchronous caller).
        function.configure_async_invoke(retry_attempts=0, max_event_age=MAX_AGE)
