"""No storms, no duplicates: windows, suppressed counts, redelivery, fail-open, release on failure."""

from __future__ import annotations

import copy

import pytest

from auditor.dedup import Dedup
from auditor.pipeline import Pipeline
from auditor.publish import Publisher
from auditor.trail import to_eventbridge

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
    class Flaky(Publisher):
        fail = True

        def publish(self, finding, repeats=None):
            if Flaky.fail:
                Flaky.fail = False
                raise RuntimeError("ThrottledException")
            return super().publish(finding, repeats)

    pipe, clock, metrics = make(stack, aws, publisher=Flaky(stack.topic_arn, client=aws("sns")))
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


def test_10000_failures_across_50_fingerprints_are_50_notifications(stack, aws, failures):
    pipe, clock, metrics = make(stack, aws)
    base = next(r for c, n, r in failures if c == "secret.not-found")
    events = []
    for i in range(10_000):
        r = copy.deepcopy(base)
        r["eventID"] = f"s-{i}"
        r["requestParameters"] = {"secretId": f"app/secret-{i % 50}"}
        events.append((r["eventID"], to_eventbridge(r)))
    for start in range(0, len(events), 1000):  # SQS batches of up to 10,000 with a batching window
        pipe.handle(events[start:start + 1000])
    assert len(stack.drain()) == 50
    assert sum(metrics.by_cause.values()) == 10_000


def test_a_failed_publish_keeps_the_previous_windows_suppressed_count_for_the_retry(stack, aws, record):
    class FailsOnce(Publisher):
        failed = False

        def publish(self, finding, repeats=None):
            if not FailsOnce.failed:
                FailsOnce.failed = True
                raise RuntimeError("Throttling")
            return super().publish(finding, repeats)

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
    class FailsOnce(Publisher):
        failed = False

        def publish(self, finding, repeats=None):
            if not FailsOnce.failed:
                FailsOnce.failed = True
                raise RuntimeError("Throttling")
            return super().publish(finding, repeats)

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
    assert metrics.by_cause["access-denied.identity-policy"] == 2  # one per attempt, not per copy


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
    assert operations == ["BatchGetItem", "TransactWriteItems", "BatchWriteItem", "BatchWriteItem"]
    clock.now += 60
    pipe.handle(distinct(record, 30, "c"))  # inside the window: counted, not notified
    assert stack.drain() == [] and metrics.counts["SuppressedDuplicates"] == 60
    clock.now += 900
    pipe.handle(distinct(record, 30, "d"))
    received = stack.drain()
    assert len(received) == 30
    assert {m.body["suppressed_repeats"]["count"] for m in received} == {2}  # one of "b", one of "c" each
    assert "UpdateItem" not in operations


def test_a_fingerprint_claimed_elsewhere_after_the_read_falls_back_and_is_notified_once(stack, aws):
    """Two functions race on one fingerprint: the transaction's condition (the state it read) no
    longer holds for it, so only that one takes the atomic path, which suppresses it."""
    mine, theirs = Dedup(stack.table, 900, client=aws("dynamodb")), Dedup(stack.table, 900, client=aws("dynamodb"))
    now = 1_800_000_000.0
    _, states = mine.read([], ["fp-raced", "fp-quiet"])
    assert states == {"fp-raced": None, "fp-quiet": None}
    assert theirs.claim("fp-raced", now).notify  # the other function wins the race
    claims, left = mine.claim_many({"fp-raced": 1, "fp-quiet": 3}, states, now)
    assert left == ["fp-raced"] and claims["fp-quiet"].notify and claims["fp-quiet"].added == 2
    assert not mine.claim("fp-raced", now).notify  # one notification for it, not two
    item = aws("dynamodb").get_item(TableName=stack.table, Key={"pk": {"S": "fp#fp-raced"}})["Item"]
    assert item["suppressed"]["N"] == "1"


def test_a_batch_fails_open_when_the_table_is_missing(stack, aws, record):
    pipe, _, metrics = make(stack, aws, table="no-such-table")
    pipe.handle(distinct(record, 5, "x"))
    assert len(stack.drain()) == 5 and metrics.counts["DedupUnavailable"] >= 1
