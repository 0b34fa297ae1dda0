"""KMS key-state causes: what a KMS error message says of its key, whatever the exception's name,
and the evidence those causes give (the message, DescribeKey's answer, the caller)."""

from __future__ import annotations

import functools
from typing import Optional

from ..facts import Facts
from ..records import FailedCall
from ._base import who

__all__ = ["KEY_CONDITIONS", "KEY_STATE_CODES", "KEY_STATE_DOC", "KEY_STORE_CONDITIONS", "described_key_state", "key_condition",
           "key_evidence"]


KEY_STATE_DOC = "https://docs.aws.amazon.com/kms/latest/developerguide/key-state.html"

#: What a KMS error message says of its key, lower-cased phrase -> condition; the first phrase found
#: wins. Key states, in the words of the key-state table's footnotes ("<key ARN> is <state>."),
#: whichever exception carries them: a key pending deletion fails cryptographic operations with
#: DisabledException [2] and other operations with KMSInvalidStateException [3]. Custom key
#: stores: cryptographic operations on their keys fail with KMSInvalidStateException for every
#: key store problem, named only by the message (xks-troubleshooting.html, fix-keystore.html).
#: Order: the external key's "not enabled" before a key's, "is not pending deletion" [4] before
#: "pending deletion".
_KEY_STORE_PHRASES = (
    ("could not find the external key", "ExternalKeyNotFound"),
    ("external key is not enabled", "ExternalKeyNotEnabled"),
    ("external key does not support the requested operation", "ExternalKeyUsage"),
    ("does not support the requested cryptographic operation", "ProxyUnsupportedOperation"),
    ("could not authenticate aws kms", "ProxyCredentials"),
    ("did not respond in time", "ProxyTimeout"),
    ("did not respond to the request in the time allotted", "ProxyTimeout"),
    ("cannot communicate with the external key store proxy", "ProxyUnreachable"),
    ("proxy is in an unhealthy state", "ProxyUnhealthy"),
    ("cannot interpret the response from the external key store proxy", "ProxyInvalidResponse"),
    ("proxy denied access to the operation", "ProxyAuthorization"),
    ("ciphertext that the external key store proxy submitted", "ProxyCiphertext"),
    ("cannot communicate with your cloudhsm cluster", "CloudHsmUnreachable"),
)
_KEY_STATE_PHRASES = (
    ("is not pending deletion", "NotPendingDeletion"),
    ("is not pending replica deletion", "NotPendingDeletion"),
    ("pending replica deletion", "PendingReplicaDeletion"),
    ("pending deletion", "PendingDeletion"),
    ("scheduled for deletion", "PendingDeletion"),
    ("pending import", "PendingImport"),
    ("is unavailable", "Unavailable"),
    ("is creating", "Creating"),
    ("is updating", "Updating"),
    ("is disabled", "Disabled"),
    ("disabled key", "Disabled"),
    ("not enabled", "Disabled"),
    ("is not usable", "Disabled"),
)
KEY_CONDITIONS: tuple[tuple[str, str], ...] = _KEY_STORE_PHRASES + _KEY_STATE_PHRASES
#: The conditions that are a problem of the key's custom key store, not a key state.
KEY_STORE_CONDITIONS = frozenset(condition for _, condition in _KEY_STORE_PHRASES)
#: The exceptions KMS raises for a key state or a key store problem (the key-state table).
KEY_STATE_CODES = frozenset({"DisabledException", "KMSInvalidStateException", "KMSInvalidState", "KeyUnavailableException"})


def key_condition(call: FailedCall) -> str:
    """The key state or key store problem the error message names ("" when it names none). A Secrets
    Manager message counts only when it is about KMS (DecryptionFailure and EncryptionFailure carry
    KMS's words after their own)."""
    message = call.error_message
    if call.service != "kms" and "KMS" not in message and "kms" not in message:
        return ""
    return _condition_named(message)


# Memoised: a pure function of the message, and KMS repeats its messages (one per key and state).
# Bounded: messages come from the records.
@functools.lru_cache(maxsize=4096)
def _condition_named(message: str) -> str:
    """The condition of KEY_CONDITIONS the message names first ("" when none)."""
    text = message.lower()
    for phrase, condition in KEY_CONDITIONS:
        if phrase in text:
            return condition
    return ""


def described_key_state(facts: Optional[Facts]) -> str:
    """DescribeKey's KeyState, when enrichment found the key ("" otherwise)."""
    key = facts.key if facts else None
    return key.key_state if key is not None and key.found else ""


def key_evidence(call: FailedCall, named: str, described: str, acted: str = "") -> tuple[str, ...]:
    """Evidence of a key-state cause: the message (and the state it names), DescribeKey, the caller.
    The record is the truth of its moment: a DescribeKey made later that reports another state than
    the one acted on (``acted``) says what changed since, it does not undo the failure."""
    if named:
        evidence = [f'the message says: "{call.error_message[:160]}"']
        if call.error_code == "DisabledException" and named != "Disabled":
            evidence.append(f"it names the key state {named}: KMS raises DisabledException for a key pending deletion too "
                            "(key-state table), so the message decides, not the exception's name")
    else:
        evidence = [f"{call.action} failed with {call.error_code}"]
    if described and acted and described != acted:
        evidence.append(f"DescribeKey now reports KeyState {described}: the key changed after this call "
                        f"(it was {acted} then; see the incident's later changes, e.g. EnableKey)")
    elif described:
        evidence.append(f"DescribeKey: KeyState {described}")
    evidence.append(who(call))
    return tuple(evidence)
