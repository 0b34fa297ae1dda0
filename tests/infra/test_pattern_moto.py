"""The deployed rule's pattern, read from the synthesized template, against real records on
an EventBridge bus (moto server): every failure fixture is delivered, nothing else is."""

from __future__ import annotations

import json
import uuid

import pytest

from demo.envelope import to_eventbridge
from infra.pattern import detection_pattern

from ..unit.conftest import fixture_records

pytestmark = [pytest.mark.infra, pytest.mark.integration]


@pytest.fixture(scope="module")
def delivered(template, aws):
    """Put every fixture (and other services' events) on a bus with the template's rule; return what arrived."""
    events, sqs = aws("events"), aws("sqs")
    bus = f"auditor-{uuid.uuid4().hex[:8]}"
    events.create_event_bus(Name=bus)
    queue = sqs.create_queue(QueueName=bus)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name="detection", EventBusName=bus, EventPattern=json.dumps(detection_pattern(template)), State="ENABLED")
    events.put_targets(Rule="detection", EventBusName=bus, Targets=[{"Id": "q", "Arn": arn}])
    sent = {}
    records = [(cause, path.stem, record) for cause, path, record, _ in fixture_records()]
    other = dict(records[0][2], eventSource="s3.amazonaws.com", eventName="GetObject", errorCode="AccessDenied")
    records.append(("other-service", "s3-access-denied", other))
    for cause, name, record in records:
        envelope = to_eventbridge(record)
        if cause == "other-service":
            envelope["source"] = "aws.s3"
        envelope["detail"]["eventID"] = f"{cause}/{name}"
        sent[f"{cause}/{name}"] = cause
        events.put_events(Entries=[{"Source": envelope["source"], "DetailType": envelope["detail-type"],
                                    "Detail": json.dumps(envelope["detail"]), "EventBusName": bus}])
    arrived = set()
    while True:
        batch = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", [])
        if not batch:
            break
        for m in batch:
            arrived.add(json.loads(m["Body"])["detail"]["eventID"])
            sqs.delete_message(QueueUrl=queue, ReceiptHandle=m["ReceiptHandle"])
    return sent, arrived


def test_every_failure_fixture_is_delivered(delivered):
    sent, arrived = delivered
    failures = {k for k, cause in sent.items() if cause not in ("success", "other-service")}
    assert len(failures) >= 81
    assert failures - arrived == set()


def test_successful_calls_and_other_services_are_not(delivered):
    sent, arrived = delivered
    quiet = {k for k, cause in sent.items() if cause in ("success", "other-service")}
    assert quiet and quiet & arrived == set()
    assert {"success/rotationsucceeded", "success/rotationstarted"} <= quiet
