"""The secret does not exist (in this account and region), as far as the caller can see."""

from ._arns import split_secret_arn as split
from ._base import Cause, Match, roots, who


def applies(call, facts):
    return call.service == "secretsmanager" and call.error_code == "ResourceNotFoundException"


def match(call, facts):
    if not applies(call, facts):
        return None
    given = call.resource
    if not given:
        form = "the record does not show which secret was asked for"
    elif given.startswith("arn:"):
        form = "the secret was asked for by complete ARN" if split(given) else "the secret was asked for by partial ARN"
        owner = given.split(":")[4] if given.count(":") >= 5 else ""
        if owner and call.account and owner != call.account:
            form += f" of account {owner} (cross-account)"
    else:
        form = f"the secret was asked for by name {given!r}"
    evidence = [f"ResourceNotFoundException in {call.region or '?'} for account {call.account or '?'}", form]
    confidence = "medium"
    if facts and facts.secret:
        if facts.secret.error:
            evidence.append(f"could not confirm: DescribeSecret failed with {facts.secret.error}")
        elif not facts.secret.found:
            evidence.append("DescribeSecret confirms: no such secret")
            confidence = "high"
        else:  # the record is the truth of its moment: found later, the secret was created or restored since
            evidence.append(f"DescribeSecret finds {facts.secret.name or 'it'} now: created or restored after this call, "
                            "or the caller named it differently")
    return Match(tuple(evidence) + (who(call),), confidence)


def remediation(call, m):
    return (
        f"Check the secret id {call.resource!r} and the region {call.region!r}: aws secretsmanager list-secrets "
        "--filters Key=name,Values=<prefix> in that region. A secret in another account must be named by its complete ARN, "
        "and the caller needs the secret's resource policy and KMS key policy to allow it. If the secret was just "
        "created, retry with backoff; if it was deleted, restore-secret works during the recovery window."
    )


CAUSE = Cause(
    id="secret.not-found",
    root=roots.secret_id,
    title="The secret does not exist",
    severity="medium",
    topic="Beyond the troubleshooting pages: the secret does not exist",
    doc_url="https://docs.aws.amazon.com/secretsmanager/latest/userguide/manage_search-secret.html",
    precedence=82,
    error_codes=frozenset({"ResourceNotFoundException"}),
    match=match,
    remediation=remediation,
    applies=applies,
    services=frozenset({"secretsmanager"}),
)
