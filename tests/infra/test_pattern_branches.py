"""The pattern's branches ("$or"), from the synthesized template, on the default bus of a
moto server: each branch matches only its own kind of event, so a rotation event without an
error and an API call named like a rotation failure do not slip through the other branch.

moto evaluates "$or" itself (checked here: a pattern whose only branches cannot match delivers
nothing), so the template's pattern is used whole, as EventBridge receives it."""

from __future__ import annotations

import copy
import json
import uuid

import pytest

from demo.envelope import to_eventbridge
from infra.pattern import detection_pattern

pytestmark = [pytest.mark.infra, pytest.mark.integration]

RECORD = {
    "eventVersion": "1.11",
    "userIdentity": {"type": "AssumedRole", "arn": "arn:aws:sts::111122223333:assumed-role/app/i-0abc", "accountId": "111122223333"},
    "eventTime": "2026-11-24T08:00:00Z",
    "eventSource": "secretsmanager.amazonaws.com",
    "eventName": "GetSecretValue",
    "awsRegion": "us-east-1",
    "sourceIPAddress": "10.0.0.1",
    "userAgent": "aws-cli/2",
    "requestParameters": {"secretId": "prod/db"},
    "responseElements": None,
    "eventType": "AwsApiCall",
    "managementEvent": True,
    "readOnly": True,
    "recipientAccountId": "111122223333",
    "eventCategory": "Management",
}


def variant(name: str, **changes) -> tuple[str, dict]:
    record = copy.deepcopy(RECORD)
    for key, value in changes.items():
        if value is None:
            record.pop(key, None)
        else:
            record[key] = value
    record["eventID"] = name
    return name, record


MATCH = dict([
    variant("sm-read-only-denied", errorCode="AccessDenied", errorMessage="User is not authorized"),
    variant("kms-decrypt-denied", eventSource="kms.amazonaws.com", eventName="Decrypt", errorCode="AccessDeniedException"),
    variant("sm-rotation-failed", eventName="RotationFailed", eventType="AwsServiceEvent", readOnly=None),
    variant("sm-rotation-abandoned", eventName="RotationAbandoned", eventType="AwsServiceEvent", readOnly=None),
    variant("kms-vpce-denied", eventSource="kms.amazonaws.com", eventName="Decrypt", eventType="AwsVpceEvent",
            eventCategory="NetworkActivity", errorCode="VpceAccessDenied", vpcEndpointId="vpce-0a1b2c3d4e5f67890"),
])
NO_MATCH = dict([
    variant("sm-success"),
    variant("kms-success", eventSource="kms.amazonaws.com", eventName="Decrypt"),
    variant("sm-api-call-named-rotationfailed", eventName="RotationFailed"),  # API-call branch needs errorCode
    variant("sm-rotation-succeeded", eventName="RotationSucceeded", eventType="AwsServiceEvent"),
    variant("kms-service-event-rotationfailed", eventSource="kms.amazonaws.com", eventName="RotationFailed", eventType="AwsServiceEvent"),
    variant("sm-service-event-with-error-code", eventName="RotationStarted", eventType="AwsServiceEvent", errorCode="InternalFailure"),
    variant("s3-denied", eventSource="s3.amazonaws.com", eventName="GetObject", errorCode="AccessDenied"),
    variant("iam-denied", eventSource="iam.amazonaws.com", eventName="GetRole", errorCode="AccessDenied"),
    variant("sm-vpce-allowed", eventType="AwsVpceEvent", eventCategory="NetworkActivity", vpcEndpointId="vpce-0a1b2c3d4e5f67890"),
    variant("s3-vpce-denied", eventSource="s3.amazonaws.com", eventName="GetObject", eventType="AwsVpceEvent",
            eventCategory="NetworkActivity", errorCode="VpceAccessDenied"),
])


def deliver(aws, pattern: dict, records: dict[str, dict]) -> set[str]:
    """Put each record (in its EventBridge envelope) on the default bus under a rule with
    ``pattern`` targeting a fresh queue; return the event ids that arrived."""
    events, sqs = aws("events"), aws("sqs")
    name = f"detection-{uuid.uuid4().hex[:8]}"
    queue = sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name=name, EventPattern=json.dumps(pattern), State="ENABLED")  # default bus
    events.put_targets(Rule=name, Targets=[{"Id": "q", "Arn": arn}])
    try:
        for record in records.values():
            envelope = to_eventbridge(record)
            result = events.put_events(Entries=[{"Source": envelope["source"], "DetailType": envelope["detail-type"],
                                                 "Detail": json.dumps(envelope["detail"])}])
            assert result["FailedEntryCount"] == 0
        arrived = set()
        while batch := sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", []):
            for message in batch:
                arrived.add(json.loads(message["Body"])["detail"]["eventID"])
                sqs.delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])
        return arrived
    finally:
        events.remove_targets(Rule=name, Ids=["q"])
        events.delete_rule(Name=name)


def test_each_branch_matches_only_its_own_kind_of_event(template, aws):
    pattern = detection_pattern(template)
    arrived = deliver(aws, pattern, {**MATCH, **NO_MATCH})
    assert arrived == set(MATCH)


def test_moto_evaluates_or_rather_than_ignoring_it(template, aws):
    """Guards the test above: with unmatchable branches, nothing may arrive."""
    pattern = copy.deepcopy(detection_pattern(template))
    for branch in pattern["$or"]:
        branch["detail-type"] = ["No Such Detail Type"]
    assert deliver(aws, pattern, MATCH) == set()
