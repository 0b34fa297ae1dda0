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

``root`` is the rule that names the root cause of a failure it explains (one of ``roots``'
rules): failures with the same root are one incident (auditor.incidents).
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from typing import Callable, Optional

from .. import roots
from ..facts import Facts, KeyFacts, SecretFacts, parse_time
from ..records import ACCESS_DENIED_CODES, FAILURE_SERVICE_EVENTS, FailedCall
from ..roots import RootRule

__all__ = [
    "ACCESS_DENIED_CODES",
    "FAILURE_SERVICE_EVENTS",
    "FailedCall",
    "Facts",
    "KeyFacts",
    "SecretFacts",
    "parse_time",
    "roots",
    "by_policy_type",
    "denied_by",
    "KEY_CONDITIONS",
    "KEY_STATE_CODES",
    "KEY_STATE_DOC",
    "KEY_STORE_CONDITIONS",
    "described_key_state",
    "key_condition",
    "key_evidence",
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
    #: For causes that read IAM's access-denied message: the policy types it can name (index key).
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
        text = f"caller: {p.type} {p.arn}"
    else:  # e.g. the AWSAccount caller of a network activity event: its account is all the record names
        text = f"caller: {p.type} (no ARN in the record{f'; account {p.account}' if p.account else ''})"
    if p.temporary:
        text += f" using temporary credentials ({p.temporary_reason})"
    return text


_SECRET_ARN = re.compile(r"^arn:[\w-]+:secretsmanager:[^:]*:[^:]*:secret:(?P<name>.+)$")


# Memoised: a pure function of the ARN, and a stream repeats its secrets. Bounded: ARNs come from the records.
@functools.lru_cache(maxsize=4096)
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


def denied_resource_arn(call: FailedCall, action: str = "") -> str:
    """The resource to allow ``action`` (the denied action; computed when not given) on."""
    if (action or denied_action(call)) in NO_RESOURCE_ACTIONS or (call.denial and call.denial.resource == "*"):
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
# The C encoder behind _ENCODER, built once too: _ENCODER.encode builds a new one on every call,
# which costs more than a statement is long (json.encoder.c_make_encoder is None without the _json
# accelerator; then _ENCODER.encode it is). No circular-reference check: statements are built here.
_make_encoder = json.encoder.c_make_encoder
_C_ENCODER = _make_encoder and _make_encoder(None, _ENCODER.default, json.encoder.encode_basestring_ascii, None,
                                             _ENCODER.key_separator, _ENCODER.item_separator, False, False, True)


def render(stmt: Optional[dict]) -> str:
    """A policy statement as the remediation prints it (JSON, ``", "`` and ``": "`` separators)."""
    if not stmt:
        return ""
    if _C_ENCODER is None:
        return _ENCODER.encode(stmt)
    return "".join(_C_ENCODER(stmt, 0))


# ---------------------------------------------------------------------------------------------
# Access-denied causes that IAM's message names by policy type
# ---------------------------------------------------------------------------------------------
def said(call: FailedCall, action: str = "") -> str:
    """The message's own verdict, in its words (``action``: the denied action, when known)."""
    d = call.denial
    if call.error_code == "VpceAccessDenied":
        # A CloudTrail network activity event: the endpoint's owner sees it, in these fixed words,
        # whether the endpoint policy denies explicitly or allows nothing (it does not say which).
        return (f'CloudTrail network activity event for {call.vpc_endpoint_id or "a VPC endpoint"}: "{call.error_message[:120]}" '
                "(errorCode VpceAccessDenied)")
    if d is None or not d.policy_type:
        return "the access-denied message names no policy type"
    kind = d.policy_type if d.policy_type == "permissions boundary" else f"{d.policy_type} policy"
    if d.explicit:
        text = f'the message says the call was denied "with an explicit deny in a {kind}"'
    else:
        text = f'the message says "no {kind} allows the {action or denied_action(call)} action"'
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
        action = denied_action(call)
        policy = policy_statement(action, denied_resource_arn(call, action)) if fix else None
        return Match((said(call, action), f"denied action: {action}", who(call)), "high", policy)

    return match


# ---------------------------------------------------------------------------------------------
# KMS key-state causes: what the message says of the key, whatever the exception's name
# ---------------------------------------------------------------------------------------------
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


def key_evidence(call: FailedCall, named: str, described: str) -> tuple[str, ...]:
    """Evidence of a key-state cause: the message (and the state it names), DescribeKey, the caller."""
    if named:
        evidence = [f'the message says: "{call.error_message[:160]}"']
        if call.error_code == "DisabledException" and named != "Disabled":
            evidence.append(f"it names the key state {named}: KMS raises DisabledException for a key pending deletion too "
                            "(key-state table), so the message decides, not the exception's name")
    else:
        evidence = [f"{call.action} failed with {call.error_code}"]
    if described:
        evidence.append(f"DescribeKey: KeyState {described}")
    evidence.append(who(call))
    return tuple(evidence)
