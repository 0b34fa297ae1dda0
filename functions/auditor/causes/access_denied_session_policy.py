"""A session policy passed when the temporary credentials were issued limits the call."""

from ._base import ACCESS_DENIED_CODES, Cause, roots
from ._denied import by_policy_type, denied_by
from ._statements import render


def remediation(call, m):
    return (
        "Temporary credentials can do only what both the role and the session policy allow. The session was "
        "started with a session policy (the Policy or PolicyArns parameter of AssumeRole, AssumeRoleWithWebIdentity, "
        "AssumeRoleWithSAML or GetFederationToken) that does not allow this call. Include the permission in the "
        f"session policy the issuing code passes, for example {render(m.policy)}, then start a new session."
    )


CAUSE = Cause(
    id="access-denied.session-policy",
    root=roots.principal_session,
    title="Access denied for temporary credentials: a session policy",
    severity="high",
    topic='"Access denied" for temporary security credentials',
    doc_url="https://docs.aws.amazon.com/IAM/latest/UserGuide/id_credentials_temp_control-access.html",
    precedence=52,
    error_codes=ACCESS_DENIED_CODES,
    policy_types=frozenset({"session"}),
    match=by_policy_type(frozenset({"session"}), fix=True),
    remediation=remediation,
    applies=denied_by(frozenset({"session"})),
)
