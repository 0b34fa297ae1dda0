"""The KMS key cannot be used in its state (disabled, pending import, unavailable, a multi-Region
replica being created or updated), or its custom key store cannot serve it.

The message decides, not the exception's name (the key-state table's footnotes): "<key ARN> is
disabled." comes with DisabledException, "... is pending import.", "... is unavailable.",
"... is creating." and "... is updating." with KMSInvalidStateException. Cryptographic
operations on a key in a CloudHSM or external key store fail with KMSInvalidStateException for
every problem of the key store, which only the message names (proxy unreachable or timing out,
credentials, the external key missing or disabled, ...). A DisabledException whose message names
no state is a disabled key; a message naming a key pending deletion is kms.key-pending-deletion.
"""

from ._base import Cause, Match, roots
from ._key_state import (KEY_STATE_CODES, KEY_STATE_DOC, KEY_STORE_CONDITIONS, described_key_state, key_condition, key_evidence)

_STATES = frozenset({"Disabled", "PendingImport", "Unavailable", "Creating", "Updating"})
_ANY = _STATES | KEY_STORE_CONDITIONS
#: Exceptions that mean "not usable now" by their name alone, when the message names no state.
_BY_NAME = {"DisabledException": "Disabled", "KeyUnavailableException": "KeyUnavailable"}

_XKS = ("https://docs.aws.amazon.com/kms/latest/developerguide/xks-troubleshooting.html: the external key store proxy "
        "and its external key manager are yours to fix; AWS KMS cannot.")
#: What to do, per state or key store problem (key-state.html, xks-troubleshooting.html, fix-keystore.html).
_FIX = {
    "Disabled": "Enable the key if it was disabled by mistake: aws kms enable-key --key-id {key} (find who disabled it: "
                "CloudTrail DisableKey).",
    "PendingImport": "The key's imported key material expired or was deleted: import it again (aws kms get-parameters-for-import, "
                     "then aws kms import-key-material --key-id {key}); only the same key material decrypts what the key encrypted.",
    "Unavailable": "The key's custom key store is disconnected: reconnect it (aws kms connect-custom-key-store "
                   "--custom-key-store-id <id>, shown by aws kms describe-key --key-id {key}); the key returns to its previous state.",
    "Creating": "The multi-Region replica key is still being created (ReplicateKey): wait until aws kms describe-key --key-id {key} "
                "shows Enabled (or PendingImport for imported key material), then retry.",
    "Updating": "The primary Region of the multi-Region key is being changed (UpdatePrimaryRegion): wait until aws kms describe-key "
                "--key-id {key} shows Enabled, then retry.",
    "KeyUnavailable": "KMS could not use the key at that moment: retry with backoff; if it persists and the key is in a custom key "
                      "store, check the key store's connection state (aws kms describe-custom-key-stores).",
    "ExternalKeyNotFound": "The external key store proxy cannot find the external key behind {key}: re-associate the external key with "
                           "the key's external key ID in the external key manager, or restore it from a backup (the XksKeyId of a "
                           "KMS key cannot be changed). " + _XKS,
    "ExternalKeyNotEnabled": "Enable the external key in the external key manager. " + _XKS,
    "ExternalKeyUsage": "The external key must allow encryption and decryption: change its key usage in the external key manager. " + _XKS,
    "ProxyUnsupportedOperation": "The external key store proxy does not support this operation: it must implement the AWS KMS External "
                                 "Key Store Proxy API Specification; tell its administrator or vendor. " + _XKS,
    "ProxyCredentials": "The proxy no longer accepts the key store's proxy authentication credential: update it with aws kms "
                        "update-custom-key-store --xks-proxy-authentication-credential after it changed on the proxy. " + _XKS,
    "ProxyTimeout": "The external key store proxy did not answer within KMS's timeout: retry; if it repeats, check the proxy's load "
                    "and its distance to the external key manager and to the Region. " + _XKS,
    "ProxyUnreachable": "KMS cannot reach the external key store proxy: check that the proxy is up, its endpoint URI and path (or VPC "
                        "endpoint service) in the key store's settings, and the network path on port 443. " + _XKS,
    "ProxyUnhealthy": "The external key store proxy reports itself unhealthy (its external key manager instances may be unavailable): "
                      "tell its administrator. " + _XKS,
    "ProxyInvalidResponse": "KMS cannot interpret the external key store proxy's answer: tell its administrator or vendor. " + _XKS,
    "ProxyAuthorization": "The external key store proxy's own authorization rules refused this caller or operation: change them in the "
                          "proxy or external key manager. " + _XKS,
    "ProxyCiphertext": "The external key manager or proxy returned a corrupt ciphertext: retry; if it repeats, check that the proxy does "
                       "not alter what the external key manager returns. " + _XKS,
    "CloudHsmUnreachable": "KMS cannot reach the key store's CloudHSM cluster: retry, then check the cluster's security group and "
                           "network configuration (https://docs.aws.amazon.com/kms/latest/developerguide/fix-keystore.html).",
}


def _state(call, facts) -> tuple[str, str]:
    """(the state or key store problem to act on, what the message names), or ("", "").

    The record is the truth of its moment: a state the message names, or a DisabledException,
    stays the cause whatever DescribeKey says later (a key enabled again since is evidence, not
    a reason to call the failure unknown). DescribeKey decides only what the record leaves open:
    the state behind an exception that names none."""
    described = described_key_state(facts)
    named = key_condition(call)
    if named in _ANY and (call.service == "secretsmanager" or call.error_code in KEY_STATE_CODES):
        return named, named
    if named:
        return "", ""  # another cause's state (pending deletion), or not a usability problem
    if described in _STATES and (call.error_code in KEY_STATE_CODES or call.service == "secretsmanager"):
        return described, ""  # the record names no state; DescribeKey says which
    if described and described not in _STATES and described != "Enabled" and call.error_code in KEY_STATE_CODES:
        return "", ""  # the exception names no state and the key is in another cause's (pending deletion)
    if call.service == "kms" and call.error_code in _BY_NAME:
        return _BY_NAME[call.error_code], ""
    return "", ""


def applies(call, facts):
    return bool(_state(call, facts)[0])


def match(call, facts):
    state, named = _state(call, facts)
    if not state:
        return None
    evidence = key_evidence(call, named, described_key_state(facts), state if state in _STATES else "")
    if state in KEY_STORE_CONDITIONS:
        evidence = evidence[:1] + ("the key is in a custom key store: KMS reports every key store problem of a cryptographic "
                                   "operation as KMSInvalidStateException, and the message names it",) + evidence[1:]
    return Match(evidence, "high", state=state)


def remediation(call, m):
    key = call.resource or call.kms_key_id or "<key id>"
    return _FIX.get(m.state, _FIX["Disabled"]).format(key=key)


CAUSE = Cause(
    id="kms.key-disabled",
    root=roots.key_state,
    title="The KMS key is disabled or in an invalid state",
    severity="high",
    topic="Beyond the troubleshooting pages: KMS key state",
    doc_url=KEY_STATE_DOC,
    precedence=84,
    error_codes=KEY_STATE_CODES | {"DecryptionFailure", "EncryptionFailure", "InvalidRequestException"},
    match=match,
    remediation=remediation,
    applies=applies,
)
