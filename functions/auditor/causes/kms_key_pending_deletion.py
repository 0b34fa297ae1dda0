"""The KMS key is scheduled for deletion: every cryptographic operation with it fails."""

import re

from ._base import Cause, key_state_match

_TEXT = re.compile(r"pending (?:replica )?deletion|scheduled for deletion", re.IGNORECASE)
_CODES = frozenset({"KMSInvalidStateException", "KMSInvalidState"})
_STATES = frozenset({"PendingDeletion", "PendingReplicaDeletion"})


def match(call, facts):
    return key_state_match(call, facts, _TEXT, _STATES, _CODES, ("eletion", "ELETION"))


def remediation(call, m):
    key = call.resource or call.kms_key_id or "<key id>"
    return (
        f"Cancel the deletion now if anything still needs the key: aws kms cancel-key-deletion --key-id {key} and "
        f"aws kms enable-key --key-id {key}. Once deleted, data encrypted under it (including secret versions) cannot "
        "be recovered. Find who scheduled it in CloudTrail (ScheduleKeyDeletion)."
    )


CAUSE = Cause(
    id="kms.key-pending-deletion",
    title="The KMS key is pending deletion",
    severity="critical",
    topic="Beyond the troubleshooting pages: KMS key state",
    doc_url="https://docs.aws.amazon.com/kms/latest/developerguide/key-state.html",
    precedence=83,
    error_codes=_CODES | {"DecryptionFailure", "EncryptionFailure", "InvalidRequestException"},
    match=match,
    remediation=remediation,
)
