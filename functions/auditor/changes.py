"""What changed: the successful calls that can start a Secrets Manager or KMS incident, and
the resources each one touches.

A change names one or more *change keys*, the same strings an incident's root searches
(``auditor.roots``):

=========================  ==========================================================
``key:<key ARN>``          a KMS key (its policy, grants, state, aliases, material)
``alias:<acct>:<region>:<alias>``  a KMS alias
``secret:<acct>:<region>:<name>``  a secret (its policy, key, deletion, rotation, replicas)
``role:<acct>:<name>``     an IAM role (inline/managed policies, boundary, trust, session length)
``user:<acct>:<name>``     an IAM user (policies, boundary, groups, access keys)
``group:<acct>:<name>``    an IAM group's policies
``policy:<policy ARN>``    a customer managed IAM policy's versions
``iam-policies:<acct>``    any managed policy version of the account (a role's failure cannot
                           tell which of them apply without IAM lookups or attach records)
``org-policy:<p-id>``      an SCP or RCP; ``org-policies`` any of them
``vpce:<vpce id>``         a VPC endpoint's policy
=========================  ==========================================================

Each key comes with a *topic* (``policy``, ``state``, ``alias``, ``key``, ``rotation``,
``credentials``, ``membership``, and for IAM ``identity-policy``, ``boundary``, ``trust``,
``policy-version``, ``attachment``, ``boundary-set``), so a root can ask only for what can break
it: a key-state incident is not explained by a PutKeyPolicy, an identity-policy denial not by a
permissions boundary's new version. Only identifiers are read from the record: never
a policy document's content, never a value.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable, Optional

from .aws import partition_of_region
from .contract import CHANGE_EVENTS

__all__ = ["Change", "CHANGE_ACTIONS", "link_of", "links_from_records", "parse_change", "secret_key", "key_key",
           "principal_key"]

#: (event source) -> frozenset of change event names; the rule matches exactly these.
CHANGE_ACTIONS = {source: frozenset(names) for source, names in CHANGE_EVENTS.items()}


@dataclass(frozen=True, slots=True)
class Change:
    """A successful call that can start an incident: who did what to which resources, when."""

    event_id: str
    event_time: str
    account: str
    region: str
    source: str  # event source, e.g. kms.amazonaws.com
    action: str  # eventName, e.g. PutKeyPolicy
    actor: str  # userIdentity.arn (or invokedBy for a service)
    keys: tuple[tuple[str, str], ...]  # (change key, topic)
    summary: str  # one line for people: "PutKeyPolicy on key arn:..."
    target: str = ""  # the change key of what it changed (the first specific one)

    def to_dict(self) -> dict[str, Any]:
        return {"event_id": self.event_id, "event_time": self.event_time, "account": self.account,
                "region": self.region, "action": self.action, "actor": self.actor, "summary": self.summary,
                "target": self.target, "keys": [k for k, _ in self.keys][:8]}


def _s(value: Any, limit: int = 512) -> str:
    """A bounded, encodable identifier from the record; anything but a string -> ''."""
    if type(value) is not str:
        return ""
    value = value[:limit]
    return value if value.isascii() else value.encode("utf-8", "replace").decode("utf-8")


# --------------------------------------------------------------------------------------------
# Canonical keys (shared with auditor.roots: a failure and a change must spell a resource alike)
# --------------------------------------------------------------------------------------------
_KEY_ID = re.compile(r"^(?:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|mrk-[0-9a-f]{32})$")
_KEY_ARN = re.compile(r"^arn:[\w-]+:kms:[^:]*:\d*:key/[\w-]+$")
_ALIAS_ARN = re.compile(r"^arn:[\w-]+:kms:(?P<region>[^:]*):(?P<account>\d*):(?P<alias>alias/.+)$")
_SECRET_ARN = re.compile(r"^arn:[\w-]+:secretsmanager:(?P<region>[^:]*):(?P<account>\d*):secret:(?P<name>.+)$")
_SUFFIX = re.compile(r"-[A-Za-z0-9]{6}$")
_IAM_ARN = re.compile(r"^arn:[\w-]+:iam::(?P<account>\d*):(?P<kind>role|user|group)/(?:.*/)?(?P<name>[^/]+)$")


def key_key(key: str, account: str, region: str) -> str:
    """``key:<ARN>`` for a key given by ARN or id, ``alias:<acct>:<region>:alias/x`` for an alias, '' otherwise."""
    if not key:
        return ""
    if _KEY_ARN.match(key):
        return "key:" + key
    alias = _ALIAS_ARN.match(key)
    if alias:
        return f"alias:{alias['account']}:{alias['region']}:{alias['alias']}"
    if key.startswith("alias/"):
        return f"alias:{account}:{region}:{key}"
    if _KEY_ID.match(key):
        return f"key:arn:{partition_of_region(region)}:kms:{region}:{account}:key/{key}"
    return ""


def secret_key(secret: str, account: str, region: str) -> str:
    """``secret:<acct>:<region>:<name>`` for a secret given by name or ARN.

    A complete ARN ends in Secrets Manager's ``-XXXXXX``: it is dropped, so a secret named by ARN
    and by name is one key. (A partial ARN of a name that itself ends in a hyphen and six
    characters is read as complete: the documented ambiguity, rare, and harmless here.)
    """
    if not secret:
        return ""
    arn = _SECRET_ARN.match(secret)
    if arn:
        return f"secret:{arn['account'] or account}:{arn['region'] or region}:{_SUFFIX.sub('', arn['name'])}"
    return f"secret:{account}:{region}:{secret}"


def principal_key(identity_arn: str) -> str:
    """``role:<acct>:<name>`` / ``user:<acct>:<name>`` for an IAM role or user ARN (path dropped:
    an assumed-role session names its role without the path), else the ARN itself."""
    m = _IAM_ARN.match(identity_arn)
    if m:
        return f"{m['kind']}:{m['account']}:{m['name']}"
    return identity_arn


# --------------------------------------------------------------------------------------------
# Record -> Change
# --------------------------------------------------------------------------------------------
def _resources(obj: dict, kind: str) -> list[str]:
    found = obj.get("resources")
    if type(found) is not list:
        return []
    return [arn for r in found if type(r) is dict and (not kind or r.get("type") == kind) and (arn := _s(r.get("ARN")))]


def _kms(obj: dict, params: dict, action: str, account: str, region: str) -> list[tuple[str, str]]:
    topic = {"PutKeyPolicy": "policy", "RevokeGrant": "policy", "RetireGrant": "policy", "CreateGrant": "policy",
             "CreateAlias": "alias", "UpdateAlias": "alias", "DeleteAlias": "alias"}.get(action, "state")
    keys = [("key:" + arn, topic) for arn in _resources(obj, "AWS::KMS::Key") if _KEY_ARN.match(arn)]
    if not keys:
        for name in ("keyId", "targetKeyId"):
            found = key_key(_s(params.get(name)), account, region)
            if found.startswith("key:"):
                keys.append((found, topic))
                break
    alias = _s(params.get("aliasName"))
    if alias:
        keys.append((key_key(alias if alias.startswith(("alias/", "arn:")) else "alias/" + alias, account, region), "alias"))
    if action == "DisconnectCustomKeyStore":
        store = _s(params.get("customKeyStoreId"))
        if store:
            keys.append((f"key-store:{account}:{region}:{store}", "state"))
    return keys


_SM_TOPICS = {"PutResourcePolicy": "policy", "DeleteResourcePolicy": "policy", "UpdateSecret": "key",
              "RotateSecret": "rotation", "CancelRotateSecret": "rotation", "UpdateSecretVersionStage": "rotation"}


def _secretsmanager(obj: dict, params: dict, action: str, account: str, region: str) -> list[tuple[str, str]]:
    if action == "UpdateSecret" and not _s(params.get("kmsKeyId")):
        return []  # a description or value change: not one that can break access
    response = obj.get("responseElements")
    arn = _s(response.get("arn")) if type(response) is dict else ""
    secret = arn or _s(params.get("secretId"))
    if not secret:
        return []
    keys = [(secret_key(secret, account, region), _SM_TOPICS.get(action, "state"))]
    if action == "UpdateSecret":
        new_key = key_key(_s(params.get("kmsKeyId")), account, region)
        if new_key:
            keys.append((new_key, "key"))
    return keys


#: IAM changes by the kind of denial they can cause (auditor.roots searches them by kind):
#: ``identity-policy`` (a role's, user's or group's own policies, inline or attached), ``boundary``
#: (its permissions boundary), ``membership`` (a user's groups), ``credentials``, ``trust``.
_IAM_TOPICS = {
    "UpdateAccessKey": "credentials", "DeleteAccessKey": "credentials", "UpdateRole": "credentials",
    "UpdateAssumeRolePolicy": "trust",
    "AddUserToGroup": "membership", "RemoveUserFromGroup": "membership",
    "PutRolePermissionsBoundary": "boundary", "DeleteRolePermissionsBoundary": "boundary",
    "PutUserPermissionsBoundary": "boundary", "DeleteUserPermissionsBoundary": "boundary",
}
#: Changes that link a principal (or a group) to a managed policy, or unlink it: recorded under the
#: policy too (``attachment``, ``boundary-set``), so that the policy's later versions can be tied to
#: the principals it governs even without IAM lookups (the CLI over history; lookups not possible).
_LINKS = {"AttachRolePolicy": "attachment", "DetachRolePolicy": "attachment", "AttachUserPolicy": "attachment",
          "DetachUserPolicy": "attachment", "AttachGroupPolicy": "attachment", "DetachGroupPolicy": "attachment",
          "PutRolePermissionsBoundary": "boundary-set", "DeleteRolePermissionsBoundary": "boundary-set",
          "PutUserPermissionsBoundary": "boundary-set", "DeleteUserPermissionsBoundary": "boundary-set"}
#: A new default version of a managed policy: what every principal it governs is then allowed.
_VERSIONS = ("CreatePolicyVersion", "SetDefaultPolicyVersion")


def _iam(obj: dict, params: dict, action: str, account: str, region: str) -> list[tuple[str, str]]:
    topic = _IAM_TOPICS.get(action, "identity-policy")
    keys = []
    for field, kind in (("roleName", "role"), ("userName", "user"), ("groupName", "group")):
        name = _s(params.get(field), 128)
        if name:
            keys.append((f"{kind}:{account}:{name}", topic))
    policy = _s(params.get("policyArn")) or _s(params.get("permissionsBoundary"))
    if action in _VERSIONS:
        if action == "CreatePolicyVersion" and params.get("setAsDefault") not in (True, "true", "True"):
            return []  # a version that is not the default changes what nobody is allowed
        if policy:
            # Which roles and users a managed policy reaches is not in the record: IAM lookups or
            # the attach records tell (auditor.roots); the account-wide key lets a principal whose
            # links are unknown find it (named as possibly related).
            keys += [(f"policy:{policy}", "policy-version"), (f"iam-policies:{account}", "policy-version")]
    elif action in _LINKS and policy:
        keys.append((f"policy:{policy}", _LINKS[action]))
    return keys


def link_of(change: "Change") -> Optional[tuple[str, str, str, bool]]:
    """(principal or group change key, policy ARN, relation, linked) a change records: an attach
    (``identity``) or a boundary put (``boundary``), or their removal (``linked`` False); None for
    any other change."""
    relation = {"attachment": "identity", "boundary-set": "boundary"}
    policy = next(((k[len("policy:"):], t) for k, t in change.keys if k.startswith("policy:") and t in relation), None)
    owner = next((k for k, _ in change.keys if k.startswith(("role:", "user:", "group:"))), None)
    if policy is None or owner is None:
        return None
    return owner, policy[0], relation[policy[1]], change.action.startswith(("Attach", "Put"))


_ACCOUNT_ID = re.compile(r"^\d{12}$")


def _organizations(obj: dict, params: dict, action: str, account: str, region: str) -> list[tuple[str, str]]:
    policy = _s(params.get("policyId"), 128)
    keys = [(f"org-policy:{policy}", "policy")] if policy else []
    target = _s(params.get("targetId"), 64)
    if _ACCOUNT_ID.match(target):  # attached to (or detached from) one account: its failures can find it
        keys.append((f"org-policies:{target}", "policy"))
    return keys + [("org-policies", "policy")]


def _ec2(obj: dict, params: dict, action: str, account: str, region: str) -> list[tuple[str, str]]:
    request = params.get("ModifyVpcEndpointRequest") or params.get("DeleteVpcEndpointsRequest") or params
    if type(request) is not dict:
        return []
    if action == "ModifyVpcEndpoint":
        has_policy = "PolicyDocument" in request or "ResetPolicy" in request
        endpoint = _s(request.get("VpcEndpointId"), 64)
        return [(f"vpce:{endpoint}", "policy")] if has_policy and endpoint else []
    ids = request.get("VpcEndpointId")
    ids = ids if type(ids) is list else [ids]
    return [(f"vpce:{e}", "state") for v in ids if type(v) in (str, dict)
            if (e := _s(v if type(v) is str else v.get("content"), 64))]


_EXTRACT: dict[str, Callable[[dict, dict, str, str, str], list[tuple[str, str]]]] = {
    "kms.amazonaws.com": _kms, "secretsmanager.amazonaws.com": _secretsmanager, "iam.amazonaws.com": _iam,
    "organizations.amazonaws.com": _organizations, "ec2.amazonaws.com": _ec2,
}


def parse_change(obj: dict, source: str, action: str) -> Optional[Change]:
    """The Change a successful ``obj`` (a bare CloudTrail record) records, or None when it touches
    nothing an incident can be rooted in. The caller checked that ``action`` is a change of
    ``source`` and that the record has no errorCode."""
    account, region = _s(obj.get("recipientAccountId"), 64), _s(obj.get("awsRegion"), 64)
    params = obj.get("requestParameters")
    keys = _EXTRACT[source](obj, params if type(params) is dict else {}, action, account, region)
    keys = tuple(dict.fromkeys((k, t) for k, t in keys if k))
    if not keys:
        return None
    ident = obj.get("userIdentity")
    ident = ident if type(ident) is dict else {}
    actor = _s(ident.get("arn")) or _s(ident.get("invokedBy")) or _s(ident.get("type"), 64) or "unknown"
    target = next((k for k, _ in keys if not k.startswith(("iam-policies:", "org-policies"))), keys[0][0])
    return Change(_s(obj.get("eventID"), 128), _s(obj.get("eventTime"), 64), account, region, source, action,
                  actor, keys, f"{action} on {target.split(':', 1)[0]} {target.split(':', 1)[-1]}", target)


_MEMBERSHIP = {"AddUserToGroup": True, "RemoveUserFromGroup": False}


def links_from_records(principal: str, entries, at: float):
    """What the attach, boundary and group-membership changes recorded (``entries``: (change key,
    change dict)) say governs ``principal`` (role:/user: key) at ``at`` (epoch s): a
    ``facts.LinkFacts`` with ``source`` "records" (never ``known``: a policy attached before the
    records began is not in them), or None when no record names it."""
    from .facts import LinkFacts, parse_time

    def when(change) -> float:
        moment = parse_time(change.get("event_time") or "")
        return moment.timestamp() if moment is not None else float("inf")

    events = []
    for key, change in entries:
        action = change.get("action", "")
        keys = change.get("keys") or []
        policy = next((k[len("policy:"):] for k in keys if k.startswith("policy:")), "")
        owner = next((k for k in keys if k.startswith(("role:", "user:", "group:"))), "")
        t = when(change)
        if t > at or key != owner:
            continue
        if action in _LINKS and policy:
            events.append((t, owner, "policy", policy, _LINKS[action], action.startswith(("Attach", "Put"))))
        elif action in _MEMBERSHIP:
            group = next((k for k in keys if k.startswith("group:")), "")
            if group:
                events.append((t, owner, "group", group, "membership", _MEMBERSHIP[action]))
    if not events:
        return None
    events.sort(key=lambda e: e[0])
    policies: dict[str, dict[str, str]] = {}  # owner -> policy -> relation
    groups: dict[str, bool] = {}
    for _, owner, what, target, relation, linked in events:
        if what == "group" and owner == principal:
            groups[target] = linked
        elif what == "policy":
            relation = "boundary" if relation == "boundary-set" else "identity"
            mine = policies.setdefault(owner, {})
            if relation == "boundary":
                for p, r in list(mine.items()):
                    if r == "boundary":
                        del mine[p]
            if linked:
                mine[target] = relation
            else:
                mine.pop(target, None)
    own = policies.get(principal, {})
    member_of = [g for g, linked in groups.items() if linked]
    identity = [p for p, r in own.items() if r == "identity"]
    for group in member_of:
        identity += [p for p, r in policies.get(group, {}).items() if r == "identity"]
    boundary = next((p for p, r in own.items() if r == "boundary"), "")
    if not identity and not boundary and not member_of:
        return None
    return LinkFacts(principal, tuple(dict.fromkeys(identity)), tuple(g.split(":", 2)[-1] for g in member_of), boundary,
                     known=False, source="records",
                     note="its managed policies are known from attach and boundary records, not from IAM lookups")
