"""The secret was created or changed moments before the call: the change was not yet visible.

Secrets Manager is eventually consistent. The record alone cannot show this; DescribeSecret
(enrichment) can: the secret exists now, and was created or changed within the window before
the failed call.
"""

from ._base import ACCESS_DENIED_CODES, SM_DOC, Cause, Match, parse_time, roots

_CODES = frozenset({"ResourceNotFoundException", "InvalidRequestException"}) | ACCESS_DENIED_CODES
DEFAULT_WINDOW_SECONDS = 600


def _change(call, facts):
    """(what, when, seconds before the failure, window) of the change the call came too soon after, or None."""
    secret = facts.secret if facts else None
    if secret is None or not secret.found or call.service != "secretsmanager" or call.error_code not in _CODES:
        return None
    failed = parse_time(call.event_time)
    if failed is None:
        return None
    window = facts.window_seconds or DEFAULT_WINDOW_SECONDS
    for label, value in (("created", secret.created_date), ("changed", secret.last_changed_date)):
        moment = parse_time(value)
        if moment is None:
            continue
        gap = (failed - moment).total_seconds()
        if -5 <= gap <= window:
            return label, value, gap, window
    return None


def applies(call, facts):
    return facts is not None and _change(call, facts) is not None


def match(call, facts):
    change = _change(call, facts) if facts is not None else None
    if change is None:
        return None
    label, value, gap, window = change
    secret = facts.secret
    evidence = (
        f"the secret exists now (DescribeSecret: {secret.arn or secret.name})",
        f"it was {label} at {value}, {max(gap, 0):.0f} s before the failed call at {call.event_time} (window {window} s)",
        f"the call failed with {call.error_code}",
    )
    return Match(evidence, "high" if gap <= 60 else "medium")


def remediation(call, m):
    return (
        "Nothing is wrong with the secret now. Changes to Secrets Manager take time to be visible from every endpoint: "
        "retry with exponential backoff (the SDKs' standard retry mode does) for calls made right after CreateSecret, "
        "PutResourcePolicy or a rotation, and do not treat the first ResourceNotFound or AccessDenied after a change as final."
    )


CAUSE = Cause(
    id="consistency.not-yet-visible",
    root=roots.secret_state,
    title="The change was not yet visible (eventual consistency)",
    severity="low",
    topic="Changes I make aren't always immediately visible",
    doc_url=SM_DOC + "#troubleshoot_general_eventual-consistency",
    precedence=40,
    error_codes=_CODES,
    match=match,
    remediation=remediation,
    applies=applies,
    services=frozenset({"secretsmanager"}),
    needs_facts=True,
)
