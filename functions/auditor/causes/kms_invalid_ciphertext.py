"""The ciphertext is not valid for this key: corrupted, truncated, or encrypted under another key or context."""

from ._base import Cause, Match, who

_CODES = frozenset({"InvalidCiphertextException", "IncorrectKeyException", "InvalidCiphertext"})


def applies(call, facts):
    return call.error_code in _CODES


def match(call, facts):
    if call.error_code not in _CODES:
        return None
    evidence = [f"{call.error_code} on {call.action}" + (f': "{call.error_message[:120]}"' if call.error_message else "")]
    if call.error_code == "IncorrectKeyException":
        evidence.append("the ciphertext was encrypted under a different KMS key than the one named")
    return Match(tuple(evidence) + (who(call),), "high")


def remediation(call, m):
    return (
        "Decrypt with the same key and the exact same encryption context used to encrypt (the context is part of the "
        "ciphertext's integrity check), and pass the ciphertext blob unmodified (no base64 twice, no truncation). "
        "If the key id is given, it must be the key that encrypted the data."
    )


CAUSE = Cause(
    id="kms.invalid-ciphertext",
    title="Invalid ciphertext, wrong key or wrong encryption context",
    severity="medium",
    topic="Beyond the troubleshooting pages: KMS input",
    doc_url="https://docs.aws.amazon.com/kms/latest/APIReference/API_Decrypt.html",
    precedence=86,
    error_codes=_CODES,
    match=match,
    remediation=remediation,
    applies=applies,
)
