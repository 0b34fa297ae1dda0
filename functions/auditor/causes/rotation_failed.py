"""Secrets Manager reported that a scheduled or requested rotation failed (a service event)."""

from ._base import FAILURE_SERVICE_EVENTS, Cause, Match, roots


def applies(call, facts):
    return call.service == "secretsmanager" and call.action in FAILURE_SERVICE_EVENTS


def match(call, facts):
    if not applies(call, facts):
        return None
    what = {
        "RotationFailed": "rotation failed",
        "TestRotationFailed": "the test rotation (testSecret step run on its own) failed",
        "RotationAbandoned": "rotation was abandoned: a manual change replaced it and AWSPENDING was removed",
    }.get(call.action, call.action)
    evidence = [f"Secrets Manager service event {call.action} for {call.resource or 'a secret'}: {what}"]
    if call.error_message:
        evidence.append(f"Secrets Manager says: {call.error_message}")
    return Match(tuple(evidence), "high")


def remediation(call, m):
    return (
        "Open the rotation function's CloudWatch logs around this time: the step that failed (createSecret, setSecret, "
        "testSecret, finishSecret) is logged there. The usual causes: the function cannot reach the database or the "
        "Secrets Manager endpoint from its VPC, its role lacks secretsmanager or kms permissions, or the secret value "
        "is not in the JSON format the function expects. A previous failure leaves AWSPENDING on a version: "
        "fix the cause, then aws secretsmanager rotate-secret --secret-id <secret>."
    )


CAUSE = Cause(
    id="rotation.failed",
    root=roots.rotation,
    title="Secret rotation failed",
    severity="high",
    topic="Troubleshoot AWS Secrets Manager rotation",
    doc_url="https://docs.aws.amazon.com/secretsmanager/latest/userguide/troubleshoot_rotation.html",
    precedence=10,
    error_codes=FAILURE_SERVICE_EVENTS,
    match=match,
    remediation=remediation,
    applies=applies,
    services=frozenset({"secretsmanager"}),
)
