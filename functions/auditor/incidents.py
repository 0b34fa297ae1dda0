"""Incidents: failures grouped by root cause, the change that most likely started them, and
their lifecycle (opened -> updated at most once a window -> resolved after a quiet period).

Pure: the Lambda keeps incidents in DynamoDB (``auditor.state``), the CLI in memory
(``Book`` below); both use these decisions, so a day of history triaged with
``auditor classify --incidents`` groups and attributes exactly as the deployed function would.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Iterable, Optional

from .changes import Change
from .facts import parse_time
from .finding import Finding
from .roots import Root

__all__ = ["Failure", "Attribution", "attribute", "Incident", "Book", "iso", "epoch"]

#: Affected principals and resources kept by name (the counts go on beyond).
MAX_LISTED = 20
#: Changes this long before the first failure are still candidates (the change store keeps them this long).
DEFAULT_LOOKBACK_DAYS = 7


@dataclass(slots=True)
class Failure:
    """One failure: one record, or several that are one failure (a Secrets Manager call and the
    KMS call it made for the caller; a RotationFailed event and the rotation function's calls)."""

    finding: Finding
    root: Root
    keys: list[str] = field(default_factory=list)  # inputs that carried it (SQS message ids): retried together
    event_ids: list[str] = field(default_factory=list)  # every CloudTrail record joined into it
    principal: str = ""  # the caller's role/user ARN as people read it
    resource: str = ""  # the secret or key as people read it

    @property
    def event_id(self) -> str:
        return self.finding.event_id


def epoch(value: str) -> Optional[float]:
    moment = parse_time(value)
    return moment.timestamp() if moment is not None else None


def iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _lead(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    if seconds < 172800:
        return f"{seconds // 3600} h {seconds % 3600 // 60} min"
    return f"{seconds // 86400} days"


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

    def sentence(self) -> str:
        c = self.change
        if c is None:
            return f"No recorded change explains it. Searched: {self.searched}."
        maybe = "" if c.get("tier", 0) == 0 else " (it may apply: the record does not show whether it reaches this root)"
        return (f"Most likely started by {c['action']} by {c['actor']} at {c['event_time']}, {c['lead']} before the "
                f"first failure (CloudTrail event {c['event_id']}){maybe}.")


def _searched(root: Root, first_failure: str, lookback_days: int) -> str:
    if not root.searches:
        return f"nothing: {root.kind} failures are not caused by a configuration change"
    targets = []
    for key, topics, _ in root.searches:
        what = "any change" if topics is None else "/".join(sorted(topics)) + " changes"
        targets.append(f"{what} to {key}")
    return (f"{'; '.join(dict.fromkeys(targets))}, in the {lookback_days} days before the first failure "
            f"({first_failure or 'time unknown'})")


def attribute(root: Root, first_failure: str, candidates: Iterable[tuple[str, dict]],
              lookback_days: int = DEFAULT_LOOKBACK_DAYS) -> Attribution:
    """The latest change before ``first_failure`` among ``candidates`` ((change key, change dict)
    with ``event_time``, ``topic``), preferring changes to the root itself (tier 0) over ones that
    may apply (tier 1)."""
    first = epoch(first_failure)
    wanted: dict[str, list[tuple[Optional[frozenset], int]]] = {}
    for key, topics, tier in root.searches:
        wanted.setdefault(key, []).append((topics, tier))
    best: Optional[tuple[int, float, dict]] = None
    for key, change in candidates:
        for topics, tier in wanted.get(key, ()):
            if topics is not None and change.get("topic") not in topics:
                continue
            when = epoch(change.get("event_time", ""))
            if when is None or (first is not None and (when > first or first - when > lookback_days * 86400)):
                continue
            rank = (-tier, when)
            if best is None or rank > (-best[0], best[1]):
                best = (tier, when, change)
    if best is None:
        return Attribution(None, _searched(root, first_failure, lookback_days))
    tier, when, change = best
    lead = (first - when) if first is not None else 0.0
    found = {k: change[k] for k in ("event_id", "event_time", "action", "actor", "summary", "account", "region")
             if k in change}
    found.update(lead_seconds=int(lead), lead=_lead(lead), tier=tier)
    return Attribution(found, _searched(root, first_failure, lookback_days))


def change_entries(change: Change) -> list[tuple[str, dict]]:
    """(change key, change dict with its topic) for every key a change touches."""
    base = change.to_dict()
    return [(key, {**base, "topic": topic}) for key, topic in change.keys]


# --------------------------------------------------------------------------------------------
# An incident as every output shows it
# --------------------------------------------------------------------------------------------
@dataclass(slots=True)
class Incident:
    """One root cause as every output shows it: what broke, since when, who and what is affected,
    what changed before it, and the one remediation for its root."""

    id: str
    root: Root
    status: str  # open | resolved
    cause: str
    title: str
    severity: str
    first_failure: str  # event time (ISO) of the earliest failure
    last_failure: str
    failures: int
    principals: list[str]
    resources: list[str]
    principal_count: int
    resource_count: int
    remediation: str
    evidence: list[str]
    attribution: Attribution
    occurrence: int = 1
    opened_at: float = 0.0  # when the auditor opened it (epoch s)
    resolved_at: float = 0.0
    last_arrival: float = 0.0
    later_changes: list[dict] = field(default_factory=list)  # changes after the first failure (a fix?)

    def to_dict(self, status: Optional[str] = None) -> dict[str, Any]:
        """The ``incident`` object of the finding JSON; ``status`` is the message's (opened, updated, resolved)."""
        out = {
            "id": self.id,
            "status": status or self.status,
            "occurrence": self.occurrence,
            "cause": self.cause,
            "title": self.title,
            "severity": self.severity,
            "root": self.root.to_dict(),
            "first_failure": self.first_failure,
            "last_failure": self.last_failure,
            "failures": self.failures,
            "principals": {"count": self.principal_count, "listed": self.principals[:MAX_LISTED]},
            "resources": {"count": self.resource_count, "listed": self.resources[:MAX_LISTED]},
            "change": self.attribution.change,
            "searched": self.attribution.searched,
            "evidence": self.evidence,
            "remediation": self.remediation,
        }
        if self.opened_at:
            out["opened_at"] = iso(self.opened_at)
        if self.resolved_at:
            out["resolved_at"] = iso(self.resolved_at)
            if self.opened_at:
                out["open_seconds"] = int(self.resolved_at - self.opened_at)
        if self.later_changes:
            out["later_changes"] = self.later_changes[:5]
        return out


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
    "PutRolePermissionsBoundary": "check that the new boundary allows the actions the role uses.",
    "PutUserPermissionsBoundary": "check that the new boundary allows the actions the user uses.",
    "CreatePolicyVersion": "compare the new default version with the previous one (aws iam get-policy-version).",
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
# The CLI's book: incidents over a history, in memory, by event time
# --------------------------------------------------------------------------------------------
class Book:
    """Groups failures into incidents over history (CloudTrail files): an incident ends when no
    failure of its root follows for ``quiet_seconds`` of event time; its changes are the ones
    found in the same history. Feed failures and changes in any order, then ``incidents()``."""

    def __init__(self, quiet_seconds: int, lookback_days: int = DEFAULT_LOOKBACK_DAYS):
        self.quiet = quiet_seconds
        self.lookback = lookback_days
        self._failures: dict[str, list[Failure]] = {}
        self._changes: list[tuple[str, dict]] = []

    def add_failure(self, failure: Failure) -> None:
        self._failures.setdefault(failure.root.key, []).append(failure)

    def add_change(self, change: Change) -> None:
        self._changes.extend(change_entries(change))

    def incidents(self, now: Optional[float] = None) -> list[Incident]:
        out = []
        for failures in self._failures.values():
            failures.sort(key=lambda f: (epoch(f.finding.event_time) or 0.0, f.event_id))
            run: list[Failure] = []
            last = None
            for failure in failures:
                when = epoch(failure.finding.event_time) or 0.0
                if run and last is not None and when - last > self.quiet:
                    out.append(self._incident(run, len([i for i in out if i.root.key == run[0].root.key]) + 1))
                    run = []
                run.append(failure)
                last = when
            if run:
                out.append(self._incident(run, len([i for i in out if i.root.key == run[0].root.key]) + 1))
        end = now if now is not None else max((epoch(i.last_failure) or 0.0 for i in out), default=0.0)
        for incident in out:
            last = epoch(incident.last_failure) or 0.0
            incident.status = "resolved" if end - last >= self.quiet else "open"
        return sorted(out, key=lambda i: (i.first_failure, i.id))

    def _incident(self, run: list[Failure], occurrence: int) -> Incident:
        first = run[0]
        root = first.root
        attribution = attribute(root, first.finding.event_time, self._changes, self.lookback)
        principals = list(dict.fromkeys(f.principal for f in run if f.principal))
        resources = list(dict.fromkeys(f.resource for f in run if f.resource))
        first_t = epoch(first.finding.event_time)
        last_t = epoch(run[-1].finding.event_time)
        later = [c for k, c in self._changes if any(k == s[0] for s in root.searches)
                 and (when := epoch(c.get("event_time", ""))) is not None and first_t is not None
                 and first_t < when <= (last_t or first_t) + self.quiet]
        later = list({c["event_id"]: c for c in later}.values())
        return Incident(
            id=root.incident_id, root=root, status="open", cause=first.finding.cause, title=first.finding.title,
            severity=first.finding.severity, first_failure=first.finding.event_time,
            last_failure=run[-1].finding.event_time, failures=len(run), principals=principals[:MAX_LISTED],
            resources=resources[:MAX_LISTED], principal_count=len(principals), resource_count=len(resources),
            remediation=remediation_for(root, first.finding, attribution), evidence=list(first.finding.evidence),
            attribution=attribution, occurrence=occurrence,
            later_changes=[{k: c[k] for k in ("event_id", "event_time", "action", "actor", "summary")} for c in later],
        )


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
