"""Storm-proof ingestion: EventBridge -> an encrypted SQS queue -> the function in batches.

A burst of failures anywhere queues up instead of fanning out into thousands of concurrent
invocations: the event source mapping caps concurrency, hands the function batches (which it
collapses by fingerprint before touching DynamoDB), and retries only the records the
function reports as failed; after five receives a record is parked in the dead-letter queue.
"""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from .queues import parking_queue

MAX_RECEIVES = 5


class Ingestion(Construct):
    def __init__(self, scope: Construct, id: str, *, function: lambda_.Function, max_concurrency: int, batch_size: int = 100) -> None:
        super().__init__(scope, id)
        self.dead_letters = parking_queue(self, "FailedEvents")
        self.queue = sqs.Queue(
            self,
            "Events",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=Duration.days(4),
            # Six times the function's timeout, as Lambda recommends for SQS event sources.
            visibility_timeout=Duration.seconds(6 * function.timeout.to_seconds()),
            dead_letter_queue=sqs.DeadLetterQueue(queue=self.dead_letters, max_receive_count=MAX_RECEIVES),
        )
        function.add_event_source(
            sources.SqsEventSource(
                self.queue,
                batch_size=batch_size,
                max_batching_window=Duration.seconds(5),
                report_batch_item_failures=True,
                max_concurrency=max_concurrency,
            )
        )
