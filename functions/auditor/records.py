"""CloudTrail input -> normalised, typed ``FailedCall``.

One job: turn whatever CloudTrail or EventBridge hands us into a ``FailedCall`` (a failed
Secrets Manager or KMS call, or a failure service event), a ``Malformed`` outcome that names
where the bad record came from, or one of two "nothing to see" outcomes (a successful call,
another service's record). Nothing here raises for bad input; nothing here does I/O.
Access-denied messages are read by ``auditor.denial``.

Only identifiers are copied out of ``requestParameters`` (secret id, key id, encryption
context's SecretARN, ...). Values that could carry secret material (SecretString,
SecretBinary, Plaintext, ...) are never read, so they can never reach a finding, a log line
or a message, even when CloudTrail failed to redact them.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any, Union

from .aws import partition_of_region
from .changes import CHANGE_ACTIONS, Change, parse_change
from .contract import API_CALL, FAILURE_SERVICE_EVENTS as _FAILURE_SERVICE_EVENTS, NETWORK_ACTIVITY, SERVICE_EVENT
from .denial import ACCESS_DENIED_CODES, Denial, parse_denial

__all__ = [
    "ACCESS_DENIED_CODES",
    "Change",
    "Denial",
    "FailedCall",
    "Malformed",
    "OTHER_SERVICE",
    "Principal",
    "SUCCESS",
    "Skipped",
    "parse_record",
]

SERVICES = frozenset({"secretsmanager", "kms"})
#: The usual eventSource of each service -> the service (parse_record splits any other at its first dot).
_SERVICE_OF = {f"{service}.amazonaws.com": service for service in SERVICES}
DETAIL_TYPES = frozenset({API_CALL, SERVICE_EVENT, NETWORK_ACTIVITY})

#: Secrets Manager service events that report a failure (no errorCode of their own).
FAILURE_SERVICE_EVENTS = frozenset(_FAILURE_SERVICE_EVENTS)

TEMPORARY_IDENTITY_TYPES = frozenset({"AssumedRole", "FederatedUser", "WebIdentityUser", "SAMLUser"})

#: Longest string we keep from the record: bounded so hostile input stays bounded everywhere.
MAX_TEXT = 2048
MAX_MESSAGE = 1024


def _text(value: Any, limit: int = MAX_TEXT) -> str:
    """A string field as a bounded, encodable ``str``; anything else (None, numbers, objects) -> ''.

    Lone surrogates (legal in JSON escapes, illegal in UTF-8) become '?', so every output
    (stdout, SNS, logs) can encode what the record held.
    """
    if type(value) is not str:
        return ""
    if len(value) > limit:
        value = value[:limit]
    if not value.isascii():
        value = value.encode("utf-8", "replace").decode("utf-8")
    return value


# --------------------------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------------------------
@dataclass(slots=True)
class Principal:
    """Who made the call (CloudTrail's userIdentity), as the catalog reads it."""

    arn: str
    type: str  # userIdentity.type: IAMUser, AssumedRole, FederatedUser, Root, AWSService, ...
    temporary: bool
    account: str
    #: The identity policies attach to: the role behind an assumed-role session, else ``arn``.
    identity_arn: str
    access_key_id: str
    invoked_by: str  # service that made the call on the principal's behalf, e.g. secretsmanager.amazonaws.com
    session_issuer: str  # userIdentity.sessionContext.sessionIssuer.arn, when the record has one

    @property
    def temporary_reason(self) -> str:
        """Why the credentials count as temporary ("" when they do not); built only when shown."""
        if self.type in TEMPORARY_IDENTITY_TYPES:
            return f"userIdentity.type is {self.type}"
        if self.access_key_id.startswith("ASIA"):
            return "the access key id starts with ASIA (an STS session key)"
        if self.session_issuer:
            return "the call was made in a session issued by " + self.session_issuer
        return ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "arn": self.arn,
            "type": self.type,
            "temporary_credentials": self.temporary,
            "identity_arn": self.identity_arn,
            "account": self.account,
            "invoked_by": self.invoked_by,
        }

    @classmethod
    def from_dict(cls, data: dict) -> "Principal":
        """The principal ``to_dict`` gave: ``Principal.from_dict(p.to_dict()).to_dict() == p.to_dict()``.

        ``to_dict`` leaves out ``access_key_id`` and ``session_issuer`` (they only say why the
        credentials count as temporary, ``temporary_credentials`` keeps the verdict): they are read
        when present and are ``""`` otherwise. ``arn``, ``type`` and ``temporary_credentials`` must be
        there; ``account``, ``identity_arn`` and ``invoked_by`` may be absent (``""``). Raises
        ``KeyError`` for a missing field, ``TypeError`` for a value of the wrong type (or ``data``
        not a dict).
        """
        if type(data) is not dict:
            raise TypeError(f"a principal is a JSON object, not {type(data).__name__}")
        temporary = data["temporary_credentials"]
        if type(temporary) is not bool:
            raise TypeError("temporary_credentials is not a boolean")
        arn, kind = data["arn"], data["type"]
        get = data.get
        account, identity_arn, invoked_by = get("account", ""), get("identity_arn", ""), get("invoked_by", "")
        access_key_id, session_issuer = get("access_key_id", ""), get("session_issuer", "")
        for name, value in (("arn", arn), ("type", kind), ("account", account), ("identity_arn", identity_arn),
                            ("invoked_by", invoked_by), ("access_key_id", access_key_id),
                            ("session_issuer", session_issuer)):
            if type(value) is not str:
                raise TypeError(f"principal {name} is not a string")
        return cls(arn, kind, temporary, account, identity_arn, access_key_id, invoked_by, session_issuer)


