"""What the deployed stack gives the function, made on a local AWS stand-in (moto) for the demo,
the benchmark and the integration tests: one definition, so the three cannot drift apart."""

from __future__ import annotations

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
