"""An error no cause in the catalog explains: still a finding, so the catalog can grow."""

from ._base import Cause, Match, roots, who


def applies(call, facts):
    return True


def match(call, facts):
    text = f': "{call.error_message[:160]}"' if call.error_message else ""
    return Match((f"no cause in the catalog explains {call.error_code} on {call.service}:{call.action}{text}", who(call)), "low")


def remediation(call, m):
    return (
        f"Look up {call.error_code} in the {call.service} API reference for {call.action}. If it recurs, it deserves a "
        "cause of its own: add a module under auditor/causes/ with this record as its fixture."
    )


CAUSE = Cause(
    id="unknown",
    root=roots.unknown,
    title="Unclassified failure",
    severity="low",
    topic="No documented cause matched",
    doc_url="https://docs.aws.amazon.com/secretsmanager/latest/userguide/troubleshoot.html",
    precedence=999,
    error_codes=None,
    match=match,
    remediation=remediation,
    fallback=True,
    applies=applies,
)
