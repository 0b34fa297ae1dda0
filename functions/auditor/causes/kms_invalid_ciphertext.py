"""The ciphertext is not valid for this key: corrupted, truncated, or encrypted under another key or context."""

from ._base import Cause, Match, roots, who

_CODES = frozenset({"InvalidCiphertextException", "IncorrectKeyException", "InvalidCiphertext"})
#: A Decrypt with a key in an external key store reports a bad ciphertext or encryption context as
#: KMSInvalidStateException with these words (xks-troubleshooting.html#fix-xks-decrypt).
_XKS_BAD_INPUT = "rejected the request because the specified ciphertext or additional authenticated data is corrupted"


def applies(call, facts):
    return call.error_code in _CODES or (call.error_code == "KMSInvalidStateException" and _XKS_BAD_INPUT in call.error_message)


def match(call, facts):
    if not applies(call, facts):
        return None
    evidence = [f"{call.error_code} on {call.action}" + (f': "{call.error_message[:160]}"' if call.error_message else "")]
    if call.error_code == "IncorrectKeyException":
        evidence.append("the ciphertext was encrypted under a different KMS key than the one named")
    elif call.error_code == "KMSInvalidStateException":
        evidence.append("the key is in an external key store, whose proxy rejected the ciphertext or encryption context of the "
                        "request (KMS reports it as KMSInvalidStateException)")
    return Match(tuple(evidence) + (who(call),), "high")


def remediation(call, m):
    return (
        "Decrypt with the same key and the exact same encryption context used to encrypt (the context is part of the "
        "ciphertext's integrity check), and pass the ciphertext blob unmodified (no base64 twice, no truncation). "
        "If the key id is given, it must be the key that encrypted the data."
    )


CAUSE = Cause(
    id="kms.invalid-ciphertext",
    root=roots.request,
    title="Invalid ciphertext, wrong key or wrong encryption context",
    severity="medium",
    topic="Beyond the troubleshooting pages: KMS input",
    doc_url="https://docs.aws.amazon.com/kms/latest/APIReference/API_Decrypt.html",
    precedence=86,
    error_codes=_CODES | {"KMSInvalidStateException"},
    match=match,
    remediation=remediation,
    applies=applies,
)
