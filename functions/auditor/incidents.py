"""Incidents, as data: a failure (one or several records), the change that most likely started
an incident, and the incident itself as every output shows it. Pure: no I/O, no clock.

How an incident opens, grows, is announced and resolves is ``auditor.lifecycle`` (shared by
the function and the CLI); where it is kept is ``auditor.storage`` (the function's table) or
memory (the CLI).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Iterable, Mapping, Optional

from .changes import Change
from .facts import parse_time
from .finding import Finding
from .roots import Root

__all__ = ["Attribution", "Failure", "Incident", "Mark", "MAX_DISTINCT", "MAX_LISTED", "OPEN", "RESOLVED",
           "attribute", "change_entries", "distinct", "dumps", "epoch", "iso", "lead", "remediation_for"]

OPEN, RESOLVED = "open", "resolved"
#: Affected principals and resources listed by name in every message.
MAX_LISTED = 20
#: Distinct principals and resources counted exactly, each by a short hash: beyond it the count
#: says "at least" (``exact`` false). 10,000 hashes are about 90 KB of the incident's item.
MAX_DISTINCT = 10_000
#: Changes this long before the first failure are still candidates (the change store keeps them this long).
DEFAULT_LOOKBACK_DAYS = 7


def epoch(value: str) -> Optional[float]:
    """An ISO 8601 time (CloudTrail's eventTime) as epoch seconds; None when it does not parse."""
    moment = parse_time(value) if type(value) is str else None
    return moment.timestamp() if moment is not None else None


def iso(seconds: float) -> str:
    try:
        return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (OverflowError, OSError, ValueError):
        return ""


def lead(seconds: float) -> str:
    """A duration as people say it: "45 s", "15 min", "2 h 5 min", "3 days"."""
    seconds = int(max(seconds, 0))
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    if seconds < 172800:
        return f"{seconds // 3600} h {seconds % 3600 // 60} min"
    return f"{seconds // 86400} days"


def distinct(name: str) -> str:
    """A principal's or resource's short, stable hash: what the incident counts distinct values by."""
    return hashlib.blake2b(name.encode("utf-8", "surrogatepass"), digest_size=6).hexdigest()


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


@dataclass(frozen=True, slots=True, eq=False)
class Failure:
    """One failure: one record, or several that are one failure (a Secrets Manager call and the
    KMS call it made for the caller; a RotationFailed event and the rotation function's calls).

    ``when`` is the time the lifecycle uses: the record's event time, or the time it arrived
    when its event time cannot be trusted (``time_note`` says why; see lifecycle.effective_time).
    """

    finding: Finding
    root: Root
    keys: tuple[str, ...] = ()  # the inputs that carried it (SQS message ids)
    event_ids: tuple[str, ...] = ()  # every CloudTrail record joined into it
    principal: str = ""  # the caller's role/user ARN as people read it
    resource: str = ""  # the secret or key as people read it
    when: float = 0.0
    time_note: str = ""

    @property
    def event_id(self) -> str:
        return self.finding.event_id


# --------------------------------------------------------------------------------------------
# What changed
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Attribution:
    """The change that most likely started an incident, or what was searched when none was found."""

    change: Optional[dict]  # Change.to_dict() + lead_seconds, lead, tier
    searched: str  # what was searched, in words (always set)

    def to_dict(self) -> dict:
        return {"change": self.change, "searched": self.searched}

    @classmethod
    def from_dict(cls, data: Mapping) -> "Attribution":
        change = data.get("change")
        return cls(change if isinstance(change, dict) else None, str(data.get("searched") or ""))

    def sentence(self) -> str:
        c = self.change
        if c is None:
            return f"No recorded change explains it. Searched: {self.searched}."
        maybe = "" if c.get("tier", 0) == 0 else " (it may apply: the record does not show whether it reaches this root)"
        return (f"Most likely started by {c['action']} by {c['actor']} at {c['event_time']}, {c['lead']} before the "
                f"first failure (CloudTrail event {c['event_id']}){maybe}.")


def _searched(root: Root, first_failure: float, lookback_days: int) -> str:
    if not root.searches:
        if root.kind == "principal-permissions":
            return ("nothing: a session policy is passed when the role is assumed (sts:AssumeRole), not by a change "
                    "CloudTrail records as one")
        return f"nothing: {root.kind} failures are not caused by a configuration change"
    targets = []
    for key, topics, tier in root.searches:
        what = "any change" if topics is None else "/".join(sorted(topics)) + " changes"
        targets.append(f"{what} to {key}" + (" (may apply)" if tier else ""))
    text = (f"{'; '.join(dict.fromkeys(targets))}, in the {lookback_days} days before the first failure "
            f"({iso(first_failure) or 'time unknown'})")
    return f"{text}; {root.note}" if root.note else text


def _matches(root: Root, key: str, change: Mapping) -> Optional[int]:
    """The tier at which ``change`` (recorded under ``key``) can explain ``root``; None when it cannot."""
    best = None
    for search_key, topics, tier in root.searches:
        if search_key == key and (topics is None or change.get("topic") in topics):
            best = tier if best is None else min(best, tier)
    return best


def attribute(root: Root, first_failure: float, candidates: Iterable[tuple[str, Mapping]],
              lookback_days: int = DEFAULT_LOOKBACK_DAYS) -> Attribution:
    """The latest change before ``first_failure`` (epoch s) among ``candidates`` ((change key,
    change dict with ``event_time`` and ``topic``)), preferring changes to the root itself (tier
    0) over ones that may apply (tier 1). A change whose time cannot be read, or that was made
    after the first failure, is never named."""
    best: Optional[tuple[int, float, Mapping, str]] = None
    for key, change in candidates:
        tier = _matches(root, key, change)
        if tier is None:
            continue
        when = epoch(change.get("event_time", ""))
        if when is None or when > first_failure or first_failure - when > lookback_days * 86400:
            continue
        if best is None or (-tier, when) > (-best[0], best[1]):
            best = (tier, when, change, key)
    if best is None:
        return Attribution(None, _searched(root, first_failure, lookback_days))
    tier, when, change, key = best
    found = {k: change[k] for k in ("event_id", "event_time", "action", "actor", "summary", "account", "region")
             if k in change}
    found.update(lead_seconds=int(first_failure - when), lead=lead(first_failure - when), tier=tier, key=key,
                 topic=change.get("topic", ""))
    return Attribution(found, _searched(root, first_failure, lookback_days))


def later_changes(root: Root, after: float, candidates: Iterable[tuple[str, Mapping]]) -> list[dict]:
    """The changes to ``root`` (tier 0) made after ``after`` (epoch s), oldest first, each once."""
    found: dict[str, tuple[float, dict]] = {}
    for key, change in candidates:
        if _matches(root, key, change) != 0:
            continue
        when = epoch(change.get("event_time", ""))
        if when is None or when <= after:
            continue
        found.setdefault(str(change.get("event_id")), (when, brief(change)))
    return [c for _, c in sorted(found.values(), key=lambda pair: pair[0])]


def brief(change: Mapping) -> dict:
    """A change as an incident lists it."""
    return {k: change.get(k) for k in ("event_id", "event_time", "action", "actor", "summary")}


def change_entries(change: Change) -> list[tuple[str, dict]]:
    """(change key, change dict with its topic) for every key a change touches."""
    base = change.to_dict()
    return [(key, {**base, "topic": topic}) for key, topic in change.keys]


def remediation_for(root: Root, finding: Finding, attribution: Attribution) -> str:
    """One remediation for the root: the cause's concrete fix, led by the change to review first."""
    fix = finding.remediation
    change = attribution.change
    if change is None:
        return fix
    return (f"Start with {change['action']} by {change['actor']} at {change['event_time']} "
            f"(CloudTrail event {change['event_id']}): {_undo(change['action'])} Then: {fix}")


_UNDO = {
    "PutKeyPolicy": "compare the key policy before and after it (the event's requestParameters.policy holds the new one) and restore what the callers need.",
    "DisableKey": "aws kms enable-key if the key is still needed.",
    "ScheduleKeyDeletion": "aws kms cancel-key-deletion, then aws kms enable-key, while the waiting period lasts.",
    "RevokeGrant": "create the grant again for the principal that used it (aws kms create-grant).",
    "RetireGrant": "create the grant again for the principal that used it (aws kms create-grant).",
    "DeleteAlias": "create the alias again (aws kms create-alias) or point callers at the key ARN.",
    "UpdateAlias": "point the alias back at the key the data was encrypted with (aws kms update-alias).",
    "DeleteImportedKeyMaterial": "import the key material again (aws kms import-key-material).",
    "DisconnectCustomKeyStore": "reconnect the custom key store (aws kms connect-custom-key-store).",
    "PutResourcePolicy": "compare the secret's resource policy before and after it and restore what the callers need.",
    "DeleteResourcePolicy": "put back the resource policy the callers relied on.",
    "UpdateSecret": "the secret's KMS key changed: give the callers kms:Decrypt on the new key, or switch back.",
    "DeleteSecret": "aws secretsmanager restore-secret while the recovery window lasts.",
    "RotateSecret": "check the rotation function's logs for the step that failed.",
    "DetachRolePolicy": "attach the policy again if the role still needs it (aws iam attach-role-policy).",
    "DeleteRolePolicy": "put the inline policy back if the role still needs it (aws iam put-role-policy).",
    "DetachUserPolicy": "attach the policy again if the user still needs it.",
    "DeleteUserPolicy": "put the inline policy back if the user still needs it.",
    "DetachGroupPolicy": "attach the policy to the group again if its users still need it.",
    "DeleteGroupPolicy": "put the group's inline policy back if its users still need it.",
    "RemoveUserFromGroup": "add the user to the group again if it still needs the group's permissions.",
    "PutRolePermissionsBoundary": "check that the new boundary allows the actions the role uses.",
    "PutUserPermissionsBoundary": "check that the new boundary allows the actions the user uses.",
    "CreatePolicyVersion": "compare the new default version with the previous one (aws iam get-policy-version), "
                           "then set the previous one as the default again (aws iam set-default-policy-version) or fix the new one.",
    "SetDefaultPolicyVersion": "set the previous version as the default again if it was the working one.",
    "AttachPolicy": "review the organization policy attached (it applies to every account below its target).",
    "UpdatePolicy": "compare the organization policy's new content with the previous one.",
    "ModifyVpcEndpoint": "compare the endpoint policy before and after it and restore what the callers need.",
    "UpdateAccessKey": "the access key was deactivated: activate it again or give the caller a new one.",
    "DeleteAccessKey": "the access key was deleted: give the caller a new one.",
}


def _undo(action: str) -> str:
    return _UNDO.get(action, "review what it changed.")


# --------------------------------------------------------------------------------------------
# The incident
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True, eq=False)
class Mark:
    """What a channel (SNS, EventBridge) last confirmed it announced of an incident: the
    occurrence, the status, the failures counted then and the change named then, and when."""

    seq: int
    status: str  # opened | updated | resolved
    failures: int = 0
    change: str = ""  # the CloudTrail event id of the change named
    at: float = 0.0

    def to_dict(self) -> dict:
        return {"seq": self.seq, "status": self.status, "failures": self.failures, "change": self.change, "at": self.at}

    @classmethod
    def from_dict(cls, data: Mapping) -> "Mark":
        return cls(int(data["seq"]), str(data["status"]), int(data.get("failures") or 0), str(data.get("change") or ""),
                   float(data.get("at") or 0.0))


