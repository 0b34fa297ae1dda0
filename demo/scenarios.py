"""Realistic CloudTrail records for incident scenarios: a change, and the failures it causes.

Builders only (no test here): the integration and CLI tests compose scenarios from them.
Records follow CloudTrail's format (userIdentity per type, requestParameters, resources for
KMS keys, invokedBy and the SecretARN encryption context on the KMS calls Secrets Manager makes
for a caller); error texts are the ones AWS documents.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

ACCOUNT = "111122223333"
REGION = "eu-west-1"
KEY_ID = "1234abcd-12ab-34cd-56ef-1234567890ab"
KEY_ARN = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/{KEY_ID}"
ADMIN = f"arn:aws:sts::{ACCOUNT}:assumed-role/platform-admin/alice@example.com"
#: The story's time zero: two minutes before this process started (rounded to the second), so that
#: the records are fresh news to a function running now (it never pages old news: docs/incidents.md).
T0 = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(minutes=2)


def since_t0() -> float:
    """Seconds from the story's time zero to now: ``at(since_t0())`` is the present."""
    return datetime.now(timezone.utc).timestamp() - T0.timestamp()


def at(seconds: float) -> str:
    return (T0 + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


def _id(seed: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, seed))


def role_identity(role: str, session: str = "i-0abc", account: str = ACCOUNT, invoked_by: str = "") -> dict:
    ident = {
        "type": "AssumedRole",
        "principalId": f"AROAEXAMPLE{role.upper()[:8]}:{session}",
        "arn": f"arn:aws:sts::{account}:assumed-role/{role}/{session}",
        "accountId": account,
        "accessKeyId": "ASIAEXAMPLE" + role.upper()[:9].ljust(9, "X"),
        "sessionContext": {
            "sessionIssuer": {"type": "Role", "principalId": "AROAEXAMPLE", "arn": f"arn:aws:iam::{account}:role/{role}",
                              "accountId": account, "userName": role},
            "attributes": {"creationDate": at(-3600), "mfaAuthenticated": "false"},
        },
    }
    if invoked_by:
        ident["invokedBy"] = invoked_by
    return ident


def admin_identity() -> dict:
    ident = role_identity("platform-admin", "alice@example.com")
    return ident


def record(source: str, name: str, when: float, identity: dict, params: dict | None, *, error: str = "",
           message: str = "", resources: list | None = None, response: dict | None = None, seed: str = "",
           region: str = REGION, account: str = ACCOUNT, read_only: bool = False, source_ip: str = "198.51.100.10") -> dict:
    rec = {
        "eventVersion": "1.10",
        "userIdentity": identity,
        "eventTime": at(when),
        "eventSource": f"{source}.amazonaws.com",
        "eventName": name,
        "awsRegion": region,
        "sourceIPAddress": identity.get("invokedBy") or source_ip,
        "userAgent": identity.get("invokedBy") or "aws-sdk-java/2.25.0 Linux/6.1 OpenJDK_64-Bit_Server_VM/21",
        "requestParameters": params,
        "responseElements": response,
        "requestID": _id("req" + seed + name + str(when)),
        "eventID": _id(seed or f"{source}{name}{when}{identity.get('arn')}{params}"),
        "readOnly": read_only,
        "eventType": "AwsApiCall",
        "managementEvent": True,
        "recipientAccountId": account,
        "eventCategory": "Management",
    }
    if error:
        rec["errorCode"] = error
        rec["errorMessage"] = message
    if resources is not None:
        rec["resources"] = resources
    return rec


def key_resource(key_arn: str = KEY_ARN) -> list:
    return [{"accountId": key_arn.split(":")[4], "type": "AWS::KMS::Key", "ARN": key_arn}]


def secret_arn(name: str, suffix: str = "AbCdEf", account: str = ACCOUNT, region: str = REGION) -> str:
    return f"arn:aws:secretsmanager:{region}:{account}:secret:{name}-{suffix}"


