"""Hostile events straight into the Lambda handler: it never raises for bad input, and every bad
event is logged and counted (publishing is faked here; the AWS side is tested in integration/)."""

from __future__ import annotations

import io
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import auditor.handler as handler
from auditor.pipeline import Pipeline

from .test_hostile_core import JSONISH, mutated_records


class Published:
    """The channel the pipeline sees (as the SNS topic), recording what it was asked to send."""

    name = "sns"

    def __init__(self):
        self.notices = []

    def send(self, notices):
        self.notices += notices
        return [None] * len(notices)

    @property
    def failures(self) -> int:
        """Failures the alerts sent account for (each alert counts its incident's)."""
        return sum(n.incident.failures for n in self.notices)

    @property
    def resources(self) -> set:
        return {r for n in self.notices for r in n.incident.resources}


class Counter:
    def __init__(self):
        self.counts = {}

    def count(self, name, value=1):
        self.counts[name] = self.counts.get(name, 0) + value

    def findings(self, service, cause, value):
        self.count("Findings", value)

    def gauge(self, name, value):
        self.counts[name] = value

    def seconds(self, name, value):
        self.counts.setdefault(name, []).append(value)


class Context:
    function_name, memory_limit_in_mb, aws_request_id = "auditor", 256, "req"
    invoked_function_arn = "arn:aws:lambda:us-east-1:111122223333:function:auditor"


def wired(monkeypatch):
    published, counter, log = Published(), Counter(), io.StringIO()
    pipe = Pipeline(publisher=published, metrics=counter, logger=handler.logger)
    monkeypatch.setattr(handler, "_pipeline", pipe)
    handler.logger.registered_handler.setStream(log)
    return published, counter, log


@settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                                                   HealthCheck.function_scoped_fixture])
@given(st.one_of(mutated_records(), JSONISH))
def test_the_handler_never_raises_and_counts_every_event(monkeypatch, event):
    published, counter, log = wired(monkeypatch)
    import contextlib

    with contextlib.redirect_stdout(io.StringIO()):
        handler.handler(event, Context())
    c = counter.counts
    assert c.get("MalformedEvents", 0) + c.get("IgnoredEvents", 0) + c.get("Findings", 0) == 1
    if c.get("MalformedEvents"):
        assert "malformed event dropped" in log.getvalue()
    assert published.failures == c.get("Findings", 0)


def test_a_batch_with_one_malformed_record_delivers_the_others(monkeypatch):
    from .test_records import DENIED
    from demo.envelope import to_eventbridge

    published, counter, log = wired(monkeypatch)
    good = [to_eventbridge(dict(DENIED, eventID=f"e{i}", requestParameters={"secretId": f"s{i}"})) for i in range(3)]
    records = [{"messageId": f"m{i}", "eventSource": "aws:sqs", "body": json.dumps(e)} for i, e in enumerate(good)]
    records.insert(1, {"messageId": "bad", "eventSource": "aws:sqs", "body": "\x00not json"})
    import contextlib

    with contextlib.redirect_stdout(io.StringIO()):
        result = handler.handler({"Records": records}, Context())
    assert result == {"batchItemFailures": []}
    assert published.failures == 3 and counter.counts["MalformedEvents"] == 1
