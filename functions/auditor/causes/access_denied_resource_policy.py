"""No resource-based policy (secret policy or key policy) allows the action (implicit deny)."""

from ._base import IAM_DENIED_DOC, ACCESS_DENIED_CODES, Cause, render
from ._denied import by_policy_type


def remediation(call, m):
    stmt = dict(m.policy or {})
    stmt["Principal"] = {"AWS": call.principal.identity_arn or "<caller ARN>"}
    if call.service == "kms":
        where = "the key policy (aws kms get-key-policy / put-key-policy)"
    else:
        where = "the secret's resource policy (aws secretsmanager get-resource-policy / put-resource-policy)"
    cross = call.principal.account and call.account and call.principal.account != call.account
    return (
        f"Add a statement to {where} that allows the caller: {render(stmt)}."
        + (" The caller is in another account: that account must also allow it in the caller's identity policy." if cross else "")
    )


CAUSE = Cause(
    id="access-denied.resource-policy",
    title="Access denied: no resource-based policy (secret or key policy) allows the action",
    severity="high",
    topic='"Access denied" messages when sending requests to Secrets Manager',
    doc_url=IAM_DENIED_DOC + "#access_denied_message_examples",
    precedence=61,
    error_codes=ACCESS_DENIED_CODES,
    policy_types=frozenset({"resource-based"}),
    match=by_policy_type(frozenset({"resource-based"}), explicit=False, fix=True),
    remediation=remediation,
)
