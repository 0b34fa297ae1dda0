"""The detection pattern: failed Secrets Manager and KMS calls, and rotation failure events.

Also reads it back from a synthesized template, so tests and the local demo use exactly
what CloudFormation deploys (never a copy).
"""

from __future__ import annotations

from typing import Any

FAILURE_SERVICE_EVENTS = ["RotationFailed", "RotationAbandoned", "TestRotationFailed"]

DETECTION_PATTERN: dict[str, Any] = {
    "source": ["aws.secretsmanager", "aws.kms"],
    "$or": [
        # Every failed API call, read-only ones included (the rule's state opts into those).
        {"detail-type": ["AWS API Call via CloudTrail"], "detail": {"errorCode": [{"exists": True}]}},
        # Secrets Manager reports rotation failures as service events, with no errorCode.
        {
            "detail-type": ["AWS Service Event via CloudTrail"],
            "detail": {"eventSource": ["secretsmanager.amazonaws.com"], "eventName": FAILURE_SERVICE_EVENTS},
        },
    ],
}

RULE_STATE = "ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS"


def detection_rules(template: dict) -> dict[str, dict]:
    """Logical id -> Properties of every EventBridge rule in the template carrying the pattern."""
    return {
        logical_id: resource["Properties"]
        for logical_id, resource in template.get("Resources", {}).items()
        if resource.get("Type") == "AWS::Events::Rule"
        and isinstance(resource.get("Properties", {}).get("EventPattern"), dict)
        and "aws.secretsmanager" in resource["Properties"]["EventPattern"].get("source", [])
    }


def detection_pattern(template: dict) -> dict:
    """The detection rule's EventPattern from a synthesized template (exactly one such rule)."""
    rules = detection_rules(template)
    if len(rules) != 1:
        raise ValueError(f"expected one detection rule in the template, found {len(rules)}")
    return next(iter(rules.values()))["EventPattern"]
