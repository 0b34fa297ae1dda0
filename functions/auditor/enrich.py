"""Facts from read-only AWS lookups: DescribeSecret, DescribeKey, and (opt-in) IAM policy
simulation. Only when a fact can change the verdict; cached for the life of the container;
short timeouts; a lookup that fails is recorded (and lowers confidence), it never fails the event.

Never GetSecretValue, never Decrypt, never a write.
"""

from __future__ import annotations

import ipaddress
import threading
import time
from collections import OrderedDict
from typing import Any, Callable, Optional

from .causes.secret_partial_arn import looks_generated, split
from .facts import Facts, KeyFacts, SecretFacts, SimulationFacts
from .trail import ACCESS_DENIED_CODES, FailedCall

SECRET_CODES = frozenset({"ResourceNotFoundException", "InvalidRequestException", "DecryptionFailure",
                          "EncryptionFailure", "ValidationException"}) | ACCESS_DENIED_CODES
KEY_CODES = frozenset({"InvalidKeyUsageException", "KMSInvalidStateException", "DisabledException",
                       "KeyUnavailableException"})
SM_KEY_CODES = frozenset({"EncryptionFailure", "DecryptionFailure", "InvalidRequestException"})
_SM = "secretsmanager.amazonaws.com"


class TTLCache:
    """A small LRU with expiry: a storm of the same failure costs one lookup per TTL."""

    def __init__(self, size: int = 1024, ttl: float = 300.0, clock: Callable[[], float] = time.monotonic):
        self.size, self.ttl, self.clock = size, ttl, clock
        self._items: OrderedDict[Any, tuple[float, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key):
        with self._lock:
            hit = self._items.get(key)
            if hit is None or hit[0] < self.clock():
                return None
            self._items.move_to_end(key)
            return hit[1]

    def put(self, key, value, ttl: Optional[float] = None) -> None:
        with self._lock:
            self._items[key] = (self.clock() + (self.ttl if ttl is None else ttl), value)
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)


