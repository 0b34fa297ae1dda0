"""cdk.json context -> a validated ``AuditorConfig``. Bad values fail synthesis with a clear message."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Callable

from aws_cdk import aws_logs as logs

from auditor.aws import ACCOUNT_ID
from auditor.contract import GLOBAL_EVENTS_REGION

#: Retention periods CloudWatch Logs accepts, in days -> the CDK enum member.
_RETENTION = {
    days: getattr(logs.RetentionDays, name)
    for days, name in (
        (1, "ONE_DAY"), (3, "THREE_DAYS"), (5, "FIVE_DAYS"), (7, "ONE_WEEK"), (14, "TWO_WEEKS"), (30, "ONE_MONTH"),
        (60, "TWO_MONTHS"), (90, "THREE_MONTHS"), (120, "FOUR_MONTHS"), (150, "FIVE_MONTHS"), (180, "SIX_MONTHS"),
        (365, "ONE_YEAR"), (400, "THIRTEEN_MONTHS"), (545, "EIGHTEEN_MONTHS"), (731, "TWO_YEARS"), (1096, "THREE_YEARS"),
        (1827, "FIVE_YEARS"), (2192, "SIX_YEARS"), (2557, "SEVEN_YEARS"), (2922, "EIGHT_YEARS"), (3288, "NINE_YEARS"),
        (3653, "TEN_YEARS"),
    )
}
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_STACK_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9-]{0,127}$")


class ConfigError(ValueError):
    """A context value is invalid; the message names the key, the value and what is allowed."""


@dataclass(frozen=True)
class SlackChannel:
    workspace_id: str
    channel_id: str


@dataclass(frozen=True)
class Organization:
    id: str
    audit_account: str
    home_region: str
    regions: tuple[str, ...]
    organizational_units: tuple[str, ...]
    call_as: str = "DELEGATED_ADMIN"
    #: The management account, where Organizations records its events (us-east-1): optional, a
    #: stack of its own forwards them (StackSets never deploy to the management account).
    management_account: str | None = None


_ORG_ID = re.compile(r"^o-[a-z0-9]{10,32}$")
_REGION = re.compile(r"^[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-\d$")
_OU = re.compile(r"^(ou-[0-9a-z]{4,32}-[a-z0-9]{8,32}|r-[0-9a-z]{4,32})$")


def _organization(raw: Any) -> "Organization | None":
    value = _parsed(raw)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ConfigError(f"context 'organization' is {raw!r}: expected an object "
                          '{"id", "auditAccount", "homeRegion", "regions", "organizationalUnits"} or null')

    def field_(key: str, pattern: re.Pattern, what: str) -> str:
        v = value.get(key)
        if not isinstance(v, str) or not pattern.match(v):
            raise ConfigError(f"context 'organization.{key}' is {v!r}: expected {what}")
        return v

    def list_(key: str, pattern: re.Pattern, what: str) -> tuple[str, ...]:
        v = value.get(key)
        if not isinstance(v, list) or not v or not all(isinstance(i, str) and pattern.match(i) for i in v):
            raise ConfigError(f"context 'organization.{key}' is {v!r}: expected a non-empty list of {what}")
        return tuple(dict.fromkeys(v))

    unknown = set(value) - {"id", "auditAccount", "homeRegion", "regions", "organizationalUnits", "callAs", "managementAccount"}
    if unknown:
        raise ConfigError(f"context 'organization' has unknown keys {sorted(unknown)}")
    call_as = value.get("callAs", "DELEGATED_ADMIN")
    if call_as not in ("DELEGATED_ADMIN", "SELF"):
        raise ConfigError(f"context 'organization.callAs' is {call_as!r}: expected DELEGATED_ADMIN or SELF")
    org = Organization(
        id=field_("id", _ORG_ID, "an organization id like o-a1b2c3d4e5"),
        audit_account=field_("auditAccount", ACCOUNT_ID, "a 12-digit account id"),
        home_region=field_("homeRegion", _REGION, "a region name like us-east-1"),
        regions=list_("regions", _REGION, "region names"),
        organizational_units=list_("organizationalUnits", _OU, "OU ids (ou-xxxx-xxxxxxxx) or the root id (r-xxxx)"),
        call_as=call_as,
        management_account=field_("managementAccount", ACCOUNT_ID, "a 12-digit account id") if "managementAccount" in value else None,
    )
    if org.management_account == org.audit_account and org.home_region == GLOBAL_EVENTS_REGION:
        raise ConfigError(f"context 'organization.managementAccount' is the audit account and 'homeRegion' is {GLOBAL_EVENTS_REGION}: "
                          "the stack's own change rule already reads Organizations events there; leave managementAccount out")
    if org.home_region not in org.regions:
        raise ConfigError(f"context 'organization.homeRegion' {org.home_region!r} must be one of 'organization.regions' {list(org.regions)}")
    return org


# --------------------------------------------------------------------------------------------
# On-call tools (infra/oncall.py): PagerDuty and Opsgenie, their keys named, never given
# --------------------------------------------------------------------------------------------
#: Secrets Manager secret names: 1-512 of these characters.
_SECRET_NAME = re.compile(r"^[A-Za-z0-9/_+=.@-]{1,512}$")
_SECRET_ARN = re.compile(r"^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:[A-Za-z0-9/_+=.@-]{1,512}$")
_KEY_ARN = re.compile(r"^arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key/[A-Za-z0-9-]+$")
#: What a key itself looks like (a PagerDuty integration key: 32 hex characters; an Opsgenie API
#: key: a UUID): given where the secret's name goes, it would end up in the template.
_LOOKS_LIKE_A_KEY = re.compile(r"^(?:[0-9a-fA-F]{32}|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})$")
#: A JSON field of the secret: a CloudFormation dynamic reference's segment cannot hold a colon.
_FIELD = re.compile(r"^[^:{}\s]{1,256}$")


@dataclass(frozen=True)
class SecretRef:
    """Where a key is: a secret of this account by name or ARN, optionally one field of its JSON."""

    secret: str
    field: str = ""

    @property
    def is_arn(self) -> bool:
        return self.secret.startswith("arn:")


@dataclass(frozen=True)
class PagerDuty:
    """PagerDuty Events API v2 (alert events; optionally change events), through the forwarder."""

    key: SecretRef
    #: PagerDuty's service region: "us" (events.pagerduty.com) or "eu" (events.eu.pagerduty.com).
    region: str = "us"
    change_events: bool = False
    #: The customer managed KMS key the secret is encrypted with, if not Secrets Manager's own.
    secret_kms_key: str | None = None


@dataclass(frozen=True)
class Opsgenie:
    """Opsgenie Alert API, through an EventBridge API destination."""

    key: SecretRef
    #: Opsgenie's instance: "us" (api.opsgenie.com) or "eu" (api.eu.opsgenie.com).
    region: str = "us"
    rate_limit_per_second: int = 1


def _secret_ref(name: str, value: dict) -> SecretRef:
    secret, field = value.get("secret"), value.get("secretField", "")
    if isinstance(secret, str) and _LOOKS_LIKE_A_KEY.match(secret):
        # Not echoed: it is most likely the key itself.
        raise ConfigError(f"context '{name}.secret' looks like the key itself (not shown): store the key in AWS Secrets "
                          "Manager and give the secret's name or ARN here; the template must never hold the key")
    if not isinstance(secret, str) or not (_SECRET_ARN.match(secret) or (_SECRET_NAME.match(secret) and not secret.startswith("arn:"))):
        raise ConfigError(f"context '{name}.secret' is {secret!r}: expected the name or the ARN of a Secrets Manager secret "
                          "(of this account and region) that holds the key")
    if field != "" and not (isinstance(field, str) and _FIELD.match(field)):
        raise ConfigError(f"context '{name}.secretField' is {field!r}: expected the name of a field of the secret's JSON "
                          "(no colon, braces or spaces), or leave it out to use the whole secret string")
    return SecretRef(secret, field)


def _tool(name: str, raw: Any, allowed: set[str], example: str) -> dict | None:
    value = _parsed(raw)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ConfigError(f"context '{name}' is {raw!r}: expected an object like {example}, or null")
    unknown = set(value) - allowed
    if unknown:
        raise ConfigError(f"context '{name}' has unknown keys {sorted(unknown)}: allowed are {sorted(allowed)}")
    region = value.get("region", "us")
    if region not in ("us", "eu"):
        raise ConfigError(f"context '{name}.region' is {region!r}: expected \"us\" or \"eu\" (the tool's service region)")
    return value


def _pagerduty(raw: Any) -> "PagerDuty | None":
    value = _tool("pagerduty", raw, {"secret", "secretField", "region", "changeEvents", "secretKmsKey"},
                  '{"secret": "oncall/pagerduty", "secretField": "routingKey", "changeEvents": true}')
    if value is None:
        return None
    kms_key = value.get("secretKmsKey")
    if kms_key is not None and not (isinstance(kms_key, str) and _KEY_ARN.match(kms_key)):
        raise ConfigError(f"context 'pagerduty.secretKmsKey' is {kms_key!r}: expected the ARN of the customer managed KMS key "
                          "the secret is encrypted with (leave it out for Secrets Manager's own key)")
    return PagerDuty(key=_secret_ref("pagerduty", value), region=value.get("region", "us"),
                     change_events=_bool("pagerduty.changeEvents", value.get("changeEvents", False)), secret_kms_key=kms_key)


def _opsgenie(raw: Any) -> "Opsgenie | None":
    value = _tool("opsgenie", raw, {"secret", "secretField", "region", "rateLimitPerSecond"},
                  '{"secret": "oncall/opsgenie", "secretField": "apiKey", "region": "eu"}')
    if value is None:
        return None
    return Opsgenie(key=_secret_ref("opsgenie", value), region=value.get("region", "us"),
                    rate_limit_per_second=_int("opsgenie.rateLimitPerSecond", value.get("rateLimitPerSecond", 1), 1, 300))


@dataclass(frozen=True)
class AuditorConfig:
    stack_name: str = "SecretsKmsFailureAuditor"
    notification_emails: tuple[str, ...] = ()
    https_endpoints: tuple[str, ...] = ()
    slack: SlackChannel | None = None
    incident_update_minutes: int = 15
    incident_quiet_minutes: int = 30
    change_retention_days: int = 7
    consistency_window_minutes: int = 10
    log_retention_days: int = 30
    create_trail: bool = False
    simulate_policies: bool = False
    findings_spike_threshold: int = 100
    max_concurrency: int = 5
    organization: Organization | None = None
    pagerduty: PagerDuty | None = None
    opsgenie: Opsgenie | None = None
    #: Where the stack deploys, when given as context (else the CDK CLI's CDK_DEFAULT_ACCOUNT and
    #: CDK_DEFAULT_REGION, see app.py); None: environment-agnostic.
    account: str | None = None
    region: str | None = None

    @property
    def log_retention(self) -> logs.RetentionDays:
        return _RETENTION[self.log_retention_days]


DEFAULTS = AuditorConfig()


def _parsed(raw: Any) -> Any:
    """`cdk synth -c key=value` passes strings: accept JSON forms of lists, objects, numbers, booleans."""
    if isinstance(raw, str):
        text = raw.strip()
        if text[:1] in "[{" or text in ("true", "false", "null") or re.fullmatch(r"-?\d+", text):
            try:
                return json.loads(text)
            except ValueError:
                return raw
    return raw


def _int(key: str, raw: Any, low: int, high: int) -> int:
    value = _parsed(raw)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(f"context {key!r} is {raw!r}: expected a whole number from {low} to {high}")
    return value


def _bool(key: str, raw: Any) -> bool:
    value = _parsed(raw)
    if not isinstance(value, bool):
        raise ConfigError(f"context {key!r} is {raw!r}: expected true or false")
    return value


def _list(key: str, raw: Any, check: Callable[[str], bool], what: str) -> tuple[str, ...]:
    value = _parsed(raw)
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    if not isinstance(value, list) or not all(isinstance(v, str) and check(v) for v in value):
        raise ConfigError(f"context {key!r} is {raw!r}: expected a list of {what}")
    return tuple(value)


def _optional(key: str, raw: Any, pattern: re.Pattern, what: str) -> str | None:
    value = raw.strip() if isinstance(raw, str) else raw  # not _parsed: an account id may start with 0
    if value is None or value in ("", "null"):
        return None
    if not isinstance(value, str) or not pattern.match(value):
        raise ConfigError(f"context {key!r} is {raw!r}: expected {what}")
    return value


#: Settings that no longer exist -> what replaced them (an old cdk.json fails with this, not silently).
REPLACED = {
    "dedupWindowMinutes": "'incidentUpdateMinutes' (at most one \"updated\" alert per incident in this many minutes) "
                          "and 'incidentQuietMinutes' (an incident resolves after this many minutes without failures)",
}


def load(get: Callable[[str], Any]) -> AuditorConfig:
    """Build the config from a context getter (``node.try_get_context``)."""

    def ctx(key: str, default: Any) -> Any:
        value = get(key)
        return default if value is None else value

    stack_name = ctx("stackName", DEFAULTS.stack_name)
    if not isinstance(stack_name, str) or not _STACK_NAME.match(stack_name):
        raise ConfigError(f"context 'stackName' is {stack_name!r}: expected letters, digits and hyphens, starting with a letter")
    slack_raw = _parsed(ctx("slack", None))
    slack = None
    if slack_raw is not None:
        if not (isinstance(slack_raw, dict) and isinstance(slack_raw.get("workspaceId"), str)
                and isinstance(slack_raw.get("channelId"), str) and slack_raw["workspaceId"] and slack_raw["channelId"]):
            raise ConfigError(f"context 'slack' is {slack_raw!r}: expected {{\"workspaceId\": \"T...\", \"channelId\": \"C...\"}} or null")
        slack = SlackChannel(slack_raw["workspaceId"], slack_raw["channelId"])
    retention = _int("logRetentionDays", ctx("logRetentionDays", DEFAULTS.log_retention_days), 1, 3653)
    if retention not in _RETENTION:
        allowed = ", ".join(str(k) for k in sorted(_RETENTION))
        raise ConfigError(f"context 'logRetentionDays' is {retention}: CloudWatch Logs allows {allowed}")
    for old, new in REPLACED.items():
        if get(old) is not None:
            raise ConfigError(f"context {old!r} is {get(old)!r}: this setting was replaced by {new}")
    organization = _organization(ctx("organization", None))
    if organization is not None and len(stack_name) > 128 - len("-forwarders"):
        raise ConfigError(f"context 'stackName' is {len(stack_name)} characters long: in organization mode at most "
                          f"{128 - len('-forwarders')}, so that the StackSet name '<stackName>-forwarders' fits in 128")
    return AuditorConfig(
        stack_name=stack_name,
        notification_emails=_list("notificationEmails", ctx("notificationEmails", []), lambda v: bool(_EMAIL.match(v)), "e-mail addresses"),
        https_endpoints=_list("httpsEndpoints", ctx("httpsEndpoints", []), lambda v: v.startswith("https://") and len(v) > 8, "https:// URLs"),
        slack=slack,
        incident_update_minutes=_int("incidentUpdateMinutes", ctx("incidentUpdateMinutes", DEFAULTS.incident_update_minutes), 1, 1440),
        incident_quiet_minutes=_int("incidentQuietMinutes", ctx("incidentQuietMinutes", DEFAULTS.incident_quiet_minutes), 1, 10080),
        change_retention_days=_int("changeRetentionDays", ctx("changeRetentionDays", DEFAULTS.change_retention_days), 1, 90),
        consistency_window_minutes=_int("consistencyWindowMinutes", ctx("consistencyWindowMinutes", DEFAULTS.consistency_window_minutes), 1, 1440),
        log_retention_days=retention,
        create_trail=_bool("createTrail", ctx("createTrail", False)),
        simulate_policies=_bool("simulatePolicies", ctx("simulatePolicies", False)),
        findings_spike_threshold=_int("findingsSpikeThreshold", ctx("findingsSpikeThreshold", DEFAULTS.findings_spike_threshold), 1, 1_000_000),
        max_concurrency=_int("maxConcurrency", ctx("maxConcurrency", DEFAULTS.max_concurrency), 2, 1000),
        organization=organization,
        pagerduty=_pagerduty(ctx("pagerduty", None)),
        opsgenie=_opsgenie(ctx("opsgenie", None)),
        account=_optional("account", ctx("account", None), ACCOUNT_ID, "a 12-digit account id"),
        region=_optional("region", ctx("region", None), _REGION, "a region name like eu-west-1"),
    )
