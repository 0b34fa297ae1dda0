"""The request itself was invalid: a parameter's value, a combination, or the resource's state."""

from ._base import Cause, Match, roots, who
from ._key_state import key_condition

_CODES = frozenset({
    "ValidationException", "InvalidParameterException", "InvalidParameterValue", "InvalidParameterCombination",
    "InvalidRequestException", "MalformedPolicyDocumentException", "InvalidNextTokenException", "InvalidArnException",
    "InvalidAliasNameException", "InvalidGrantTokenException", "InvalidMarkerException", "MissingParameter",
    "SerializationException", "InvalidKeyUsageException", "InvalidGrantIdException", "TagException",
    "PublicPolicyException",
})


#: KMSInvalidStateException is a key state (kms.key-*) except when the request asks what the key's
#: state does not allow: CancelKeyDeletion of a key that is not pending deletion (key-state table [4]).
_KEY_STATE_MISMATCH = frozenset({"NotPendingDeletion"})


def applies(call, facts):
    if call.error_code in _CODES:
        return True
    return call.error_code == "KMSInvalidStateException" and key_condition(call) in _KEY_STATE_MISMATCH


def match(call, facts):
    if not applies(call, facts):
        return None
    text = f": {call.error_message[:160]}" if call.error_message else ""
    evidence = (f"{call.error_code} on {call.service}:{call.action}{text}",)
    if call.error_code == "KMSInvalidStateException":
        evidence += ("the key is not pending deletion: there is no deletion to cancel (a key state, not a failure of the key)",)
    return Match(evidence + (who(call),), "high")


def remediation(call, m):
    return (
        f"The request to {call.service}:{call.action} was rejected as invalid; the error message names the parameter or "
        "the state that is wrong. Fix the calling code or template; retrying the same request will fail the same way."
    )


CAUSE = Cause(
    id="validation",
    root=roots.request,
    title="Invalid request",
    severity="low",
    topic="Beyond the troubleshooting pages: request validation",
    doc_url="https://docs.aws.amazon.com/secretsmanager/latest/apireference/CommonErrors.html",
    precedence=91,
    error_codes=_CODES | {"KMSInvalidStateException"},
    match=match,
    remediation=remediation,
    applies=applies,
)
