"""The queues the stack parks events in: encrypted, TLS only, kept 14 days."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_sqs as sqs
from constructs import Construct


def parking_queue(scope: Construct, id: str, queue_name: str | None = None) -> sqs.Queue:
    """A dead-letter queue: SSE-SQS, TLS only, messages kept 14 days (the most SQS allows)."""
    return sqs.Queue(
        scope,
        id,
        queue_name=queue_name,
        encryption=sqs.QueueEncryption.SQS_MANAGED,
        enforce_ssl=True,
        retention_period=Duration.days(14),
    )