@dataclass(slots=True)
class FailedCall:
    """A failed Secrets Manager or KMS call (or failure service event), normalised."""

    event_id: str
    event_time: str
    account: str
    region: str
    service: str  # "secretsmanager" | "kms"
    action: str  # eventName
    event_type: str  # AwsApiCall | AwsServiceEvent
    error_code: str
    error_message: str
    principal: Principal
    source_ip: str
    user_agent: str
    vpc_endpoint_id: str
    #: The secret id or key id as the caller gave it (or as the service event names it).
    resource: str
    #: For KMS calls made for Secrets Manager: the secret whose key it is (encryption context).
    secret_arn: str
    #: For Secrets Manager calls: the KMS key id the request named (CreateSecret/UpdateSecret).
    kms_key_id: str
    denial: Denial | None
    origin: str = ""  # "<file>#<index>" where the record came from (CLI); "" in Lambda
    #: The KMS key's ARN when the record shows it (``resources``, or a key ARN/id the request named).
    key_arn: str = ""
    #: A step of a rotation: the call names the AWSPENDING stage, or moves stages.
    rotation_step: bool = False

    @property
    def is_access_denied(self) -> bool:
        return self.denial is not None


@dataclass(frozen=True, slots=True)
class Malformed:
    """A record we could not understand; counted and reported, never fatal."""

    origin: str  # file name (or "event") and record index
    reason: str


@dataclass(frozen=True, slots=True)
class Skipped:
    """A record that is fine but not ours to report."""

    reason: str


SUCCESS = Skipped("successful call")
OTHER_SERVICE = Skipped("other service")

Outcome = Union[FailedCall, Change, Malformed, Skipped]


