"""Root causes: the thing that must change to fix a failure. Failures with the same root are
one incident (one alert while it fails, one "resolved" when it stops).

Each cause names its rule (``root=roots.<rule>`` in its module); the rules are here, with the
vocabulary they share:

================================  ==============================================================
kind (the root's ``id``)          failures it gathers
================================  ==============================================================
``key-policy`` (the key)          denials by a KMS key's policy or grants, whoever the caller
``key-state`` (the key)           a disabled, pending-deletion, pending-import or unavailable key
``key-spec`` (the key)            an asymmetric key where Secrets Manager needs a symmetric one
``key-id`` (the key or alias)     a key or alias that does not exist where it was asked for
``secret-policy`` (the secret)    denials by a secret's resource policy
``secret-state`` (the secret)     a secret scheduled for deletion, or changed moments before
``secret-id`` (the secret)        a secret that cannot be found by the id the callers use
``secret-owner`` (the secret)     a secret managed by another AWS service
``rotation`` (the secret)         RotationFailed and the rotation function's failing calls
``principal-permissions`` (role/user)  identity policy, boundary, session policy, condition, unnamed
``iam-policy`` (a managed policy)  a new default version of a policy that governs the failing
                                  principals (their identity policy or boundary): one change,
                                  many callers, one incident (lifecycle.relink moves them here)
``principal-credentials`` (role/user)  expired or invalid credentials, bad signatures
``org-policy`` (the SCP/RCP, or the account when unnamed)
``vpc-endpoint`` (the endpoint, or the account and region when unnamed)
``request-rate`` (account, region, API)  throttling
``request`` (caller, API)         invalid requests and ciphertexts: the calling code must change
``unknown`` (caller, API, error)  what the catalog does not explain
================================  ==============================================================

A root also says where its changes are recorded (``searches``: change keys from
``auditor.changes``, the topics that can break it, and a tier: tier 0 changes touch the root
itself, tier 1 ones may apply, e.g. a managed policy of the account for a role). Pure: no I/O.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Callable, Optional

from .changes import key_key, principal_key, secret_key
from .facts import Facts
from .records import FailedCall

__all__ = ["Root", "RootRule", "affected", "iam_policy", "key_of", "principal_root", "rotation", "secret_of", "touched_by",
           "with_links"]

ANY = None  # every topic


@dataclass(frozen=True, slots=True)
class Root:
    """Two roots are the same root cause when their kind and id are (what else they carry may
    differ with the record that named them)."""

    kind: str
    id: str  # canonical: a change key where the root is a resource
    label: str = field(default="", compare=False)  # for people: "the key policy of KMS key arn:..."
    #: (change key, topics, tier) to search for what changed
    searches: tuple[tuple[str, Optional[frozenset[str]], int], ...] = field(default=(), compare=False)
    #: False when the resource could not be named from the record and the facts (a Secrets
    #: Manager call failing on its secret's KMS key names no key): the record waits for the
    #: KMS record that names it (auditor.pairing).
    known: bool = field(default=True, compare=False)
    #: For a principal's permissions: the managed policies known to govern it, (ARN, relation
    #: ``identity`` | ``boundary``); for a managed policy: how the callers use it.
    links: tuple[tuple[str, str], ...] = field(default=(), compare=False)
    #: What could not be searched, in words (IAM lookups not possible, ...): said with what was searched.
    note: str = field(default="", compare=False)

    @property
    def key(self) -> str:
        return f"{self.kind}|{self.id}"

    @property
    def incident_id(self) -> str:
        """Stable per root: the on-call tool's dedup key (PagerDuty dedup_key, Opsgenie alias)."""
        return f"{self.kind}-{hashlib.sha256(self.key.encode('utf-8', 'surrogatepass')).hexdigest()[:16]}"

    def to_dict(self) -> dict:
        return {"kind": self.kind, "id": self.id, "label": self.label}


