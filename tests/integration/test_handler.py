"""The handler against a moto server over HTTP: what a subscriber of the findings topic receives."""

from __future__ import annotations

import copy
import json

import pytest

from demo.envelope import to_eventbridge

from .conftest import Context, emf, metric_total

pytestmark = pytest.mark.integration


def invoke(event):
    from auditor.handler import handler

    return handler(event, Context())


def logged_findings(out: str) -> list[dict]:
    return [json.loads(line)["finding"] for line in out.splitlines() if line.startswith("{") and '"message":"finding"' in line]


def logged(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines() if line.startswith("{") and '"message":"finding"' in line]


def test_one_message_per_root_cause_with_filterable_attributes(stack, failures, capsys):
    for cause, name, record in failures:
        invoke(to_eventbridge(record))
    out = capsys.readouterr().out
    lines = logged(out)
    assert len(lines) == len(failures)  # one finding line per failed record
    opened = {line["incident_id"] for line in lines if line["outcome"] == "opened"}
    received = stack.drain()
    assert len(received) == len(opened)  # one message per root cause, not per record
    by_incident = {r.attributes["incident_id"]: r for r in received}
    assert set(by_incident) == opened
    for incident_id, msg in by_incident.items():
        body = msg.body
        assert body["incident"]["id"] == incident_id and body["incident"]["status"] == "opened"
        assert msg.attributes == {"cause": body["cause"], "severity": body["severity"], "service": body["service"],
                                  "account": body["account"], "region": body["region"], "confidence": body["confidence"],
                                  "status": "opened", "incident_id": incident_id}
        assert msg.subject.startswith(f"[OPENED][{body['severity'].upper()}] {body['cause']}") and len(msg.subject) < 100
    metrics = emf(out)
    assert metric_total(metrics, "FindingsTotal") == len(failures) - sum(line["outcome"] in ("parked", "joined") for line in lines)
    assert metric_total(metrics, "Findings", AwsService="kms", Cause="kms.key-disabled") >= 3
    assert metric_total(metrics, "Notifications") == metric_total(metrics, "IncidentsOpened") == len(opened)


def test_a_storm_of_one_failure_is_one_message_and_counted(stack, failures, capsys):
    record = next(r for c, n, r in failures if c == "throttling")
    for i in range(25):
        rec = copy.deepcopy(record)
        rec["eventID"] = f"storm-{i}"
        invoke(to_eventbridge(rec))
    (msg,) = stack.drain()
    assert msg.body["incident"]["root"]["kind"] == "request-rate"
    lines = emf(capsys.readouterr().out)
    assert metric_total(lines, "Findings", Cause="throttling") == 25
    assert metric_total(lines, "Notifications") == 1


def test_malformed_events_are_counted_and_do_not_raise(stack, capsys):
    for event in ({"detail-type": "AWS API Call via CloudTrail", "detail": "garbage"}, {"source": "aws.kms"}, None, []):
        invoke(event) if event is not None else invoke({"detail-type": "AWS API Call via CloudTrail", "detail": None})
    assert stack.drain() == []
    out = capsys.readouterr().out
    assert metric_total(emf(out), "MalformedEvents") == 4
    assert "malformed event dropped" in out


def test_a_failed_publish_keeps_the_alert_owed_and_the_next_event_of_the_incident_sends_it(stack, failures, monkeypatch,
                                                                                            capsys):
    """SNS fails: nothing is raised (EventBridge would deliver the event again and count it twice);
    the table keeps the "opened" owed, and the incident's next event sends it, once."""
    import auditor.handler as handler

    record = next(r for c, n, r in failures if c == "secret.not-found")
    monkeypatch.setenv("FINDINGS_TOPIC_ARN", stack.topic_arn + "-missing")
    monkeypatch.setattr(handler, "_pipeline", None)
    assert invoke(to_eventbridge(record))["notified"] == 0
    monkeypatch.setenv("FINDINGS_TOPIC_ARN", stack.topic_arn)
    monkeypatch.setattr(handler, "_pipeline", None)
    again = dict(record, eventID=record["eventID"] + "-2")  # the same caller fails again
    invoke(to_eventbridge(again))
    (opened,) = stack.drain()
    assert opened.attributes["status"] == "opened" and opened.body["incident"]["failures"] == 2
    out = capsys.readouterr().out
    assert [line["outcome"] for line in logged(out)] == ["opened", "grouped"]
    assert metric_total(emf(out), "FindingsTotal") == 2 and metric_total(emf(out), "PublishFailures") == 1


