"""The incident state on DynamoDB (moto server): update windows, publish failures and their
release, redelivery, a table that fails or does not answer, and the cost of a storm in AWS
requests. The pipeline is driven directly with a fake clock; AWS is real HTTP to moto."""

from __future__ import annotations

import copy

import pytest
from botocore.exceptions import ClientError

from auditor.pipeline import Pipeline
from auditor.publish import Publisher
from demo.envelope import to_eventbridge
from auditor.pipeline import State

from demo import scenarios as s

pytestmark = pytest.mark.integration


class Clock:
    """The function's clock, a minute after the scenario's time zero (records are fresh news)."""

    def __init__(self, now: float = s.T0.timestamp() + 60):
        self.now = now

    def __call__(self) -> float:
        return self.now


class Counting:
    def __init__(self):
        self.counts, self.by_cause, self.gauges, self.durations = {}, {}, {}, []

    def count(self, name, value=1):
        self.counts[name] = self.counts.get(name, 0) + value

    def findings(self, service, cause, value):
        self.by_cause[cause] = self.by_cause.get(cause, 0) + value

    def gauge(self, name, value):
        self.gauges[name] = value

    def seconds(self, name, value):
        self.durations.append((name, value))


class QuietLog:
    def __init__(self):
        self.lines = []

    def _log(self, msg, extra=None):
        self.lines.append((msg, extra))

    info = warning = error = exception = _log


def make(stack, aws, *, table=None, quiet=600, update=300, publisher=None, dynamodb=None):
    clock, metrics = Clock(), Counting()
    state = State.create(table or stack.table, quiet_seconds=quiet, update_seconds=update, client=dynamodb or aws("dynamodb"))
    pipe = Pipeline(publisher=publisher or Publisher(stack.topic_arn, client=aws("sns")), state=state,
                    metrics=metrics, logger=QuietLog(), clock=clock)
    return pipe, clock, metrics


def events(records, prefix="k"):
    return [(f"{prefix}-{i}", to_eventbridge(r)) for i, r in enumerate(records)]


def denied(n, start=0, role="checkout"):
    return [s.identity_denied(start + i, role, f"prod/{i % 3}", seed=f"{role}-{start}-{i}") for i in range(n)]


def test_updated_at_most_once_a_window_with_counts(stack, aws):
    pipe, clock, _ = make(stack, aws, update=300)
    pipe.handle(events(denied(2)))
    clock.now += 120
    pipe.handle(events(denied(3, 100), "b"))  # within the window: counted only
    assert [m.attributes["status"] for m in stack.drain()] == ["opened"]
    clock.now += 200  # 320 s after opening
    pipe.handle(events(denied(1, 400), "c"))
    (updated,) = stack.drain()
    assert updated.attributes["status"] == "updated" and updated.body["incident"]["failures"] == 6
    clock.now += 60
    pipe.handle(events(denied(5, 500), "d"))
    assert stack.drain() == []  # the next update waits for the next window


def test_quiet_incidents_resolve_on_the_scheduled_run_and_report_time_to_resolve(stack, aws):
    pipe, clock, metrics = make(stack, aws, quiet=600)
    pipe.handle(events(denied(3)))
    stack.drain()
    clock.now += 599
    assert pipe.scheduled().notified == []  # not quiet long enough
    assert metrics.gauges["OpenIncidents"] == 1
    clock.now += 1
    assert [status for status, _ in pipe.scheduled().notified] == ["resolved"]
    (resolved,) = stack.drain()
    assert resolved.body["incident"]["open_seconds"] == 600
    assert metrics.durations == [("TimeToResolve", 600.0)] and metrics.gauges["OpenIncidents"] == 0


def test_a_failure_arriving_during_resolution_keeps_it_open(stack, aws):
    pipe, clock, _ = make(stack, aws, quiet=600)
    pipe.handle(events(denied(1)))
    stack.drain()
    clock.now += 601
    original = pipe.state.table.write

    def failure_arrives_first(ops):
        pipe.state.table.write = original
        pipe.handle(events(denied(1, 700), "race"))  # counted between the read and the resolve
        return original(ops)

    pipe.state.table.write = failure_arrives_first
    assert pipe.scheduled().notified == []
    assert [m.attributes["status"] for m in stack.drain()] == ["updated"]  # the new failure's update, no "resolved"


class FailingPublisher(Publisher):
    """SNS throttles every call while ``failing``."""

    failing = True

    def _send(self, messages):
        if self.failing:
            return [ClientError({"Error": {"Code": "Throttling", "Message": "Rate exceeded"}}, "PublishBatch")] * len(messages)
        return super()._send(messages)


