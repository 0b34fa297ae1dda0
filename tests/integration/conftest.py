"""A findings topic with an SQS subscriber and a dedup table on the moto server, and helpers
to read what the subscriber received."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass

import pytest

from demo.stand_in import findings_stack

from ..unit.conftest import fixture_records


@dataclass
class Received:
    subject: str
    body: dict
    attributes: dict


@dataclass
class Stack:
    topic_arn: str
    table: str
    queue_url: str
    aws: object

    def drain(self) -> list[Received]:
        sqs = self.aws("sqs")
        out = []
        while True:
            batch = sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", [])
            if not batch:
                return out
            for m in batch:
                envelope = json.loads(m["Body"])
                attrs = {k: v["Value"] for k, v in envelope.get("MessageAttributes", {}).items()}
                out.append(Received(envelope.get("Subject", ""), json.loads(envelope["Message"]), attrs))
                sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=m["ReceiptHandle"])


def make_stack(aws) -> Stack:
    name = f"auditor-{uuid.uuid4().hex[:8]}"
    topic, queue = findings_stack(aws("sns"), aws("sqs"), aws("dynamodb"), name)
    return Stack(topic, name, queue, aws)


@pytest.fixture
def stack(capsys, aws, monkeypatch):
    """A fresh topic/queue/table per test, wired into the handler's environment."""
    s = make_stack(aws)
    monkeypatch.setenv("FINDINGS_TOPIC_ARN", s.topic_arn)
    monkeypatch.setenv("DEDUP_TABLE_NAME", s.table)
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "secrets-kms-auditor")
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "SecretsKmsAuditor")
    import auditor.handler as handler

    monkeypatch.setattr(handler, "_pipeline", None)
    # Powertools' log handler keeps the stdout it saw at import: make it follow the current one,
    # so pytest's capture sees the log lines.
    handler.logger.registered_handler.setStream(CurrentStdout())
    return s


class CurrentStdout:
    def write(self, text):
        import sys

        return sys.stdout.write(text)

    def flush(self):
        import sys

        sys.stdout.flush()


class Context:
    function_name = "auditor"
    memory_limit_in_mb = 256
    invoked_function_arn = "arn:aws:lambda:us-east-1:111122223333:function:auditor"
    aws_request_id = "req-1"


@pytest.fixture
def failures():
    """(cause, name, record) of every failure fixture, as if it had just happened (the function
    never pages a failure older than its quiet period when it arrives: demo.envelope.fresh)."""
    from demo.envelope import fresh

    return [(c, p.stem, fresh([r])[0]) for c, p, r, _ in fixture_records() if c != "success"]


def emf(captured: str) -> list[dict]:
    """The embedded-metric-format lines Powertools printed."""
    out = []
    for line in captured.splitlines():
        if '"_aws"' in line:
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
    return out


def metric_total(lines: list[dict], name: str, **dims) -> float:
    total = 0.0
    for doc in lines:
        names = [m["Name"] for d in doc["_aws"]["CloudWatchMetrics"] for m in d["Metrics"]]
        if name in names and all(doc.get(k) == v for k, v in dims.items()):
            value = doc[name]
            total += sum(value) if isinstance(value, list) else value
    return total
