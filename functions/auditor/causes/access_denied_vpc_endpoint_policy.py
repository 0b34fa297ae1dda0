"""The VPC endpoint the call went through has a policy that does not allow it.

Two records show it: the failed call's own AccessDenied ("... because no VPC endpoint policy
allows ...", "... with an explicit deny in a VPC endpoint policy"), and, for the endpoint's owner,
a CloudTrail network activity event (eventType AwsVpceEvent, errorCode VpceAccessDenied, "The
request was denied due to a VPC endpoint policy"), the only record of a call the endpoint denied
that would otherwise have been allowed: such calls are not logged as management events.
"""

from ._base import ACCESS_DENIED_CODES, Cause, roots
from ._denied import by_policy_type, denied_by
from ._statements import render


def remediation(call, m):
    endpoint = call.vpc_endpoint_id or "the interface VPC endpoint the caller uses"
    p = call.principal
    stmt = dict(m.policy or {})
    stmt["Principal"] = "*"
    if p.identity_arn or not p.account:
        stmt["Condition"] = {"StringEquals": {"aws:PrincipalArn": p.identity_arn or "<caller ARN>"}}
    else:  # a network activity event may name only the caller's account
        stmt["Condition"] = {"StringEquals": {"aws:PrincipalAccount": p.account}}
    text = ""
    if p.account and call.account and p.account != call.account:
        # The event goes to the endpoint's owner (recipientAccountId); the caller is elsewhere.
        text = (f"The caller is in account {p.account}, not in {call.account}, which owns the endpoint: endpoint policies often "
                "admit only the organization's principals on purpose (a data perimeter). If this caller should not use the "
                "endpoint, the policy did its job: find where these credentials run in your VPC. Otherwise, t")
    return (text or "T") + (
        f"he request went through {endpoint} for {call.service}, and its endpoint policy does not allow it. "
        f"Add to the endpoint policy (aws ec2 modify-vpc-endpoint --policy-document): {render(stmt)}."
    )


CAUSE = Cause(
    id="access-denied.vpc-endpoint-policy",
    root=roots.vpc_endpoint,
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
