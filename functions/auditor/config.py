"""The function's configuration: one typed, validated object built once from the environment
(infra/function.py sets it; the names are in ``auditor.contract.Env``)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Mapping, Optional

from .contract import NAMESPACE, SERVICE, Env

__all__ = ["Config", "ConfigError"]

#: Why 30 minutes: a caller that fails on every request keeps an incident busy, but many
#: callers fail only when they refresh a cached secret (the Secrets Manager caching clients
#: and the Lambda extension refresh every 5 to 60 minutes) or run on a schedule; half an hour
#: of silence is long enough not to resolve an incident between two such refreshes (and to
#: outlast CloudTrail's delivery delay to EventBridge), short enough that "resolved" reaches
#: on-call soon after the fix. Set INCIDENT_QUIET_SECONDS to tune it.
DEFAULT_QUIET_SECONDS = 1800
#: At most one "updated" per incident in this long while it keeps failing.
DEFAULT_UPDATE_SECONDS = 900


class ConfigError(ValueError):
    """An environment variable is missing or invalid: the message names it and what is allowed."""


def _int(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        raise ConfigError(f"{name}={raw!r}: expected a whole number from {low} to {high}") from None
    if not low <= value <= high:
        raise ConfigError(f"{name}={raw!r}: expected a whole number from {low} to {high}")
    return value


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = (env.get(name) or "").strip().lower()
    if not raw:
        return default
    if raw not in ("true", "false"):
        raise ConfigError(f"{name}={env.get(name)!r}: expected true or false")
    return raw == "true"


@dataclass(frozen=True)
class Config:
    """The function's settings, read once at init from its environment (contract.Env) and validated."""

    topic_arn: str
    table_name: str = ""  # no table: every batch notifies its root causes (no state, no storms protection)
    region: Optional[str] = None
    quiet_seconds: int = DEFAULT_QUIET_SECONDS
    update_seconds: int = DEFAULT_UPDATE_SECONDS
    change_retention_days: int = 7
    consistency_window_seconds: int = 600
    simulate_policies: bool = False
    trace_subsegments: bool = False
    bus_name: str = ""  # the incidents bus: every message also goes there as an EventBridge event (docs/events.md)
    timeout_seconds: int = 30  # the function's own: the state table's timeouts and the scheduled run are sized from it
    namespace: str = NAMESPACE
    service: str = SERVICE

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> "Config":
        topic = (env.get(Env.TOPIC_ARN) or "").strip()
        if not topic.startswith("arn:") or topic.count(":") < 5:
            raise ConfigError(f"{Env.TOPIC_ARN}={topic!r}: expected the findings topic's ARN")
        # Lambda always sets AWS_REGION; run elsewhere, the topic's own region is the default.
        region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or topic.split(":")[3] or None
        return cls(
            topic_arn=topic,
            table_name=(env.get(Env.TABLE_NAME) or "").strip(),
            region=region,
            quiet_seconds=_int(env, Env.QUIET_SECONDS, DEFAULT_QUIET_SECONDS, 0, 30 * 86400),
            update_seconds=_int(env, Env.UPDATE_SECONDS, DEFAULT_UPDATE_SECONDS, 0, 86400),
            change_retention_days=_int(env, Env.CHANGE_RETENTION_DAYS, 7, 1, 90),
            consistency_window_seconds=_int(env, Env.CONSISTENCY_WINDOW_SECONDS, 600, 0, 86400),
            simulate_policies=_bool(env, Env.SIMULATE_POLICIES, False),
            trace_subsegments=_bool(env, Env.TRACE_SUBSEGMENTS, False),
            bus_name=(env.get(Env.INCIDENT_BUS_NAME) or "").strip(),
            timeout_seconds=_int(env, Env.TIMEOUT_SECONDS, 30, 3, 900),
            namespace=env.get(Env.POWERTOOLS_METRICS_NAMESPACE) or NAMESPACE,
            service=env.get(Env.POWERTOOLS_SERVICE_NAME) or SERVICE,
        )