@dataclass(frozen=True, slots=True, eq=False)
class Incident:
    """One root cause: what broke, since when, who and what is affected, what changed before it
    (and what ended it), the one remediation for its root, and what each channel announced.

    Built by ``auditor.lifecycle`` (from failures) and by ``auditor.storage`` (from its item);
    changed only through ``dataclasses.replace`` in the lifecycle. Times are epoch seconds.
    ``occurrence`` 0 is a root that never opened: only failures that arrived too late to page
    were recorded (``late``)."""

    id: str
    root: Root
    status: str  # open | resolved
    occurrence: int
    cause: str
    title: str
    severity: str
    finding: Optional[Finding]  # the failure that represents it (the first of its occurrence)
    evidence: tuple[str, ...]
    remediation: str
    attribution: Attribution
    first_failure: float = 0.0
    last_failure: float = 0.0
    failures: int = 0
    principals: tuple[str, ...] = ()  # listed by name, the first MAX_LISTED
    principal_keys: frozenset[str] = frozenset()  # distinct callers (hashes): the count
    resources: tuple[str, ...] = ()
    resource_keys: frozenset[str] = frozenset()
    opened_at: float = 0.0
    resolved_at: float = 0.0
    last_arrival: float = 0.0  # when its last (fresh) failure arrived
    later_changes: tuple[dict, ...] = ()  # changes to the root after the first failure (a fix?)
    ended_by: Optional[dict] = None  # the change to the root between the last failure and the resolution
    superseded_by: str = ""  # the incident that took its failures over (one change, many callers)
    late: int = 0  # failures that arrived more than the quiet period after they happened: recorded, not paged
    late_span: tuple[float, float] = (0.0, 0.0)  # their first and last event time
    notes: tuple[str, ...] = ()  # what the auditor could not trust or do (an event time replaced, ...)
    marks: Mapping[str, Mark] = field(default_factory=dict)  # channel -> what it last confirmed

    @property
    def principal_count(self) -> int:
        return max(len(self.principal_keys), len(self.principals))

    @property
    def resource_count(self) -> int:
        return max(len(self.resource_keys), len(self.resources))

    def to_dict(self, status: Optional[str] = None) -> dict[str, Any]:
        """The ``incident`` object of the finding JSON; ``status`` is the message's (opened, updated, resolved)."""
        out: dict[str, Any] = {
            "id": self.id,
            "status": status or self.status,
            "occurrence": self.occurrence,
            "cause": self.cause,
            "title": self.title,
            "severity": self.severity,
            "root": self.root.to_dict(),
            "first_failure": iso(self.first_failure) if self.failures else "",
            "last_failure": iso(self.last_failure) if self.failures else "",
            "failures": self.failures,
            "principals": {"count": self.principal_count, "exact": len(self.principal_keys) < MAX_DISTINCT,
                           "listed": list(self.principals[:MAX_LISTED])},
            "resources": {"count": self.resource_count, "exact": len(self.resource_keys) < MAX_DISTINCT,
                          "listed": list(self.resources[:MAX_LISTED])},
            "change": self.attribution.change,
            "searched": self.attribution.searched,
            "evidence": list(self.evidence),
            "remediation": self.remediation,
        }
        if self.opened_at:
            out["opened_at"] = iso(self.opened_at)
        if self.status == RESOLVED and self.resolved_at:
            out["resolved_at"] = iso(self.resolved_at)
            if self.opened_at:
                out["open_seconds"] = int(self.resolved_at - self.opened_at)
            out["ended_by"] = self.ended_by
        if self.later_changes:
            out["later_changes"] = list(self.later_changes[-5:])
        if self.superseded_by:
            out["superseded_by"] = self.superseded_by
        if self.late:
            out["late"] = {"count": self.late, "first": iso(self.late_span[0]), "last": iso(self.late_span[1])}
        if self.notes:
            out["notes"] = list(self.notes)
        return out
