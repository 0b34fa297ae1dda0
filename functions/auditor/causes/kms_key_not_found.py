"""The KMS key (or alias) does not exist in this account and region."""

from ._base import Cause, Match
from ._denied import who


def match(call, facts):
    if call.service != "kms" or call.error_code not in ("NotFoundException", "NotFound"):
        return None
    evidence = [f'KMS says: "{call.error_message[:140]}"' if call.error_message else "KMS NotFoundException"]
    if call.resource.startswith("alias/") or ":alias/" in call.resource:
        evidence.append(f"the key was named by alias {call.resource}: the alias does not exist in {call.region or 'this region'}")
    elif call.resource.startswith("arn:") and call.region and f":{call.region}:" not in call.resource:
        evidence.append("the key ARN names another region than the call's")
    return Match(tuple(evidence) + (who(call),), "high")


def remediation(call, m):
    return (
        f"Check the key id {call.resource!r} in {call.region!r}: aws kms describe-key --key-id <id> and aws kms list-aliases. "
        "KMS keys are regional (use a multi-Region key or the key of that region), an alias must be created in each "
        "region, and a key in another account must be named by its key ARN, not by alias."
    )


CAUSE = Cause(
    id="kms.key-not-found",
    title="The KMS key does not exist",
    severity="high",
    topic="Beyond the troubleshooting pages: KMS key state",
    doc_url="https://docs.aws.amazon.com/kms/latest/developerguide/find-cmk-id-arn.html",
    precedence=85,
    error_codes=frozenset({"NotFoundException", "NotFound"}),
    match=match,
    remediation=remediation,
)
