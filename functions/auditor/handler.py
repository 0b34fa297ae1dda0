"""Lambda entry point: Powertools wiring only (logs, metrics, traces); the logic is pipeline.py.

Accepts one EventBridge event per invocation (an EventBridge rule target), or an SQS batch of
EventBridge events (partial batch failures: only records that failed transiently return).
"""

from __future__ import annotations

import json
import os
from typing import Optional

import boto3  # noqa: F401 - every invocation publishes with it: load it at init, not on the first event
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit, single_metric

logger = Logger()
metrics = Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "SecretsKmsAuditor"))
_pipeline = None

# X-Ray: the function runs with active tracing, so every invocation is traced by Lambda itself.
# Powertools Tracer adds subsegments for each AWS call, but importing the X-Ray SDK costs
# ~190 ms of cold start (it builds a botocore client at import): opt in where that detail
# is worth it.
if os.environ.get("AUDITOR_TRACE_SUBSEGMENTS", "false").lower() == "true":
    from aws_lambda_powertools import Tracer

    tracer = Tracer()
    _traced = tracer.capture_lambda_handler
else:
    tracer = None

    def _traced(function):
        return function


class PublishFailed(RuntimeError):
    """A finding could not be published: raised so that AWS retries the event."""


class PowertoolsMetrics:
    """The pipeline's metrics, as CloudWatch embedded metric format through Powertools."""

    def count(self, name: str, value: int = 1) -> None:
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)

    def findings(self, service: str, cause: str, value: int) -> None:
        with single_metric(name="Findings", unit=MetricUnit.Count, value=value, namespace=metrics.namespace,
                           default_dimensions=metrics.default_dimensions) as metric:
            metric.add_dimension(name="AwsService", value=service)
            metric.add_dimension(name="Cause", value=cause)


def _account_of(context) -> Optional[str]:
    """The function's own account, from its ARN (arn:aws:lambda:region:account:function:name):
    no GetCallerIdentity call on a cold start. None outside Lambda; the enricher then asks STS."""
    arn = getattr(context, "invoked_function_arn", None)
    parts = arn.split(":") if isinstance(arn, str) else []
    return parts[4] if len(parts) > 4 and parts[4].isdigit() and len(parts[4]) == 12 else None


def pipeline(context=None):
    """Built on first use from the environment, then reused for the container's life (caches)."""
    global _pipeline
    if _pipeline is None:
        from .dedup import Dedup
        from .enrich import Enricher
        from .pipeline import Pipeline
        from .publish import Publisher

        topic = os.environ["FINDINGS_TOPIC_ARN"]
        if not (os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")) and topic.count(":") >= 5:
            # run standalone (outside Lambda, which always sets AWS_REGION): the topic's region
            os.environ["AWS_DEFAULT_REGION"] = topic.split(":")[3]
        table = os.environ.get("DEDUP_TABLE_NAME", "")
        _pipeline = Pipeline(
            publisher=Publisher(topic),
            dedup=Dedup(table, int(os.environ.get("DEDUP_WINDOW_SECONDS", "900"))) if table else None,
            enricher=Enricher(consistency_window_seconds=int(os.environ.get("CONSISTENCY_WINDOW_SECONDS", "600")),
                              simulate_policies=os.environ.get("SIMULATE_POLICIES", "false").lower() == "true",
                              own_account=_account_of(context)),
            metrics=PowertoolsMetrics(),
            logger=logger,
        )
    return _pipeline


def _sqs_batch(event) -> bool:
    records = event.get("Records") if isinstance(event, dict) else None
    return isinstance(records, list) and bool(records) and isinstance(records[0], dict) and records[0].get("eventSource") == "aws:sqs"


def _body(record) -> object:
    try:
        return json.loads(record.get("body") or "")
    except (ValueError, TypeError, AttributeError, RecursionError):
        return None  # parse_record turns it into a counted, logged "malformed" outcome


def _key(record, index: int) -> str:
    key = record.get("messageId") if isinstance(record, dict) else None
    return key if isinstance(key, str) and key else f"record-{index}"


def _handle_sqs(event: dict, context) -> dict:
    """An SQS batch: the whole batch goes through the pipeline at once (identical fingerprints
    collapse before DynamoDB is touched); Powertools' batch processor then reports, as partial
    batch failures, the records whose finding could not be published."""
    records = event["Records"]
    keys = [_key(r, i) for i, r in enumerate(records)]
    report = pipeline(context).handle([(key, _body(r)) for key, r in zip(keys, records)])
    failed = set(report.failed_keys)
    if not all(isinstance(r, dict) and isinstance(r.get("messageId"), str) and r["messageId"] for r in records):
        # not something SQS sends: answer in the same shape without Powertools' record model
        return {"batchItemFailures": [{"itemIdentifier": k} for k in dict.fromkeys(report.failed_keys)]}
    from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response

    def record_handler(record) -> None:
        if record.message_id in failed:
            raise PublishFailed("the finding of this record could not be published; SQS will redeliver it")

    # All records failed: report them all rather than raise (same redelivery, quieter logs).
    processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
@_traced
def handler(event, context):
    if _sqs_batch(event):
        logger.set_correlation_id(None)  # a batch has many events: each finding line carries its own
        return _handle_sqs(event, context)
    detail = event.get("detail") if isinstance(event, dict) else None
    event_id = detail.get("eventID") if isinstance(detail, dict) else None
    logger.set_correlation_id(event_id[:128] if isinstance(event_id, str) else None)
    key = event.get("id") if isinstance(event, dict) and isinstance(event.get("id"), str) else "event"
    report = pipeline(context).handle([(key, event)])
    if report.failed_keys:
        raise PublishFailed(f"{len(report.failed_keys)} finding(s) could not be published; EventBridge/Lambda will retry")
    return {"findings": len(report.findings), "notified": len(report.notified)}