# --------------------------------------------------------------------------------------------
# Record -> outcome
# --------------------------------------------------------------------------------------------
def parse_record(obj: Any, origin: str = "event") -> Outcome:
    """One CloudTrail record (bare, or wrapped in an EventBridge envelope) -> an outcome."""
    if type(obj) is not dict:
        return Malformed(origin, f"record is a JSON {json_type(obj)}, not an object")
    source = obj.get("eventSource")
    # Our two sources' usual names, without splitting them (most records): a non-empty str of SERVICES.
    service = _SERVICE_OF.get(source) if type(source) is str else None
    if service is None:
        if source is None and "detail" in obj and "eventSource" not in obj:
            detail_type = obj.get("detail-type")
            # Any JSON value can sit here: test the type before using it as a set member (a dict or a
            # list is unhashable, and one such record must not fail the batch it came in).
            if type(detail_type) is not str or detail_type not in DETAIL_TYPES:
                return Malformed(origin, f"EventBridge event with unsupported detail-type {_clip(detail_type)}")
            obj = obj["detail"]
            if type(obj) is not dict:
                return Malformed(origin, "EventBridge event whose detail is not an object")
            source = obj.get("eventSource")
        if type(source) is not str or not source:
            return Malformed(origin, "record has no eventSource")
        service = _SERVICE_OF.get(source)
        if service is None:
            service = source.partition(".")[0]
        if service not in SERVICES:
            changes = CHANGE_ACTIONS.get(source)  # IAM, Organizations, EC2: only their changes are ours
            if changes is None:
                return OTHER_SERVICE
            action = obj.get("eventName")
            if type(action) is not str or action not in changes or obj.get("errorCode") not in (None, ""):
                return OTHER_SERVICE
            return parse_change(obj, source, action) or OTHER_SERVICE
    action = obj.get("eventName")
    if type(action) is not str or not action:
        return Malformed(origin, "record has no eventName")
    error_code = obj.get("errorCode")
    if error_code is None or error_code == "":
        # A successful call: a success unless the action is a failure service event or a change.
        notable = _NOTABLE.get(source)
        if notable is not None and action not in notable:
            return SUCCESS
        if action in FAILURE_SERVICE_EVENTS and service == "secretsmanager":
            error_code = action
        else:
            changes = CHANGE_ACTIONS.get(source)
            if changes is not None and action in changes:
                return parse_change(obj, source, action) or SUCCESS
            return SUCCESS
    elif type(error_code) is not str:
        return Malformed(origin, f"errorCode is a JSON {json_type(error_code)}, not a string")
    if len(error_code) > 256 or not error_code.isascii():  # a str (tested above): bounded as _text bounds it
        error_code = _text(error_code, 256)
    return _failed_call(obj, service, action, error_code, origin)


_NOTHING: frozenset = frozenset()
#: Per usual eventSource of our services: the actions a successful record of it is more than a
#: success for (Secrets Manager's failure service events, the changes). Other sources: parse_record
#: asks both questions.
_NOTABLE = {source: CHANGE_ACTIONS.get(source, _NOTHING) | (FAILURE_SERVICE_EVENTS if service == "secretsmanager" else _NOTHING)
            for source, service in _SERVICE_OF.items()}


#: (field, bound): the text fields read from every failed record, and from its userIdentity.
#: The spec of _failed_call's and _principal's reads (tests/unit/test_records.py holds them to it).
_CALL_FIELDS = (("eventID", 128), ("eventTime", 64), ("recipientAccountId", 64), ("awsRegion", 64),
                ("eventType", 64), ("sourceIPAddress", 256), ("userAgent", 512), ("vpcEndpointId", 128),
                ("errorMessage", MAX_MESSAGE))
_IDENTITY_FIELDS = (("type", 64), ("arn", 512), ("accessKeyId", 128), ("accountId", 64), ("invokedBy", 256))


