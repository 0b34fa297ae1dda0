"""The incident lifecycle, pure: what failures, changes and time do to an incident, and what each
channel is owed, in arrival time (the function) and in event time (the CLI)."""

from __future__ import annotations

import dataclasses

from auditor import lifecycle
from auditor.classify import classify, root_of
from auditor.incidents import Failure, Mark, change_entries, epoch, iso
from auditor.lifecycle import ARRIVAL, EVENT, Settings
from auditor.records import parse_record
from auditor.roots import affected
from demo import scenarios as s

SETTINGS = Settings(quiet=1800, update_window=900)
T = s.T0.timestamp()


def failure(record, now: float = T, settings: Settings = SETTINGS) -> Failure:
    call = parse_record(record)
    finding = classify(call)
    when, note = lifecycle.effective_time(call.event_time, now, settings)
    return Failure(finding, root_of(finding.cause, call), ("k",), (call.event_id,),
                   call.principal.identity_arn, affected(call), when, note)


def denied(t: float, role: str = "checkout", secret: str = "prod/a", seed: str = ""):
    return s.identity_denied(t, role, secret, seed=seed or f"{role}-{secret}-{t}")


def test_the_first_failure_opens_names_the_change_before_it_and_owes_every_channel_an_opened():
    change = s.detach_role_policy(-60, "checkout", "arn:aws:iam::111122223333:policy/p")
    d = lifecycle.decide(None, [failure(denied(0))], T + 5, SETTINGS, change_entries(parse_record(change)))
    assert d.action == "open" and d.after.occurrence == 1 and d.after.failures == 1
    assert d.after.attribution.change["action"] == "DetachRolePolicy" and d.after.attribution.change["lead_seconds"] == 60
    owed = lifecycle.notices(d.after, ("sns", "events"), T + 5, SETTINGS)
    assert [(n.status, n.channels) for n in owed] == [("opened", ("sns", "events"))]


def test_a_change_made_after_the_first_failure_is_never_named():
    later = s.detach_role_policy(30, "checkout", "arn:aws:iam::111122223333:policy/p")
    d = lifecycle.decide(None, [failure(denied(0))], T + 60, SETTINGS, change_entries(parse_record(later)))
    assert d.after.attribution.change is None
    assert [c["action"] for c in d.after.later_changes] == ["DetachRolePolicy"]  # a fix, perhaps: listed, not blamed


def test_counts_and_updates_at_most_once_a_window_and_only_with_new_failures():
    opened = lifecycle.decide(None, [failure(denied(0))], T, SETTINGS).after
    opened = lifecycle.with_marks(opened, {"sns": Mark(1, "opened", 1, "", T)})
    counted = lifecycle.decide(opened, [failure(denied(i, seed=f"x{i}")) for i in range(1, 4)], T + 100, SETTINGS)
    assert counted.action == "count" and counted.after.failures == 4
    assert lifecycle.notices(counted.after, ("sns",), T + 100, SETTINGS) == []  # within the window
    assert [n.status for n in lifecycle.notices(counted.after, ("sns",), T + 900, SETTINGS)] == ["updated"]
    marked = lifecycle.with_marks(counted.after, {"sns": Mark(1, "updated", 4, "", T + 900)})
    assert lifecycle.notices(marked, ("sns",), T + 2000, SETTINGS) == []  # no new failure: nothing to say


def test_a_channel_that_missed_the_opened_gets_an_opened_not_an_updated():
    opened = lifecycle.decide(None, [failure(denied(0))], T, SETTINGS).after
    both = lifecycle.with_marks(opened, {"sns": Mark(1, "opened", 1, "", T)})  # events failed
    owed = lifecycle.notices(both, ("sns", "events"), T + 60, SETTINGS)
    assert [(n.status, n.channels) for n in owed] == [("opened", ("events",))]


def test_old_news_is_recorded_and_counted_but_never_pages_or_opens_an_occurrence():
    old = failure(denied(-3 * 3600), now=T)  # three hours old when it arrives
    d = lifecycle.decide(None, [old], T, SETTINGS)
    assert d.action == "record" and d.after.occurrence == 0 and d.after.late == 1 and d.late == {old.event_id}
    assert lifecycle.notices(d.after, ("sns",), T, SETTINGS) == []
    # the next fresh failure opens occurrence 1, and its message mentions what arrived late
    fresh = lifecycle.decide(d.after, [failure(denied(0, seed="fresh"))], T + 1, SETTINGS)
    assert fresh.action == "open" and fresh.after.occurrence == 1 and fresh.after.late == 1
    (notice,) = lifecycle.notices(fresh.after, ("sns",), T + 1, SETTINGS)
    assert notice.status == "opened" and "arrived late" in notice.reason


