"""The incident state: one DynamoDB table that ``auditor.storage`` owns (incidents, the recent
changes that may have started them, records waiting for their partner) and its sparse ``due``
index, which the scheduled run queries. Its names are ``auditor.contract.Table``'s."""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from constructs import Construct

from auditor.contract import Table

#: What the function calls on its table, and nothing more: BatchGetItem (consistent reads of a
#: batch's incidents, join items and changes), PutItem (a new incident written whole, on the
#: condition that it does not exist), UpdateItem (every count, claim, confirmation, change and
#: resolution); each ``Put`` and ``Update`` of a TransactWriteItems is authorized by IAM as that
#: item's own action. No Scan, GetItem, DeleteItem or BatchWriteItem: the code makes none of those
#: calls; tests/infra/test_least_privilege.py reads the code to keep this list exact.
STATE_ACTIONS = ("dynamodb:BatchGetItem", "dynamodb:PutItem", "dynamodb:UpdateItem")
#: ... and on its ``due`` index only: Query (the scheduled run).
INDEX_ACTIONS = ("dynamodb:Query",)


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
        # Sparse (only items with a due_shard are in it), sharded (no single hot partition: an
        # incident's timer is armed under its own shard), sorted by time; the status is
        # projected so that the scheduled run counts open incidents from the index alone.
        self.table.add_global_secondary_index(
            index_name=Table.DUE_INDEX,
            partition_key=dynamodb.Attribute(name=Table.DUE_SHARD, type=dynamodb.AttributeType.STRING),
            sort_key=dynamodb.Attribute(name=Table.DUE_AT, type=dynamodb.AttributeType.NUMBER),
            projection_type=dynamodb.ProjectionType.INCLUDE,
            non_key_attributes=["status"],
        )
