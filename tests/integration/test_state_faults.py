"""Faults that hostile use found in the incident state (issue 19), each against the real table on
the moto server: a release undoing another writer's counts, a late change lost while SNS failed,
old news paging again, untrusted event times, a scheduled run cut off midway, counts that stop
at the names kept, and the order of a scheduled run's messages."""

from __future__ import annotations

import dataclasses
import json

import pytest
from auditor.incidents import iso
from auditor.pipeline import CLAIM_SECONDS, RETRY_SECONDS
from auditor.storage import finding_to_dict, join_pk, root_to_dict, stored_incident

from demo import scenarios as s
from .test_incident_state import FailingPublisher, denied, events, make

pytestmark = pytest.mark.integration


def statuses(stack) -> list[tuple[str, int]]:
    return [(m.attributes["status"], m.body["incident"]["failures"]) for m in stack.drain()]


def test_a_failed_send_never_undoes_another_invocations_counts(stack, aws):
    """Instance A claims the "opened" of an incident and its send fails, while instance B counts
    five more failures into it. Nothing A does afterwards touches the counts: all 8 are there."""
    failing = FailingPublisher(stack.topic_arn, client=aws("sns"))
    a, clock, _ = make(stack, aws, publisher=failing)
    b, _, _ = make(stack, aws)
    b.clock = clock
    send = failing.send

    def b_counts_while_a_sends(notices):
        b.handle(events(denied(5, 100), "b"))
        return send(notices)

    failing.send = b_counts_while_a_sends
    a.handle(events(denied(3)))
    assert stack.drain() == []  # A's "opened" failed; B saw A's live claim and did not send it either
    failing.failing = False
    failing.send = send
    clock.now += CLAIM_SECONDS + 1
    b.scheduled()
    assert statuses(stack) == [("opened", 8)]  # sent once, by the scheduled run, with every failure
    clock.now += 600
    b.scheduled()
    assert statuses(stack) == [("resolved", 8)]


def test_a_change_that_arrives_late_while_sns_fails_is_announced_once_sns_answers(stack, aws):
    failing = FailingPublisher(stack.topic_arn, client=aws("sns"))
    failing.failing = False
    pipe, clock, metrics = make(stack, aws, publisher=failing)
    pipe.handle(events([s.decrypt_disabled(0, "ingest", "s3.amazonaws.com")]))
    (opened,) = stack.drain()
    assert opened.body["incident"]["change"] is None
    failing.failing = True
    clock.now += 30
    pipe.handle(events([s.disable_key(-300)], "late"))  # the change that started it, late
    assert stack.drain() == [] and metrics.counts["PublishFailures"] == 1
    pipe.handle(events([s.disable_key(-300)], "again"))  # redelivered: still owed, not lost, not doubled
    failing.failing = False
    clock.now += RETRY_SECONDS + CLAIM_SECONDS
    pipe.scheduled()
    (updated,) = stack.drain()
    assert updated.attributes["status"] == "updated" and updated.body["incident"]["change"]["action"] == "DisableKey"
    clock.now += 60
    pipe.scheduled()
    pipe.handle(events([s.disable_key(-300)], "third"))
    assert stack.drain() == []


def test_old_news_is_recorded_counted_and_mentioned_but_never_pages(stack, aws):
    pipe, clock, metrics = make(stack, aws, quiet=600)
    pipe.handle(events(denied(1)))
    assert [st for st, _ in statuses(stack)] == ["opened"]
    clock.now += 601
    pipe.scheduled()
    assert [st for st, _ in statuses(stack)] == ["resolved"]
    three_hours_ago = s.identity_denied(clock.now - s.T0.timestamp() - 3 * 3600, "checkout", "prod/0", seed="old")
    report = pipe.handle(events([three_hours_ago], "old"))
    assert stack.drain() == [] and metrics.counts["LateFailures"] == 1  # recorded, counted, not paged
    assert metrics.by_cause["access-denied.identity-policy"] == 2
    fresh = s.identity_denied(clock.now - s.T0.timestamp(), "checkout", "prod/0", seed="fresh")
    pipe.handle(events([fresh], "fresh"))
    (opened,) = stack.drain()
    incident = opened.body["incident"]
    assert opened.attributes["status"] == "opened" and incident["occurrence"] == 2 and incident["late"]["count"] == 1
    assert incident["first_failure"] >= iso(clock.now - 5)  # never before the last resolution
    assert "arrived late" in incident["reason"]
    assert report.findings and report.findings[0].event_id == three_hours_ago["eventID"]


def test_a_root_first_seen_with_old_news_pages_nobody(stack, aws):
    pipe, clock, metrics = make(stack, aws)
    old = s.expired(clock.now - s.T0.timestamp() - 2 * 3600, "batch-job", "prod/b", seed="old")
    pipe.handle(events([old]))
    assert stack.drain() == [] and metrics.counts["LateFailures"] == 1 and metrics.counts["FindingsTotal"] == 1


@pytest.mark.parametrize("event_time", ["yesterday", "", 1764547200, "2026-13-45T99:99:99Z", "+1 day"])
def test_an_event_time_that_cannot_be_trusted_counts_at_arrival_and_never_blames_a_later_change(stack, aws, event_time):
    pipe, clock, metrics = make(stack, aws)
    now = clock.now
    record = s.decrypt_disabled(0, "ingest", "s3.amazonaws.com")
    record["eventTime"] = iso(now + 86400) if event_time == "+1 day" else event_time
    after = s.disable_key(now - s.T0.timestamp() + 30)  # made after the failure arrived
    pipe.handle(events([after, record]))
    (opened,) = stack.drain()
    incident = opened.body["incident"]
    assert incident["first_failure"] == iso(now) and incident["last_failure"] == iso(now)
    assert incident["change"] is None  # a change after the first failure is never its cause
    assert any("arrived" in e for e in opened.body["evidence"]) and incident["notes"]


