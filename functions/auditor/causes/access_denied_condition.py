"""A Condition in the allowing policy (source IP, time of day, VPC, MFA ...) was not met.

The record alone cannot show this: IAM's message names the policy type, not the condition.
It takes IAM policy simulation of the same call with and without the request's context
(enrichment, behind a flag): allowed without the context, denied with it.
"""

from ._arns import denied_action
from ._base import ACCESS_DENIED_CODES, Cause, Match, roots, who
from ._denied import said


def applies(call, facts):
    sim = facts.simulation if facts else None
    return (call.denial is not None and sim is not None and not sim.error and sim.allowed_without_context
            and sim.decision in ("implicitDeny", "explicitDeny"))


def match(call, facts):
    if not applies(call, facts):
        return None
    sim = facts.simulation
    keys = ", ".join(sim.condition_keys) or "a condition key"
    context = f"source IP {call.source_ip or '?'}, time {call.event_time or '?'}"
    evidence = [
        f"IAM policy simulation allows {denied_action(call)} without the request context but denies it ({sim.decision}) with it ({context})",
        f"condition keys involved: {keys}",
        said(call),
        who(call),
    ]
    if sim.matched_statements:
        evidence.insert(2, "statements: " + ", ".join(sim.matched_statements))
    return Match(tuple(evidence), "high" if sim.condition_keys else "medium")


def remediation(call, m):
    return (
        f"The call is allowed only under a Condition this request did not meet ({m.evidence[1]}). "
        f"Compare the condition with the request: it came from {call.source_ip or 'an unknown address'}"
        + (f" through {call.vpc_endpoint_id}" if call.vpc_endpoint_id else "")
        + f" at {call.event_time or 'an unknown time'}. Either make the call from where and when the policy allows, "
        "or widen the condition deliberately (aws:SourceIp does not match calls through a VPC endpoint: use aws:SourceVpce or aws:VpcSourceIp there)."
    )


CAUSE = Cause(
    id="access-denied.condition",
    root=roots.principal_permissions,
    title="Access denied: a policy condition (source IP, time of day, ...) was not met",
    severity="high",
    topic='"Access denied" messages when sending requests to Secrets Manager',
    doc_url="https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition.html",
    precedence=45,
    error_codes=ACCESS_DENIED_CODES,
    match=match,
    remediation=remediation,
    applies=applies,
    needs_facts=True,
)
