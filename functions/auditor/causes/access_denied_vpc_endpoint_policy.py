"""The VPC endpoint the call went through has a policy that does not allow it."""

from ._base import ACCESS_DENIED_CODES, Cause, by_policy_type, denied_by, render


def remediation(call, m):
    endpoint = call.vpc_endpoint_id or "the interface VPC endpoint the caller uses"
    stmt = dict(m.policy or {})
    stmt["Principal"] = "*"
    stmt["Condition"] = {"StringEquals": {"aws:PrincipalArn": call.principal.identity_arn or "<caller ARN>"}}
    return (
        f"The request went through {endpoint} for {call.service}, and its endpoint policy does not allow it. "
        f"Add to the endpoint policy (aws ec2 modify-vpc-endpoint --policy-document): {render(stmt)}."
    )


CAUSE = Cause(
    id="access-denied.vpc-endpoint-policy",
    title="Access denied: a VPC endpoint policy",
    severity="high",
    topic='"Access denied" messages when sending requests to Secrets Manager',
    doc_url="https://docs.aws.amazon.com/secretsmanager/latest/userguide/vpc-endpoint-overview.html",
    precedence=53,
    error_codes=ACCESS_DENIED_CODES,
    policy_types=frozenset({"vpc endpoint"}),
    match=by_policy_type(frozenset({"vpc endpoint"}), fix=True),
    remediation=remediation,
    applies=denied_by(frozenset({"vpc endpoint"})),
)
