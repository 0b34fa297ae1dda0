"""The caller's permissions boundary does not allow, or explicitly denies, the action."""

from ._base import ACCESS_DENIED_CODES, Cause, roots
from ._denied import by_policy_type, denied_by
from ._statements import render


def remediation(call, m):
    who = call.principal.identity_arn or "the caller"
    return (
        f"The permissions boundary of {who} caps what its policies can grant. Add the action to the boundary "
        f"(aws iam get-role / get-user shows PermissionsBoundary), for example: {render(m.policy)}; "
        "an Allow in the role's own policies is not enough while the boundary lacks it."
    )


CAUSE = Cause(
    id="access-denied.permissions-boundary",
    root=roots.principal_boundary,
    title="Access denied: a permissions boundary",
    severity="high",
    topic='"Access denied" messages when sending requests to Secrets Manager',
    doc_url="https://docs.aws.amazon.com/IAM/latest/UserGuide/access_policies_boundaries.html",
    precedence=51,
    error_codes=ACCESS_DENIED_CODES,
    policy_types=frozenset({"permissions boundary"}),
    match=by_policy_type(frozenset({"permissions boundary"}), fix=True),
    remediation=remediation,
    applies=denied_by(frozenset({"permissions boundary"})),
)