RootRule = Callable[[FailedCall, Optional[Facts]], Root]


def _t(*topics: str) -> frozenset[str]:
    return frozenset(topics)


# --------------------------------------------------------------------------------------------
# Resources as a failure names them
# --------------------------------------------------------------------------------------------
_KEY_IN_TEXT = re.compile(r"arn:aws[\w-]*:kms:[a-z0-9-]+:\d{12}:key/[\w-]+")


def key_of(call: FailedCall, facts: Optional[Facts]) -> str:
    """The change key of the KMS key involved ('' when nothing names it): the record's key ARN,
    the key a lookup found, the key the message names, or the key id the request named."""
    if call.key_arn:
        return "key:" + call.key_arn
    if facts is not None and facts.key is not None and facts.key.found and facts.key.arn:
        return "key:" + facts.key.arn
    named = _KEY_IN_TEXT.search(call.error_message)
    if named:
        return "key:" + named.group(0)
    if call.service == "kms":
        return key_key(call.resource, call.account, call.region)
    given = call.kms_key_id or (facts.secret.kms_key_id if facts and facts.secret and facts.secret.found else "")
    return key_key(given, call.account, call.region)


def secret_of(call: FailedCall) -> str:
    """The change key of the secret involved: the one the call named, or whose key KMS used."""
    if call.service == "kms":
        return secret_key(call.secret_arn, call.account, call.region)
    return secret_key(call.resource, call.account, call.region)


def affected(call: FailedCall) -> str:
    """The resource a failure denied the caller, as an incident lists it: the secret's name
    (also for the KMS call Secrets Manager made for it), else the key or alias as given."""
    secret = secret_of(call) if call.service == "secretsmanager" or call.secret_arn else ""
    if secret.startswith("secret:"):
        return secret.split(":", 3)[3]
    return call.resource


def _principal(call: FailedCall) -> tuple[str, str]:
    """(change key, label) of the caller's role or user; the access key or address when unnamed."""
    p = call.principal
    if p.identity_arn:
        return principal_key(p.identity_arn), p.identity_arn
    if p.access_key_id:
        return f"access-key:{p.access_key_id}", f"access key {p.access_key_id}"
    return f"caller:{call.account}:{call.source_ip}", f"an unnamed caller from {call.source_ip or '?'} in {call.account or '?'}"


# --------------------------------------------------------------------------------------------
# The rules
# --------------------------------------------------------------------------------------------
def _key_root(kind: str, label: str, topics: frozenset[str]) -> RootRule:
    """A root on the KMS key; "{}" in ``label`` is the key. When no record or fact names the key
    (a Secrets Manager call that failed on its secret's key), the root is the key of that secret,
    not yet known."""

    def rule(call: FailedCall, facts: Optional[Facts]) -> Root:
        key = key_of(call, facts)
        if not key:
            secret = secret_of(call)
            whose = _name(secret) if secret else "a secret the record does not name"
            return Root(kind, f"key-of:{secret}", label.format(f"the KMS key of {whose}"),
                        ((secret, _t("key"), 0),), known=False)
        return Root(kind, key, label.format(f"KMS {_name(key)}"), ((key, topics, 0), (key, ANY, 1)))

    return rule


key_policy = _key_root("key-policy", "the key policy of {}", _t("policy", "alias"))
key_state = _key_root("key-state", "{} (its state)", _t("state"))


def key_spec(call: FailedCall, facts: Optional[Facts]) -> Root:
    key = key_of(call, facts) or f"key-named:{call.account}:{call.region}:{call.kms_key_id or call.resource}"
    searches = ((key, ANY, 0),)
    if call.service == "secretsmanager" and call.resource:
        searches += ((secret_of(call), _t("key"), 0),)
    return Root("key-spec", key, f"KMS {_name(key)} (an asymmetric key)", searches)


