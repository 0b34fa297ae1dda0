"""Access-denied causes that IAM's message names by policy type: the message's own verdict in
its words, and the ``applies``/``match`` pair such a cause is made of."""

from __future__ import annotations

from typing import Optional

from ..facts import Facts
from ..records import FailedCall
from ._arns import denied_action, denied_resource_arn
from ._base import Match, who
from ._statements import policy_statement

__all__ = ["by_policy_type", "denied_by", "said"]


def said(call: FailedCall, action: str = "") -> str:
    """The message's own verdict, in its words (``action``: the denied action, when known)."""
    d = call.denial
    if call.error_code == "VpceAccessDenied":
        # A CloudTrail network activity event: the endpoint's owner sees it, in these fixed words,
        # whether the endpoint policy denies explicitly or allows nothing (it does not say which).
        return (f'CloudTrail network activity event for {call.vpc_endpoint_id or "a VPC endpoint"}: "{call.error_message[:120]}" '
                "(errorCode VpceAccessDenied)")
    if d is None or not d.policy_type:
        return "the access-denied message names no policy type"
    kind = d.policy_type if d.policy_type == "permissions boundary" else f"{d.policy_type} policy"
    if d.explicit:
        text = f'the message says the call was denied "with an explicit deny in a {kind}"'
    else:
        text = f'the message says "no {kind} allows the {action or denied_action(call)} action"'
    return text + (f"; the denying policy is {d.policy_arn}" if d.policy_arn else "")


def denied_by(types: frozenset[str], explicit: Optional[bool] = None):
    """An ``applies`` for denials whose message names one of ``types`` (and explicitness)."""
    if explicit is None:
        def applies(call: FailedCall, facts: Optional[Facts]) -> bool:
            d = call.denial
            return d is not None and d.policy_type in types
    else:
        def applies(call: FailedCall, facts: Optional[Facts]) -> bool:
            d = call.denial
            return d is not None and d.policy_type in types and d.explicit is explicit
    return applies


def by_policy_type(types: frozenset[str], explicit: Optional[bool] = None, fix: bool = False):
    """A ``match`` for denials whose message names one of ``types`` (and explicitness): its
    ``applies`` is ``denied_by(types, explicit)``."""
    def match(call: FailedCall, facts: Optional[Facts]) -> Optional[Match]:
        d = call.denial  # denied_by(types, explicit) and denied_action(call), inline: this runs per denial
        if d is None or d.policy_type not in types or (explicit is not None and d.explicit is not explicit):
            return None
        action = d.action or f"{call.service}:{call.action}"
        policy = policy_statement(action, denied_resource_arn(call, action)) if fix else None
        return Match((said(call, action), f"denied action: {action}", who(call)), "high", policy)

    return match
