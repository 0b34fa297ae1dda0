"""A partial ARN of a secret whose name ends in a hyphen and six characters.

Secrets Manager appends "-" and six random characters to every secret's ARN. When a secret's
own name ends in a hyphen and six characters (``MySecret-abcdef``), its partial ARN
(``...:secret:MySecret-abcdef``) looks like a complete one, and the lookup fails. From the
record alone this is a heuristic: the random suffix mixes upper and lower case, so a suffix
with no upper-case letter is more likely part of the name. DescribeSecret by name confirms it.
"""

from ._arns import split_secret_arn as split
from ._base import SM_DOC, Cause, Match, roots, who


def looks_generated(tail: str) -> bool:
    """A random suffix almost always has an upper-case letter (62-letter alphabet)."""
    if tail.isascii():  # the suffix is ASCII letters and digits: lower() changes exactly its upper-case letters
        return tail != tail.lower()
    return any(c.isupper() for c in tail)


def applies(call, facts):
    if call.service != "secretsmanager" or call.error_code != "ResourceNotFoundException":
        return False
    parts = split(call.resource)
    if parts is None:
        return False
    secret = facts.secret if facts else None
    if secret is not None and secret.found:
        return secret.name == parts[0] and secret.arn != call.resource
    if secret is not None and not secret.error:
        return False
    return not looks_generated(parts[1])


def match(call, facts):
    if call.service != "secretsmanager" or call.error_code != "ResourceNotFoundException":
        return None
    parts = split(call.resource)
    if parts is None:
        return None
    name, tail = parts
    head = name[: -len(tail) - 1]
    secret = facts.secret if facts else None
    evidence = [f"the secret id is an ARN whose name ends in a hyphen and six characters (-{tail})"]
    if secret is not None and secret.found:
        if secret.name == name and secret.arn != call.resource:
            evidence.append(f"DescribeSecret by name finds secret {name!r} with the complete ARN {secret.arn}")
            return Match(tuple(evidence) + (who(call),), "high")
        return None  # the lookup found something else: not this cause
    if secret is not None and not secret.error:
        return None  # confirmed: no secret by that name either -> secret.not-found
    if looks_generated(tail):
        return None  # looks like Secrets Manager's own random suffix: a complete ARN
    evidence.append(f"heuristic: '-{tail}' has no upper-case letter, unlike Secrets Manager's random suffix "
                    "(about 1 in 26 random suffixes has none), so it is likely part of the name")
    if split(f"arn:aws:secretsmanager:::secret:{head}"):
        evidence.append(f"the other reading, less likely: the complete ARN of a secret named {head!r} whose suffix is -{tail}")
    if secret is not None and secret.error:
        evidence.append(f"could not confirm: DescribeSecret failed with {secret.error}")
    return Match(tuple(evidence) + (who(call),), "low")


def remediation(call, m):
    parts = split(call.resource)
    name = parts[0] if parts else "<name>"
    return (
        f"Use the secret's complete ARN (with Secrets Manager's own six-character suffix), or its name {name!r} for a "
        f"secret in the same account: aws secretsmanager describe-secret --secret-id {name!r} --query ARN prints it. "
        "Avoid secret names that end in a hyphen and six characters."
    )


CAUSE = Cause(
    id="secret.partial-arn",
    root=roots.secret_id,
    title="Partial ARN of a secret whose name ends in a hyphen and six characters",
    severity="medium",
    topic="An AWS CLI or AWS SDK operation can't find my secret from a partial ARN",
    doc_url=SM_DOC + "#ARN_secretnamehyphen",
    precedence=81,
    error_codes=frozenset({"ResourceNotFoundException"}),
    match=match,
    remediation=remediation,
    applies=applies,
    services=frozenset({"secretsmanager"}),
)