def test_fail_open_when_the_state_table_is_missing(stack, failures, monkeypatch, capsys):
    import auditor.handler as handler

    monkeypatch.setenv("DEDUP_TABLE_NAME", "no-such-table")
    monkeypatch.setattr(handler, "_pipeline", None)
    record = next(r for c, n, r in failures if c == "kms.key-not-found")
    invoke(to_eventbridge(record))
    assert len(stack.drain()) == 1
    out = capsys.readouterr().out
    assert metric_total(emf(out), "StateUnavailable") >= 1 and "notifying every root cause" in out


def test_sqs_batch_reports_only_transient_failures(stack, failures):
    good = [to_eventbridge(r) for c, n, r in failures[:5]]
    records = [{"messageId": f"m{i}", "eventSource": "aws:sqs", "body": json.dumps(e)} for i, e in enumerate(good)]
    records.append({"messageId": "bad", "eventSource": "aws:sqs", "body": "{not json"})
    result = invoke({"Records": records})
    assert result == {"batchItemFailures": []}
    received = stack.drain()
    assert received and len(received) == len({m.attributes["incident_id"] for m in received})


def test_logs_carry_the_finding_and_never_a_secret_value(stack, failures, capsys):
    canaries = [r for c, n, r in failures if "CANARY" in json.dumps(r)]
    assert len(canaries) >= 2
    for record in canaries:
        invoke(to_eventbridge(record))
    received = stack.drain()
    out = capsys.readouterr()
    assert '"message":"finding"' in out.out.replace(" ", "")
    for text in (out.out, out.err, json.dumps([r.body for r in received]), json.dumps([r.subject for r in received])):
        assert "CANARY" not in text


def test_the_functions_own_account_comes_from_its_arn_without_calling_sts(stack, aws, monkeypatch, capsys):
    """In Lambda the account is in the function's ARN: a cold start makes no GetCallerIdentity
    call, and a secret of that account is looked up (the moto server's STS would say 123456789012)."""
    from auditor import enrich

    asked = []
    monkeypatch.setattr(enrich.Enricher, "_caller_identity", lambda self: asked.append(1) or "error:unexpected")
    aws("secretsmanager").create_secret(Name="payments/api-key", SecretString="{}")
    record = {
        "eventVersion": "1.09", "eventTime": "2026-11-24T08:00:00Z", "eventSource": "secretsmanager.amazonaws.com",
        "eventName": "GetSecretValue", "awsRegion": "us-east-1", "recipientAccountId": "111122223333",
        "eventID": "0f1e2d3c-own-account", "errorCode": "ResourceNotFoundException",
        "errorMessage": "Secrets Manager can't find the specified secret.",
        "userIdentity": {"type": "AssumedRole", "arn": "arn:aws:sts::111122223333:assumed-role/app/i-1", "accountId": "111122223333"},
        "requestParameters": {"secretId": "payments/api-key"},
    }
    invoke(to_eventbridge(record))
    (finding,) = logged_findings(capsys.readouterr().out)
    assert asked == []
    assert not any("another account" in e or "own account is unknown" in e for e in finding["evidence"]), finding["evidence"]


def test_init_leaves_garbage_collection_on_with_what_it_built_frozen():
    """Init runs without collections and freezes what it built (a cold-start saving); if it
    ever failed to switch collection back on, a warm container would grow until Lambda killed
    it. A fresh interpreter, as Lambda starts one."""
    import os
    import subprocess
    import sys

    probe = ("import gc; import auditor.handler; "
             "print(gc.isenabled(), gc.get_freeze_count() > 10000, gc.get_threshold()[0] > 0)")
    env = {**os.environ, "AWS_DEFAULT_REGION": "us-east-1", "POWERTOOLS_SERVICE_NAME": "auditor",
           "FINDINGS_TOPIC_ARN": "arn:aws:sns:us-east-1:123456789012:findings"}
    done = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "True", "True"]
