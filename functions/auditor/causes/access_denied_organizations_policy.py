"""A service control policy or resource control policy of AWS Organizations denies the call."""

from ._arns import denied_action
from ._base import ACCESS_DENIED_CODES, Cause, roots
from ._denied import by_policy_type, denied_by


def remediation(call, m):
    d = call.denial
    kind = "resource control policy (RCP)" if d and d.policy_type == "resource control" else "service control policy (SCP)"
    which = f"the policy {d.policy_arn}" if d and d.policy_arn else f"the {kind}s attached to account {call.account or '?'}, its OUs and the root"
    return (
        f"Account-level guardrail: no identity or resource policy in the account can override it. Review {which} "
        f"in the management account (aws organizations list-policies-for-target) for {denied_action(call)}; "
        "if the call is legitimate, ask the organization's administrators for an exception (for example a condition on aws:PrincipalArn)."
    )


CAUSE = Cause(
    id="access-denied.organizations-policy",
    root=roots.org_policy,
    title="Access denied: a service control policy or resource control policy",
    severity="high",
    topic='"Access denied" messages when sending requests to Secrets Manager',
    doc_url="https://docs.aws.amazon.com/organizations/latest/userguide/orgs_manage_policies_scps.html",
    precedence=50,
    error_codes=ACCESS_DENIED_CODES,
    policy_types=frozenset({"service control", "resource control"}),
    match=by_policy_type(frozenset({"service control", "resource control"})),
    remediation=remediation,
    applies=denied_by(frozenset({"service control", "resource control"})),
)
