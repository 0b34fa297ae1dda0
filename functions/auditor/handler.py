"""Lambda entry point: Powertools wiring only (logs, metrics, traces); the logic is pipeline.py.

Three kinds of invocation:
* an SQS batch of EventBridge events (the deployed event source mapping): partial batch
  failures, only the records whose notification could not be published are returned;
* one EventBridge event (a rule targeting the function directly);
* the EventBridge ``Scheduled Event`` of the stack's schedule: resolve quiet incidents.
"""

from __future__ import annotations

import gc

# Init builds only what lives as long as the container (modules, botocore's models, the
# catalog): garbage collections during it scan everything and free next to nothing (they cost
# ~70 ms of a cold start, bench: cold_start_vs_boto3_publish). So none runs until init ends;
# then what init built is frozen (gc.freeze, end of this module), which also keeps every full
# collection of the warm invocations from scanning it again.
_collecting = gc.isenabled()
gc.disable()

import json  # noqa: E402
import os  # noqa: E402
from typing import Optional  # noqa: E402

import botocore.session  # noqa: E402,F401 - every invocation publishes with it: load it at init, not on the first event
from aws_lambda_powertools import Logger, Metrics  # noqa: E402
from aws_lambda_powertools.metrics import MetricUnit, single_metric  # noqa: E402

from .aws import ACCOUNT_ID  # noqa: E402
from .config import Config  # noqa: E402
from .contract import NAMESPACE, SCHEDULED_EVENT, Dimension, Env, Metric  # noqa: E402
from .pipeline import Pipeline  # noqa: E402

logger = Logger()
metrics = Metrics(namespace=os.environ.get(Env.POWERTOOLS_METRICS_NAMESPACE) or NAMESPACE)
_pipeline: Optional[Pipeline] = None

# X-Ray: the function runs with active tracing, so every invocation is traced by Lambda itself.
# Powertools Tracer adds subsegments for each AWS call, but importing the X-Ray SDK costs
# ~190 ms of cold start (it builds a botocore client at import): opt in where that detail
# is worth it.
if os.environ.get(Env.TRACE_SUBSEGMENTS, "false").lower() == "true":
    from aws_lambda_powertools import Tracer

    tracer = Tracer()
    _traced = tracer.capture_lambda_handler
else:
    tracer = None

    def _traced(function):
        return function


class PublishFailed(RuntimeError):
    """A notification could not be published: raised so that AWS retries the event."""


class PowertoolsMetrics:
    """The pipeline's metrics, as CloudWatch embedded metric format through Powertools."""

    def count(self, name: str, value: int = 1) -> None:
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)

    def gauge(self, name: str, value: int) -> None:
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)

    def seconds(self, name: str, value: float) -> None:
        metrics.add_metric(name=name, unit=MetricUnit.Seconds, value=value)

    def findings(self, service: str, cause: str, value: int) -> None:
        with single_metric(name=Metric.FINDINGS, unit=MetricUnit.Count, value=value, namespace=metrics.namespace,
                           default_dimensions=metrics.default_dimensions) as metric:
            metric.add_dimension(name=Dimension.AWS_SERVICE, value=service)
            metric.add_dimension(name=Dimension.CAUSE, value=cause)


def _account_of(context) -> Optional[str]:
    """The function's own account, from its ARN (arn:aws:lambda:region:account:function:name):
    no GetCallerIdentity call on a cold start. None outside Lambda; the enricher then asks STS."""
    arn = getattr(context, "invoked_function_arn", None)
    parts = arn.split(":") if isinstance(arn, str) else []
    return parts[4] if len(parts) > 4 and ACCOUNT_ID.match(parts[4]) else None


def pipeline(context=None) -> Pipeline:
    """Built on first use from the environment (one validated Config), then reused for the
    container's life (clients, caches)."""
    global _pipeline
    if _pipeline is None:
        _pipeline = Pipeline.from_config(Config.from_env(), metrics=PowertoolsMetrics(), logger=logger,
                                         own_account=_account_of(context))
    return _pipeline


def _sqs_records(event) -> Optional[list]:
    records = event.get("Records") if isinstance(event, dict) else None
    if isinstance(records, list) and records and isinstance(records[0], dict) and records[0].get("eventSource") == "aws:sqs":
        return records
    return None


def _body(record) -> object:
    try:
        return json.loads(record.get("body") or "")
    except (ValueError, TypeError, AttributeError, RecursionError):
        return None  # parse_record turns it into a counted, logged "malformed" outcome


def _key(record, index: int) -> str:
    key = record.get("messageId") if isinstance(record, dict) else None
    return key if isinstance(key, str) and key else f"record-{index}"


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
@_traced
def handler(event, context):
    records = _sqs_records(event)
    if records is not None:
        logger.set_correlation_id(None)  # a batch has many events: each finding line carries its own
        keys = [_key(r, i) for i, r in enumerate(records)]
        report = pipeline(context).handle([(key, _body(r)) for key, r in zip(keys, records)])
        # Partial batch response: SQS redelivers only these (ReportBatchItemFailures).
        return {"batchItemFailures": [{"itemIdentifier": k} for k in dict.fromkeys(report.failed_keys)]}
    if isinstance(event, dict) and event.get("detail-type") == SCHEDULED_EVENT:
        left = getattr(context, "get_remaining_time_in_millis", None)
        report = pipeline(context).scheduled(remaining=(lambda: left() / 1000) if callable(left) else None)
        return {"notified": len(report.notified)}
    detail = event.get("detail") if isinstance(event, dict) else None
    event_id = detail.get("eventID") if isinstance(detail, dict) else None
    logger.set_correlation_id(event_id[:128] if isinstance(event_id, str) else None)
    key = event.get("id") if isinstance(event, dict) and isinstance(event.get("id"), str) else "event"
    report = pipeline(context).handle([(key, event)])
    if report.failed_keys:
        raise PublishFailed(f"{len(report.failed_keys)} notification(s) could not be published; EventBridge/Lambda will retry")
    return {"findings": len(report.findings), "notified": len(report.notified)}


# End of init (see the top of this module).
gc.freeze()
if _collecting:
    gc.enable()
