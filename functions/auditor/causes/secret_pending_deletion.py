"""The secret is scheduled for deletion (or deleted): it cannot be used until restored."""

import functools
import re

from ._base import Cause, Match, roots, who

_TEXT = re.compile(r"marked for deletion|scheduled for deletion|marked deleted|pending deletion|because it was deleted|was deleted", re.IGNORECASE)
_CODES = frozenset({"InvalidRequestException", "ResourceNotFoundException", "ResourceExistsException"})


# Memoised: a pure function of the message, and a stream repeats its messages. Bounded: they come from the records.
@functools.lru_cache(maxsize=4096)
def _says_deleted(message: str) -> bool:
    # Every phrase of _TEXT holds "delet": a plain substring test first spares the regex on
    # the messages that cannot match (nearly all of them).
    return "elet" in message.lower() and _TEXT.search(message) is not None


def applies(call, facts):
    if call.service != "secretsmanager":
        return False
    return _says_deleted(call.error_message) or bool(facts and facts.secret and facts.secret.found and facts.secret.deleted_date)


def match(call, facts):
    if call.service != "secretsmanager":
        return None
    deleted = facts.secret.deleted_date if facts and facts.secret and facts.secret.found else ""
    if _says_deleted(call.error_message):
        evidence = [f'the message says: "{call.error_message[:140]}"']
    elif deleted:
        evidence = [f"{call.action} failed with {call.error_code}"]
    else:
        return None
    if deleted:
        evidence.append(f"DescribeSecret: DeletedDate {deleted}")
    elif facts and facts.secret and facts.secret.found:  # the record is the truth of its moment
        evidence.append("DescribeSecret now shows no deletion date: the secret was restored after this call")
    return Match(tuple(evidence) + (who(call),), "high")


def remediation(call, m):
    return (
        f"If the secret is still needed, restore it: aws secretsmanager restore-secret --secret-id {call.resource or '<secret>'} "
        "(possible until the recovery window ends), then find who scheduled the deletion (CloudTrail DeleteSecret). "
        "To reuse the name for a new secret, wait for the deletion or delete with --force-delete-without-recovery."
    )


CAUSE = Cause(
    id="secret.pending-deletion",
    root=roots.secret_state,
    title="The secret is scheduled for deletion",
    severity="high",
    topic="Beyond the troubleshooting pages: a secret scheduled for deletion",
    doc_url="https://docs.aws.amazon.com/secretsmanager/latest/userguide/manage_restore-secret.html",
    precedence=80,
    error_codes=_CODES,
    match=match,
    remediation=remediation,
    applies=applies,
    services=frozenset({"secretsmanager"}),
)
