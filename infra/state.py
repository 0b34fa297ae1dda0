"""The incident state: one DynamoDB table that ``auditor.state`` owns (open incidents, the recent
changes that may have started them, records waiting for their partner, the registries the
scheduled run reads). Its key and TTL attribute are ``auditor.contract.Table``'s."""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from constructs import Construct

from auditor.contract import Table

#: What ``auditor.state`` calls on its table, and nothing more: BatchGetItem (consistent reads of
#: a batch's incidents and join items, the registries), UpdateItem (every claim, count, change
#: and resolution; also each ``Update`` of a TransactWriteItems, which IAM authorizes as the
#: item's own action), PutItem and DeleteItem (releasing the claim of an alert that could not be
#: published). No Scan, Query, GetItem or BatchWriteItem: the code makes none of those calls;
#: tests/infra/test_least_privilege.py reads the code to keep this list exact.
STATE_ACTIONS = ("dynamodb:BatchGetItem", "dynamodb:UpdateItem", "dynamodb:PutItem", "dynamodb:DeleteItem")


class IncidentState(Construct):
    """The table: on demand, TTL on ``expires_at``, point-in-time recovery, encrypted.

    Deleted with the stack: it holds open incidents and recent changes (days), not records;
    after a redeploy from scratch, incidents open again on their next failure."""

    def __init__(self, scope: Construct, id: str) -> None:
        super().__init__(scope, id)
        self.table = dynamodb.Table(
            self,
            "Table",
            partition_key=dynamodb.Attribute(name=Table.PARTITION_KEY, type=dynamodb.AttributeType.STRING),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            time_to_live_attribute=Table.TTL_ATTRIBUTE,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(point_in_time_recovery_enabled=True),
            encryption=dynamodb.TableEncryption.AWS_MANAGED,
            removal_policy=RemovalPolicy.DESTROY,
        )
