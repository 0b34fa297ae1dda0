"""What a cause is: the ``Cause`` and its ``Match``, the documentation links the causes share,
and how the evidence names the caller.

A cause module imports from this package's shared modules only (``_base``, ``_arns``,
``_statements``, ``_denied``, ``_key_state``): the names it needs from outside the catalog
(the parser's, the facts', the root rules) are re-exported here, so a cause never imports
another cause's module, the parser or the facts directly (tests/unit/test_causes.py checks it).

A cause is declarative: id, title, severity, the troubleshooting topic and its URL, a
precedence (lower wins when two causes match the same call: the more specific cause gets the
lower number), the error codes it can explain (the classifier's index; ``None`` for any
code), a pure ``match(call, facts) -> Match | None`` and a ``remediation(call, match) -> str``.

``applies(call, facts) -> bool`` is the cheap half of ``match``: whether it would return a
Match, without building the evidence. The classifier asks every candidate ``applies`` and
only the winner ``match``; a cause without one gets ``match(...) is not None``. The two must
agree on every call (tests/unit/test_causes.py checks them against each other).

``root`` is the rule that names the root cause of a failure it explains (one of ``roots``'
rules): failures with the same root are one incident (auditor.incidents).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

from .. import roots
from ..facts import Facts, KeyFacts, SecretFacts, parse_time
from ..records import ACCESS_DENIED_CODES, FAILURE_SERVICE_EVENTS, TEMPORARY_IDENTITY_TYPES, FailedCall
from ..roots import RootRule

__all__ = [
    "ACCESS_DENIED_CODES",
    "FAILURE_SERVICE_EVENTS",
    "IAM_DENIED_DOC",
    "SM_DOC",
    "Cause",
    "FailedCall",
    "Facts",
    "KeyFacts",
    "Match",
    "SecretFacts",
    "parse_time",
    "roots",
    "who",
]

SM_DOC = "https://docs.aws.amazon.com/secretsmanager/latest/userguide/troubleshoot.html"
IAM_DENIED_DOC = "https://docs.aws.amazon.com/IAM/latest/UserGuide/troubleshoot_access-denied.html"

Confidence = str  # "high" | "medium" | "low"


@dataclass(slots=True)
class Match:
    """Why a cause fits: short facts, how sure we are, and an optional policy statement."""

    evidence: tuple[str, ...]
    confidence: Confidence = "high"
    policy: Optional[dict] = None  # the least-privilege statement that would fix it, if any
    #: For the key-state causes: the key state or key-store problem the remediation is written for.
    state: str = ""


@dataclass(frozen=True, slots=True)
class Cause:
    """One documented cause: what it is, the cheap test for whether it applies, its evidence, its
    remediation, and the root rule its incidents group by."""

    id: str
    title: str
    severity: str  # critical | high | medium | low | info
    topic: str
    doc_url: str
    precedence: int
    error_codes: Optional[frozenset[str]]
    match: Callable[[FailedCall, Optional[Facts]], Optional[Match]]
    remediation: Callable[[FailedCall, Match], str]
    #: The rule naming the root cause (a rule of ``roots``): failures with the same root are one incident.
    root: RootRule
    #: A catch-all for its error codes (it matches whenever they do): never named as "also fits".
    fallback: bool = False
    #: The access denials it can explain, by the policy type their message names ("" for none):
    #: index key; ``None``: any. Calls that are not access denials are not filtered by it.
    policy_types: Optional[frozenset[str]] = None
    #: Whether ``match`` would return a Match, decided cheaply (see the module's docstring).
    applies: Optional[Callable[[FailedCall, Optional[Facts]], bool]] = None
    #: The services whose calls it can explain (index key; ``None``: any).
    services: Optional[frozenset[str]] = None
    #: It never fits without facts from enrichment (index key).
    needs_facts: bool = False

    def __post_init__(self) -> None:
        if self.applies is None:
            match = self.match
            object.__setattr__(self, "applies", lambda call, facts: match(call, facts) is not None)


# ---------------------------------------------------------------------------------------------
# Helpers for evidence: who made the call, and how a secret was named
# ---------------------------------------------------------------------------------------------
def who(call: FailedCall) -> str:
    """The caller, as the evidence names it: identity type, ARN, and why its credentials count as temporary."""
    p = call.principal
    if p.arn:
        if not p.temporary:
            return f"caller: {p.type} {p.arn}"
        kind = p.type
        if kind in TEMPORARY_IDENTITY_TYPES:  # Principal.temporary_reason's first case, inline (the common one)
            return f"caller: {kind} {p.arn} using temporary credentials (userIdentity.type is {kind})"
        return f"caller: {kind} {p.arn} using temporary credentials ({p.temporary_reason})"
    # e.g. the AWSAccount caller of a network activity event: its account is all the record names
    text = f"caller: {p.type} (no ARN in the record{f'; account {p.account}' if p.account else ''})"
    if p.temporary:
        text += f" using temporary credentials ({p.temporary_reason})"
    return text
