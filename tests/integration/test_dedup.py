"""No storms, no duplicates: windows, suppressed counts, redelivery, fail-open, release on failure."""

from __future__ import annotations

import copy

import pytest

from auditor.dedup import Dedup
from auditor.pipeline import Pipeline
from auditor.publish import Publisher
from auditor.records import to_eventbridge

pytestmark = pytest.mark.integration


class Clock:
    def __init__(self, now: float = 1_800_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


class Counting:
    def __init__(self):
        self.counts, self.by_cause = {}, {}

    def count(self, name, value=1):
        self.counts[name] = self.counts.get(name, 0) + value

    def findings(self, service, cause, value):
        self.by_cause[cause] = self.by_cause.get(cause, 0) + value


class QuietLog:
    def __init__(self):
        self.lines = []

    def _log(self, msg, extra=None):
        self.lines.append((msg, extra))

    info = warning = error = _log


def make(stack, aws, table=None, window=900, publisher=None):
    clock, metrics = Clock(), Counting()
    pipe = Pipeline(publisher=publisher or Publisher(stack.topic_arn, client=aws("sns")),
                    dedup=Dedup(table or stack.table, window, client=aws("dynamodb")),
                    metrics=metrics, logger=QuietLog(), clock=clock)
    return pipe, clock, metrics


class FailsOnce(Publisher):
    """Publishes, except the first time (a throttled or unreachable SNS)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.failed = False

    def publish(self, finding, repeats=None):
        if not self.failed:
            self.failed = True
            raise RuntimeError("Throttling")
        return super().publish(finding, repeats)


def copies(record, n, prefix="e"):
    out = []
    for i in range(n):
        r = copy.deepcopy(record)
        r["eventID"] = f"{prefix}-{i}"
        out.append((r["eventID"], to_eventbridge(r)))
    return out


@pytest.fixture
def record(failures):
    return next(r for c, n, r in failures if c == "access-denied.identity-policy")


def test_suppressed_inside_the_window_and_counted_in_the_next_notification(stack, aws, record):
    pipe, clock, metrics = make(stack, aws)
    pipe.handle(copies(record, 1, "first"))
    for i in range(4):
        clock.now += 60
        pipe.handle(copies(record, 1, f"repeat{i}"))
    assert len(stack.drain()) == 1
    assert metrics.counts["SuppressedDuplicates"] == 4 and metrics.by_cause["access-denied.identity-policy"] == 5
    clock.now += 900  # the window has passed
    pipe.handle(copies(record, 1, "later"))
    (msg,) = stack.drain()
    assert msg.body["suppressed_repeats"]["count"] == 4


def test_redelivered_event_never_notifies_twice_even_after_the_window(stack, aws, record):
    pipe, clock, metrics = make(stack, aws)
    event = copies(record, 1, "same")
    pipe.handle(event)
    clock.now += 5000
    pipe.handle(event)  # EventBridge delivered the same CloudTrail event again
    assert len(stack.drain()) == 1
    assert metrics.counts["RedeliveredEvents"] == 1


def test_fail_open_when_the_table_does_not_exist(stack, aws, record):
    pipe, clock, metrics = make(stack, aws, table="missing-table")
    pipe.handle(copies(record, 1))
    pipe.handle(copies(record, 1, "again"))
    assert len(stack.drain()) == 2  # better two alerts than none
    assert metrics.counts["DedupUnavailable"] >= 2


def test_failed_publish_releases_the_claim_so_the_retry_notifies(stack, aws, record):
    pipe, clock, metrics = make(stack, aws, publisher=FailsOnce(stack.topic_arn, client=aws("sns")))
    event = copies(record, 1)
    report = pipe.handle(event)
    assert report.failed_keys == ["e-0"] and metrics.counts["PublishFailures"] == 1
    report = pipe.handle(event)  # AWS retries the same event
    assert report.failed_keys == [] and len(stack.drain()) == 1


def test_storm_of_10000_identical_failures_is_one_notification_and_10000_counted(stack, aws, record):
    pipe, clock, metrics = make(stack, aws)
    events = copies(record, 10_000)
    for start in range(0, len(events), 100):  # SQS batches of 100
        pipe.handle(events[start:start + 100])
        clock.now += 0.5
    assert len(stack.drain()) == 1
    assert metrics.by_cause["access-denied.identity-policy"] == 10_000
    assert metrics.counts["SuppressedDuplicates"] == 9_999


def test_1000_failures_across_50_fingerprints_are_50_notifications(stack, aws, failures):
    """In batches of 100, as the event source mapping hands them over. (Kept to 1,000: moto's
    TransactWriteItems copies the whole table once per item, and every event leaves a marker.)"""
    pipe, clock, metrics = make(stack, aws)
    base = next(r for c, n, r in failures if c == "secret.not-found")
    events = []
    for i in range(1_000):
        r = copy.deepcopy(base)
        r["eventID"] = f"s-{i}"
        r["requestParameters"] = {"secretId": f"app/secret-{i % 50}"}
        events.append((r["eventID"], to_eventbridge(r)))
    for start in range(0, len(events), 100):  # SQS batches of 100, as the event source mapping hands them over
        pipe.handle(events[start:start + 100])
    assert len(stack.drain()) == 50
    assert sum(metrics.by_cause.values()) == 1_000 and metrics.counts["SuppressedDuplicates"] == 950


def test_a_failed_publish_keeps_the_previous_windows_suppressed_count_for_the_retry(stack, aws, record):
    pipe, clock, metrics = make(stack, aws)
    started = int(clock.now)
    pipe.handle(copies(record, 1, "first"))
    clock.now += 60
    pipe.handle(copies(record, 3, "repeat"))  # one batch: collapsed, 3 suppressed
    assert len(stack.drain()) == 1
    clock.now += 900
    flaky = make(stack, aws, publisher=FailsOnce(stack.topic_arn, client=aws("sns")))[0]
    flaky.clock = clock
    event = copies(record, 1, "after-window")
    assert flaky.handle(event).failed_keys == ["after-window-0"]
    assert stack.drain() == []
    assert flaky.handle(event).failed_keys == []  # the retry
    (msg,) = stack.drain()
    assert msg.body["suppressed_repeats"] == {"count": 3, "since": started}


def test_a_redelivered_event_anywhere_in_a_batch_is_not_counted_again(stack, aws, record):
    pipe, clock, metrics = make(stack, aws)
    (first,) = copies(record, 1, "first")
    pipe.handle([first])
    clock.now += 60
    (new,) = copies(record, 1, "new")
    pipe.handle([new, first])  # SQS redelivers "first" in a batch behind a genuinely new repeat
    assert metrics.counts["RedeliveredEvents"] == 1 and metrics.counts["SuppressedDuplicates"] == 1
    clock.now += 900
    pipe.handle(copies(record, 1, "later"))
    msgs = stack.drain()
    assert len(msgs) == 2 and [m.body.get("suppressed_repeats", {}).get("count") for m in msgs].count(1) == 1



def test_the_same_event_twice_in_one_batch_is_one_failure_and_retried_together(stack, aws, record):
    """EventBridge and SQS both deliver at least once: two messages carrying one CloudTrail event
    in a batch are one finding and one notification, not a finding plus a suppressed repeat."""
    (event,) = copies(record, 1, "twice")
    flaky, clock, metrics = make(stack, aws, publisher=FailsOnce(stack.topic_arn, client=aws("sns")))
    batch = [("msg-1", event[1]), ("msg-2", copy.deepcopy(event[1]))]
    report = flaky.handle(batch)
    assert sorted(report.failed_keys) == ["msg-1", "msg-2"]  # both come back, neither is lost
    assert stack.drain() == []
    report = flaky.handle(batch)  # SQS redelivers both
    assert report.failed_keys == [] and len(report.findings) == 1
    (msg,) = stack.drain()
    assert "suppressed_repeats" not in msg.body
    assert metrics.counts["RedeliveredEvents"] == 2 and "SuppressedDuplicates" not in metrics.counts
    assert metrics.by_cause["access-denied.identity-policy"] == 1  # counted once, when it settled


def distinct(record, n, prefix):
    """``n`` failures of the same kind on ``n`` different secrets: ``n`` fingerprints."""
    out = []
    for i in range(n):
        r = copy.deepcopy(record)
        r["eventID"] = f"{prefix}-{i}"
        r["requestParameters"] = {"secretId": f"prod/service-{i}"}
        out.append((r["eventID"], to_eventbridge(r)))
    return out


def test_a_batch_claims_every_fingerprint_in_one_transaction_and_counts_carry_over(stack, aws, record):
    pipe, clock, metrics = make(stack, aws)
    operations = []
    pipe.dedup.client.meta.events.register("before-call.dynamodb", lambda model, **_: operations.append(model.name))
    pipe.handle(distinct(record, 30, "a") + distinct(record, 30, "b"))  # 30 fingerprints, each twice
    assert len(stack.drain()) == 30
    # one read of the 60 events and 30 fingerprints, one transaction of 30 conditional writes,
    # and the 60 settled events remembered 25 at a time
    assert operations == ["BatchGetItem", "TransactWriteItems"] + ["BatchWriteItem"] * 3
    clock.now += 60
    pipe.handle(distinct(record, 30, "c"))  # inside the window: counted, not notified
    assert stack.drain() == [] and metrics.counts["SuppressedDuplicates"] == 60
    clock.now += 900
    pipe.handle(distinct(record, 30, "d"))
    received = stack.drain()
    assert len(received) == 30
    assert {m.body["suppressed_repeats"]["count"] for m in received} == {2}  # one of "b", one of "c" each
    assert "UpdateItem" not in operations and metrics.counts.get("DedupRetries", 0) == 0


def test_a_fingerprint_claimed_elsewhere_after_the_read_falls_back_and_is_notified_once(stack, aws):
    """Two functions race on one fingerprint: the transaction's condition (the state it read) no
    longer holds for it, so only that one takes the atomic path, which suppresses it."""
    mine, theirs = Dedup(stack.table, 900, client=aws("dynamodb")), Dedup(stack.table, 900, client=aws("dynamodb"))
    now = 1_800_000_000.0
    _, states, _ = mine.read([], ["fp-raced", "fp-quiet"])
    assert states == {"fp-raced": None, "fp-quiet": None}
    assert theirs.claim("fp-raced", now).notify  # the other function wins the race
    claims, left = mine.claim_many({"fp-raced": (1, ["r-1"]), "fp-quiet": (3, ["q-1", "q-2", "q-3"])}, states, now)
    assert left == ["fp-raced"] and claims["fp-quiet"].notify and claims["fp-quiet"].added == 2
    assert not mine.claim("fp-raced", now).notify  # one notification for it, not two
    item = aws("dynamodb").get_item(TableName=stack.table, Key={"pk": {"S": "fp#fp-raced"}})["Item"]
    assert item["suppressed"]["N"] == "1"


def test_a_batch_fails_open_when_the_table_is_missing(stack, aws, record):
    pipe, _, metrics = make(stack, aws, table="no-such-table")
    operations = []
    pipe.dedup.client.meta.events.register("before-call.dynamodb", lambda model, **_: operations.append(model.name))
    pipe.handle(distinct(record, 5, "x"))
    assert len(stack.drain()) == 5
    assert metrics.counts["DedupUnavailable"] == 1  # one outage, one count
    assert operations == ["BatchGetItem"]  # the table failed the read: the batch does not ask it again


class Wrapped:
    """A DynamoDB client whose calls can be intercepted by name."""

    def __init__(self, real, **overrides):
        self.real, self.meta, self.overrides = real, real.meta, overrides

    def __getattr__(self, name):
        return self.overrides.get(name) or getattr(self.real, name)


def test_a_claim_botocore_resent_after_its_answer_was_lost_still_notifies(stack, aws, record):
    """DynamoDB wrote the claim, the answer was lost (a read timeout), botocore resent it: the
    window it meets is its own (claimed_by), not a repeat to suppress."""
    pipe, _, metrics = make(stack, aws)
    attempts = []

    def resend_the_first_attempt(attempts_=None, **_):
        attempts.append(1)
        return 0 if len(attempts) == 1 else None  # retry at once, as after a ReadTimeoutError

    pipe.dedup.client.meta.events.register_first("needs-retry.dynamodb.UpdateItem", resend_the_first_attempt)
    report = pipe.handle(copies(record, 1, "lost-answer"))
    assert len(attempts) >= 2 and report.notified and len(stack.drain()) == 1
    assert "SuppressedDuplicates" not in metrics.counts


def test_a_failed_publish_whose_release_fails_too_notifies_on_its_retry(stack, aws, record):
    """The claim could not be released (throttled): the retry of the same event meets a window
    claimed for it and notifies; a different event's repeat is still suppressed."""
    from botocore.exceptions import ClientError

    ddb = aws("dynamodb")

    def update_item(**kwargs):
        if kwargs.get("ConditionExpression") == "window_start = :start":  # the release
            raise ClientError({"Error": {"Code": "ProvisionedThroughputExceededException"}}, "UpdateItem")
        return ddb.update_item(**kwargs)

    clock, metrics = Clock(), Counting()
    pipe = Pipeline(publisher=FailsOnce(stack.topic_arn, client=aws("sns")),
                    dedup=Dedup(stack.table, 900, client=Wrapped(ddb, update_item=update_item)),
                    metrics=metrics, logger=QuietLog(), clock=clock)
    event = copies(record, 1, "unlucky")
    assert pipe.handle(event).failed_keys == ["unlucky-0"]
    clock.now += 180  # SQS's visibility timeout later
    assert pipe.handle(event).notified and len(stack.drain()) == 1
    clock.now += 60
    assert not pipe.handle(copies(record, 1, "other")).notified  # a real repeat, in the window
    assert stack.drain() == [] and metrics.counts["SuppressedDuplicates"] == 1
    assert metrics.by_cause["access-denied.identity-policy"] == 2  # unlucky once (when it settled), other once


def test_a_batch_redelivered_whole_after_the_window_neither_notifies_nor_counts_again(stack, aws, record):
    """The function published, then timed out: SQS hands the whole batch over again, after a
    one-minute window. Repeats that were suppressed are remembered too."""
    pipe, clock, metrics = make(stack, aws, window=60)
    (first, repeat) = copies(record, 2, "r")
    other = copy.deepcopy(record)
    other["eventName"] = "DescribeSecret"
    pipe.handle([first])
    clock.now += 30
    batch = [repeat, ("o-0", to_eventbridge({**other, "eventID": "o-0"}))]
    pipe.handle(batch)  # the repeat is suppressed (inside the window), the other failure notified
    assert len(stack.drain()) == 2 and metrics.counts["SuppressedDuplicates"] == 1
    clock.now += 180
    again = pipe.handle(batch)
    assert again.notified == [] and stack.drain() == []
    assert metrics.counts["RedeliveredEvents"] == 2 and metrics.counts["SuppressedDuplicates"] == 1
    assert sum(metrics.by_cause.values()) == 3  # three failures, each counted once


def test_event_markers_left_unprocessed_are_retried_with_backoff_then_counted(stack, aws, record):
    ddb, calls = aws("dynamodb"), []

    def batch_write_item(RequestItems):
        calls.append(RequestItems)
        return {"UnprocessedItems": RequestItems}  # what a throttled table answers

    clock, metrics = Clock(), Counting()
    pipe = Pipeline(publisher=Publisher(stack.topic_arn, client=aws("sns")),
                    dedup=Dedup(stack.table, 900, client=Wrapped(ddb, batch_write_item=batch_write_item)),
                    metrics=metrics, logger=QuietLog(), clock=clock)
    assert pipe.handle(copies(record, 1)).notified
    assert len(calls) == 4 and metrics.counts["DedupUnavailable"] == 1  # not silently dropped


def test_an_item_without_a_window_is_claimed_and_a_deleted_one_is_never_resurrected(stack, aws, record):
    """An item with no window_start (not one this code writes) is claimed, not suppressed for
    ever; and if TTL deletes the item between reading it and counting a repeat into it, the
    repeat is decided again instead of recreating an item with only a count."""
    ddb = aws("dynamodb")
    pipe, clock, metrics = make(stack, aws)
    fingerprint = pipe.handle(copies(record, 1, "probe")).findings[0].fingerprint
    stack.drain()
    key = {"pk": {"S": f"fp#{fingerprint}"}}
    ddb.put_item(TableName=stack.table, Item={**key, "suppressed": {"N": "2"}})
    clock.now += 60
    assert pipe.handle(copies(record, 1, "after-poison")).notified and len(stack.drain()) == 1

    deleted = []

    def update_item(**kwargs):
        if kwargs["UpdateExpression"].startswith("SET expires_at = :exp ADD suppressed") and not deleted:
            ddb.delete_item(TableName=stack.table, Key=kwargs["Key"])  # TTL's sweep, right now
            deleted.append(1)
        return ddb.update_item(**kwargs)

    racing = Pipeline(publisher=Publisher(stack.topic_arn, client=aws("sns")),
                      dedup=Dedup(stack.table, 900, client=Wrapped(ddb, update_item=update_item)),
                      metrics=Counting(), logger=QuietLog(), clock=clock)
    clock.now += 60
    assert racing.handle(copies(record, 1, "in-window")).notified  # the window is gone: a new one
    item = ddb.get_item(TableName=stack.table, Key=key)["Item"]
    assert deleted and {"window_start", "expires_at", "claimed_by"} <= set(item)


def test_a_table_that_does_not_answer_costs_one_read_per_batch_and_none_while_the_breaker_is_open(record):
    """A table that accepts connections and never answers: the batch waits out one read (its
    retries included), notifies anyway, and asks the table nothing more; the next batch does
    not ask it at all until the breaker closes."""
    import socket
    import threading

    import boto3
    from botocore.config import Config

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    held = []
    threading.Thread(target=lambda: [held.append(server.accept()) for _ in iter(int, 1)], daemon=True).start()
    client = boto3.client("dynamodb", region_name="us-east-1", endpoint_url=f"http://127.0.0.1:{server.getsockname()[1]}",
                          aws_access_key_id="x", aws_secret_access_key="x",
                          config=Config(connect_timeout=0.2, read_timeout=0.2, retries={"max_attempts": 2, "mode": "standard"}))  # 2 retries
    sends = []
    client.meta.events.register("before-send.dynamodb", lambda request, **_: sends.append(request.headers.get("X-Amz-Target")))

    class Collect:
        published: list = []

        def publish_many(self, items):
            self.published.extend(items)
            return [None] * len(items)

    monotonic = Clock(100.0)
    clock, metrics = Clock(), Counting()
    pipe = Pipeline(publisher=Collect(), dedup=Dedup("hung", 900, client=client, clock=monotonic),
                    metrics=metrics, logger=QuietLog(), clock=clock)
    try:
        pipe.handle(distinct(record, 10, "first"))
        assert len(Collect.published) == 10 and metrics.counts["DedupUnavailable"] == 1
        assert sends == [b"DynamoDB_20120810.BatchGetItem"] * 3  # the read and its 2 retries; no claims, no markers
        monotonic.now += 5
        pipe.handle(distinct(record, 10, "second"))
        assert len(Collect.published) == 20 and len(sends) == 3  # breaker open: not asked
        monotonic.now += 60
        pipe.handle(distinct(record, 10, "third"))
        assert len(Collect.published) == 30 and len(sends) == 6  # closed again: asked once more
    finally:
        server.close()


def test_a_transaction_conflict_on_one_fingerprint_sends_only_that_one_the_atomic_way(stack, aws):
    """In a storm, concurrent batches all write the storm's fingerprint: a conflict there cancels
    the transaction, and the other fingerprints are written again in it, not one by one."""
    from botocore.exceptions import ClientError

    ddb, transactions = aws("dynamodb"), []

    def transact_write_items(TransactItems):
        transactions.append([t["Update"]["Key"]["pk"]["S"] for t in TransactItems])
        if len(transactions) == 1:
            codes = ["TransactionConflict" if t["Update"]["Key"]["pk"]["S"] == "fp#storm" else "None" for t in TransactItems]
            raise ClientError({"Error": {"Code": "TransactionCanceledException", "Message": "Transaction cancelled"},
                               "CancellationReasons": [{"Code": c} for c in codes]}, "TransactWriteItems")
        return ddb.transact_write_items(TransactItems=TransactItems)

    dedup = Dedup(stack.table, 900, client=Wrapped(ddb, transact_write_items=transact_write_items))
    now = 1_800_000_000.0
    _, states, _ = dedup.read([], ["fp-a", "storm", "fp-b"])
    claims, left = dedup.claim_many({"fp-a": (1, ["a"]), "storm": (5, ["s1", "s2"]), "fp-b": (2, ["b1", "b2"])}, states, now)
    assert left == ["storm"] and set(claims) == {"fp-a", "fp-b"} and all(c.notify for c in claims.values())
    assert transactions == [["fp#fp-a", "fp#storm", "fp#fp-b"], ["fp#fp-a", "fp#fp-b"]]
    assert dedup.claim("storm", now, 5, ["s1", "s2"]).notify  # the atomic path: nobody else had claimed it
