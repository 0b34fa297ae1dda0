"""An explicit Deny statement in an identity-based or resource-based policy."""

from ._arns import denied_action
from ._base import ACCESS_DENIED_CODES, IAM_DENIED_DOC, Cause, Match, roots, who
from ._denied import by_policy_type

_TYPED = by_policy_type(frozenset({"identity-based", "resource-based"}), explicit=True)
_TYPES = frozenset({"", "identity-based", "resource-based"})


def applies(call, facts):
    d = call.denial
    return d is not None and d.explicit and d.policy_type in _TYPES


def match(call, facts):
    d = call.denial
    if d is not None and d.explicit and not d.policy_type:
        # An older message form: "... with an explicit deny", no policy type named.
        return Match(
            ('the message says the call was denied "with an explicit deny" but does not name the policy type',
             f"denied action: {denied_action(call)}", who(call)),
            "medium",
        )
    return _TYPED(call, facts)


def remediation(call, m):
    where = "the secret's resource policy (get-resource-policy)" if call.service == "secretsmanager" else "the key policy (get-key-policy)"
    if call.denial and call.denial.policy_type == "identity-based":
        where = f"the policies attached to {call.principal.identity_arn or 'the caller'}"
    elif call.denial and not call.denial.policy_type:
        where = (f"the policies attached to {call.principal.identity_arn or 'the caller'}, {where}, and the "
                 "service control policies and permissions boundary that apply (the message does not say which holds it)")
    return (
        f"An explicit Deny always wins over any Allow. Find the Deny statement for {denied_action(call)} in "
        f"{where}, including its Condition (NotPrincipal, aws:SourceVpce, aws:PrincipalArn, aws:SourceIp ...), and "
        "either exclude this caller deliberately or change how the caller reaches the resource. Do not add an Allow: it cannot override a Deny."
    )


CAUSE = Cause(
    id="access-denied.explicit-deny",
    root=roots.by_denying_policy,
    title="Access denied: an explicit deny in an identity- or resource-based policy",
    severity="high",
    topic='"Access denied" messages when sending requests to Secrets Manager',
    doc_url=IAM_DENIED_DOC + "#access_denied_message_examples",
    precedence=60,
    error_codes=ACCESS_DENIED_CODES,
    policy_types=frozenset({"identity-based", "resource-based", ""}),  # "": explicit, type not named
    match=match,
    remediation=remediation,
    applies=applies,
)
