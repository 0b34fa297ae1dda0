"""What the deployed stack gives the function, made on a local AWS stand-in (moto) for the demo,
the benchmark and the integration tests: one definition, so the three cannot drift apart."""

from __future__ import annotations

import contextlib
import os
import socket


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def queue_arn(sqs, url: str) -> str:
    return sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]


def create_state_table(ddb, name: str) -> None:
    """The incident state table as infra/state.py deploys it: partition key, on-demand, TTL, and
    the sparse ``due`` index (shard, time; projecting the status) the scheduled run queries."""
    from auditor.contract import Table

    ddb.create_table(
        TableName=name, KeySchema=[{"AttributeName": Table.PARTITION_KEY, "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": Table.PARTITION_KEY, "AttributeType": "S"},
                              {"AttributeName": Table.DUE_SHARD, "AttributeType": "S"},
                              {"AttributeName": Table.DUE_AT, "AttributeType": "N"}],
        GlobalSecondaryIndexes=[{"IndexName": Table.DUE_INDEX,
                                 "KeySchema": [{"AttributeName": Table.DUE_SHARD, "KeyType": "HASH"},
                                               {"AttributeName": Table.DUE_AT, "KeyType": "RANGE"}],
                                 "Projection": {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["status"]}}],
        BillingMode="PAY_PER_REQUEST")
    ddb.update_time_to_live(TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": Table.TTL_ATTRIBUTE})


def findings_stack(sns, sqs, ddb, name: str, subscriber: str = "") -> tuple[str, str]:
    """The findings topic with an SQS queue subscribed to it, and the dedup table as dedup.py
    expects it (partition key ``pk``, on-demand, TTL on ``expires_at``), all named ``name``
    (the queue ``subscriber`` if given). Returns the topic ARN and the subscriber queue's URL."""
    topic = sns.create_topic(Name=name)["TopicArn"]
    queue = sqs.create_queue(QueueName=subscriber or name)["QueueUrl"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn(sqs, queue))
    create_state_table(ddb, name)
    return topic, queue


def one_backup_per_transaction() -> None:
    """moto's TransactWriteItems backs the whole table up once per item of the transaction (to
    restore it if one fails): a 100-item transaction on a table of a few thousand items then costs
    seconds. Back each table up once per transaction: the same restore, a hundredth of the copies
    (only within a transaction, only in its own thread). The stand-in's speed only: what it
    accepts and answers is unchanged."""
    import copy
    import threading

    from moto.dynamodb import models

    if getattr(models.DynamoDBBackend.transact_write_items, "_one_backup", False):
        return
    local = threading.local()

    class Copy:
        def __getattr__(self, name):
            return getattr(copy, name)

        @staticmethod
        def deepcopy(obj, memo=None):
            cache = getattr(local, "cache", None)
            if cache is None:
                return copy.deepcopy(obj, memo)
            if id(obj) not in cache:
                cache[id(obj)] = copy.deepcopy(obj, memo)
            return cache[id(obj)]

    original = models.DynamoDBBackend.transact_write_items

    def transact_write_items(self, transact_items):
        local.cache = {}
        try:
            return original(self, transact_items)
        finally:
            local.cache = None

    transact_write_items._one_backup = True
    models.copy = Copy()
    models.DynamoDBBackend.transact_write_items = transact_write_items


def one_table_request_at_a_time() -> None:
    """moto serves concurrent requests without a per-table lock: two TransactWriteItems can
    interleave, and a failed one restores its copy of the table over the other's writes, where
    real DynamoDB transactions are atomic (ARCHITECTURE.md). Serialise moto's DynamoDB requests
    (in this process: the in-process mock or a ThreadedMotoServer), so that parallel writers (the
    scheduled run writes four transactions at once) meet what they would meet on AWS, not moto.
    Other services are left alone (an SQS long poll must not hold the table's lock)."""
    import threading

    from moto.dynamodb.responses import DynamoHandler

    if getattr(DynamoHandler.call_action, "_one_at_a_time", False):
        return
    lock = threading.RLock()
    original = DynamoHandler.call_action

    def call_action(self):
        with lock:
            return original(self)

    call_action._one_at_a_time = True
    DynamoHandler.call_action = call_action


@contextlib.contextmanager
def environment(**values):
    """The process environment with ``values`` set (a value of None: unset), restored afterwards."""
    saved = {k: os.environ.get(k) for k in values}
    for key, value in values.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
