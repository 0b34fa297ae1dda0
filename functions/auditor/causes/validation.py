"""The request itself was invalid: a parameter's value, a combination, or the resource's state."""

from ._base import Cause, Match, who

_CODES = frozenset({
    "ValidationException", "InvalidParameterException", "InvalidParameterValue", "InvalidParameterCombination",
    "InvalidRequestException", "MalformedPolicyDocumentException", "InvalidNextTokenException", "InvalidArnException",
    "InvalidAliasNameException", "InvalidGrantTokenException", "InvalidMarkerException", "MissingParameter",
    "SerializationException", "InvalidKeyUsageException", "InvalidGrantIdException", "TagException",
    "PublicPolicyException",
})


def applies(call, facts):
    return call.error_code in _CODES


def match(call, facts):
    if call.error_code not in _CODES:
        return None
    text = f": {call.error_message[:160]}" if call.error_message else ""
    return Match((f"{call.error_code} on {call.service}:{call.action}{text}", who(call)), "high")


def remediation(call, m):
    return (
        f"The request to {call.service}:{call.action} was rejected as invalid; the error message names the parameter or "
        "the state that is wrong. Fix the calling code or template; retrying the same request will fail the same way."
    )


CAUSE = Cause(
    id="validation",
    title="Invalid request",
    severity="low",
    topic="Beyond the troubleshooting pages: request validation",
    doc_url="https://docs.aws.amazon.com/secretsmanager/latest/apireference/CommonErrors.html",
    precedence=91,
    error_codes=_CODES,
    match=match,
    remediation=remediation,
    applies=applies,
)
