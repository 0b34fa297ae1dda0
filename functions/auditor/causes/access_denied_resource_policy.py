"""No resource-based policy (secret policy or key policy) allows the action (implicit deny)."""

from ._base import ACCESS_DENIED_CODES, IAM_DENIED_DOC, Cause, Match, roots
from ._denied import by_policy_type, denied_by
from ._statements import render

_NO_ALLOW = by_policy_type(frozenset({"resource-based"}), explicit=False, fix=True)
applies = denied_by(frozenset({"resource-based"}), explicit=False)


def _hedged(call) -> bool:
    """KMS's message when the ciphertext's key is out of reach and it will not say why (trail.parse_denial)."""
    return call.denial is not None and call.denial.hedged


def match(call, facts):
    found = _NO_ALLOW(call, facts)
    if found is None or not _hedged(call):
        return found
    return Match(
        ("KMS names three possibilities: the key of this ciphertext does not exist in this Region, no key policy "
         "allows the caller, or the key policy explicitly denies it",) + found.evidence[1:],
        "medium",
        found.policy,
    )


def remediation(call, m):
    stmt = dict(m.policy or {})
    stmt["Principal"] = {"AWS": call.principal.identity_arn or "<caller ARN>"}
    if call.service == "kms":
        where = "the key policy (aws kms get-key-policy / put-key-policy)"
    else:
        where = "the secret's resource policy (aws secretsmanager get-resource-policy / put-resource-policy)"
    cross = call.principal.account and call.account and call.principal.account != call.account
    first = ""
    if _hedged(call):
        first = ("First make sure the call goes to the Region the ciphertext was encrypted in (a ciphertext can "
                 "only be decrypted where its key lives, or where a multi-Region replica of that key exists), and "
                 "that the key policy holds no Deny for this caller. Then: ")
    return first + (
        f"Add a statement to {where} that allows the caller: {render(stmt)}."
        + (" The caller is in another account: that account must also allow it in the caller's identity policy." if cross else "")
    )


CAUSE = Cause(
    id="access-denied.resource-policy",
    root=roots.resource_policy,
    title="Access denied: no resource-based policy (secret or key policy) allows the action",
    severity="high",
    topic='"Access denied" messages when sending requests to Secrets Manager',
    doc_url=IAM_DENIED_DOC + "#access_denied_message_examples",
    precedence=61,
    error_codes=ACCESS_DENIED_CODES,
    policy_types=frozenset({"resource-based"}),
    match=match,
    remediation=remediation,
    applies=applies,
)
