"""The finding: one JSON object per failure, identical in SNS, logs and the CLI's JSON Lines."""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass
from typing import Any, Optional

from .records import Principal

SCHEMA_VERSION = "1"


@dataclass(slots=True)
class Finding:
    event_id: str
    event_time: str
    account: str
    region: str
    service: str
    action: str
    error_code: str
    error_message: str
    principal: Principal
    source_ip: str
    user_agent: str
    resource: str
    cause: str
    title: str
    severity: str
    confidence: str
    evidence: tuple[str, ...]
    remediation: str
    policy: Optional[dict]
    doc_url: str
    topic: str
    fingerprint: str
    #: Other records that are the same failure (the KMS call Secrets Manager made for this call,
    #: the RotationFailed event of this rotation): event id, service, action, error code, resource.
    joined: tuple[dict, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "event_id": self.event_id,
            "event_time": self.event_time,
            "account": self.account,
            "region": self.region,
            "service": self.service,
            "action": self.action,
            "error_code": self.error_code,
            "error_message": self.error_message,
            "principal": self.principal.to_dict(),
            "source_ip": self.source_ip,
            "user_agent": self.user_agent,
            "resource": self.resource,
            "cause": self.cause,
            "title": self.title,
            "severity": self.severity,
            "confidence": self.confidence,
            "evidence": list(self.evidence),
            "remediation": self.remediation,
            "policy": self.policy,
            "doc_url": self.doc_url,
            "topic": self.topic,
            "fingerprint": self.fingerprint,
            "joined": list(self.joined),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, separators=(",", ":"))


# Memoised: a failure stream repeats (the same role failing on the same secret until someone
# fixes it), and hashing costs more than the lookup. Bounded: the inputs come from the records.
@functools.lru_cache(maxsize=4096)
def fingerprint(identity: str, service: str, action: str, resource: str, cause: str) -> str:
    """The dedup key: who (the role, not the session), what, on what, and why.

    Assumed-role sessions are keyed by their role so that a fleet of sessions hitting the
    same denial is one alert, not one per session name.
    """
    raw = "\x1f".join((identity, service, action, resource, cause)).encode("utf-8", "surrogatepass")
    return hashlib.sha256(raw).hexdigest()[:32]
