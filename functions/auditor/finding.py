"""The finding: one JSON object per failure, identical in SNS, logs and the CLI's JSON Lines."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
from dataclasses import dataclass
from typing import Any, Optional

from .records import Principal

SCHEMA_VERSION = "1"


class _Later:
    """The slot a finding filled in later keeps its filler in (see ``Finding``)."""

    __slots__ = ("_filler",)


#: The fields a finding may fill in on first use: what the winning cause says of the call.
LATER = ("confidence", "evidence", "remediation", "policy", "fingerprint")


@dataclass(slots=True)
class Finding(_Later):
    """One failure, classified.

    ``auditor.classify`` decides the cause at once and leaves the fields of ``LATER`` (the
    cause's evidence and confidence, its remediation text and policy statement, the
    fingerprint) to be filled in on first use: a finding that is counted but never shown,
    stored or published costs no text. Such a finding is built by ``later``; a read of any
    of those fields (attribute access, ``to_dict``, ``==``, ``repr``, ``dataclasses.replace``,
    pickling) fills them all, by the filler's call ``filler[0](self, *filler[1:])``, which
    must set every field of ``LATER``. ``settle`` fills them now (to have a cause's error
    raised where the caller catches it). A finding built with all its fields is just that.
    """

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

    def __getattr__(self, name: str) -> Any:
        # Reached only when a slot is not set: a field of LATER not filled in yet.
        if name not in LATER:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        self.settle()
        return object.__getattribute__(self, name)

    def settle(self) -> "Finding":
        """Fill in the fields left for later (``LATER``), if any; the finding itself."""
        try:
            filler = object.__getattribute__(self, "_filler")
        except AttributeError:
            return self
        filler[0](self, *filler[1:])  # raises, and keeps the filler, if the cause's text fails
        try:
            del self._filler
        except AttributeError:  # another thread filled them in at the same time (the same values)
            pass
        return self

    def __reduce__(self):
        # Pickled (the CLI's worker processes) with every field filled in; the filler stays behind.
        return type(self), tuple(getattr(self, f) for f in _FIELDS)

    @classmethod
    def later(cls, event_id: str, event_time: str, account: str, region: str, service: str, action: str,
              error_code: str, error_message: str, principal: Principal, source_ip: str, user_agent: str,
              resource: str, cause: str, title: str, severity: str, doc_url: str, topic: str,
              filler: tuple) -> "Finding":
        """A finding whose fields of ``LATER`` are filled in on first use by ``filler`` (see the class)."""
        self = _new(cls)
        self.event_id = event_id
        self.event_time = event_time
        self.account = account
        self.region = region
        self.service = service
        self.action = action
        self.error_code = error_code
        self.error_message = error_message
        self.principal = principal
        self.source_ip = source_ip
        self.user_agent = user_agent
        self.resource = resource
        self.cause = cause
        self.title = title
        self.severity = severity
        self.doc_url = doc_url
        self.topic = topic
        self.joined = ()
        self._filler = filler
        return self

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


_new = object.__new__
_FIELDS = tuple(f.name for f in dataclasses.fields(Finding))
assert set(LATER) <= set(_FIELDS)


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