# ---- changes -------------------------------------------------------------------------------
def put_key_policy(when: float, key_arn: str = KEY_ARN) -> dict:
    return record("kms", "PutKeyPolicy", when, admin_identity(),
                  {"keyId": key_arn.rsplit("/", 1)[-1], "policyName": "default",
                   "policy": "{\n  \"Version\": \"2012-10-17\",\n  \"Statement\": []\n}", "bypassPolicyLockoutSafetyCheck": False},
                  resources=key_resource(key_arn), seed=f"putkeypolicy{when}")


def disable_key(when: float, key_arn: str = KEY_ARN) -> dict:
    return record("kms", "DisableKey", when, admin_identity(), {"keyId": key_arn}, resources=key_resource(key_arn),
                  seed=f"disablekey{when}")


def schedule_key_deletion(when: float, key_arn: str = KEY_ARN, days: int = 7) -> dict:
    return record("kms", "ScheduleKeyDeletion", when, admin_identity(), {"keyId": key_arn, "pendingWindowInDays": days},
                  resources=key_resource(key_arn), response={"keyId": key_arn, "keyState": "PendingDeletion",
                                                             "pendingWindowInDays": days}, seed=f"schedule{when}")


def detach_role_policy(when: float, role: str, policy_arn: str) -> dict:
    return record("iam", "DetachRolePolicy", when, admin_identity(), {"roleName": role, "policyArn": policy_arn},
                  region="us-east-1", seed=f"detach{role}{when}")


def enable_key(when: float, key_arn: str = KEY_ARN) -> dict:
    return record("kms", "EnableKey", when, admin_identity(), {"keyId": key_arn}, resources=key_resource(key_arn),
                  seed=f"enablekey{when}")


def policy_arn(name: str) -> str:
    return f"arn:aws:iam::{ACCOUNT}:policy/{name}"


def attach_role_policy(when: float, role: str, policy: str) -> dict:
    return record("iam", "AttachRolePolicy", when, admin_identity(), {"roleName": role, "policyArn": policy},
                  region="us-east-1", seed=f"attach{role}{policy}{when}")


def put_role_boundary(when: float, role: str, policy: str) -> dict:
    return record("iam", "PutRolePermissionsBoundary", when, admin_identity(), {"roleName": role, "permissionsBoundary": policy},
                  region="us-east-1", seed=f"boundary{role}{policy}{when}")


def create_policy_version(when: float, policy: str, version: str = "v2", actor: dict | None = None) -> dict:
    """A new default version of a customer managed policy (what every principal it governs may then do)."""
    return record("iam", "CreatePolicyVersion", when, actor or admin_identity(),
                  {"policyArn": policy, "policyDocument": "{\"Version\": \"2012-10-17\"}", "setAsDefault": True},
                  response={"policyVersion": {"versionId": version, "isDefaultVersion": True}}, region="us-east-1",
                  seed=f"version{policy}{version}{when}")


def set_default_policy_version(when: float, policy: str, version: str = "v1") -> dict:
    return record("iam", "SetDefaultPolicyVersion", when, admin_identity(), {"policyArn": policy, "versionId": version},
                  region="us-east-1", seed=f"setdefault{policy}{version}{when}")


def attach_scp(when: float, policy_id: str, target: str, management: str = "999988887777") -> dict:
    ident = role_identity("OrganizationAccountAccessRole", "bob", account=management)
    return record("organizations", "AttachPolicy", when, ident, {"policyId": policy_id, "targetId": target},
                  region="us-east-1", account=management, seed=f"attach{policy_id}{target}{when}")


# ---- failures ------------------------------------------------------------------------------
def get_secret_value_kms_denied(when: float, role: str, secret: str, seed: str = "") -> dict:
    """Secrets Manager's own record when KMS refused the caller: it names no key and no policy."""
    return record("secretsmanager", "GetSecretValue", when, role_identity(role), {"secretId": secret},
                  error="AccessDeniedException", message="Access to KMS is not allowed", read_only=True,
                  seed=seed or f"gsv{role}{secret}{when}")


