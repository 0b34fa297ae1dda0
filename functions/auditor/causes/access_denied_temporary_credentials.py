"""Access denied to temporary credentials, and the message does not name the policy type."""

from ._arns import denied_action, denied_resource_arn
from ._base import ACCESS_DENIED_CODES, Cause, Match, roots, who
from ._denied import said
from ._statements import policy_statement, render


def applies(call, facts):
    d = call.denial
    return d is not None and not d.policy_type and call.principal.temporary


def match(call, facts):
    if not applies(call, facts):
        return None
    policy = policy_statement(denied_action(call), denied_resource_arn(call))
    return Match((said(call), who(call), f"denied action: {denied_action(call)}"), "medium", policy)


def remediation(call, m):
    role = call.principal.identity_arn or "the role or user the credentials came from"
    return (
        f"Temporary credentials have only the permissions of {role}, further limited by any session policy. "
        f"1) Check that {role} allows the call, for example {render(m.policy)}; "
        "2) check for a session policy passed when the session started; 3) if the request is signed by hand, check "
        "the signature and that the session token is sent; 4) check that the credentials have not expired."
    )


CAUSE = Cause(
    id="access-denied.temporary-credentials",
    root=roots.principal_permissions,
    title="Access denied for temporary credentials, policy type not stated",
    severity="high",
    topic='"Access denied" for temporary security credentials',
    doc_url="https://docs.aws.amazon.com/secretsmanager/latest/userguide/troubleshoot.html#troubleshoot_general_access-denied-temp-creds",
    precedence=70,
    error_codes=ACCESS_DENIED_CODES,
    policy_types=frozenset({""}),  # applies' own test, in the index
    match=match,
    remediation=remediation,
    applies=applies,
)
