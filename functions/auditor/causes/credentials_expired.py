"""The temporary security credentials had expired when the call was made."""

import re

from ._base import ACCESS_DENIED_CODES, Cause, Match, roots, who

_CODES = frozenset({"ExpiredToken", "ExpiredTokenException"})
_TEXT = re.compile(r"security token included in the request is expired|token (?:has )?expired", re.IGNORECASE)


def applies(call, facts):
    return call.error_code in _CODES or ("xpired" in call.error_message and _TEXT.search(call.error_message) is not None)


def match(call, facts):
    if call.error_code in _CODES:
        evidence = (f"error code {call.error_code}", who(call))
    elif "xpired" in call.error_message and _TEXT.search(call.error_message):
        evidence = (f'the message says the token is expired: "{call.error_message[:100]}"', who(call))
    else:
        return None
    return Match(evidence, "high")


def remediation(call, m):
    return (
        "Refresh the credentials instead of reusing them: let the SDK's default credential chain (instance profile, "
        "container or Lambda role, SSO) renew them, or call AssumeRole again before they expire. Long jobs should use a "
        "refreshing credential provider; a cached session token in an environment variable or file will expire "
        "(1 hour by default, at most the role's MaxSessionDuration)."
    )


CAUSE = Cause(
    id="credentials.expired",
    root=roots.principal_credentials,
    title="Temporary security credentials expired",
    severity="medium",
    topic='"Access denied" for temporary security credentials',
    doc_url="https://docs.aws.amazon.com/IAM/latest/UserGuide/id_credentials_temp_request.html",
    precedence=20,
    error_codes=_CODES | ACCESS_DENIED_CODES | {"UnrecognizedClientException", "InvalidClientTokenId"},
    # An expired token is refused before any policy is read: a denial that names a policy type is not this.
    policy_types=frozenset({""}),
    match=match,
    remediation=remediation,
    applies=applies,
)