def key_id(call: FailedCall, facts: Optional[Facts]) -> Root:
    named = call.kms_key_id if call.service == "secretsmanager" else call.resource
    key = key_key(named, call.account, call.region) or f"key-named:{call.account}:{call.region}:{named}"
    return Root("key-id", key, f"KMS {_name(key)} (not found)", ((key, ANY, 0),))


def _secret_root(kind: str, what: str, topics: Optional[frozenset[str]]) -> RootRule:
    def rule(call: FailedCall, facts: Optional[Facts]) -> Root:
        secret = secret_of(call)
        return Root(kind, secret, f"{_name(secret)} ({what})", ((secret, topics, 0), (secret, ANY, 1)))

    return rule


secret_policy = _secret_root("secret-policy", "its resource policy", _t("policy"))
secret_state = _secret_root("secret-state", "its state", _t("state", "rotation"))
secret_id = _secret_root("secret-id", "not found by the id callers use", _t("state"))
secret_owner = _secret_root("secret-owner", "managed by another service", ANY)


def rotation(call: FailedCall, facts: Optional[Facts]) -> Root:
    secret = secret_of(call)
    searches = ((secret, _t("rotation", "state", "key", "policy"), 0),)
    if call.rotation_step and call.principal.identity_arn:  # the rotation function's own role
        searches += ((principal_key(call.principal.identity_arn), _t(*IDENTITY, *BOUNDARY), 0),)
    return Root("rotation", secret, f"the rotation of {_name(secret)}", searches)


#: The IAM changes each kind of denial of a principal's permissions can come from (auditor.changes'
#: topics): an identity-policy denial from its own or its groups' policies and its group membership,
#: a boundary denial from its boundary. A session policy is passed when the role is assumed: no
#: recorded change explains it. Any other denial of the principal (the message names no policy
#: type; a condition; temporary credentials): either.
IDENTITY = ("identity-policy", "membership")
BOUNDARY = ("boundary",)
_DENIAL_TOPICS = {"identity": IDENTITY, "boundary": BOUNDARY, "session": (), "any": IDENTITY + BOUNDARY}


def _links_of(key: str, facts: Optional[Facts]):
    links = facts.links if facts is not None else None
    return links if links is not None and links.principal == key else None


def principal_root(key: str, label: str, kind: str, links=None, denied_policy: str = "") -> Root:
    """The permissions of a principal (``key``: role:<acct>:<name> / user:...), for a denial of
    ``kind`` (identity | boundary | session | any), with the managed policies ``links``
    (facts.LinkFacts) say govern it: a new default version of one of them is a change to this
    principal's permissions (tier 0). Only changes of the denial's kind are searched; when the
    links are unknown, the account's policy versions are searched as "may apply" (tier 1), and
    the root says why they are unknown."""
    topics = _DENIAL_TOPICS[kind]
    searches: list = [(key, frozenset(topics), 0)] if topics else []
    linked: list[tuple[str, str]] = []
    if links is not None:
        if kind in ("identity", "any"):
            linked += [(p, "identity") for p in links.policies]
            account = key.split(":")[1] if key.count(":") >= 2 else ""
            searches += [(f"group:{account}:{g}", _t("identity-policy"), 0) for g in links.groups]
        if kind in ("boundary", "any") and links.boundary:
            linked.append((links.boundary, "boundary"))
    if denied_policy and kind != "session" and all(p != denied_policy for p, _ in linked):
        linked.append((denied_policy, "boundary" if kind == "boundary" else "identity"))  # the message names it
    searches += [(f"policy:{p}", _t("policy-version"), 0) for p, _ in linked]
    note = ""
    if kind != "session" and (links is None or not links.known):
        account = key.split(":")[1] if key.startswith(("role:", "user:")) else ""
        if account:
            searches.append((f"iam-policies:{account}", _t("policy-version"), 1))
        note = (links.note if links is not None and links.note else
                "the managed policies that govern it could not be looked up")
        if links is not None and links.source == "records" and linked:
            note = "its managed policies are known from attach and boundary records only, not from IAM lookups"
    return Root("principal-permissions", key, f"the permissions of {label}", tuple(searches), links=tuple(linked), note=note)