# _failed_call, _principal and _resource run once per failure: each field is read and bounded
# inline, as _text would (a short ASCII string, the common case, costs no call). A loop over the
# tables above, or a call per field, adds a tenth to parse + classify's time over json.loads.
def _failed_call(obj: dict, service: str, action: str, error_code: str, origin: str) -> FailedCall:
    get = obj.get
    v = get("eventID")
    event_id = v if type(v) is str and len(v) <= 128 and v.isascii() else "" if v is None else _text(v, 128)
    v = get("eventTime")
    event_time = v if type(v) is str and len(v) <= 64 and v.isascii() else "" if v is None else _text(v, 64)
    v = get("recipientAccountId")
    account = v if type(v) is str and len(v) <= 64 and v.isascii() else "" if v is None else _text(v, 64)
    v = get("awsRegion")
    region = v if type(v) is str and len(v) <= 64 and v.isascii() else "" if v is None else _text(v, 64)
    v = get("eventType")
    event_type = v if type(v) is str and len(v) <= 64 and v.isascii() else "" if v is None else _text(v, 64)
    v = get("sourceIPAddress")
    source_ip = v if type(v) is str and len(v) <= 256 and v.isascii() else "" if v is None else _text(v, 256)
    v = get("userAgent")
    user_agent = v if type(v) is str and len(v) <= 512 and v.isascii() else "" if v is None else _text(v, 512)
    v = get("vpcEndpointId")
    endpoint = v if type(v) is str and len(v) <= 128 and v.isascii() else "" if v is None else _text(v, 128)
    v = get("errorMessage")
    message = v if type(v) is str and len(v) <= MAX_MESSAGE and v.isascii() else "" if v is None else _text(v, MAX_MESSAGE)
    ident = get("userIdentity")
    principal = _principal(ident if type(ident) is dict else {})
    params = get("requestParameters")
    if type(params) is not dict:
        params = {}
    resource, secret_arn, kms_key_id = _resource(obj, service, params)
    denial = parse_denial(message) if error_code in ACCESS_DENIED_CODES else None
    if not resource and denial is not None:
        resource = denial.resource
    account = account or principal.account
    if len(action) > 128 or not action.isascii():  # a non-empty str (parse_record checked)
        action = _text(action, 128)
    if service == "kms":
        key_arn, rotation_step = _key_arn(obj, resource, account, region), False
    else:
        key_arn = ""
        stages = params.get("versionStages")
        rotation_step = (params.get("versionStage") == "AWSPENDING" or action == "UpdateSecretVersionStage"
                         or (type(stages) is list and "AWSPENDING" in stages))
    return FailedCall(  # positional, in field order: this runs once per failure
        event_id, event_time, account, region, service, action, event_type, error_code, message,
        principal, source_ip, user_agent, endpoint, resource, secret_arn, kms_key_id, denial, origin, key_arn,
        rotation_step,
    )


_KEY_ARN = re.compile(r"^arn:[\w-]+:kms:[^:]*:\d*:key/[\w-]+$")
_KEY_ID = re.compile(r"^(?:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|mrk-[0-9a-f]{32})$")


# Memoised: a key's ARN repeats on every call made with the key. Bounded: ARNs come from the records.
@functools.lru_cache(maxsize=4096)
def _is_key_arn(arn: str) -> bool:
    return _KEY_ARN.match(arn) is not None


def _key_arn(obj: dict, resource: str, account: str, region: str) -> str:
    """The key's ARN: from ``resources`` (CloudTrail resolves aliases there), else the key id or
    ARN the request named; '' for an alias nothing resolved."""
    found = obj.get("resources")
    if type(found) is list:
        for item in found:
            if type(item) is dict and item.get("type") == "AWS::KMS::Key":
                arn = item.get("ARN")
                if type(arn) is str and _is_key_arn(arn):
                    return arn[:256]
    if _is_key_arn(resource):
        return resource
    if _KEY_ID.match(resource) and account and region:
        return f"arn:{partition_of_region(region)}:kms:{region}:{account}:key/{resource}"
    return ""


