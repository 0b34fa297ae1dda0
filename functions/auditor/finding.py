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
    """One failure, classified: built whole by ``auditor.classify`` (what the winning cause says
    of the call included), or from its own ``to_dict`` by ``from_dict``."""

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
        """``json.dumps(self.to_dict(), ensure_ascii=False, separators=(",", ":"))``, by an encoder built once."""
        if _C_JSON is None:
            return _JSON.encode(self.to_dict())
        return "".join(_C_JSON(self.to_dict(), 0))

    @classmethod
    def from_dict(cls, data: dict) -> "Finding":
        """The finding ``to_dict`` gave: ``Finding.from_dict(f.to_dict()).to_dict() == f.to_dict()``
        (and ``== f`` but for the two principal fields ``to_dict`` leaves out, see ``Principal.from_dict``).

        Read by field name and checked by type; ``policy``, ``topic`` and ``joined`` may be absent
        (``None``, ``""``, ``()``), every other field must be there. Raises ``KeyError`` for a
        missing field, ``TypeError`` for a value of the wrong type (or ``data`` not a dict),
        ``ValueError`` for a ``schema_version`` other than this one's: callers catch those three.
        """
        if type(data) is not dict:
            raise TypeError(f"a finding is a JSON object, not {type(data).__name__}")
        version = data.get("schema_version", SCHEMA_VERSION)
        if version != SCHEMA_VERSION:
            raise ValueError(f"finding schema_version {version!r}, not {SCHEMA_VERSION!r}")
        text = {name: _text(data, name) for name in _TEXT_FIELDS}
        evidence = data["evidence"]
        if type(evidence) not in (list, tuple) or any(type(e) is not str for e in evidence):
            raise TypeError("evidence is not a list of strings")
        policy = data.get("policy")
        if policy is not None and type(policy) is not dict:
            raise TypeError("policy is neither an object nor null")
        joined = data.get("joined") or ()
        if type(joined) not in (list, tuple) or any(type(j) is not dict for j in joined):
            raise TypeError("joined is not a list of objects")
        topic = data.get("topic", "")
        if type(topic) is not str:
            raise TypeError("topic is not a string")
        return cls(text["event_id"], text["event_time"], text["account"], text["region"], text["service"],
                   text["action"], text["error_code"], text["error_message"], Principal.from_dict(data["principal"]),
                   text["source_ip"], text["user_agent"], text["resource"], text["cause"], text["title"],
                   text["severity"], text["confidence"], tuple(evidence), text["remediation"], policy,
                   text["doc_url"], topic, text["fingerprint"], tuple(joined))


_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))  # json.dumps with options builds one per call
# The C encoder behind _JSON, built once too (JSONEncoder.encode builds one per call): what json.dumps
# runs, without its circular-reference check (a finding holds no cycle). None without the _json accelerator.
_make_encoder = json.encoder.c_make_encoder
_C_JSON = _make_encoder and _make_encoder(None, _JSON.default, json.encoder.encode_basestring, None, _JSON.key_separator,
                                          _JSON.item_separator, False, False, True)

#: The fields of ``to_dict`` that ``from_dict`` requires, each a string.
_TEXT_FIELDS = ("event_id", "event_time", "account", "region", "service", "action", "error_code", "error_message",
                "source_ip", "user_agent", "resource", "cause", "title", "severity", "confidence", "remediation",
                "doc_url", "fingerprint")


def _text(data: dict, name: str) -> str:
    value = data[name]
    if type(value) is not str:
        raise TypeError(f"{name} is not a string")
    return value


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
