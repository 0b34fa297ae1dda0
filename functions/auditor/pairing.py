"""One failure, several records.

* A Secrets Manager call and the KMS call it made on the caller's behalf (``invokedBy``
  secretsmanager.amazonaws.com, the ``SecretARN`` encryption context, the same principal,
  seconds apart, in either order) are one failure: the KMS record gives the key and which
  policy refused, the Secrets Manager record the call the caller made.
* ``RotationFailed`` (and ``TestRotationFailed`` / ``RotationAbandoned``) and the rotation
  function's own failing calls on the same secret (they name AWSPENDING) are one failure.

Each such record is a *half* with a join key (the caller and the secret; or the secret for a
rotation). Halves in one batch are paired here. A half left over is resolved across batches
and invocations by ``auditor.state``: it is absorbed when its partner was already counted,
joins a partner that was waiting, or, when its own root is not known (Secrets Manager's
"Access to KMS is not allowed" names no key and no policy), waits for its partner, at most
until the scheduled run processes it alone. Pure: no I/O.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Optional

from .changes import principal_key
from .contract import FAILURE_SERVICE_EVENTS
from .incidents import Failure, epoch
from .records import FailedCall
from .roots import Root, secret_of

__all__ = ["Half", "half_of", "pair", "join", "PAIR_WINDOW", "ROTATION_WINDOW"]

SM = "secretsmanager.amazonaws.com"
#: Event-time distance within which a Secrets Manager call and a KMS call for it are one failure.
PAIR_WINDOW = 300
#: ... and a rotation function's failing call and the rotation failure it caused.
ROTATION_WINDOW = 900
_KEY_KINDS = frozenset({"key-policy", "key-state", "key-spec"})


@dataclass(slots=True)
class Half:
    """One record of a failure that CloudTrail reports twice (a Secrets Manager call and the KMS
    call made for it; a rotation's failing call and its RotationFailed event), until its partner joins it."""

    failure: Failure
    join: str  # the join key
    side: str  # sm | kms | rotation-event | rotation-call
    when: float  # event time, epoch seconds (0 when unknown)

    @property
    def window(self) -> int:
        return ROTATION_WINDOW if self.side.startswith("rotation") else PAIR_WINDOW

    def partner_sides(self) -> tuple[str, ...]:
        return {"sm": ("kms",), "kms": ("sm",), "rotation-event": ("rotation-call",),
                "rotation-call": ("rotation-event",)}[self.side]


def half_of(call: FailedCall, failure: Failure) -> Optional[Half]:
    """The half a failure is, or None for a failure that is whole by itself."""
    root = failure.root
    when = epoch(call.event_time) or 0.0
    if root.kind == "rotation":
        secret = root.id
        side = "rotation-event" if call.action in FAILURE_SERVICE_EVENTS else "rotation-call"
        return Half(failure, f"rotation|{secret}", side, when)
    identity = call.principal.identity_arn
    if not identity:
        return None
    if call.service == "kms" and (call.principal.invoked_by == SM or call.secret_arn):
        if not call.secret_arn:
            return None  # made for Secrets Manager, but for which secret the record does not say
        return Half(failure, f"sm-kms|{principal_key(identity)}|{secret_of(call)}", "kms", when)
    if call.service == "secretsmanager" and root.kind in _KEY_KINDS and call.resource:
        return Half(failure, f"sm-kms|{principal_key(identity)}|{secret_of(call)}", "sm", when)
    return None


def join(first: Failure, second: Failure, first_side: str) -> Failure:
    """The one failure two halves are: root and cause from the record that knows them (the KMS
    record; the rotation function's call), the call and the secret from the other."""
    if first_side in ("kms", "rotation-event"):
        first, second = second, first  # first: the Secrets Manager call / the rotation function's call
        first_side = "sm" if first_side == "kms" else "rotation-call"
    call_finding, other = first.finding, second.finding
    if first_side == "sm":
        knows = other  # the KMS record: which policy refused, or the key's state
        root = second.root
        evidence = ((call_finding.evidence[0],) if call_finding.evidence else ()) + tuple(knows.evidence) + (
            f"one failure: {call_finding.service}:{call_finding.action} ({call_finding.event_id}) and the "
            f"kms:{knows.action} Secrets Manager made for the caller ({knows.event_id})",)
        finding = dataclasses.replace(
            call_finding, cause=knows.cause, title=knows.title, severity=knows.severity, confidence=knows.confidence,
            evidence=evidence, remediation=knows.remediation, policy=knows.policy, doc_url=knows.doc_url,
            topic=knows.topic, joined=call_finding.joined + (_brief(knows),) + knows.joined)
    else:
        root = first.root
        evidence = tuple(call_finding.evidence) + (
            f"Secrets Manager reported {other.action} for this secret at {other.event_time}"
            + (f": {other.error_message}" if other.error_message else ""),
            f"one failure: the rotation function's {call_finding.action} ({call_finding.event_id}) and "
            f"{other.action} ({other.event_id})",)
        finding = dataclasses.replace(call_finding, evidence=evidence,
                                      joined=call_finding.joined + (_brief(other),) + other.joined)
    return Failure(finding, root, first.keys + second.keys, first.event_ids + second.event_ids,
                   first.principal or second.principal, first.resource or second.resource, first.when or second.when,
                   first.time_note or second.time_note)


def _brief(finding) -> dict:
    return {"event_id": finding.event_id, "service": finding.service, "action": finding.action,
            "error_code": finding.error_code, "resource": finding.resource}


def pair(halves: list[Half]) -> tuple[list[Failure], list[Half]]:
    """Pair the halves of one batch: (the joined failures, the halves left over), each partner
    within the side's window of event time, nearest first."""
    by_join: dict[str, list[Half]] = {}
    for half in halves:
        by_join.setdefault(half.join, []).append(half)
    joined: list[Failure] = []
    left: list[Half] = []
    for group in by_join.values():
        group.sort(key=lambda h: (h.when, h.failure.event_id))
        used: set[int] = set()
        for i, half in enumerate(group):
            if i in used or half.side not in ("sm", "rotation-event"):
                continue
            # the nearest unused partner within the window
            best = None
            for j, other in enumerate(group):
                if j in used or j == i or other.side not in half.partner_sides():
                    continue
                gap = abs(other.when - half.when)
                if gap <= half.window and (best is None or gap < best[0]):
                    best = (gap, j)
            if best is None:
                continue
            used.update((i, best[1]))
            merged = join(half.failure, group[best[1]].failure, half.side)
            if half.side == "rotation-event":
                # more calls of the same rotation attempt are the same failure too
                for j, other in enumerate(group):
                    if j not in used and other.side == "rotation-call" and abs(other.when - half.when) <= half.window:
                        used.add(j)
                        merged = join(other.failure, merged, "rotation-call")
            joined.append(merged)
        left.extend(h for k, h in enumerate(group) if k not in used)
    return joined, left


def resolved_root(half: Half, partner_root: Optional[Root]) -> Root:
    """The root a half counts under once its partner is known."""
    if half.side == "sm" and partner_root is not None:
        return partner_root
    return half.failure.root