def decrypt_for_secret_denied(when: float, role: str, secret: str, key_arn: str = KEY_ARN, policy: str = "resource-based",
                              seed: str = "") -> dict:
    """The KMS Decrypt Secrets Manager made on the caller's behalf, refused."""
    ident = role_identity(role, invoked_by="secretsmanager.amazonaws.com")
    msg = (f"User: arn:aws:sts::{ACCOUNT}:assumed-role/{role}/i-0abc is not authorized to perform: kms:Decrypt on "
           f"resource: {key_arn} because no {policy} policy allows the kms:Decrypt action")
    return record("kms", "Decrypt", when, ident,
                  {"encryptionContext": {"SecretARN": secret_arn(secret), "SecretVersionId": _id(secret)},
                   "encryptionAlgorithm": "SYMMETRIC_DEFAULT"},
                  error="AccessDeniedException", message=msg, resources=key_resource(key_arn), read_only=True,
                  seed=seed or f"dec{role}{secret}{when}")


def decrypt_disabled(when: float, role: str, invoked_by: str, key_arn: str = KEY_ARN, seed: str = "") -> dict:
    ident = role_identity(role, invoked_by=invoked_by)
    return record("kms", "Decrypt", when, ident, {"encryptionAlgorithm": "SYMMETRIC_DEFAULT"},
                  error="DisabledException", message=f"{key_arn} is disabled.", resources=key_resource(key_arn),
                  read_only=True, seed=seed or f"dis{role}{invoked_by}{when}")


def decrypt_pending_deletion(when: float, role: str, key_arn: str = KEY_ARN, seed: str = "") -> dict:
    return record("kms", "Decrypt", when, role_identity(role), {"encryptionAlgorithm": "SYMMETRIC_DEFAULT"},
                  error="KMSInvalidStateException", message=f"{key_arn} is pending deletion.",
                  resources=key_resource(key_arn), read_only=True, seed=seed or f"pd{role}{when}")


def identity_denied(when: float, role: str, secret: str, seed: str = "") -> dict:
    return _nothing_allows("identity-based policy", when, role, secret, seed or f"id{role}{secret}{when}")


def boundary_denied(when: float, role: str, secret: str, seed: str = "") -> dict:
    return _nothing_allows("permissions boundary", when, role, secret, seed or f"pb{role}{secret}{when}")


def _nothing_allows(policy: str, when: float, role: str, secret: str, seed: str) -> dict:
    """GetSecretValue denied to ``role`` because no ``policy`` of its kind allows it (the message AWS writes)."""
    msg = (f"User: arn:aws:sts::{ACCOUNT}:assumed-role/{role}/i-0abc is not authorized to perform: "
           f"secretsmanager:GetSecretValue on resource: {secret} because no {policy} allows the "
           "secretsmanager:GetSecretValue action")
    return record("secretsmanager", "GetSecretValue", when, role_identity(role), {"secretId": secret},
                  error="AccessDeniedException", message=msg, read_only=True, seed=seed)


def scp_denied(when: float, role: str, secret: str, policy_arn: str, seed: str = "") -> dict:
    msg = (f"User: arn:aws:sts::{ACCOUNT}:assumed-role/{role}/i-0abc is not authorized to perform: "
           f"secretsmanager:GetSecretValue on resource: {secret} with an explicit deny in a service control policy: {policy_arn}")
    return record("secretsmanager", "GetSecretValue", when, role_identity(role), {"secretId": secret},
                  error="AccessDeniedException", message=msg, read_only=True, seed=seed or f"scp{role}{secret}{when}")


def expired(when: float, role: str, secret: str, seed: str = "") -> dict:
    return record("secretsmanager", "GetSecretValue", when, role_identity(role), {"secretId": secret},
                  error="ExpiredTokenException", message="The security token included in the request is expired",
                  read_only=True, seed=seed or f"exp{role}{secret}{when}")
