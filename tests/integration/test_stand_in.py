"""The local stand-in is faithful where our state's correctness depends on it: DynamoDB
transactions are atomic, so parallel writers (the scheduled run writes four at once) never undo
each other on AWS, and must not on moto either (demo.stand_in.one_table_request_at_a_time)."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

from demo.stand_in import create_state_table


def test_a_cancelled_transaction_never_undoes_a_parallel_one(aws):
    ddb = aws("dynamodb")
    name = f"atomic-{uuid.uuid4().hex[:8]}"
    create_state_table(ddb, name)
    # moto copies the table before a transaction and puts the copy back when one of its conditions
    # fails: without one request at a time, a cancelled transaction restores the table as it was
    # before a parallel transaction's writes, and those writes are gone.
    for i in range(300):  # a table of some size: each copy takes long enough for writers to overlap
        ddb.put_item(TableName=name, Item={"pk": {"S": f"seed#{i}"}, "n": {"N": str(i)}})

    def write(i: int) -> bool:
        ops = [{"Put": {"TableName": name, "Item": {"pk": {"S": f"w#{i}#{k}"}}}} for k in range(20)]
        if i % 2:  # every other transaction is cancelled by a condition on an item that is not there
            ops.append({"ConditionCheck": {"TableName": name, "Key": {"pk": {"S": "absent"}},
                                           "ConditionExpression": "attribute_exists(pk)"}})
        try:
            aws("dynamodb").transact_write_items(TransactItems=ops)
            return True
        except ddb.exceptions.TransactionCanceledException:
            return False

    with ThreadPoolExecutor(8) as pool:
        written = [i for i, ok in zip(range(64), pool.map(write, range(64))) if ok]
    assert written == list(range(0, 64, 2))
    keys = {item["pk"]["S"] for page in ddb.get_paginator("scan").paginate(TableName=name, ProjectionExpression="pk")
            for item in page["Items"]}
    missing = [i for i in written if not all(f"w#{i}#{k}" in keys for k in range(20))]
    assert missing == [], f"transactions whose writes a cancelled one undid: {missing}"
