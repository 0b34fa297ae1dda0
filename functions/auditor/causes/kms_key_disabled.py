"""The KMS key is disabled, or in another state that cannot be used (pending import, unavailable)."""

import re

from ._base import Cause, key_state_match

_TEXT = re.compile(r"is disabled|pending import|is unavailable|not enabled|disabled key|is not usable", re.IGNORECASE)
_HINTS = ("isabled", "ISABLED", "ending import", "navailable", "ot enabled", "ot usable")
_CODES = frozenset({"DisabledException", "KMSInvalidStateException", "KMSInvalidState", "KeyUnavailableException"})
_STATES = frozenset({"Disabled", "PendingImport", "Unavailable", "Creating", "Updating"})


def match(call, facts):
    found = key_state_match(call, facts, _TEXT, _STATES, _CODES, _HINTS)
    if found is None and call.service == "kms" and call.error_code in ("DisabledException", "KeyUnavailableException"):
        return key_state_match(call, facts, re.compile(""), _STATES, _CODES)
    return found


def remediation(call, m):
    key = call.resource or call.kms_key_id or "<key id>"
    return (
        f"Enable the key if it was disabled by mistake: aws kms enable-key --key-id {key} (find who disabled it: "
        "CloudTrail DisableKey). For imported key material in PendingImport, import it again; for a key in a custom "
        "key store that is Unavailable, reconnect the key store."
    )


CAUSE = Cause(
    id="kms.key-disabled",
    title="The KMS key is disabled or in an invalid state",
    severity="high",
    topic="Beyond the troubleshooting pages: KMS key state",
    doc_url="https://docs.aws.amazon.com/kms/latest/developerguide/key-state.html",
    precedence=84,
    error_codes=_CODES | {"DecryptionFailure", "EncryptionFailure", "InvalidRequestException"},
    match=match,
    remediation=remediation,
)
