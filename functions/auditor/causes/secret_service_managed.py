"""The secret is managed by another AWS service and must be changed through that service."""

import re

from ._base import ACCESS_DENIED_CODES, SM_DOC, Cause, Match, roots, who

_TEXT = re.compile(r"managed by (?:an? |the )?(?P<by>[\w .-]*?)(?:,|\.| and | service\b|$)", re.IGNORECASE)
_ENDPOINT = re.compile(r"\b([a-z0-9-]+)\.amazonaws\.com\b")
_PREFIX = re.compile(r"(?:^|:secret:)(?P<svc>[a-z0-9-]+)!")
SERVICES = {
    "rds": "Amazon RDS",
    "redshift": "Amazon Redshift",
    "events": "Amazon EventBridge (API destinations / connections)",
    "appflow": "Amazon AppFlow",
    "apprunner": "AWS App Runner",
    "datasync": "AWS DataSync",
    "directconnect": "AWS Direct Connect",
    "ecs-sc": "Amazon ECS Service Connect",
    "opsworks-cm": "AWS OpsWorks CM",
    "sqlworkbench": "Amazon Redshift query editor v2",
    "marketplace-deployment": "AWS Marketplace",
    "bedrock": "Amazon Bedrock",
}
_CODES = frozenset({"InvalidRequestException", "ValidationException"}) | ACCESS_DENIED_CODES


def owning_service(call, facts) -> tuple[str, str]:
    """(service id, how we know) — from DescribeSecret, the message, or the name's prefix."""
    if facts and facts.secret and facts.secret.owning_service:
        return facts.secret.owning_service, "DescribeSecret's OwningService"
    endpoint = _ENDPOINT.search(call.error_message)
    if endpoint and endpoint.group(1) != "secretsmanager":
        return endpoint.group(1), "the error message"
    prefix = _PREFIX.search(call.resource)
    if prefix:
        return prefix.group("svc"), f"the secret name's prefix '{prefix.group('svc')}!'"
    return "", ""


def applies(call, facts):
    if call.service != "secretsmanager":
        return False
    if "anaged by" in call.error_message and _TEXT.search(call.error_message):
        return True
    if "!" not in call.resource and not (facts and facts.secret and facts.secret.owning_service):
        return False
    if call.error_code not in ("InvalidRequestException", "ValidationException"):
        return False
    service, source = owning_service(call, facts)
    return bool(service) and source != "the error message"


def match(call, facts):
    if call.service != "secretsmanager":
        return None
    said = "anaged by" in call.error_message and _TEXT.search(call.error_message)
    if not said and "!" not in call.resource and not (facts and facts.secret and facts.secret.owning_service):
        return None
    service, source = owning_service(call, facts)
    if said:
        evidence = [f'the message says: "{call.error_message[:140]}"']
        confidence = "high"
    elif service and source != "the error message" and call.error_code in ("InvalidRequestException", "ValidationException"):
        evidence = [f"{call.action} on a secret whose name marks it as managed by another service failed with {call.error_code}"]
        confidence = "high" if facts and facts.secret and facts.secret.owning_service else "medium"
    else:
        return None
    if service:
        evidence.append(f"owning service: {SERVICES.get(service, service)} (from {source})")
    return Match(tuple(evidence) + (who(call),), confidence)


def remediation(call, m):
    service = next((e.split(": ", 1)[1].split(" (from")[0] for e in m.evidence if e.startswith("owning service")), "the owning service")
    return (
        f"Change this secret through {service}, not through Secrets Manager: for example for Amazon RDS, "
        "aws rds modify-db-instance --manage-master-user-password / --master-user-secret-kms-key-id, and let RDS rotate it. "
        "Read access (GetSecretValue) stays in Secrets Manager; aws secretsmanager describe-secret shows OwningService."
    )


CAUSE = Cause(
    id="secret.service-managed",
    root=roots.secret_owner,
    title="The secret is managed by another AWS service",
    severity="low",
    topic="This secret is managed by an AWS service, and you must use that service to update it",
    doc_url=SM_DOC + "#troubleshoot-service-linked-secrets",
    precedence=30,
    error_codes=_CODES,
    # Secrets Manager's own refusal, in its own words: a denial that names a policy type is IAM's, not this.
    policy_types=frozenset({""}),
    match=match,
    remediation=remediation,
    applies=applies,
    services=frozenset({"secretsmanager"}),
)