def _error_code(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return response.get("Error", {}).get("Code") or type(exc).__name__
    return type(exc).__name__  # ConnectTimeoutError, ReadTimeoutError, EndpointConnectionError, ...


def _iso(value: Any) -> str:
    return value.isoformat() if hasattr(value, "isoformat") else (value or "")


class Enricher:
    def __init__(self, *, consistency_window_seconds: int = 600, simulate_policies: bool = False, session=None,
                 timeout_seconds: float = 2.0, cache: Optional[TTLCache] = None):
        self.window = consistency_window_seconds
        self.simulate = simulate_policies
        self.timeout = timeout_seconds
        self._session = session
        self._clients: dict[tuple[str, str], Any] = {}
        self.cache = cache or TTLCache()
        self.failures = 0
        self.lookups = 0
        self._lock = threading.Lock()  # batches look up in parallel threads

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
            from botocore.config import Config

            if self._session is None:
                import boto3

                self._session = boto3.session.Session()
            config = Config(connect_timeout=self.timeout, read_timeout=self.timeout,
                            retries={"max_attempts": 2, "mode": "standard"}, max_pool_connections=16)
            found = self._clients[key] = self._session.client(service, region_name=region or None, config=config)
            return found

    def _failed(self) -> None:
        with self._lock:
            self.failures += 1

    def _looked_up(self) -> None:
        with self._lock:
            self.lookups += 1

    # -- the one entry point ------------------------------------------------------------------
    def facts_for(self, call: FailedCall) -> Optional[Facts]:
        notes: list[str] = []
        secret = key = simulation = None
        try:
            if call.service == "secretsmanager" and call.error_code in SECRET_CODES and call.resource:
                secret = self._secret(call, notes)
            key_id = ""
            if call.service == "kms" and (call.error_code in KEY_CODES or
                                          (call.error_code in ACCESS_DENIED_CODES and (call.secret_arn or call.principal.invoked_by == _SM))):
                key_id = call.resource
            elif call.service == "secretsmanager" and call.error_code in SM_KEY_CODES:
                key_id = call.kms_key_id
            if key_id:
                key = self._key(call, key_id, notes)
            if self.simulate and call.denial is not None:
                simulation = self._simulation(call, notes)
        except Exception as exc:  # noqa: BLE001 - enrichment must never fail the event
            self._failed()
            notes.append(f"enrichment failed unexpectedly ({type(exc).__name__}): confidence lowered")
        if secret is None and key is None and simulation is None and not notes:
            return None
        return Facts(secret=secret, key=key, simulation=simulation, notes=tuple(notes), window_seconds=self.window)

    # -- lookups -------------------------------------------------------------------------------
    def _foreign(self, call: FailedCall, arn: str, notes: list[str]) -> bool:
        parts = arn.split(":")
        if arn.startswith("arn:") and len(parts) > 4 and parts[4] and call.account and parts[4] != call.account:
            notes.append(f"not looked up: {arn} is in another account ({parts[4]})")
            return True
        return False

    def _secret(self, call: FailedCall, notes: list[str]) -> Optional[SecretFacts]:
        lookup = call.resource
        parts = split(lookup)
        if parts and not looks_generated(parts[1]):
            lookup = parts[0]  # a partial ARN's name: describe by name, as real Secrets Manager resolves it
        if self._foreign(call, call.resource, notes):
            return None
        return self._cached("DescribeSecret", call.region, lookup, self._describe_secret, notes)

    def _cached(self, api: str, region: str, resource_id: str, lookup, notes: list[str]):
        """One lookup through the cache; failures are cached briefly (a storm must not hammer AWS) and noted."""
        cache_key = (api, region, resource_id)
        found = self.cache.get(cache_key)
        if found is None:
            found = lookup(region, resource_id)
            self.cache.put(cache_key, found, ttl=None if not found.error else 30.0)
        if found.error:
            self._failed()
            notes.append(f"{api} failed ({found.error}): confidence lowered")
        return found

    def _describe_secret(self, region: str, secret_id: str) -> SecretFacts:
        self._looked_up()
        try:
            r = self.client("secretsmanager", region).describe_secret(SecretId=secret_id)
        except Exception as exc:  # noqa: BLE001
            code = _error_code(exc)
            return SecretFacts(found=False) if code == "ResourceNotFoundException" else SecretFacts(error=code)
        return SecretFacts(
            found=True, arn=r.get("ARN", ""), name=r.get("Name", ""), owning_service=r.get("OwningService", "") or "",
            deleted_date=_iso(r.get("DeletedDate")), created_date=_iso(r.get("CreatedDate")),
            last_changed_date=_iso(r.get("LastChangedDate")), kms_key_id=r.get("KmsKeyId", "") or "",
        )

    def _key(self, call: FailedCall, key_id: str, notes: list[str]) -> Optional[KeyFacts]:
        if self._foreign(call, key_id, notes):
            return None
        return self._cached("DescribeKey", call.region, key_id, self._describe_key, notes)

    def _describe_key(self, region: str, key_id: str) -> KeyFacts:
        self._looked_up()
        try:
            m = self.client("kms", region).describe_key(KeyId=key_id)["KeyMetadata"]
        except Exception as exc:  # noqa: BLE001
            code = _error_code(exc)
            return KeyFacts(found=False) if code == "NotFoundException" else KeyFacts(error=code)
        return KeyFacts(found=True, key_id=m.get("KeyId", ""), arn=m.get("Arn", ""),
                        key_spec=m.get("KeySpec", "") or m.get("CustomerMasterKeySpec", ""),
                        key_usage=m.get("KeyUsage", ""), key_state=m.get("KeyState", ""), key_manager=m.get("KeyManager", ""))

    def _simulation(self, call: FailedCall, notes: list[str]) -> Optional[SimulationFacts]:
        principal = call.principal.identity_arn
        if ":role/" not in principal and ":user/" not in principal:
            notes.append("not simulated: the caller is not an IAM role or user")
            return None
        action = call.denial.action if call.denial and call.denial.action else f"{call.service}:{call.action}"
        resource = call.denial.resource if call.denial and call.denial.resource.startswith("arn:") else ""
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
        cache_key = ("sim", principal, action, resource, tuple(context))
        cached = self.cache.get(cache_key)
        if cached is None:
            cached = self._simulate(principal, action, resource, context)
            self.cache.put(cache_key, cached, ttl=60.0)
        if cached.error:
            self._failed()
            notes.append(f"policy simulation failed ({cached.error}): confidence lowered")
        return cached

    def _simulate(self, principal: str, action: str, resource: str, context: list) -> SimulationFacts:
        self._looked_up()
        iam = self.client("iam", "us-east-1")
        base = {"PolicySourceArn": principal, "ActionNames": [action]}
        if resource:
            base["ResourceArns"] = [resource]
        try:
            entries = [{"ContextKeyName": k, "ContextKeyValues": [v], "ContextKeyType": t} for k, v, t in context]
            with_ctx = iam.simulate_principal_policy(**base, ContextEntries=entries)["EvaluationResults"][0]
            without = iam.simulate_principal_policy(**base)["EvaluationResults"][0]
        except Exception as exc:  # noqa: BLE001
            return SimulationFacts(error=_error_code(exc))
        keys = tuple(k for k, _, _ in context) + tuple(without.get("MissingContextValues", []))
        return SimulationFacts(
            decision=with_ctx.get("EvalDecision", ""),
            condition_keys=tuple(dict.fromkeys(keys)),
            matched_statements=tuple(s.get("SourcePolicyId", "") for s in with_ctx.get("MatchedStatements", [])),
            allowed_without_context=without.get("EvalDecision") == "allowed",
        )
