"""Access denied and nothing more is known: the message names no policy type."""

from ._arns import denied_action, denied_resource_arn
from ._base import ACCESS_DENIED_CODES, SM_DOC, Cause, Match, roots, who
from ._denied import said
from ._statements import policy_statement, render


def applies(call, facts):
    return call.denial is not None


def match(call, facts):
    if call.denial is None:
        return None
    policy = policy_statement(denied_action(call), denied_resource_arn(call))
    return Match((said(call), who(call)), "low", policy)


def remediation(call, m):
    return (
        "The message does not say which policy denied the call. Check, in order: the caller's identity policies "
        f"({render(m.policy)} is the least it needs), the "
        + ("key policy" if call.service == "kms" else "secret's resource policy and its KMS key's policy")
        + ", permissions boundaries, service control policies, and any Condition (source IP, VPC endpoint, time). "
        "aws iam simulate-principal-policy with the same action and resource narrows it down."
    )


CAUSE = Cause(
    id="access-denied.unspecified",
    root=roots.principal_permissions,
    title="Access denied, nothing more is known",
    severity="high",
    topic='"Access denied" messages when sending requests to Secrets Manager',
    doc_url=SM_DOC + "#troubleshoot_general_access-denied-service",
    precedence=79,
    error_codes=ACCESS_DENIED_CODES,
    match=match,
    remediation=remediation,
    fallback=True,
    applies=applies,
)
