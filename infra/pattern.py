"""The detection patterns, built from the names the function also reads (auditor.contract):

* ``DETECTION_PATTERN``: failed Secrets Manager and KMS calls (read-only ones included), and
  the rotation failure service events;
* ``CHANGE_PATTERN``: the successful calls that can start an incident ("what changed"): KMS,
  Secrets Manager, IAM, Organizations and VPC endpoint policy changes;
* ``GLOBAL_CHANGE_PATTERN``: the part of it EventBridge delivers only in us-east-1 (IAM and
  Organizations), for the forwarder that carries it to a stack in another region.

Also reads them back from a synthesized template, so tests and the local demo use exactly
what CloudFormation deploys (never a copy).
"""

from __future__ import annotations

from typing import Any

from auditor.contract import (API_CALL, AUDITED_SOURCES, CHANGE_EVENTS, FAILURE_SERVICE_EVENTS, GLOBAL_EVENT_SOURCES,
                              NETWORK_ACTIVITY, SERVICE_EVENT)

DETECTION_PATTERN: dict[str, Any] = {
    "source": list(AUDITED_SOURCES),
    "$or": [
        # Every failed API call, read-only ones included (the rule's state opts into those).
        {"detail-type": [API_CALL], "detail": {"errorCode": [{"exists": True}]}},
        # Secrets Manager reports rotation failures as service events, with no errorCode.
        {
            "detail-type": [SERVICE_EVENT],
            "detail": {"eventSource": ["secretsmanager.amazonaws.com"], "eventName": list(FAILURE_SERVICE_EVENTS)},
        },
        # Calls a VPC endpoint's policy refused, when the trail logs network activity events for
        # these services (CloudTrail's only error code for them: VpceAccessDenied).
        # https://docs.aws.amazon.com/awscloudtrail/latest/userguide/logging-network-events-with-cloudtrail.html
        {"detail-type": [NETWORK_ACTIVITY], "detail": {"errorCode": [{"exists": True}]}},
    ],
}

#: Read-only calls (GetSecretValue, Decrypt, ...) reach only rules in this state.
RULE_STATE = "ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS"


def _changes(sources) -> dict[str, Any]:
    return {
        "source": ["aws." + s.split(".")[0] for s in sources],
        "detail-type": [API_CALL],
        "detail": {
            "eventSource": list(sources),
            "eventName": sorted({name for s in sources for name in CHANGE_EVENTS[s]}),
            # successful calls only: a failed change changed nothing
            "errorCode": [{"exists": False}],
        },
    }


CHANGE_PATTERN: dict[str, Any] = _changes(tuple(CHANGE_EVENTS))
GLOBAL_CHANGE_PATTERN: dict[str, Any] = _changes(GLOBAL_EVENT_SOURCES)
#: Changes are write calls: a rule in the plain ENABLED state receives them.
CHANGE_RULE_STATE = "ENABLED"


def _rules(template: dict) -> dict[str, dict]:
    return {logical_id: resource["Properties"] for logical_id, resource in template.get("Resources", {}).items()
            if resource.get("Type") == "AWS::Events::Rule"
            and isinstance(resource.get("Properties", {}).get("EventPattern"), dict)}


def detection_rules(template: dict) -> dict[str, dict]:
    """Logical id -> Properties of every EventBridge rule in the template carrying the failure pattern."""
    return {k: p for k, p in _rules(template).items()
            if "$or" in p["EventPattern"] and "aws.secretsmanager" in p["EventPattern"].get("source", [])}


def change_rules(template: dict) -> dict[str, dict]:
    """Logical id -> Properties of every rule in the template carrying a change pattern to the
    auditor: the change event as it is. (PagerDuty's change-event rule, infra/oncall.py, reads the
    same changes but passes its targets only the record, with InputPath: not one of these.)"""
    return {k: p for k, p in _rules(template).items()
            if p["EventPattern"].get("detail", {}).get("errorCode") == [{"exists": False}]
            and not all("InputPath" in t for t in p.get("Targets", [{}]))}


def _one(rules: dict[str, dict], what: str) -> dict:
    if len(rules) != 1:
        raise ValueError(f"expected one {what} rule in the template, found {len(rules)}")
    return next(iter(rules.values()))["EventPattern"]


def detection_pattern(template: dict) -> dict:
    """The failure rule's EventPattern from a synthesized template (exactly one such rule)."""
    return _one(detection_rules(template), "detection")


def change_pattern(template: dict) -> dict:
    """The change rule's EventPattern from a synthesized template (exactly one such rule)."""
    return _one(change_rules(template), "change")
