"""No identity-based policy of the caller allows the action (implicit deny)."""

from ._base import ACCESS_DENIED_CODES, IAM_DENIED_DOC, Cause, roots
from ._denied import by_policy_type, denied_by
from ._statements import render


def remediation(call, m):
    p = call.principal
    return (
        f"Grant {p.identity_arn or 'the caller'} the permission in an identity-based policy "
        f"(on the {'role' if p.temporary else 'user or its group'}), scoped to the resource: "
        f"{render(m.policy)}. If the role's policies already allow it, check that the call used the role you "
        "expect (sts get-caller-identity) and that no condition in the allowing statement excludes this request."
    )


CAUSE = Cause(
    id="access-denied.identity-policy",
    root=roots.principal_identity,
    title="Access denied: no identity-based policy allows the action",
    severity="high",
    topic='"Access denied" messages when sending requests to Secrets Manager',
    doc_url=IAM_DENIED_DOC + "#access_denied_message_examples",
    precedence=62,
    error_codes=ACCESS_DENIED_CODES,
    policy_types=frozenset({"identity-based"}),
    match=by_policy_type(frozenset({"identity-based"}), explicit=False, fix=True),
    remediation=remediation,
    applies=denied_by(frozenset({"identity-based"}), explicit=False),
)
