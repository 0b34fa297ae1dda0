"""Nothing that fails is silently dropped: every hop from the rules to the function has a retry
and a place where what could not be delivered waits, encrypted, for 14 days; only the rules
themselves may send to their queues."""

from __future__ import annotations

import pytest

from .conftest import resources
from .policies import actions

pytestmark = pytest.mark.infra

FOURTEEN_DAYS = 14 * 24 * 3600


def detection_rule(template: dict) -> tuple[str, dict]:
    (item,) = [(k, v["Properties"]) for k, v in resources(template, "AWS::Events::Rule").items() if k.startswith("DetectionFailedCalls")]
    return item


def queue_rules(template: dict) -> dict[str, dict]:
    """The rules that deliver to the ingestion queue: failures and changes."""
    rules = {k: v["Properties"] for k, v in resources(template, "AWS::Events::Rule").items() if k.startswith("Detection")}
    assert sorted(k.rstrip("0123456789ABCDEF") for k in rules) == ["DetectionChanges", "DetectionFailedCalls"]
    return rules


def queue_policy_statements(template: dict, queue_id: str) -> list[dict]:
    out = []
    for policy in resources(template, "AWS::SQS::QueuePolicy").values():
        if {"Ref": queue_id} in policy["Properties"]["Queues"]:
            out += policy["Properties"]["PolicyDocument"]["Statement"]
    return out


def test_rule_target_retries_then_parks_events_in_an_encrypted_dead_letter_queue(template):
    rule_id, rule = detection_rule(template)
    (target,) = rule["Targets"]
    assert target["RetryPolicy"]["MaximumRetryAttempts"] >= 1
    assert 60 <= target["RetryPolicy"]["MaximumEventAgeInSeconds"] <= 86400
    dlq_id = target["DeadLetterConfig"]["Arn"]["Fn::GetAtt"][0]
    dlq = template["Resources"][dlq_id]["Properties"]
    assert dlq["SqsManagedSseEnabled"] is True and dlq["MessageRetentionPeriod"] == FOURTEEN_DAYS


@pytest.mark.parametrize("which", ["target", "dead letters"])
def test_only_the_two_rules_may_send_to_their_queues_and_only_over_tls(template, which):
    rules = queue_rules(template)
    (queue_id,) = {(t["Arn"] if which == "target" else t["DeadLetterConfig"]["Arn"])["Fn::GetAtt"][0]
                   for rule in rules.values() for t in rule["Targets"]}
    statements = queue_policy_statements(template, queue_id)
    allows = [s for s in statements if s["Effect"] == "Allow"]
    senders = set()
    for s in allows:
        assert s["Principal"] == {"Service": "events.amazonaws.com"}
        assert "sqs:SendMessage" in actions(s) and not any(a.startswith("sqs:Receive") or a.startswith("sqs:Delete") for a in actions(s))
        (condition,) = s["Condition"].values()
        assert list(s["Condition"]) == ["ArnEquals"] and list(condition) == ["aws:SourceArn"]
        senders.add(condition["aws:SourceArn"]["Fn::GetAtt"][0])
    assert senders == set(rules) and len(allows) == 2  # each rule by its own ARN, nobody else
    (deny,) = [s for s in statements if s["Effect"] == "Deny"]
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}} and deny["Principal"] == {"AWS": "*"}


def test_ingestion_queue_retries_failed_records_then_parks_them(template):
    rule_id, rule = detection_rule(template)
    queue_id = rule["Targets"][0]["Arn"]["Fn::GetAtt"][0]
    queue = template["Resources"][queue_id]["Properties"]
    assert queue["SqsManagedSseEnabled"] is True
    redrive = queue["RedrivePolicy"]
    assert 2 <= redrive["maxReceiveCount"] <= 10
    parked = template["Resources"][redrive["deadLetterTargetArn"]["Fn::GetAtt"][0]]["Properties"]
    assert parked["SqsManagedSseEnabled"] is True and parked["MessageRetentionPeriod"] == FOURTEEN_DAYS
    # A record is retried only after the function's timeout has surely passed.
    (fn,) = [f["Properties"] for f in resources(template, "AWS::Lambda::Function").values()
             if f["Properties"].get("Handler") == "auditor.handler.handler"]
    assert queue["VisibilityTimeout"] >= 6 * fn["Timeout"]
    (mapping,) = [m["Properties"] for m in resources(template, "AWS::Lambda::EventSourceMapping").values()]
    assert mapping["EventSourceArn"] == {"Fn::GetAtt": [queue_id, "Arn"]}
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]  # only failed records come back


def test_every_place_events_can_wait_is_alarmed(template):
    """Both parking queues have a messages-visible alarm that notifies the topic."""
    rule_id, rule = detection_rule(template)
    (target,) = rule["Targets"]
    undelivered = target["DeadLetterConfig"]["Arn"]["Fn::GetAtt"][0]
    failed = template["Resources"][target["Arn"]["Fn::GetAtt"][0]]["Properties"]["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0]
    watched = set()
    for alarm in resources(template, "AWS::CloudWatch::Alarm").values():
        p = alarm["Properties"]
        if p.get("MetricName") == "ApproximateNumberOfMessagesVisible":
            assert (p["Threshold"], p["ComparisonOperator"]) == (0, "GreaterThanThreshold")
            (dim,) = p["Dimensions"]
            watched.add(dim["Value"]["Fn::GetAtt"][0])
    assert {undelivered, failed} <= watched
