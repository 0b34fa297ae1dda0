"""The request rate exceeded the service's quota."""

from ._base import Cause, Match, roots, who

_CODES = frozenset({"ThrottlingException", "Throttling", "TooManyRequestsException", "RequestLimitExceeded",
                    "ThrottledException", "SlowDown"})


def applies(call, facts):
    return call.error_code in _CODES


def match(call, facts):
    if call.error_code not in _CODES:
        return None
    return Match((f"{call.error_code} on {call.service}:{call.action}", who(call)), "high")


def remediation(call, m):
    if call.service == "kms":
        hint = ("KMS cryptographic operations share a per-account, per-region request quota: cache data keys "
                "(AWS Encryption SDK) or secret values instead of decrypting on every request")
    else:
        hint = ("cache secret values in the application (the Secrets Manager caching libraries or the Lambda extension) "
                "instead of calling GetSecretValue per request")
    return f"Retry with exponential backoff and jitter; {hint}; request a quota increase in Service Quotas if the load is real."


CAUSE = Cause(
    id="throttling",
    root=roots.request_rate,
    title="Throttled: request rate above the quota",
    severity="medium",
    topic="Beyond the troubleshooting pages: quotas",
    doc_url="https://docs.aws.amazon.com/secretsmanager/latest/userguide/reference_limits.html",
    precedence=90,
    error_codes=_CODES,
    match=match,
    remediation=remediation,
    applies=applies,
)