def test_a_scheduled_run_cut_off_midway_loses_no_resolution(stack, aws, monkeypatch):
    """120 quiet incidents, in pages of 50; the run is killed after its first page of resolutions
    was written and before they were sent. The next runs send every one, once: the other pages at
    once, the first page's when its claims lapse."""
    from auditor import sweep

    monkeypatch.setattr(sweep, "PAGE", 50)
    pipe, clock, metrics = make(stack, aws, quiet=600)
    records = [s.identity_denied(0, f"role-{i}", "prod/x", seed=f"cut-{i}") for i in range(120)]
    for start in range(0, 120, 60):
        pipe.handle(events(records[start:start + 60], f"b{start}"))
    assert len(stack.drain()) == 120
    clock.now += 601

    class Killed(BaseException):
        pass

    publisher = pipe.publisher
    send = publisher.send

    def killed(notices):
        raise Killed()

    publisher.send = killed
    with pytest.raises(Killed):
        pipe.scheduled()
    publisher.send = send
    assert stack.drain() == []
    clock.now += 30
    pipe.scheduled()  # the first page's claims hold: its resolutions are not sent twice; the rest are sent
    assert len(stack.drain()) == 70
    clock.now += CLAIM_SECONDS
    pipe.scheduled()
    resolved = [m for m in stack.drain() if m.attributes["status"] == "resolved"]
    assert len(resolved) == 50 and len({m.attributes["incident_id"] for m in resolved}) == 50
    clock.now += 60
    assert pipe.scheduled().notified == [] and stack.drain() == []


def test_a_scheduled_run_stops_within_its_time_and_the_next_one_finishes(stack, aws, monkeypatch):
    from auditor import sweep

    monkeypatch.setattr(sweep, "PAGE", 10)
    pipe, clock, metrics = make(stack, aws, quiet=600)
    pipe.handle(events([s.identity_denied(0, f"role-{i}", "prod/x", seed=f"t-{i}") for i in range(40)]))
    stack.drain()
    clock.now += 601
    left = iter([60.0])
    pipe.scheduled(remaining=lambda: next(left, 1.0))  # time for one page only
    assert len(stack.drain()) == 10 and metrics.counts["SweepDeferred"] == 30
    pipe.scheduled()
    assert len(stack.drain()) == 30  # the next run finishes: none missed, none twice


def test_counts_keep_counting_past_the_names_kept(stack, aws):
    pipe, clock, _ = make(stack, aws, update=10 ** 6)
    for start in range(0, 450, 90):  # 450 roles fail on one disabled key: one incident, 450 callers
        pipe.handle(events([s.decrypt_disabled(0, f"r{start + i}", "s3.amazonaws.com", seed=f"c{start + i}")
                            for i in range(90)], f"p{start}"))
    clock.now += 10 ** 6
    pipe.scheduled()
    messages = stack.drain()
    last = messages[-1].body["incident"]
    assert last["principals"]["count"] == 450 and last["principals"]["exact"] and len(last["principals"]["listed"]) == 20


def test_the_scheduled_run_sends_a_resolution_before_a_new_occurrence_of_the_same_incident(stack, aws):
    """A record that waited for its partner is released by the same run that resolves its root: the
    resolution is sent (and confirmed) first; the released record, if newer than the resolution,
    opens the next occurrence after it; if older, it is old news for the resolved one."""
    pipe, clock, metrics = make(stack, aws, quiet=600)
    pipe.handle(events(denied(1)))
    (opened,) = stack.drain()
    incident_id = opened.attributes["incident_id"]
    stored = stored_incident(pipe.state.table.read([f"inc#{incident_id}"])[f"inc#{incident_id}"])
    clock.now += 601
    # a parked record of the same root, newer than the resolution about to happen (its time: now)
    finding = dataclasses.replace(stored.incident.finding, event_id="released-1")
    entry = {"side": "sm", "when": clock.now, "event_id": "released-1", "state": "parked", "incident": "",
             "arrived": clock.now - 200, "until": clock.now + 3000, "finding": finding_to_dict(finding),
             "root": root_to_dict(stored.incident.root), "principal": "arn:aws:iam::111122223333:role/checkout",
             "resource": "prod/0", "event_ids": ["released-1"], "keys": [], "at": clock.now + 1, "note": ""}
    pk = join_pk("sm-kms|test|ordering")
    pipe.state.table.call("update_item", TableName=pipe.state.table.name, Key={"pk": {"S": pk}},
                          UpdateExpression="SET doc = :d, v = :v, due_shard = :s, due_at = :t",
                          ExpressionAttributeValues={":d": {"S": json.dumps([entry])}, ":v": {"N": "1"},
                                                     ":s": {"S": "0"}, ":t": {"N": str(clock.now - 1)}})
    report = pipe.scheduled()
    assert [(status, i) for _, status, i in report.sent] == [("resolved", incident_id), ("opened", incident_id)]
    messages = stack.drain()
    assert [(m.attributes["status"], m.body["incident"]["occurrence"]) for m in messages] == [("resolved", 1), ("opened", 2)]
