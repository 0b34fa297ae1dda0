"""Facts: what read-only AWS lookups found out about a failed call's secret, key or policies.

Plain data, no I/O: ``enrich.py`` fills these from DescribeSecret / DescribeKey / IAM policy
simulation, tests fill them from fixture sidecars, the classifier only reads them. A lookup
that failed is recorded as such (``error``), so the classifier can lower its confidence and
say why, instead of guessing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any


@dataclass(frozen=True, slots=True)
class SecretFacts:
    """What DescribeSecret said of the secret a failed call named (its metadata, never its value)."""

    found: bool = False
    error: str = ""  # the lookup's error code when it failed (AccessDeniedException, Throttling, ...)
    arn: str = ""
    name: str = ""
    owning_service: str = ""
    deleted_date: str = ""
    created_date: str = ""
    last_changed_date: str = ""
    kms_key_id: str = ""


@dataclass(frozen=True, slots=True)
class KeyFacts:
    """What DescribeKey said of the KMS key a failed call named."""

    found: bool = False
    error: str = ""
    key_id: str = ""
    arn: str = ""
    key_spec: str = ""
    key_usage: str = ""
    key_state: str = ""
    key_manager: str = ""


@dataclass(frozen=True, slots=True)
class SimulationFacts:
    """IAM policy simulation of the failed call, with and without its request context."""

    decision: str = ""  # allowed | explicitDeny | implicitDeny
    condition_keys: tuple[str, ...] = ()
    matched_statements: tuple[str, ...] = ()
    allowed_without_context: bool = False
    error: str = ""


@dataclass(frozen=True, slots=True, eq=False)
class LinkFacts:
    """The managed policies that govern a role or user: its attached policies and its groups'
    (``policies``), its permissions ``boundary``; from IAM lookups (``source`` "lookups") or from the
    attach and boundary changes seen (``source`` "records"). ``known``: the lookups answered, so a
    policy not listed does not govern it. ``note``: why they could not be looked up."""

    principal: str  # its change key: role:<acct>:<name> / user:<acct>:<name>
    policies: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    boundary: str = ""
    known: bool = False
    source: str = ""
    note: str = ""


@dataclass(frozen=True, slots=True)
class Facts:
    """The read-only lookups' answers for one failed call: the secret, the key, the policy simulation."""

    secret: SecretFacts | None = None
    key: KeyFacts | None = None
    simulation: SimulationFacts | None = None
    links: LinkFacts | None = None  # the policies that govern the caller (an access denial's)
    notes: tuple[str, ...] = field(default=())  # lookups skipped or failed, in words
    window_seconds: int = 0  # consistency window; 0 means the cause's default

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Facts":
        def build(kind, raw):
            if not isinstance(raw, dict):
                return None
            names = kind.__slots__
            values = {k: (tuple(v) if isinstance(v, list) else v) for k, v in raw.items() if k in names}
            return kind(**values)

        return cls(
            secret=build(SecretFacts, data.get("secret")),
            key=build(KeyFacts, data.get("key")),
            simulation=build(SimulationFacts, data.get("simulation")),
            links=build(LinkFacts, data.get("links")),
            notes=tuple(data.get("notes") or ()),
            window_seconds=int(data.get("window_seconds") or 0),
        )


def parse_time(value: str) -> datetime | None:
    """ISO 8601 (CloudTrail's eventTime, boto3's datetimes as strings) -> aware datetime."""
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
