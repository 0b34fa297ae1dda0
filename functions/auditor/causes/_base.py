"""What a cause is, and the small helpers the cause units share.

This is the one module a cause imports from (besides the standard library): the parser's and
the facts' names a cause needs are re-exported here, so a cause never imports another cause's
module, the parser or the facts directly (tests/unit/test_causes.py checks it).

A cause is declarative: id, title, severity, the troubleshooting topic and its URL, a
precedence (lower wins when two causes match the same call: the more specific cause gets the
lower number), the error codes it can explain (the classifier's index; ``None`` for any
code), a pure ``match(call, facts) -> Match | None`` and a ``remediation(call, match) -> str``.

``applies(call, facts) -> bool`` is the cheap half of ``match``: whether it would return a
Match, without building the evidence. The classifier asks every candidate ``applies`` and
only the winner ``match``; a cause without one gets ``match(...) is not None``. The two must
agree on every call (tests/unit/test_causes.py checks them against each other).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Callable, Optional

from ..facts import Facts, KeyFacts, SecretFacts, parse_time
from ..records import ACCESS_DENIED_CODES, FAILURE_SERVICE_EVENTS, FailedCall

__all__ = [
    "ACCESS_DENIED_CODES",
    "FAILURE_SERVICE_EVENTS",
    "FailedCall",
    "Facts",
    "KeyFacts",
    "SecretFacts",
    "parse_time",
    "by_policy_type",
    "denied_by",
    "key_state_match",
    "render",
    "said",
    "Cause",
    "Match",
    "SM_DOC",
    "IAM_DENIED_DOC",
    "denied_action",
    "denied_resource_arn",
    "partition_of",
    "policy_statement",
    "secret_arn_pattern",
    "split_secret_arn",
    "key_arn",
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


@dataclass(frozen=True, slots=True)
class Cause:
    id: str
    title: str
    severity: str  # critical | high | medium | low | info
    topic: str
    doc_url: str
    precedence: int
    error_codes: Optional[frozenset[str]]
    match: Callable[[FailedCall, Optional[Facts]], Optional[Match]]
    remediation: Callable[[FailedCall, Match], str]
    #: A catch-all for its error codes (it matches whenever they do): never named as "also fits".
    fallback: bool = False
    #: For causes that read IAM's access-denied message: the policy types it can name (index key).
    policy_types: Optional[frozenset[str]] = None
    #: Whether ``match`` would return a Match, decided cheaply (see the module's docstring).
    applies: Optional[Callable[[FailedCall, Optional[Facts]], bool]] = None

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
    text = f"caller: {p.type} {p.arn or '(no ARN in the record)'}"
    if p.temporary:
        text += f" using temporary credentials ({p.temporary_reason})"
    return text


_SECRET_ARN = re.compile(r"^arn:[\w-]+:secretsmanager:[^:]*:[^:]*:secret:(?P<name>.+)$")


def split_secret_arn(resource: str):
    """(the secret name as given in an ARN, its -XXXXXX tail) when ``resource`` is a secret ARN
    whose name ends in a hyphen and six characters (Secrets Manager's random suffix, or part of
    the name: a partial ARN), else None."""
    if not resource.startswith("arn:"):  # what _SECRET_ARN needs before it can match
        return None
    m = _SECRET_ARN.match(resource)
    if not m:
        return None
    name = m.group("name")
    # "-" and six ASCII letters or digits at the end of the name (a regex search would scan it all;
    # the name holds no newline: ".+" stops there).
    tail = name[-6:]
    if len(name) >= 7 and name[-7] == "-" and tail.isascii() and tail.isalnum():
        return name, tail
    return None


# ---------------------------------------------------------------------------------------------
# Helpers for remediation texts: name the action and the resource the record shows, and print
# the statement an engineer can paste.
# ---------------------------------------------------------------------------------------------
_ARN_PARTITION = re.compile(r"^arn:(aws[a-z-]*):")
_KEY_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$|^mrk-[0-9a-f]{32}$")


def partition_of(call: FailedCall) -> str:
    for arn in (call.principal.arn, call.resource, call.secret_arn):
        if arn.startswith("arn:aws"):  # what _ARN_PARTITION needs before it can match
            m = _ARN_PARTITION.match(arn)
            if m:
                return m.group(1)
    return "aws"


def denied_action(call: FailedCall) -> str:
    """The IAM action that was denied: from the message when it names one, else from the call."""
    if call.denial and call.denial.action:
        return call.denial.action
    return f"{call.service}:{call.action}"


def secret_arn_pattern(call: FailedCall, secret: str) -> str:
    """An ARN pattern for a secret given by name or ARN (names get AWS's ``-??????`` suffix)."""
    if secret.startswith("arn:"):
        return secret
    return f"arn:{partition_of(call)}:secretsmanager:{call.region or '*'}:{call.account or '*'}:secret:{secret}-??????"


def key_arn(call: FailedCall, key: str) -> str:
    """A key ARN for a key given by id or ARN; aliases cannot be used in a key's Resource."""
    if key.startswith("arn:") and ":alias/" not in key:
        return key
    if _KEY_ID.match(key):
        return f"arn:{partition_of(call)}:kms:{call.region or '*'}:{call.account or '*'}:key/{key}"
    return f"arn:{partition_of(call)}:kms:{call.region or '*'}:{call.account or '*'}:key/<key id behind {key or 'the alias'}>"


#: Actions IAM authorizes only on "*" (no resource-level permissions).
NO_RESOURCE_ACTIONS = frozenset({
    "secretsmanager:ListSecrets", "secretsmanager:GetRandomPassword", "secretsmanager:BatchGetSecretValue",
    "kms:ListKeys", "kms:ListAliases", "kms:CreateKey", "kms:GenerateRandom", "kms:CreateCustomKeyStore",
    "kms:DescribeCustomKeyStores", "kms:ConnectCustomKeyStore", "kms:ListRetirableGrants",
})


def denied_resource_arn(call: FailedCall) -> str:
    if denied_action(call) in NO_RESOURCE_ACTIONS or (call.denial and call.denial.resource == "*"):
        return "*"
    if call.denial and call.denial.resource.startswith("arn:"):
        return call.denial.resource
    if call.service == "kms":
        return key_arn(call, call.resource)
    return secret_arn_pattern(call, call.resource or "<secret name>")


def policy_statement(action: str, resource: str, condition: Optional[dict] = None) -> dict:
    stmt: dict = {"Effect": "Allow", "Action": action, "Resource": resource}
    if condition:
        stmt["Condition"] = condition
    return stmt


_ENCODER = json.JSONEncoder(separators=(", ", ": "))  # built once: json.dumps with options builds one per call
_quote = json.encoder.encode_basestring_ascii  # what _ENCODER quotes every string with (ensure_ascii)


def _json(value) -> str:
    """``_ENCODER.encode(value)``, written out for what statements hold (strings, and dicts of
    them, nested): the encoder's own path costs more than the statement is long."""
    if type(value) is str:
        return _quote(value)
    if type(value) is dict:
        parts = []
        for key, item in value.items():
            if type(key) is not str:
                return _ENCODER.encode(value)
            parts.append(_quote(key) + ": " + _json(item))
        return "{" + ", ".join(parts) + "}"
    return _ENCODER.encode(value)


def render(stmt: Optional[dict]) -> str:
    """A policy statement as the remediation prints it (JSON, ``", "`` and ``": "`` separators)."""
    return _json(stmt) if stmt else ""


# ---------------------------------------------------------------------------------------------
# Access-denied causes that IAM's message names by policy type
# ---------------------------------------------------------------------------------------------
def said(call: FailedCall) -> str:
    """The message's own verdict, in its words."""
    d = call.denial
    if d is None or not d.policy_type:
        return "the access-denied message names no policy type"
    kind = d.policy_type if d.policy_type == "permissions boundary" else f"{d.policy_type} policy"
    if d.explicit:
        text = f'the message says the call was denied "with an explicit deny in a {kind}"'
    else:
        text = f'the message says "no {kind} allows the {denied_action(call)} action"'
    return text + (f"; the denying policy is {d.policy_arn}" if d.policy_arn else "")


def denied_by(types: frozenset[str], explicit: Optional[bool] = None):
    """An ``applies`` for denials whose message names one of ``types`` (and explicitness)."""
    if explicit is None:
        def applies(call: FailedCall, facts: Optional[Facts]) -> bool:
            d = call.denial
            return d is not None and d.policy_type in types
    else:
        def applies(call: FailedCall, facts: Optional[Facts]) -> bool:
            d = call.denial
            return d is not None and d.policy_type in types and d.explicit is explicit
    return applies


def by_policy_type(types: frozenset[str], explicit: Optional[bool] = None, fix: bool = False):
    """A ``match`` for denials whose message names one of ``types`` (and explicitness): its
    ``applies`` is ``denied_by(types, explicit)``."""
    applies = denied_by(types, explicit)

    def match(call: FailedCall, facts: Optional[Facts]) -> Optional[Match]:
        if not applies(call, facts):
            return None
        policy = policy_statement(denied_action(call), denied_resource_arn(call)) if fix else None
        return Match((said(call), f"denied action: {denied_action(call)}", who(call)), "high", policy)

    return match


# ---------------------------------------------------------------------------------------------
# KMS key-state causes (from the error, or from DescribeKey)
# ---------------------------------------------------------------------------------------------
def key_state_match(call, facts, text: re.Pattern, states: frozenset[str], codes: frozenset[str], hints: tuple[str, ...] = ()):
    """``hints``: substrings one of which the message must hold before ``text`` (a slower regex) is tried."""
    key = facts.key if facts else None
    state = key.key_state if key is not None and key.found else ""
    if state and state not in states:
        return None  # DescribeKey says the key is in another state
    message = call.error_message
    if (not hints or any(h in message for h in hints)) and text.search(message) and (call.error_code in codes or call.service == "secretsmanager"):
        evidence = [f'the message says: "{call.error_message[:140]}"']
    elif state:
        evidence = [f"{call.action} failed with {call.error_code}"]
    else:
        return None
    if state:
        evidence.append(f"DescribeKey: KeyState {state}")
    return Match(tuple(evidence) + (who(call),), "high")
