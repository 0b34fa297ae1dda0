"""The KMS key is scheduled for deletion: every cryptographic operation with it fails.

The message decides, not the exception's name: KMS raises DisabledException for cryptographic
operations on a key pending deletion ("<key ARN> is pending deletion.") and
KMSInvalidStateException for the others (the key-state table's footnotes [2] and [3]). A
multi-Region primary key waits in PendingReplicaDeletion until its replicas are deleted.
"""

from ._base import Cause, Match, roots
from ._key_state import KEY_STATE_CODES, KEY_STATE_DOC, described_key_state, key_condition, key_evidence

_STATES = frozenset({"PendingDeletion", "PendingReplicaDeletion"})


def _state(call, facts) -> tuple[str, str]:
    """(the state to act on, the state the message names), or ("", "") when this cause does not apply.
    A state the message names stays the cause whatever DescribeKey says later (a deletion cancelled
    since is evidence); DescribeKey decides only what the record leaves open."""
    described = described_key_state(facts)
    named = key_condition(call)
    if named in _STATES and (call.service == "secretsmanager" or call.error_code in KEY_STATE_CODES):
        return named, named
    if named:
        return "", ""
    if described in _STATES and (call.error_code in KEY_STATE_CODES or call.service == "secretsmanager"):
        return described, ""
    return "", ""


def applies(call, facts):
    return bool(_state(call, facts)[0])


def match(call, facts):
    state, named = _state(call, facts)
    if not state:
        return None
    return Match(key_evidence(call, named, described_key_state(facts), state), "high", state=state)


def remediation(call, m):
    key = call.resource or call.kms_key_id or "<key id>"
    if m.state == "PendingReplicaDeletion":
        first = (f"{key} is a multi-Region primary key scheduled for deletion, waiting for its replica keys to be deleted "
                 "(PendingReplicaDeletion; it becomes PendingDeletion after them). If anything still needs it, cancel now: "
                 f"aws kms cancel-key-deletion --key-id {key} in its Region, and the same for each replica scheduled for "
                 f"deletion (aws kms describe-key shows MultiRegionConfiguration), then aws kms enable-key --key-id {key}.")
    else:
        first = (f"Cancel the deletion now if anything still needs the key: aws kms cancel-key-deletion --key-id {key} and "
                 f"aws kms enable-key --key-id {key} (a cancelled key is Disabled until enabled).")
    return first + (" Once deleted, data encrypted under it (including secret versions) cannot be recovered. Find who "
                    "scheduled it in CloudTrail (ScheduleKeyDeletion).")


CAUSE = Cause(
    id="kms.key-pending-deletion",
    root=roots.key_state,
    title="The KMS key is pending deletion",
    severity="critical",
    topic="Beyond the troubleshooting pages: KMS key state",
    doc_url=KEY_STATE_DOC,
    precedence=83,
    error_codes=KEY_STATE_CODES | {"DecryptionFailure", "EncryptionFailure", "InvalidRequestException"},
    match=match,
    remediation=remediation,
    applies=applies,
)