def _principal(ident: dict) -> Principal:
    get = ident.get
    v = get("type")
    kind = v if type(v) is str and len(v) <= 64 and v.isascii() else "" if v is None else _text(v, 64)
    v = get("arn")
    arn = v if type(v) is str and len(v) <= 512 and v.isascii() else "" if v is None else _text(v, 512)
    v = get("accessKeyId")
    key = v if type(v) is str and len(v) <= 128 and v.isascii() else "" if v is None else _text(v, 128)
    v = get("accountId")
    account = v if type(v) is str and len(v) <= 64 and v.isascii() else "" if v is None else _text(v, 64)
    v = get("invokedBy")
    invoked_by = v if type(v) is str and len(v) <= 256 and v.isascii() else "" if v is None else _text(v, 256)
    ctx = get("sessionContext")
    issuer = ctx.get("sessionIssuer") if type(ctx) is dict else None
    if type(issuer) is dict:
        v = issuer.get("arn")
        issuer_arn = v if type(v) is str and len(v) <= 512 and v.isascii() else "" if v is None else _text(v, 512)
    else:
        issuer_arn = ""
    temporary = kind in TEMPORARY_IDENTITY_TYPES or key.startswith("ASIA") or bool(issuer_arn)
    if not arn and kind == "AWSService":
        arn = invoked_by
    session_issuer = issuer_arn
    if not issuer_arn and kind == "AssumedRole":
        issuer_arn = _role_of_session(arn)
    return Principal(arn, kind or "Unknown", temporary, account, issuer_arn or arn, key, invoked_by, session_issuer)


_SESSION_ARN = re.compile(r"^arn:([\w-]+):sts::(\d*):assumed-role/([^/]+)/")


def _role_of_session(arn: str) -> str:
    """arn:aws:sts::1:assumed-role/Role/session -> arn:aws:iam::1:role/Role (the path is not in the ARN).

    _SESSION_ARN's match ends at a slash, so it lies in the ARN up to its last slash: the session
    name, which differs from session to session of the same role, is cut off and the rest memoised.
    """
    return _role_of(arn[: arn.rfind("/") + 1])


# Memoised: a role's sessions repeat it (one per SDK client, instance or function). Bounded: the
# ARNs come from the records.
@functools.lru_cache(maxsize=4096)
def _role_of(head: str) -> str:
    m = _SESSION_ARN.match(head)
    return f"arn:{m.group(1)}:iam::{m.group(2)}:role/{m.group(3)}" if m else ""


#: Identifier fields we read from requestParameters, per service, in order of preference.
_SM_ID_FIELDS = ("secretId", "name", "secretArn", "SecretId")
_KMS_ID_FIELDS = ("keyId", "destinationKeyId", "sourceKeyId", "targetKeyId", "aliasName")


def _resource(obj: dict, service: str, params: dict) -> tuple[str, str, str]:
    resource = secret_arn = kms_key_id = ""
    get = params.get
    if service == "secretsmanager":
        for name in _SM_ID_FIELDS:
            v = get(name)
            if v is not None:
                resource = v if type(v) is str and len(v) <= 512 and v.isascii() else _text(v, 512)
                if resource:
                    break
        if not resource:
            extra = obj.get("additionalEventData")
            if type(extra) is dict:
                resource = _text(extra.get("SecretId"), 512) or _text(extra.get("SecretArn"), 512)
        v = get("kmsKeyId")
        if v is not None:
            kms_key_id = v if type(v) is str and len(v) <= 512 and v.isascii() else _text(v, 512)
    else:
        for name in _KMS_ID_FIELDS:
            v = get(name)
            if v is not None:
                resource = v if type(v) is str and len(v) <= 512 and v.isascii() else _text(v, 512)
                if resource:
                    break
        ctx = get("encryptionContext")
        if type(ctx) is dict:
            v = ctx.get("SecretARN")
            if v is not None:
                secret_arn = v if type(v) is str and len(v) <= 512 and v.isascii() else _text(v, 512)
    if not resource:
        resources = obj.get("resources")
        if type(resources) is list and resources and type(resources[0]) is dict:
            resource = _text(resources[0].get("ARN"), 512)
    return resource, secret_arn, kms_key_id


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    return {list: "array", str: "string", bool: "boolean", int: "number", float: "number", dict: "object"}.get(
        type(value), type(value).__name__
    )


def _clip(value: Any, limit: int = 80) -> str:
    """A value from the input, for a reason text: a string shown escaped (repr: no control
    characters, no lone surrogates) and bounded; anything else by its JSON type only."""
    if type(value) is not str:
        return f"(a JSON {json_type(value)})"
    return repr(value[:limit])
