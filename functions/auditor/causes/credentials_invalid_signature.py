"""The request was not signed correctly, or its access key / token is unknown or invalid."""

from ._base import Cause, Match, roots, who

_SIGNATURE = frozenset({"SignatureDoesNotMatch", "IncompleteSignature", "InvalidSignatureException", "InvalidSignature"})
_UNKNOWN_KEY = frozenset({"InvalidClientTokenId", "UnrecognizedClientException", "InvalidAccessKeyId", "AuthFailure"})
_MISSING = frozenset({"MissingAuthenticationToken", "MissingAuthenticationTokenException"})
_CLOCK = frozenset({"RequestExpired", "SignatureExpired"})
_ANY = _SIGNATURE | _UNKNOWN_KEY | _MISSING | _CLOCK


def applies(call, facts):
    if call.error_code in _ANY:
        return True
    text = call.error_message.lower()
    return "signature expired" in text or "request has expired" in text


def match(call, facts):
    code, text = call.error_code, call.error_message.lower()
    if code in _CLOCK or "signature expired" in text or "request has expired" in text:
        evidence = ("the signature's timestamp is outside the allowed window: the caller's clock is wrong, or a signed request was replayed late",)
    elif code in _SIGNATURE:
        evidence = (f"{code}: the signature AWS computed does not match the one sent",)
    elif code in _UNKNOWN_KEY:
        key = call.principal.access_key_id
        evidence = (f"{code}: AWS does not recognise the access key or security token" + (f" ({key[:4]}…)" if key else ""),)
        if key.startswith("ASIA"):
            evidence += ("the key is a session key (ASIA…): its session token was missing, truncated or from another session",)
    elif code in _MISSING:
        evidence = (f"{code}: the request carried no credentials",)
    else:
        return None
    return Match(evidence + (who(call),), "high")


def remediation(call, m):
    return (
        "Use an AWS SDK or the CLI rather than signing by hand. Otherwise check: the secret access key belongs to the "
        "access key id; the session token is sent with temporary keys; the region and service in the credential scope "
        f"({call.region or 'region'}/{call.service}) match the endpoint; the host's clock is synchronised (NTP); the "
        "access key is active (aws iam list-access-keys) and was not deleted or rotated away."
    )


CAUSE = Cause(
    id="credentials.invalid-signature",
    root=roots.principal_credentials,
    title="Request not signed correctly, or an unknown or invalid access key",
    severity="medium",
    topic='"Access denied" messages when sending requests to Secrets Manager',
    doc_url="https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_sigv-troubleshooting.html",
    precedence=21,
    error_codes=_ANY,
    match=match,
    remediation=remediation,
    applies=applies,
)
