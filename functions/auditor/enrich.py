"""Facts from read-only AWS lookups: DescribeSecret, DescribeKey, and (opt-in) IAM policy
simulation. Only when a fact can change the verdict; cached for the life of the container;
short timeouts; a lookup that fails is recorded (and lowers confidence), it never fails the event.

Never GetSecretValue, never Decrypt, never a write. The only other call is one
sts:GetCallerIdentity per container (no permission needed), to learn the function's own
account: a record forwarded from another account of the organization names secrets and keys
that a lookup here would look for in the wrong account, so those are not looked up.

Secrets given as an ARN whose name ends in ``-XXXXXX`` are ambiguous (a complete ARN, or a
partial ARN of a secret whose name ends in a hyphen and six characters). For a
ResourceNotFoundException they are described by the ARN's name part first (real Secrets
Manager does not resolve such a partial ARN; moto does), then by the ARN; for other errors by
the ARN first, then by the name. A lookup that fails stops the sequence.
"""

from __future__ import annotations

import ipaddress
import re
import threading
import time
from collections import OrderedDict
from typing import Any, Callable, Optional

from .aws import Breaker, error_code
from .aws import client as aws_client
from .causes._arns import split_secret_arn as split
from .changes import principal_key
from .facts import Facts, KeyFacts, LinkFacts, SecretFacts, SimulationFacts
from .records import ACCESS_DENIED_CODES, FailedCall

SECRET_CODES = frozenset({"ResourceNotFoundException", "InvalidRequestException", "DecryptionFailure",
                          "EncryptionFailure", "ValidationException"}) | ACCESS_DENIED_CODES
KEY_CODES = frozenset({"InvalidKeyUsageException", "KMSInvalidStateException", "DisabledException",
                       "KeyUnavailableException"})
#: Secrets Manager errors where the KMS key's state or spec can decide the verdict.
SM_KEY_CODES = frozenset({"EncryptionFailure", "DecryptionFailure", "InvalidRequestException"})
_SM = "secretsmanager.amazonaws.com"
NOT_FOUND_TTL = 60.0  # a secret created after the failure should be seen soon
#: A role's or user's managed policies and boundary change rarely: looked up once per this long
#: (its policies' new versions are changes of their own, recorded and searched separately).
LINK_TTL = 600.0
#: Principals whose policies are looked up per invocation at most (two or three IAM calls each):
#: beyond it, a failure keeps what the records and earlier lookups say (its alert says so).
LINK_LOOKUPS_PER_INVOCATION = 25
#: Managed policies whose principals are listed (ListEntitiesForPolicy) per invocation at most.
ENTITY_LOOKUPS_PER_INVOCATION = 5
_IAM_PRINCIPAL = re.compile(r"^arn:[\w-]+:iam::(\d{12}):(role|user)/(?:.*/)?([^/]+)$")

#: An AWS Region's name (us-east-1, us-gov-west-1, cn-north-1, us-isob-east-1, eusc-de-east-1). A
#: record's awsRegion names the endpoint its lookups call: any other value is not looked up.
_REGION_NAME = re.compile(r"[a-z]{2,4}(?:-[a-z]+)+-[0-9]{1,2}")
#: Regions one container looks up in, at most (AWS has about 40): records cannot make it build a
#: client for every name they make up.
MAX_REGIONS = 64

FAILURE_TTL = 30.0  # a storm must not hammer AWS, and a transient failure must not stick
BREAKER_SECONDS = 30.0  # an endpoint that did not answer is not asked again for this long
#: The Region IAM is asked in: the function's own ("" for the client). IAM is global per partition, and
#: botocore resolves the endpoint of the partition the function runs in (iam.amazonaws.com,
#: iam.cn-north-1.amazonaws.com.cn, iam.us-gov.amazonaws.com, ...): the callers asked about are in its
#: own account, so in that partition.
_IAM_HOME = ""