def _principal_rule(kind: str) -> RootRule:
    def rule(call: FailedCall, facts: Optional[Facts]) -> Root:
        key, label = _principal(call)
        d = call.denial
        denied = d.policy_arn if d is not None and d.policy_arn.startswith("arn:") and ":iam::" in d.policy_arn else ""
        return principal_root(key, label, kind, _links_of(key, facts), denied)

    rule.__name__ = f"principal_{kind}"
    return rule


principal_identity = _principal_rule("identity")
principal_boundary = _principal_rule("boundary")
principal_session = _principal_rule("session")
principal_permissions = _principal_rule("any")


def with_links(root: Root, links) -> Root:
    """A principal's root again, with what ``links`` (facts.LinkFacts) say governs it (the CLI,
    which learns them from the attach and boundary records of its input)."""
    if root.kind != "principal-permissions":
        return root
    topics = next((t for k, t, tier in root.searches if k == root.id and tier == 0), frozenset())
    kind = next((k for k, t in _DENIAL_TOPICS.items() if frozenset(t) == topics), "session" if not topics else "any")
    label = root.label.removeprefix("the permissions of ")
    return principal_root(root.id, label, kind, links)


def iam_policy(policy_arn: str, relation: str = "identity") -> Root:
    """A customer managed policy whose new default version breaks the principals it governs: one
    root for all of them (one incident, one alert), whatever the number of callers."""
    key = f"policy:{policy_arn}"
    what = "the permissions boundary" if relation == "boundary" else "a managed policy"
    return Root("iam-policy", key, f"the managed policy {policy_arn} ({what} of the failing callers)",
                ((key, _t("policy-version"), 0),), links=((policy_arn, relation),))


def _denial_kind(call: FailedCall) -> str:
    d = call.denial
    policy_type = d.policy_type if d is not None else ""
    return {"identity-based": "identity", "permissions boundary": "boundary", "session": "session"}.get(policy_type, "any")


def caller_policy(call: FailedCall, facts: Optional[Facts]) -> Root:
    """A denial by a policy of the caller's, by the type the message names."""
    return _principal_rule(_denial_kind(call))(call, facts)


def principal_credentials(call: FailedCall, facts: Optional[Facts]) -> Root:
    key, label = _principal(call)
    return Root("principal-credentials", key, f"the credentials of {label}", ((key, _t("credentials"), 0),))


def org_policy(call: FailedCall, facts: Optional[Facts]) -> Root:
    arn = call.denial.policy_arn if call.denial is not None else ""
    policy = arn.rsplit("/", 1)[-1] if ":organizations::" in arn else ""
    if policy:
        key = f"org-policy:{policy}"
        return Root("org-policy", key, f"the organization policy {arn}", ((key, ANY, 0), ("org-policies", ANY, 1)))
    return Root("org-policy", f"org-policies:{call.account}",
                f"the service or resource control policies that apply to account {call.account or '?'}",
                ((f"org-policies:{call.account}", ANY, 0), ("org-policies", ANY, 0)))


def vpc_endpoint(call: FailedCall, facts: Optional[Facts]) -> Root:
    if call.vpc_endpoint_id:
        key = f"vpce:{call.vpc_endpoint_id}"
        return Root("vpc-endpoint", key, f"the policy of VPC endpoint {call.vpc_endpoint_id}", ((key, ANY, 0),))
    return Root("vpc-endpoint", f"vpce-in:{call.account}:{call.region}",
                f"the VPC endpoint policy for {call.service} in {call.account or '?'}/{call.region or '?'}")


def request_rate(call: FailedCall, facts: Optional[Facts]) -> Root:
    rid = f"rate:{call.account}:{call.region}:{call.service}:{call.action}"
    return Root("request-rate", rid, f"the {call.service}:{call.action} request rate in {call.account or '?'}/{call.region or '?'}")


