"""Shared matching for the access-denied causes that IAM's message names by policy type."""

from __future__ import annotations

from typing import Optional

from ..facts import Facts
from ..records import FailedCall
from ._base import Match, denied_action, denied_resource_arn, policy_statement, who


def said(call: FailedCall) -> str:
    """The message's own verdict, in its words."""
    d = call.denial
    if d is None or not d.policy_type:
        return "the access-denied message names no policy type"
    kind = d.policy_type if d.policy_type == "permissions boundary" else f"{d.policy_type} policy"
    if d.explicit:
        text = f'the message says the call was denied "with an explicit deny in a {kind}"'
    else:
        text = f'the message says "no {kind} allows the {denied_action(call)} action"'
    return text + (f"; the denying policy is {d.policy_arn}" if d.policy_arn else "")


def by_policy_type(types: frozenset[str], explicit: Optional[bool] = None, fix: bool = False):
    """A ``match`` for denials whose message names one of ``types`` (and explicitness)."""

    def match(call: FailedCall, facts: Optional[Facts]) -> Optional[Match]:
        d = call.denial
        if d is None or d.policy_type not in types:
            return None
        if explicit is not None and d.explicit is not explicit:
            return None
        policy = policy_statement(denied_action(call), denied_resource_arn(call)) if fix else None
        return Match((said(call), f"denied action: {denied_action(call)}", who(call)), "high", policy)

    return match
