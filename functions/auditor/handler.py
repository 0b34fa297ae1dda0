"""Lambda entry point: Powertools wiring only (logs, metrics, traces); the logic is pipeline.py.

Accepts one EventBridge event per invocation (an EventBridge rule target), or an SQS batch of
EventBridge events (partial batch failures: only records that failed transiently return).
"""

from __future__ import annotations

import json
import os

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


def pipeline():
    """Built on first use from the environment, then reused for the container's life (caches)."""
    global _pipeline
    if _pipeline is None:
        from .dedup import Dedup
        from .enrich import Enricher
        from .pipeline import Pipeline
        from .publish import Publisher

        table = os.environ.get("DEDUP_TABLE_NAME", "")
        _pipeline = Pipeline(
            publisher=Publisher(os.environ["FINDINGS_TOPIC_ARN"]),
            dedup=Dedup(table, int(os.environ.get("DEDUP_WINDOW_SECONDS", "900"))) if table else None,
            enricher=Enricher(consistency_window_seconds=int(os.environ.get("CONSISTENCY_WINDOW_SECONDS", "600")),
                              simulate_policies=os.environ.get("SIMULATE_POLICIES", "false").lower() == "true"),
            metrics=PowertoolsMetrics(),
            logger=logger,
        )
    return _pipeline


def _sqs_batch(event) -> bool:
    records = event.get("Records") if isinstance(event, dict) else None
    return isinstance(records, list) and bool(records) and isinstance(records[0], dict) and records[0].get("eventSource") == "aws:sqs"


def _body(record: dict):
    try:
        return json.loads(record.get("body") or "")
    except (ValueError, TypeError, RecursionError):
        return None  # parse_record turns it into a counted, logged "malformed" outcome


@metrics.log_metrics
@_traced
def handler(event, context):
    if _sqs_batch(event):
        items = [(r.get("messageId", f"record-{i}"), _body(r)) for i, r in enumerate(event["Records"])]
        report = pipeline().handle(items)
        return {"batchItemFailures": [{"itemIdentifier": key} for key in dict.fromkeys(report.failed_keys)]}
    detail = event.get("detail") if isinstance(event, dict) else None
    event_id = detail.get("eventID") if isinstance(detail, dict) else None
    if isinstance(event_id, str):
        logger.set_correlation_id(event_id[:128])
    key = event.get("id") if isinstance(event, dict) and isinstance(event.get("id"), str) else "event"
    report = pipeline().handle([(key, event)])
    if report.failed_keys:
        raise PublishFailed(f"{len(report.failed_keys)} finding(s) could not be published; EventBridge/Lambda will retry")
    return {"findings": len(report.findings), "notified": len(report.notified)}