def request(call: FailedCall, facts: Optional[Facts]) -> Root:
    key, label = _principal(call)
    return Root("request", f"{key}|{call.service}:{call.action}", f"the {call.service}:{call.action} requests of {label}")


def unknown(call: FailedCall, facts: Optional[Facts]) -> Root:
    key, label = _principal(call)
    return Root("unknown", f"{key}|{call.service}:{call.action}|{call.error_code}",
                f"{call.error_code} on {call.service}:{call.action} for {label}")


def by_denying_policy(call: FailedCall, facts: Optional[Facts]) -> Root:
    """An explicit deny: the resource's policy when the message says resource-based, else the caller's."""
    d = call.denial
    if d is not None and d.policy_type == "resource-based":
        return key_policy(call, facts) if call.service == "kms" else secret_policy(call, facts)
    if d is not None and d.policy_type in ("service control", "resource control"):
        return org_policy(call, facts)
    return caller_policy(call, facts)


def resource_policy(call: FailedCall, facts: Optional[Facts]) -> Root:
    return key_policy(call, facts) if call.service == "kms" else secret_policy(call, facts)


_CALLER_POLICIES = frozenset({"identity-based", "permissions boundary", "session", "service control", "resource control"})


def kms_key_access(call: FailedCall, facts: Optional[Facts]) -> Root:
    """Access to the secret's KMS key: the key policy, unless the message says a policy of the
    caller refused. Secrets Manager's own "Access to KMS is not allowed" does not say which
    policy refused; the KMS record it made for the caller does: until that record is seen, the
    root is not known (auditor.pairing waits for it)."""
    d = call.denial
    if d is not None and d.policy_type in _CALLER_POLICIES:
        return org_policy(call, facts) if d.policy_type in ("service control", "resource control") else caller_policy(call, facts)
    root = key_policy(call, facts)
    if call.service == "secretsmanager" and (d is None or not d.policy_type or not d.action.startswith("kms:")):
        return Root(root.kind, root.id, root.label, root.searches, known=False)
    return root


def _name(key: str) -> str:
    """A change key as people read it: 'key arn:...', 'secret prod/db in 1111/us-east-1'."""
    kind, _, rest = key.partition(":")
    if kind == "key":
        return "key " + rest
    if kind == "secret":
        account, region, name = (rest.split(":", 2) + ["", ""])[:3]
        return f"secret {name} in {account or '?'}/{region or '?'}"
    if kind == "alias":
        account, region, name = (rest.split(":", 2) + ["", ""])[:3]
        return f"alias {name} in {account or '?'}/{region or '?'}"
    if kind == "key-of":
        return _name(rest)
    return key


#: Root kinds whose id is the change key of the resource they are rooted in, by the key's kind:
#: a change recorded under such a key can start (or end) an incident of these kinds with that id.
_ROOTED_IN = {
    "key": ("key-policy", "key-state", "key-spec", "key-id"),
    "alias": ("key-id",),
    "secret": ("secret-policy", "secret-state", "secret-id", "secret-owner", "rotation"),
    "role": ("principal-permissions", "principal-credentials"),
    "user": ("principal-permissions", "principal-credentials"),
    "org-policy": ("org-policy",),
    "org-policies": ("org-policy",),
    "vpce": ("vpc-endpoint",),
    "policy": ("iam-policy",),
}


def touched_by(change_key: str) -> list[Root]:
    """The roots a change recorded under ``change_key`` is a change *to* (tier 0): the incidents
    to look at when it arrives after their failures. Only identity matters (kind and id)."""
    kind = change_key.partition(":")[0]
    if kind == "org-policies" and ":" not in change_key:
        return []  # any account's: the change names no account (attached to an OU or the root)
    return [Root(k, change_key) for k in _ROOTED_IN.get(kind, ())]