def test_a_message_that_could_not_be_sent_stays_owed_and_is_sent_once_by_the_next_run(stack, aws):
    """SNS throttles: nothing is handed back to SQS (the failures are counted, once), the message
    stays owed in the table, and the scheduled run sends it once SNS answers, saying nothing was lost."""
    publisher = FailingPublisher(stack.topic_arn, client=aws("sns"))
    pipe, clock, metrics = make(stack, aws, publisher=publisher)
    report = pipe.handle(events(denied(3)))
    assert report.failed_keys == [] and metrics.counts["PublishFailures"] == 1 and stack.drain() == []
    clock.now += 30
    assert pipe.scheduled().notified == []  # due again within a minute, not at once
    publisher.failing = False
    clock.now += 31
    assert [status for status, _ in pipe.scheduled().notified] == ["opened"]
    (opened,) = stack.drain()
    assert opened.attributes["status"] == "opened" and opened.body["incident"]["failures"] == 3
    clock.now += 60
    pipe.scheduled()
    pipe.handle(events(denied(3, 10), "b"))  # more failures, within the update window: counted, not sent
    assert stack.drain() == []


def test_the_next_batch_of_an_incident_carries_a_message_that_could_not_be_sent(stack, aws):
    publisher = FailingPublisher(stack.topic_arn, client=aws("sns"))
    pipe, clock, metrics = make(stack, aws, publisher=publisher)
    pipe.handle(events(denied(2)))
    publisher.failing = False
    clock.now += 100  # the claim has lapsed (90 s)
    pipe.handle(events(denied(1, 10), "b"))
    (opened,) = stack.drain()  # the owed "opened", with every failure so far; not an "updated"
    assert opened.attributes["status"] == "opened" and opened.body["incident"]["failures"] == 3
    clock.now += 61
    assert pipe.scheduled().notified == [] and stack.drain() == []


def test_a_redelivered_batch_after_a_throttled_write_is_not_notified_again(stack, aws):
    """Issue: the write that remembered notified events was throttled after the publish, and the
    batch redelivered whole notified everything again. The claim now marks the notification in
    the same write: nothing is written after a successful publish."""
    dynamodb = aws("dynamodb")
    pipe, clock, metrics = make(stack, aws, dynamodb=dynamodb)
    published = []
    sns = pipe.publisher.client
    sns.meta.events.register("after-call.sns.*", lambda **kw: published.append(1))

    def throttle_after_publish(**kwargs):
        if published:
            raise ClientError({"Error": {"Code": "ThrottlingException", "Message": "throttled"}}, "DynamoDB")

    dynamodb.meta.events.register("before-call.dynamodb.*", throttle_after_publish)
    batch = events(denied(4) + [s.expired(0, "batch-job", "prod/a")])
    assert pipe.handle(batch).failed_keys == []
    assert len(stack.drain()) == 2
    dynamodb.meta.events.unregister("before-call.dynamodb.*", throttle_after_publish)
    clock.now += 30
    pipe.handle(batch)  # the function timed out after publishing: SQS hands the whole batch over again
    assert stack.drain() == []


def test_the_table_failing_means_one_alert_per_root_cause_per_batch(stack, aws):
    pipe, clock, metrics = make(stack, aws, table="no-such-table")
    pipe.handle(events(denied(5) + [s.expired(0, "batch-job", "prod/a")]))
    messages = stack.drain()
    assert sorted(m.body["incident"]["root"]["kind"] for m in messages) == ["principal-credentials", "principal-permissions"]
    assert all("unavailable" in m.body["incident"]["searched"] for m in messages)
    assert metrics.counts["StateUnavailable"] == 1
    ids = {m.attributes["incident_id"] for m in messages}
    pipe.handle(events(denied(5, 10), "b"))
    (again,) = stack.drain()
    assert again.attributes["incident_id"] in ids  # the same dedup key: an on-call tool folds it into one


def test_a_table_that_does_not_answer_costs_one_request_then_none_while_the_breaker_is_open(stack, aws):
    import socket
    import threading

    import boto3
    from botocore.config import Config

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    accepted = []
    stop = threading.Event()

    def hold():
        silent.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(silent.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=hold, daemon=True)
    thread.start()
    client = boto3.client("dynamodb", endpoint_url=f"http://127.0.0.1:{silent.getsockname()[1]}", region_name="us-east-1",
                          config=Config(connect_timeout=0.3, read_timeout=0.3, retries={"max_attempts": 1}))
    try:
        pipe, clock, metrics = make(stack, aws, dynamodb=client)
        pipe.handle(events(denied(3)))
        assert pipe.state.requests == 1 and metrics.counts["StateUnavailable"] == 1
        pipe.handle(events(denied(3, 10), "b"))
        assert pipe.state.requests == 1  # the breaker is open: the table is not asked again
        assert len(stack.drain()) == 2  # both batches notified anyway (fail open)
    finally:
        stop.set()
        thread.join()
        silent.close()
        for conn in accepted:
            conn.close()


