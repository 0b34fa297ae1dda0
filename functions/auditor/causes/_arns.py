"""ARNs as the causes read and write them: a secret ARN's name and its ``-XXXXXX`` tail, the
partition of a call, the key and secret ARNs a remediation's statement names, and the action
and resource a denial was about. Pure and memoised where a stream repeats its inputs."""

from __future__ import annotations

import functools
import re

from ..records import FailedCall

__all__ = ["NO_RESOURCE_ACTIONS", "denied_action", "denied_resource_arn", "key_arn", "partition_of", "secret_arn_pattern",
           "split_secret_arn"]


_SECRET_ARN = re.compile(r"^arn:[\w-]+:secretsmanager:[^:]*:[^:]*:secret:(?P<name>.+)$")


# Memoised: a pure function of the ARN, and a stream repeats its secrets. Bounded: ARNs come from the records.
@functools.lru_cache(maxsize=4096)
def split_secret_arn(resource: str):
    """(the secret name as given in an ARN, its -XXXXXX tail) when ``resource`` is a secret ARN
    whose name ends in a hyphen and six characters (Secrets Manager's random suffix, or part of
    the name: a partial ARN), else None."""
    if not resource.startswith("arn:"):  # what _SECRET_ARN needs before it can match
        return None
    m = _SECRET_ARN.match(resource)
    if not m:
        return None
    name = m.group("name")
    # "-" and six ASCII letters or digits at the end of the name (a regex search would scan it all;
    # the name holds no newline: ".+" stops there).
    tail = name[-6:]
    if len(name) >= 7 and name[-7] == "-" and tail.isascii() and tail.isalnum():
        return name, tail
    return None


_ARN_PARTITION = re.compile(r"^arn:(aws[a-z-]*):")
_KEY_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$|^mrk-[0-9a-f]{32}$")


def partition_of(call: FailedCall) -> str:
    for arn in (call.principal.arn, call.resource, call.secret_arn):
        if arn.startswith("arn:aws"):  # what _ARN_PARTITION needs before it can match
            m = _ARN_PARTITION.match(arn)
            if m:
                return m.group(1)
    return "aws"


def denied_action(call: FailedCall) -> str:
    """The IAM action that was denied: from the message when it names one, else from the call."""
    if call.denial and call.denial.action:
        return call.denial.action
    return f"{call.service}:{call.action}"


def secret_arn_pattern(call: FailedCall, secret: str) -> str:
    """An ARN pattern for a secret given by name or ARN (names get AWS's ``-??????`` suffix)."""
    if secret.startswith("arn:"):
        return secret
    return f"arn:{partition_of(call)}:secretsmanager:{call.region or '*'}:{call.account or '*'}:secret:{secret}-??????"


def key_arn(call: FailedCall, key: str) -> str:
    """A key ARN for a key given by id or ARN; aliases cannot be used in a key's Resource."""
    if key.startswith("arn:") and ":alias/" not in key:
        return key
    if _KEY_ID.match(key):
        return f"arn:{partition_of(call)}:kms:{call.region or '*'}:{call.account or '*'}:key/{key}"
    return f"arn:{partition_of(call)}:kms:{call.region or '*'}:{call.account or '*'}:key/<key id behind {key or 'the alias'}>"


#: Actions IAM authorizes only on "*" (no resource-level permissions).
NO_RESOURCE_ACTIONS = frozenset({
    "secretsmanager:ListSecrets", "secretsmanager:GetRandomPassword", "secretsmanager:BatchGetSecretValue",
    "kms:ListKeys", "kms:ListAliases", "kms:CreateKey", "kms:GenerateRandom", "kms:CreateCustomKeyStore",
    "kms:DescribeCustomKeyStores", "kms:ConnectCustomKeyStore", "kms:ListRetirableGrants",
})


def denied_resource_arn(call: FailedCall, action: str = "") -> str:
    """The resource to allow ``action`` (the denied action; computed when not given) on."""
    if (action or denied_action(call)) in NO_RESOURCE_ACTIONS or (call.denial and call.denial.resource == "*"):
        return "*"
    if call.denial and call.denial.resource.startswith("arn:"):
        return call.denial.resource
    if call.service == "kms":
        return key_arn(call, call.resource)
    return secret_arn_pattern(call, call.resource or "<secret name>")
