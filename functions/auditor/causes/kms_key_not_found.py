"""The KMS key (or alias) does not exist in this account and region."""

from ._base import Cause, Match, roots, who


_SM_CODES = frozenset({"InvalidParameterException", "ValidationException", "InvalidRequestException"})
#: Secrets Manager's words when the KmsKeyId of CreateSecret/UpdateSecret names no usable key,
#: e.g. "The operation failed because of an invalid KMS key: Invalid keyId".
_SM_INVALID_KEY = ("invalid KMS key", "Invalid keyId")


def applies(call, facts):
    if call.service == "secretsmanager":
        return call.error_code in _SM_CODES and any(p in call.error_message for p in _SM_INVALID_KEY)
    return call.service == "kms" and call.error_code in ("NotFoundException", "NotFound")


def match(call, facts):
    if call.service == "secretsmanager":
        if call.error_code in _SM_CODES and any(p in call.error_message for p in _SM_INVALID_KEY):
            key = call.kms_key_id or "(the KmsKeyId of the request)"
            return Match((f'Secrets Manager says: "{call.error_message[:140]}"',
                          f"the secret's KMS key was given as {key}: no key of that id or alias exists for the caller in "
                          f"{call.region or 'this region'}",
                          who(call)), "high")
        return None
    if call.service != "kms" or call.error_code not in ("NotFoundException", "NotFound"):
        return None
    evidence = [f'KMS says: "{call.error_message[:140]}"' if call.error_message else "KMS NotFoundException"]
    if call.resource.startswith("alias/") or ":alias/" in call.resource:
        evidence.append(f"the key was named by alias {call.resource}: the alias does not exist in {call.region or 'this region'}")
    elif call.resource.startswith("arn:") and call.region and f":{call.region}:" not in call.resource:
        evidence.append("the key ARN names another region than the call's")
    return Match(tuple(evidence) + (who(call),), "high")


def remediation(call, m):
    if call.service == "secretsmanager":
        return (
            f"Check the KmsKeyId {call.kms_key_id!r} given to {call.action}: aws kms describe-key --key-id <id> in {call.region!r}. "
            "Give a key id, key ARN, alias name (alias/...) or alias ARN of a symmetric key in the secret's region; a "
            "key in another account must be named by its full key ARN, and its key policy must allow the caller."
        )
    return (
        f"Check the key id {call.resource!r} in {call.region!r}: aws kms describe-key --key-id <id> and aws kms list-aliases. "
        "KMS keys are regional (use a multi-Region key or the key of that region), an alias must be created in each "
        "region, and a key in another account must be named by its key ARN, not by alias."
    )


CAUSE = Cause(
    id="kms.key-not-found",
    root=roots.key_id,
    title="The KMS key does not exist",
    severity="high",
    topic="Beyond the troubleshooting pages: KMS key state",
    doc_url="https://docs.aws.amazon.com/kms/latest/developerguide/find-cmk-id-arn.html",
    precedence=85,
    error_codes=frozenset({"NotFoundException", "NotFound"}) | _SM_CODES,
    match=match,
    remediation=remediation,
    applies=applies,
)
