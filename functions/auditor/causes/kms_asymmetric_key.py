"""Secrets Manager needs a symmetric encryption KMS key; an asymmetric one cannot make data keys."""

import re

from ._base import SM_DOC, Cause, Match, roots, who

_TEXT = re.compile(r"asymmetric", re.IGNORECASE)
_CODES = frozenset({"InvalidKeyUsageException", "EncryptionFailure", "InvalidRequestException", "ValidationException",
                    "InvalidParameterException", "UnsupportedOperationException"})
_SM = "secretsmanager.amazonaws.com"


def applies(call, facts):
    message = call.error_message
    if ("symmetric" in message or "SYMMETRIC" in message) and _TEXT.search(message):
        return True  # the third test of match (data key|cmk|kms key|symmetric) holds whenever "symmetric" is there
    if call.service == "kms" and call.error_code == "InvalidKeyUsageException" and call.action.startswith("GenerateDataKey"):
        return True
    key = facts.key if facts else None
    return call.error_code == "EncryptionFailure" and key is not None and key.found and key.key_spec not in ("", "SYMMETRIC_DEFAULT")


def match(call, facts):
    key = facts.key if facts else None
    confirmed = key is not None and key.found and key.key_spec not in ("", "SYMMETRIC_DEFAULT")
    message = call.error_message
    if ("symmetric" in message or "SYMMETRIC" in message) and _TEXT.search(message) and re.search(r"data ?key|cmk|kms key|symmetric", call.error_message, re.IGNORECASE):
        evidence = [f'the message says: "{call.error_message[:140]}"']
    elif call.service == "kms" and call.error_code == "InvalidKeyUsageException" and call.action.startswith("GenerateDataKey"):
        evidence = [f"KMS refused {call.action} with InvalidKeyUsageException: data keys need a symmetric encryption key"]
        if call.principal.invoked_by == _SM or call.secret_arn:
            evidence.append("the call was made by Secrets Manager for a secret")
    elif confirmed and call.error_code == "EncryptionFailure":
        evidence = [f"Secrets Manager could not encrypt with key {key.arn or key.key_id}"]
    else:
        return None
    if confirmed:
        evidence.append(f"DescribeKey: KeySpec {key.key_spec}, KeyUsage {key.key_usage or '?'}")
    return Match(tuple(evidence) + (who(call),), "high")


def remediation(call, m):
    key = call.kms_key_id or call.resource or "the key"
    return (
        f"Use a symmetric encryption KMS key (KeySpec SYMMETRIC_DEFAULT, KeyUsage ENCRYPT_DECRYPT) instead of {key}: "
        "aws kms describe-key shows KeySpec; create one with aws kms create-key (the defaults are symmetric) or omit "
        "KmsKeyId to use aws/secretsmanager, then retry the call with --kms-key-id set to it."
    )


CAUSE = Cause(
    id="kms.asymmetric-key",
    root=roots.key_spec,
    title="Cannot generate a data key with an asymmetric KMS key",
    severity="medium",
    topic="Cannot generate a data key with an asymmetric KMS key when creating a secret",
    doc_url=SM_DOC + "#asymmetrical-key",
    precedence=31,
    error_codes=_CODES,
    match=match,
    remediation=remediation,
    applies=applies,
)
