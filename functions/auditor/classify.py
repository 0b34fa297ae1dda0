"""FailedCall (+ Facts) -> Finding. Pure: no I/O, no clock, no globals that change.

Causes are tried most specific first (``Cause.precedence``); the first that matches wins.
Causes further down that also match are named in the evidence, so the engineer sees why the
winner was chosen over them. An index by error code keeps each call to a handful of tries.
"""

from __future__ import annotations

from typing import Optional

from .causes import BY_ID, CATALOG, Cause
from .facts import Facts
from .finding import Finding, fingerprint
from .records import FailedCall
from .roots import Root, rotation, unknown

__all__ = ["classify", "classify_unknown", "candidates", "root_of"]

_WILDCARDS = tuple(c for c in CATALOG if c.error_codes is None)
_INDEX: dict[tuple[str, Optional[str], Optional[str], bool], tuple[Cause, ...]] = {}
#: Per key of _INDEX: each candidate with its test and the candidates after it that can be named
#: as also fitting (fallbacks never are), so classify does no filtering per call.
_PLANS: dict[tuple[str, Optional[str], Optional[str], bool], tuple] = {}


def candidates(error_code: str, policy_type: Optional[str] = None, service: Optional[str] = None,
               facts: bool = True) -> tuple[Cause, ...]:
    """Causes that could explain ``error_code`` (and the policy type an access-denied message
    names, ``""`` for none, ``None`` when the call is not an access denial) for a call to ``service``
    (``None``: any), with facts at hand or not (without, the causes that need them cannot fit), most
    specific first; memoised."""
    key = (error_code, policy_type, service, facts)
    found = _INDEX.get(key)
    if found is None:
        found = tuple(
            c for c in CATALOG
            if (c.error_codes is None or error_code in c.error_codes)
            and (c.policy_types is None or policy_type is None or policy_type in c.policy_types)
            and (service is None or c.services is None or service in c.services)
            and (facts or not c.needs_facts)
        )
        if len(_INDEX) < 4096:  # bounded: error codes come from untrusted input
            _INDEX[key] = found
    return found


def _plan(key: tuple[str, Optional[str], Optional[str], bool]) -> tuple:
    """((cause, its applies, the non-fallback causes after it), ...) for the candidates of ``key``; memoised."""
    tried = candidates(*key)
    plan = tuple((cause, cause.applies, tuple(c for c in tried[at + 1:] if not c.fallback))
                 for at, cause in enumerate(tried))
    if len(_PLANS) < 4096:  # bounded as _INDEX is
        _PLANS[key] = plan
    return plan


def classify_unknown(call: FailedCall, why: str) -> Finding:
    """The catch-all finding for a call the classifier could not handle (a bug): still reported."""
    cause = BY_ID["unknown"]
    found = cause.match(call, None)
    found.evidence = (why,) + found.evidence
    return _finding(call, cause, found, found.evidence)


def classify(call: FailedCall, facts: Optional[Facts] = None) -> Finding:
    """The finding of ``call``: the first cause (most specific first) that applies, with its
    evidence, confidence, policy statement and remediation. Raises whatever a cause raises (a bug
    in its test or its text): callers classify each record in a guard of its own."""
    denial = call.denial
    key = (call.error_code, denial.policy_type if denial is not None else None, call.service, facts is not None)
    plan = _PLANS.get(key) or _plan(key)
    # Each candidate is asked the cheap question (applies); only the winner says why (match).
    for cause, applies, rest in plan:
        if applies(call, facts):
            break
    else:  # pragma: no cover - "unknown" always applies
        raise AssertionError("the catalog has no catch-all cause")
    found = cause.match(call, facts)
    evidence = found.evidence
    if rest:  # the evidence names the first three more general causes that also fit
        runners_up = []
        for other in rest:
            if other.applies(call, facts):
                runners_up.append(other.id)
                if len(runners_up) == 3:
                    break
        if runners_up:
            evidence += (f"{cause.id} is more specific than {', '.join(runners_up)}, which also fit",)
    if facts is not None and facts.notes:
        evidence += facts.notes
    return _finding(call, cause, found, evidence)


def _finding(call: FailedCall, cause: Cause, found, evidence: tuple[str, ...]) -> Finding:
    """The finding of ``call`` by ``cause``, from the cause's ``found`` (its match) and ``evidence``."""
    return Finding(  # positional: this runs once per failure, and keyword passing costs
        call.event_id,
        call.event_time,
        call.account,
        call.region,
        call.service,
        call.action,
        call.error_code,
        call.error_message,
        call.principal,
        call.source_ip,
        call.user_agent,
        call.resource,
        cause.id,
        cause.title,
        cause.severity,
        found.confidence,
        evidence,
        cause.remediation(call, found),
        found.policy,
        cause.doc_url,
        cause.topic,
        fingerprint(call.principal.identity_arn, call.service, call.action, call.resource, cause.id),
    )


def root_of(cause: str, call: FailedCall, facts: Optional[Facts] = None) -> Root:
    """The root of a classified failure: the rule its cause names (``Cause.root``, in the
    cause's module). A step of a rotation (the call names AWSPENDING) belongs to the rotation,
    whatever its own cause: fixing the rotation is what ends it."""
    if call.rotation_step and call.service == "secretsmanager":
        return rotation(call, facts)
    found = BY_ID.get(cause)
    return (found.root if found is not None else unknown)(call, facts)
