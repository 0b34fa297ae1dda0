"""The caller may not use the KMS key that protects the secret.

Secrets Manager encrypts every secret value with a KMS key and calls KMS with the caller's
own identity: reading a secret needs ``kms:Decrypt`` on its key, writing one needs
``kms:GenerateDataKey``. Two records show it: Secrets Manager's own "Access to KMS is not
allowed", and the KMS denial Secrets Manager made on the caller's behalf (``invokedBy`` /
source ``secretsmanager.amazonaws.com``, or the ``SecretARN`` encryption context).
"""

import re

from ._arns import key_arn
from ._base import ACCESS_DENIED_CODES, Cause, Match, roots, who
from ._denied import said
from ._key_state import key_condition
from ._statements import policy_statement, render

_KMS_TEXT = re.compile(r"access to kms is not allowed|\bkms\b.*\bnot allowed\b|customer master key|kms key", re.IGNORECASE)
_WRITE_ACTIONS = frozenset({"CreateSecret", "PutSecretValue", "UpdateSecret", "RotateSecret", "ReplicateSecretToRegions"})
_SM = "secretsmanager.amazonaws.com"
_SM_FAILURE_CODES = frozenset({"DecryptionFailure", "EncryptionFailure"})


def _names_key_problem(call) -> bool:
    """Secrets Manager's DecryptionFailure/EncryptionFailure naming the key's state, its key store's
    problem or an asymmetric key is that key-state cause, not a permission."""
    return bool(key_condition(call)) or "asymmetric" in call.error_message.lower()


def _mentions_kms(message: str) -> bool:
    # cheap substring gate before the case-insensitive regex
    return ("KMS" in message or "kms" in message or "aster key" in message) and _KMS_TEXT.search(message) is not None


def _kms_refused(denial, message: str) -> bool:
    """Secrets Manager's denial is KMS's: IAM's wording names the refused action, a kms: one; a
    message in other words (Secrets Manager's "Access to KMS is not allowed") mentions KMS."""
    return denial.action.startswith("kms:") if denial.action else _mentions_kms(message)


def _for_secrets_manager(call) -> str:
    p = call.principal
    if p.invoked_by == _SM:
        return "KMS was called by Secrets Manager on the caller's behalf (userIdentity.invokedBy)"
    if call.secret_arn:
        return f"the KMS call carries the encryption context of secret {call.secret_arn}"
    if call.source_ip == _SM or call.user_agent == _SM:
        return "the KMS call came from secretsmanager.amazonaws.com"
    return ""


def _key_unusable(call, facts) -> bool:
    """A DecryptionFailure/EncryptionFailure (which names no reason of its own) whose key DescribeKey
    finds unusable: the key-state cause. An access denial is the record's truth whatever the key's
    state is later: a disabled key fails with DisabledException, not AccessDenied."""
    return (call.error_code in _SM_FAILURE_CODES and facts is not None and facts.key is not None and facts.key.found
            and facts.key.key_state not in ("", "Enabled"))


def _described(facts) -> tuple[str, ...]:
    key = facts.key if facts is not None else None
    if key is not None and key.found and key.key_state not in ("", "Enabled"):
        return (f"DescribeKey now reports KeyState {key.key_state}: the key changed after this call, or its state "
                "and its policy both stand in the way",)
    return ()


def applies(call, facts):
    if _key_unusable(call, facts):
        return False
    d = call.denial
    if call.service == "kms":
        p = call.principal
        return d is not None and bool(p.invoked_by == _SM or call.secret_arn or call.source_ip == _SM or call.user_agent == _SM)
    if d is not None and _kms_refused(d, call.error_message):
        return True
    return call.error_code in _SM_FAILURE_CODES and not _names_key_problem(call)


def match(call, facts):
    if _key_unusable(call, facts):
        return None  # the key's state, not a permission, is the cause
    if call.service == "kms":
        if call.denial is None:
            return None
        via = _for_secrets_manager(call)
        if not via:
            return None
        evidence = (via, said(call), *_described(facts), who(call))
        return Match(evidence, "high", _statement(call, call.resource, call.action))
    # Secrets Manager reports the KMS failure itself.
    d = call.denial
    if d is not None and _kms_refused(d, call.error_message):
        text = f'Secrets Manager says: "{call.error_message[:120]}"'
        return Match((text, *_described(facts), who(call)), "high", _statement(call, _sm_key(call, facts), call.action))
    if call.error_code in _SM_FAILURE_CODES and not _names_key_problem(call):
        text = f"Secrets Manager could not use the secret's KMS key ({call.error_code})"
        why = "most often the caller lacks kms:Decrypt / kms:GenerateDataKey through Secrets Manager, or the key is not usable"
        return Match((text, why, who(call)), "medium", _statement(call, _sm_key(call, facts), call.action))
    return None


def _sm_key(call, facts) -> str:
    if call.kms_key_id:
        return call.kms_key_id
    if facts and facts.secret and facts.secret.kms_key_id:
        return facts.secret.kms_key_id
    return ""


def _statement(call, key, action):
    writes = action in _WRITE_ACTIONS or action.startswith("GenerateDataKey") or action == "Encrypt"
    kms_action = "kms:GenerateDataKey" if writes else "kms:Decrypt"
    resource = key_arn(call, key) if key else "<the secret's KMS key ARN: aws secretsmanager describe-secret --query KmsKeyId>"
    via = f"secretsmanager.{call.region or '<region>'}.amazonaws.com"
    return policy_statement(kms_action, resource, {"StringEquals": {"kms:ViaService": via}})


def remediation(call, m):
    return (
        f"Allow the caller ({call.principal.identity_arn or 'the caller'}) to use the secret's KMS key only through "
        f"Secrets Manager: {render(m.policy)}. The key policy must allow it too: either it delegates to IAM "
        '(the default "Enable IAM User Permissions" statement) or it names the caller; for a caller in another '
        "account both are needed. The AWS managed key aws/secretsmanager cannot be shared across accounts: use a customer managed key."
    )


CAUSE = Cause(
    id="access-denied.kms-key",
    root=roots.kms_key_access,
    title="Access denied to the KMS key that protects the secret",
    severity="high",
    topic='"Access denied" messages when sending requests to Secrets Manager',
    doc_url="https://docs.aws.amazon.com/secretsmanager/latest/userguide/security-encryption.html",
    precedence=54,
    error_codes=ACCESS_DENIED_CODES | _SM_FAILURE_CODES,
    match=match,
    remediation=remediation,
    applies=applies,
)