def test_a_storm_over_three_root_causes_costs_few_requests_per_event(stack, aws):
    """2,000 failures (the benchmark runs 10,000) over three root causes, in batches of 100: three
    alerts, every failure counted, and AWS requests counted with botocore's event hooks."""
    dynamodb, sns = aws("dynamodb"), aws("sns")
    sent = []
    for client in (dynamodb, sns):
        client.meta.events.register("before-send.*.*", lambda request, **kw: sent.append(request.url))
    pipe, clock, metrics = make(stack, aws, dynamodb=dynamodb, publisher=Publisher(stack.topic_arn, client=sns))
    base = [s.identity_denied(0, "checkout", "prod/a"), s.expired(0, "batch-job", "prod/b"), s.decrypt_disabled(0, "ingest", "s3.amazonaws.com")]
    storm = []
    for i in range(2000):
        r = copy.deepcopy(base[i % 3])
        r["eventID"] = f"storm-{i}"
        storm.append(r)
    for start in range(0, len(storm), 100):
        pipe.handle(events(storm[start:start + 100], f"b{start}"))
        clock.now += 1
    assert len(stack.drain()) == 3
    assert sum(metrics.by_cause.values()) == 2000
    assert len(sent) / len(storm) <= 0.05, len(sent)


def operations(client) -> list[str]:
    """The names of the requests ``client`` sends, in order (botocore's hooks)."""
    sent: list[str] = []
    client.meta.events.register("before-call.dynamodb.*", lambda model, **kw: sent.append(model.name))
    return sent


def test_one_root_is_one_put_or_update_item_and_several_roots_one_transaction(stack, aws):
    """An item alone needs no transaction: a conditional PutItem (a new incident, written whole)
    or UpdateItem is as atomic, half the write cost, and faster; several items are one transaction."""
    dynamodb = aws("dynamodb")
    sent = operations(dynamodb)
    pipe, clock, _ = make(stack, aws, dynamodb=dynamodb)
    pipe.handle(events(denied(3)))
    assert sent == ["BatchGetItem", "PutItem", "UpdateItem"]  # read; open and claim; confirm
    sent.clear()
    clock.now += 10
    pipe.handle(events(denied(2, 3), "a"))
    assert sent == ["BatchGetItem", "UpdateItem"]  # read; count (no message due yet)
    sent.clear()
    pipe.handle(events(denied(2, 10, role="other") + [s.expired(0, "batch-job", "prod/a")], "b"))
    assert sent == ["BatchGetItem", "TransactWriteItems", "TransactWriteItems"]
    assert sorted(m.attributes["status"] for m in stack.drain()) == ["opened"] * 3


def lose_one_answer(client, operation: str) -> list:
    """The next ``operation`` is applied by the table but its answer never comes: the SDK sends
    it again at once (as after a read timeout). Returns the attempts it was lost at."""
    lost: list = []

    def answer_lost(attempts, caught_exception=None, operation=None, **kw):
        if operation.name == lost_operation and not lost and caught_exception is None:
            lost.append(attempts)
            return 0
        return None

    lost_operation = operation
    client.meta.events.register_first(f"needs-retry.dynamodb.{operation}", answer_lost)
    return lost


def test_a_new_incident_whose_write_answer_was_lost_opens_once_and_counts_once(stack, aws):
    """DynamoDB applied the PutItem of a new incident but its answer never came, so the SDK sent it
    again and the repeat failed its condition (the item exists). The write's own token on the item
    says it was applied: the failures count once, and the alert goes out now, not after a lease."""
    dynamodb = aws("dynamodb")
    lost = lose_one_answer(dynamodb, "PutItem")
    pipe, clock, _ = make(stack, aws, dynamodb=dynamodb)
    report = pipe.handle(events(denied(3)))
    assert lost == [1] and report.counts.get("StateRetries", 0) == 0
    (opened,) = stack.drain()
    assert opened.attributes["status"] == "opened" and opened.body["incident"]["failures"] == 3
    clock.now += 600
    pipe.scheduled()
    (resolved,) = stack.drain()
    assert resolved.body["incident"]["failures"] == 3


def test_a_count_whose_write_answer_was_lost_is_counted_once(stack, aws):
    dynamodb = aws("dynamodb")
    pipe, clock, _ = make(stack, aws, dynamodb=dynamodb, update=60)
    pipe.handle(events(denied(3)))
    stack.drain()
    clock.now += 61
    lost = lose_one_answer(dynamodb, "UpdateItem")
    report = pipe.handle(events(denied(4, 3), "b"))  # counted, and the update it owes claimed, in one UpdateItem
    assert lost == [1] and report.counts.get("StateRetries", 0) == 0
    (updated,) = stack.drain()
    assert updated.attributes["status"] == "updated" and updated.body["incident"]["failures"] == 7


def test_a_transaction_holding_the_item_is_a_conflict_to_retry_not_an_unavailable_table():
    from auditor.storage import Conflict, Table, Writes

    class Busy:
        calls = 0

        def update_item(self, **kwargs):
            Busy.calls += 1
            raise ClientError({"Error": {"Code": "TransactionConflictException", "Message": "busy"}}, "UpdateItem")

    table = Table("t", client=Busy())
    op = Writes("t", open_ttl=60, resolved_ttl=60).update("inc#x").set("seen", {"N": "1"}).op()
    for _ in range(2):
        with pytest.raises(Conflict) as caught:
            table.write([op])
        assert caught.value.codes == ["TransactionConflict"]
    assert Busy.calls == 2  # the breaker stayed closed: the table answered