def test_a_failure_older_than_the_last_resolution_counts_into_the_resolved_occurrence():
    opened = lifecycle.decide(None, [failure(denied(0))], T, SETTINGS).after
    resolved = lifecycle.resolve(opened, T + 1800, SETTINGS).after
    assert resolved.status == "resolved" and resolved.resolved_at == T + 1800
    late = failure(denied(900, seed="during"), now=T + 1900)  # happened before the resolution, arrived after
    d = lifecycle.decide(resolved, [late], T + 1900, SETTINGS)
    assert d.action == "record" and d.after.status == "resolved" and d.after.failures == 2
    again = lifecycle.decide(d.after, [failure(denied(1900, seed="after"), now=T + 1905)], T + 1905, SETTINGS)
    assert again.action == "open" and again.after.occurrence == 2 and again.after.first_failure >= resolved.resolved_at


def test_a_short_quiet_period_does_not_make_every_delivery_old_news():
    quick = Settings(quiet=1, update_window=1)
    d = lifecycle.decide(None, [failure(denied(0), now=T + 240, settings=quick)], T + 240, quick)
    assert d.action == "open"  # four minutes of CloudTrail delivery is not old news


def test_an_event_time_that_cannot_be_trusted_is_replaced_by_the_arrival_and_said_so():
    for bad in ("yesterday", "", "1700000000", "2026-13-45T99:99:99Z"):
        record = dict(denied(0), eventTime=bad)
        f = failure(record, now=T + 7)
        assert f.when == T + 7 and "could not be read" in f.time_note
    ahead = failure(dict(denied(0), eventTime=iso(T + 86400)), now=T)
    assert ahead.when == T and "after it arrived" in ahead.time_note
    d = lifecycle.decide(None, [ahead], T, SETTINGS)
    assert d.after.first_failure == T and d.after.notes and "not trusted" in d.after.notes[0]


def test_resolution_names_the_change_that_ended_it_or_says_none_was_found():
    opened = lifecycle.decide(None, [failure(s.decrypt_disabled(0, "ingest", "s3.amazonaws.com"))], T, SETTINGS,
                              change_entries(parse_record(s.disable_key(-60)))).after
    enable = s.record("kms", "EnableKey", 120, s.admin_identity(), {"keyId": s.KEY_ID}, resources=s.key_resource(), seed="enable")
    ended = lifecycle.resolve(opened, T + 2000, SETTINGS, change_entries(parse_record(enable))).after
    assert ended.ended_by["action"] == "EnableKey" and ended.to_dict()["ended_by"]["action"] == "EnableKey"
    nothing = lifecycle.resolve(opened, T + 2000, SETTINGS).after
    assert nothing.ended_by is None and "ended_by" in nothing.to_dict() and nothing.to_dict()["ended_by"] is None


def test_a_change_found_late_is_owed_as_an_update_once():
    opened = lifecycle.decide(None, [failure(s.decrypt_disabled(0, "ingest", "s3.amazonaws.com"))], T, SETTINGS).after
    opened = lifecycle.with_marks(opened, {"sns": Mark(1, "opened", 1, "", T)})
    found = lifecycle.on_changes(opened, change_entries(parse_record(s.disable_key(-60))), SETTINGS)
    assert found is not None and found.after.attribution.change["action"] == "DisableKey"
    (notice,) = lifecycle.notices(found.after, ("sns",), T + 10, SETTINGS)
    assert notice.status == "updated" and notice.reason == "change found"
    sent = lifecycle.with_marks(found.after, {"sns": notice.mark(T + 10)})
    assert lifecycle.notices(sent, ("sns",), T + 20, SETTINGS) == []
    assert lifecycle.on_changes(sent, change_entries(parse_record(s.disable_key(-60))), SETTINGS) is None  # again: nothing


def test_distinct_callers_are_counted_past_the_names_listed():
    members = [failure(denied(i % 50, role=f"role-{i}", seed=f"r{i}")) for i in range(5000)]
    d = lifecycle.decide(None, members, T + 60, SETTINGS)
    out = d.after.to_dict()
    assert out["principals"]["count"] == 5000 and out["principals"]["exact"] and len(out["principals"]["listed"]) == 20


def test_event_time_and_arrival_time_are_one_parameter_of_the_same_decisions():
    history = Settings(quiet=1800, update_window=900, clock=EVENT)
    opened = lifecycle.decide(None, [failure(denied(0))], T, history).after
    assert not lifecycle.quiet(opened, T + 1799, history) and lifecycle.quiet(opened, T + 1800, history)
    live = dataclasses.replace(opened, last_arrival=T + 500)  # in arrival time, what counts is when it last arrived
    assert not lifecycle.quiet(live, T + 1800, dataclasses.replace(history, clock=ARRIVAL))
    assert lifecycle.resolve(opened, T + 9999, history).after.resolved_at == T + 1800  # when it became quiet
    assert epoch(iso(T)) == T


def test_the_state_waits_for_a_partner_as_long_as_the_joins_say():
    from auditor import joins
    from auditor.pipeline import State

    assert State.__dataclass_fields__["join_wait"].default == joins.JOIN_WAIT