class TTLCache:
    """A small LRU with expiry: a storm of the same failure costs one lookup per TTL."""

    def __init__(self, size: int = 1024, ttl: float = 300.0, clock: Callable[[], float] = time.monotonic):
        self.size, self.ttl, self.clock = size, ttl, clock
        self._items: OrderedDict[Any, tuple[float, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key):
        with self._lock:
            hit = self._items.get(key)
            if hit is None:
                return None
            if hit[0] < self.clock():
                del self._items[key]
                return None
            self._items.move_to_end(key)
            return hit[1]

    def put(self, key, value, ttl: Optional[float] = None) -> None:
        with self._lock:
            self._items[key] = (self.clock() + (self.ttl if ttl is None else ttl), value)
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)


def _iso(value: Any) -> str:
    return value.isoformat() if hasattr(value, "isoformat") else (value or "")


def _arn_account(value: str) -> str:
    parts = value.split(":", 5)
    return parts[4] if value.startswith("arn:") and len(parts) > 4 else ""


class Enricher:
    """``facts_for(call)`` -> Facts or None (nothing worth looking up); never raises.

    ``failures`` counts lookups that AWS answered with an error or did not answer (a cached
    failure reused for a later event is noted in that event's facts, not counted again);
    ``requests`` counts the DescribeSecret / DescribeKey / simulation calls made (tests and
    benchmarks read it; the one GetCallerIdentity is not counted).
    ``own_account`` skips the GetCallerIdentity call when the caller knows the account.
    """

    def __init__(self, *, consistency_window_seconds: int = 600, simulate_policies: bool = False, session=None,
                 timeout_seconds: float = 2.0, cache: Optional[TTLCache] = None, own_account: Optional[str] = None,
                 look_up_links: bool = True):
        self.window = consistency_window_seconds
        self.simulate = simulate_policies
        self.look_up_links = look_up_links
        self.timeout = timeout_seconds
        self._session = session
        self._clients: dict[tuple[str, str], Any] = {}
        self._regions: set[str] = set()  # the Regions looked up in so far (MAX_REGIONS at most)
        self.cache = cache or TTLCache()
        self.failures = 0
        self.requests = 0
        self._own_account = own_account
        self._lock = threading.Lock()  # batches look up in parallel threads
        self._inflight: dict[Any, threading.Event] = {}
        self._breaker = Breaker(BREAKER_SECONDS)  # per (service, region): an endpoint that did not answer
        self._link_budget = LINK_LOOKUPS_PER_INVOCATION
        self._entity_budget = ENTITY_LOOKUPS_PER_INVOCATION
        self._entities: dict[str, tuple[float, frozenset[str]]] = {}  # policy ARN -> (until, principal keys)

    def begin(self) -> None:
        """A new invocation: its own budget of IAM lookups (the caches stay)."""
        with self._lock:
            self._link_budget = LINK_LOOKUPS_PER_INVOCATION
            self._entity_budget = ENTITY_LOOKUPS_PER_INVOCATION

    # -- clients ---------------------------------------------------------------------------------
    def client(self, service: str, region: str):
        key = (service, region)
        found = self._clients.get(key)
        if found is not None:
            return found
        with self._lock:
            found = self._clients.get(key)
            if found is not None:
                return found
            options = dict(connect_timeout=self.timeout, read_timeout=self.timeout,
                           retries={"max_attempts": 2, "mode": "standard"}, max_pool_connections=16)
            if self._session is not None:
                from botocore.config import Config

                found = self._session.client(service, region_name=region or None, config=Config(**options))
            else:
                found = aws_client(service, region, **options)
            self._clients[key] = found
            return found

    def _failed(self) -> None:
        with self._lock:
            self.failures += 1

    def _requested(self) -> None:
        with self._lock:
            self.requests += 1

    # -- the one entry point ------------------------------------------------------------------
    def facts_for(self, call: FailedCall) -> Optional[Facts]:
        notes: list[str] = []
        secret = key = simulation = None
        try:
            wants_secret = call.service == "secretsmanager" and call.error_code in SECRET_CODES and bool(call.resource)
            key_id = self._key_id(call)
            wants_key = bool(key_id) or (call.service == "secretsmanager" and call.error_code in SM_KEY_CODES)
            wants_sim = self.simulate and call.denial is not None
            if not (wants_secret or wants_key or wants_sim):
                return None  # most failures: nothing a lookup could change
            own = self._account(notes)
            if own is None:
                pass  # noted: own account unknown, nothing looked up
            elif call.account and call.account != own:
                notes.append(f"not looked up: resource in another account ({call.account}; the auditor runs in {own})")
            elif not self._region_allowed(call.region, notes):
                pass  # noted
            else:
                if wants_secret:
                    secret = self._secret(call, own, notes)
                if not key_id and secret is not None and secret.found and call.error_code in SM_KEY_CODES:
                    key_id = secret.kms_key_id  # the secret's own key (GetSecretValue names none)
                if key_id:
                    key = self._key(call, key_id, own, notes)
                if wants_sim:
                    simulation = self._simulation(call, own, secret, key, notes)
        except Exception as exc:  # noqa: BLE001 - enrichment must never fail the event
            self._failed()
            notes.append(f"enrichment failed unexpectedly ({type(exc).__name__}): confidence lowered")
        if secret is None and key is None and simulation is None and not notes:
            return None
        return Facts(secret=secret, key=key, simulation=simulation, notes=tuple(notes), window_seconds=self.window)

    @staticmethod
    def _key_id(call: FailedCall) -> str:
        if call.service == "kms":
            if call.error_code in KEY_CODES:
                return call.resource
            if call.error_code in ACCESS_DENIED_CODES and (call.secret_arn or call.principal.invoked_by == _SM):
                return call.resource
            return ""
        if call.service == "secretsmanager" and call.error_code in SM_KEY_CODES:
            return call.kms_key_id
        return ""

    def _region_allowed(self, region: str, notes: list[str]) -> bool:
        """Whether lookups may go to ``region`` ("": the function's own): a Region's name, and one of
        the first MAX_REGIONS this container looks up in. Noted when not."""
        if not region or region in self._regions:
            return True
        if _REGION_NAME.fullmatch(region) is None:
            notes.append(f"not looked up: the record's awsRegion {region!r} is not the name of an AWS Region")
            return False
        with self._lock:
            if len(self._regions) >= MAX_REGIONS:
                notes.append(f"not looked up: this function already looks up in {MAX_REGIONS} Regions, the most it will "
                             f"(the record names {region})")
                return False
            self._regions.add(region)
        return True

    # -- own account ---------------------------------------------------------------------------
    def _account(self, notes: list[str]) -> Optional[str]:
        if self._own_account:
            return self._own_account
        cached = self.cache.get(("GetCallerIdentity",))
        if cached is None:
            cached = self._once(("GetCallerIdentity",), self._caller_identity)
        if cached.startswith("error:"):
            notes.append(f"not looked up: the auditor's own account is unknown (GetCallerIdentity failed ({cached[6:]})): confidence lowered")
            return None
        self._own_account = cached
        return cached

    def _caller_identity(self) -> str:
        try:
            account = self.client("sts", "").get_caller_identity()["Account"]
        except Exception as exc:  # noqa: BLE001
            self._failed()
            self.cache.put(("GetCallerIdentity",), "error:" + error_code(exc), ttl=FAILURE_TTL)
            return "error:" + error_code(exc)
        self.cache.put(("GetCallerIdentity",), account, ttl=10 * 365 * 86400)
        return account

    # -- single flight: parallel threads of a batch asking for the same thing make one call ------
    def _once(self, key, compute: Callable[[], Any]):
        with self._lock:
            event = self._inflight.get(key)
            leader = event is None
            if leader:
                event = self._inflight[key] = threading.Event()
        if not leader:
            event.wait(self.timeout * 4 + 1)
            found = self.cache.get(key)
            if found is not None:
                return found
        try:
            return compute()
        finally:
            if leader:
                with self._lock:
                    self._inflight.pop(key, None)
                event.set()

    # -- lookups -------------------------------------------------------------------------------
    def _foreign(self, value: str, own: str, notes: list[str]) -> bool:
        account = _arn_account(value)
        if account and account != own:
            notes.append(f"not looked up: resource in another account ({value})")
            return True
        return False

    def _secret(self, call: FailedCall, own: str, notes: list[str]) -> Optional[SecretFacts]:
        given = call.resource
        if self._foreign(given, own, notes):
            return None
        parts = split(given)
        if parts is None:
            order = (given,)
        elif call.error_code == "ResourceNotFoundException":
            order = (parts[0], given)  # the name first: is it a partial ARN of an existing secret?
        else:
            order = (given, parts[0])
        found = None
        for secret_id in order:
            found = self._cached("DescribeSecret", "secretsmanager", call.region, secret_id, self._describe_secret, notes)
            if found is None or found.found or found.error:
                break
        return found

    def _key(self, call: FailedCall, key_id: str, own: str, notes: list[str]) -> Optional[KeyFacts]:
        if self._foreign(key_id, own, notes):
            return None
        return self._cached("DescribeKey", "kms", call.region, key_id, self._describe_key, notes)

    def _cached(self, api: str, service: str, region: str, resource_id: str, lookup, notes: list[str]):
        """One lookup through the cache; failures are cached briefly and noted in every event they touch."""
        cache_key = (api, region, resource_id)
        found = self.cache.get(cache_key)
        if found is None:
            why = self._breaker.why_open((service, region))
            if why is not None:
                notes.append(f"not looked up: {service} in {region or 'the default region'} did not answer "
                             f"a moment ago ({why}): confidence lowered")
                return None
            found = self._once(cache_key, lambda: self._fetch(cache_key, service, region, resource_id, lookup))
        if found.error:
            notes.append(f"{api} failed ({found.error}): confidence lowered")
        return found

    def _fetch(self, cache_key, service: str, region: str, resource_id: str, lookup):
        self._requested()
        found = lookup(region, resource_id)
        if found.error:
            self._failed()
            self._breaker.record(found.error, (service, region))
        ttl = FAILURE_TTL if found.error else (None if found.found else NOT_FOUND_TTL)
        self.cache.put(cache_key, found, ttl=ttl)
        return found

    def _describe_secret(self, region: str, secret_id: str) -> SecretFacts:
        try:
            r = self.client("secretsmanager", region).describe_secret(SecretId=secret_id)
        except Exception as exc:  # noqa: BLE001
            code = error_code(exc)
            return SecretFacts(found=False) if code == "ResourceNotFoundException" else SecretFacts(error=code)
        return SecretFacts(
            found=True, arn=r.get("ARN", ""), name=r.get("Name", ""), owning_service=r.get("OwningService", "") or "",
            deleted_date=_iso(r.get("DeletedDate")), created_date=_iso(r.get("CreatedDate")),
            last_changed_date=_iso(r.get("LastChangedDate")), kms_key_id=r.get("KmsKeyId", "") or "",
        )

    def _describe_key(self, region: str, key_id: str) -> KeyFacts:
        try:
            m = self.client("kms", region).describe_key(KeyId=key_id)["KeyMetadata"]
        except Exception as exc:  # noqa: BLE001
            code = error_code(exc)
            return KeyFacts(found=False) if code == "NotFoundException" else KeyFacts(error=code)
        return KeyFacts(found=True, key_id=m.get("KeyId", ""), arn=m.get("Arn", ""),
                        key_spec=m.get("KeySpec", "") or m.get("CustomerMasterKeySpec", ""),
                        key_usage=m.get("KeyUsage", ""), key_state=m.get("KeyState", ""), key_manager=m.get("KeyManager", ""))

    # -- the managed policies that govern a caller -------------------------------------------------
    def own_account(self) -> Optional[str]:
        """The auditor's own account (GetCallerIdentity once, when the function's ARN did not say)."""
        return self._account([])

    def links(self, identity_arn: str, own: Optional[str]) -> Optional[LinkFacts]:
        """What governs the role or user ``identity_arn``: its attached managed policies (and, for
        a user, its groups' and the groups), its permissions boundary (GetRole/GetUser,
        ListAttached*Policies, ListGroupsForUser). Cached for LINK_TTL across invocations; at most
        LINK_LOOKUPS_PER_INVOCATION principals looked up per invocation; a principal a listed
        policy's entities already name is not looked up again. None for a caller that is not a
        role or user; else the LinkFacts, with a note when they could not be looked up."""
        m = _IAM_PRINCIPAL.match(identity_arn)
        if m is None:
            return None
        account, kind, name = m.groups()
        key = principal_key(identity_arn)
        if own is None:
            return LinkFacts(key, note="not looked up: the auditor's own account is unknown")
        if account != own:
            return LinkFacts(key, note=f"not looked up: the caller is in another account ({account})")
        cached = self.cache.get(("links", key))
        if cached is not None:
            return cached
        listed = self._listed(key)
        if listed:  # a policy that changed lists it already: no lookup of its own
            return LinkFacts(key, policies=tuple(listed), source="lookups",
                             note="only the managed policies that list it were looked up (ListEntitiesForPolicy)")
        with self._lock:
            allowed = self._link_budget > 0
            if allowed:
                self._link_budget -= 1
        if not allowed:
            return LinkFacts(key, note=f"not looked up: more than {LINK_LOOKUPS_PER_INVOCATION} callers' policies to look "
                                       "up in one invocation")
        return self._once(("links", key), lambda: self._look_up_links(key, kind, name))

    def _look_up_links(self, key: str, kind: str, name: str) -> LinkFacts:
        why = self._breaker.why_open(("iam", _IAM_HOME))
        if why is not None:
            return LinkFacts(key, note=f"not looked up: IAM did not answer a moment ago ({why})")
        iam = self.client("iam", _IAM_HOME)
        try:
            self._requested()
            if kind == "role":
                boundary = (iam.get_role(RoleName=name)["Role"].get("PermissionsBoundary") or {}).get("PermissionsBoundaryArn", "")
                policies = self._attached(iam.list_attached_role_policies, RoleName=name)
                groups: list[str] = []
            else:
                boundary = (iam.get_user(UserName=name)["User"].get("PermissionsBoundary") or {}).get("PermissionsBoundaryArn", "")
                policies = self._attached(iam.list_attached_user_policies, UserName=name)
                self._requested()
                groups = [g["GroupName"] for g in iam.list_groups_for_user(UserName=name, MaxItems=20).get("Groups", [])]
                for group in groups[:10]:
                    policies += self._attached(iam.list_attached_group_policies, GroupName=group)
        except Exception as exc:  # noqa: BLE001 - recorded, never raised
            code = error_code(exc)
            if code == "NoSuchEntity":  # an answer: the role or user is gone (deleted since the call?)
                found = LinkFacts(key, known=True, source="lookups",
                                  note=f"IAM has no such {kind} now (deleted after the call?)")
                self.cache.put(("links", key), found, ttl=NOT_FOUND_TTL)
                return found
            self._failed()
            self._breaker.record(code, ("iam", _IAM_HOME))
            found = LinkFacts(key, note=f"not looked up: IAM answered {code}")
            self.cache.put(("links", key), found, ttl=FAILURE_TTL)
            return found
        found = LinkFacts(key, policies=tuple(dict.fromkeys(policies)), groups=tuple(groups), boundary=boundary or "",
                          known=True, source="lookups")
        self.cache.put(("links", key), found, ttl=LINK_TTL)
        return found

    def _attached(self, method, **kwargs) -> list[str]:
        out: list[str] = []
        for page in range(3):
            self._requested()
            answer = method(**kwargs, MaxItems=100)
            out += [p["PolicyArn"] for p in answer.get("AttachedPolicies", [])]
            if not answer.get("IsTruncated") or not answer.get("Marker"):
                break
            kwargs["Marker"] = answer["Marker"]
        return out

    def _listed(self, key: str) -> list[str]:
        """The managed policies whose listed entities (ListEntitiesForPolicy, cached) name ``key``
        (by kind and name: the account is the records')."""
        now = time.monotonic()
        kind, _, rest = key.partition(":")
        name = rest.partition(":")[2]
        return [arn for arn, (until, who) in list(self._entities.items())
                if until > now and any(k.startswith(kind + ":") and k.endswith(":" + name) for k in who)]

    def linked_to(self, policy_arn: str) -> set[str]:
        """The principals whose looked-up links (still cached) name ``policy_arn``."""
        with self.cache._lock:
            found = [v for k, (_, v) in self.cache._items.items() if isinstance(k, tuple) and k and k[0] == "links"]
        return {links.principal for links in found
                if isinstance(links, LinkFacts) and (policy_arn in links.policies or links.boundary == policy_arn)}

    def entities(self, policy_arn: str, account: str = "") -> Optional[frozenset[str]]:
        """The roles and users a managed policy is attached to or bounds (ListEntitiesForPolicy,
        no usage filter: both), as change keys of ``account`` (default: the policy's own; the
        account of the records that name them); cached LINK_TTL; at most
        ENTITY_LOOKUPS_PER_INVOCATION a invocation; None when it could not be listed."""
        account = account or (policy_arn.split(":")[4] if policy_arn.count(":") >= 5 else "")
        found = self._entities.get(policy_arn)
        if found is not None and found[0] > time.monotonic():
            return frozenset(f"{k.split(':')[0]}:{account}:{k.split(':', 2)[2]}" for k in found[1])
        if not account:
            return None
        with self._lock:
            allowed = self._entity_budget > 0
            if allowed:
                self._entity_budget -= 1
        if not allowed or self._breaker.why_open(("iam", _IAM_HOME)) is not None:
            return None
        iam = self.client("iam", _IAM_HOME)
        keys: set[str] = set()
        try:
            marker = None
            for _ in range(10):
                self._requested()
                kwargs = {"PolicyArn": policy_arn, "MaxItems": 1000, **({"Marker": marker} if marker else {})}
                answer = iam.list_entities_for_policy(**kwargs)
                keys |= {f"role:{account}:{r['RoleName']}" for r in answer.get("PolicyRoles", [])}
                keys |= {f"user:{account}:{u['UserName']}" for u in answer.get("PolicyUsers", [])}
                marker = answer.get("Marker")
                if not answer.get("IsTruncated") or not marker:
                    break
        except Exception as exc:  # noqa: BLE001
            self._failed()
            self._breaker.record(error_code(exc), ("iam", _IAM_HOME))
            return None
        listed = frozenset(keys)
        self._entities[policy_arn] = (time.monotonic() + LINK_TTL, listed)
        if len(self._entities) > 256:
            self._entities.pop(next(iter(self._entities)))
        return listed

    # -- IAM policy simulation (opt-in) -----------------------------------------------------------
    def _simulation(self, call: FailedCall, own: str, secret, key, notes: list[str]) -> Optional[SimulationFacts]:
        principal = call.principal.identity_arn
        if not principal.startswith("arn:") or (":role/" not in principal and ":user/" not in principal):
            notes.append("not simulated: the caller is not an IAM role or user")
            return None
        if _arn_account(principal) != own:
            notes.append(f"not simulated: the caller is in another account ({principal})")
            return None
        action = call.denial.action if call.denial and call.denial.action else f"{call.service}:{call.action}"
        resource = next((r for r in (call.denial.resource if call.denial else "", call.resource,
                                     secret.arn if secret is not None and secret.found else "",
                                     key.arn if key is not None and key.found else "") if r.startswith("arn:")), "")
        context = []
        try:
            ipaddress.ip_address(call.source_ip)
            context.append(("aws:SourceIp", call.source_ip, "ip"))
        except ValueError:
            pass
        if call.event_time:
            context.append(("aws:CurrentTime", call.event_time, "date"))
        if call.vpc_endpoint_id:
            context.append(("aws:SourceVpce", call.vpc_endpoint_id, "string"))
        if call.region:
            context.append(("aws:RequestedRegion", call.region, "string"))
        # A storm of the same denial costs two simulations a minute: the time is bucketed to the minute.
        bucket = tuple((k, v[:16] if k == "aws:CurrentTime" else v) for k, v, _ in context)
        cache_key = ("SimulatePrincipalPolicy", principal, action, resource, bucket)
        found = self.cache.get(cache_key)
        if found is None:
            found = self._once(cache_key, lambda: self._simulate(cache_key, principal, action, resource, context))
        if found.error:
            notes.append(f"policy simulation failed ({found.error}): confidence lowered")
        return found

    def _simulate(self, cache_key, principal: str, action: str, resource: str, context: list) -> SimulationFacts:
        self._requested()
        iam = self.client("iam", _IAM_HOME)
        base: dict[str, Any] = {"PolicySourceArn": principal, "ActionNames": [action]}
        if resource:
            base["ResourceArns"] = [resource]
        try:
            entries = [{"ContextKeyName": k, "ContextKeyValues": [v], "ContextKeyType": t} for k, v, t in context]
            with_ctx = iam.simulate_principal_policy(**base, ContextEntries=entries)["EvaluationResults"][0]
            without = iam.simulate_principal_policy(**base)["EvaluationResults"][0]
        except Exception as exc:  # noqa: BLE001
            self._failed()
            found = SimulationFacts(error=error_code(exc))
            self.cache.put(cache_key, found, ttl=FAILURE_TTL)
            return found
        decision = _decision(with_ctx, resource)
        allowed_without = _decision(without, resource) == "allowed"
        # The keys the policies' conditions read: reported missing when the context is left out.
        missing = _missing(without, resource)
        supplied = [k for k, _, _ in context]
        keys = [k for k in supplied if k in missing] + [k for k in missing if k not in supplied]
        if not keys and allowed_without and decision != "allowed":
            keys = supplied  # the context flipped it, and the simulator did not say which key
        found = SimulationFacts(
            decision=decision,
            condition_keys=tuple(dict.fromkeys(keys)),
            matched_statements=tuple(dict.fromkeys(s.get("SourcePolicyId", "") for s in _statements(with_ctx, resource)
                                                   if s.get("SourcePolicyId"))),
            allowed_without_context=allowed_without,
        )
        self.cache.put(cache_key, found, ttl=60.0)
        return found


def _resource_result(result: dict, resource: str) -> Optional[dict]:
    for r in result.get("ResourceSpecificResults") or ():
        if r.get("EvalResourceName") == resource:
            return r
    return None


def _decision(result: dict, resource: str) -> str:
    specific = _resource_result(result, resource) if resource else None
    return (specific or {}).get("EvalResourceDecision") or result.get("EvalDecision", "")


def _missing(result: dict, resource: str) -> list[str]:
    """MissingContextValues: top level when no resource was given, else per resource (as AWS documents)."""
    keys = list(result.get("MissingContextValues") or ())
    specific = _resource_result(result, resource) if resource else None
    if specific:
        keys += [k for k in specific.get("MissingContextValues") or () if k not in keys]
    return keys


def _statements(result: dict, resource: str) -> list[dict]:
    specific = _resource_result(result, resource) if resource else None
    return list(result.get("MatchedStatements") or ()) + list((specific or {}).get("MatchedStatements") or ())
