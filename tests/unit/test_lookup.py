"""`auditor lookup`: CloudTrail LookupEvents is not in moto, so botocore's Stubber answers with
responses shaped like AWS's (Events[].CloudTrailEvent as a JSON string, NextToken pagination,
a ThrottlingException), and a fake clock stands in for the rate limiter's waits."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from botocore.stub import Stubber

from auditor import cli
from auditor.cli import lookup_events as lookup
from auditor.cli import windows
from auditor.cli.lookup_events import RateLimiter, lookup_pages

from .conftest import fixture_records

SINCE = datetime(2026, 11, 23, 9, tzinfo=timezone.utc)
UNTIL = datetime(2026, 11, 24, 9, tzinfo=timezone.utc)
SM = [{"AttributeKey": "EventSource", "AttributeValue": "secretsmanager.amazonaws.com"}]
KMS = [{"AttributeKey": "EventSource", "AttributeValue": "kms.amazonaws.com"}]


def records(*causes):
    return [dict(r, eventID=f"{c}-{i}") for i, (c, p, r, _) in enumerate(fixture_records()) if c in causes]


def event(record: dict) -> dict:
    """One Events[] entry as LookupEvents returns it."""
    return {
        "EventId": record["eventID"],
        "EventName": record["eventName"],
        "ReadOnly": "true" if record.get("readOnly") else "false",
        "EventTime": datetime.fromisoformat(record["eventTime"].replace("Z", "+00:00")),
        "EventSource": record["eventSource"],
        "Username": "app",
        "Resources": [{"ResourceType": "AWS::SecretsManager::Secret", "ResourceName": "prod/db"}],
        "CloudTrailEvent": json.dumps(record),
    }


def page(recs, token=None) -> dict:
    body = {"Events": [event(r) for r in recs]}
    if token:
        body["NextToken"] = token
    return body


def params(attrs, token=None) -> dict:
    p = {"LookupAttributes": attrs, "StartTime": SINCE, "EndTime": UNTIL, "MaxResults": 50}
    if token:
        p["NextToken"] = token
    return p


class FakeClock:
    def __init__(self):
        self.now, self.sleeps = 100.0, []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(round(seconds, 3))
        self.now += seconds


def stubbed(region="us-east-1"):
    client = boto3.client("cloudtrail", region_name=region, aws_access_key_id="x", aws_secret_access_key="x")
    return client, Stubber(client)


# ------------------------------------------------------------------------------------------------
def test_pages_both_sources_follows_next_token_and_keeps_to_two_calls_per_second():
    sm, kms = records("secret.not-found", "access-denied.kms-key"), records("kms.key-disabled", "success")
    sm = [r for r in sm if r["eventSource"].startswith("secretsmanager")]
    kms = [r for r in kms if r["eventSource"].startswith("kms")]
    client, stub = stubbed()
    stub.add_response("lookup_events", page(sm[:2], "t1"), params(SM))
    stub.add_response("lookup_events", page(sm[2:], "t2"), params(SM, "t1"))
    stub.add_response("lookup_events", page([]), params(SM, "t2"))
    stub.add_response("lookup_events", page(kms), params(KMS))
    clock = FakeClock()
    with stub:
        got = list(lookup_pages(client, SINCE, UNTIL, RateLimiter(2.0, clock=clock, sleep=clock.sleep)))
        stub.assert_no_pending_responses()
    assert [s for s, _ in got] == ["secretsmanager.amazonaws.com"] * 3 + ["kms.amazonaws.com"]
    assert [json.loads(raw)["eventID"] for _, events in got for _, raw in events] == [r["eventID"] for r in sm + kms]
    assert clock.sleeps == [0.5, 0.5, 0.5]  # 4 calls: the first at once, then one every half second


def test_a_throttle_that_outlasts_botocore_backs_off_and_retries_the_same_page():
    rec = records("kms.key-disabled")
    client, stub = stubbed()
    stub.add_response("lookup_events", page([]), params(SM))
    stub.add_client_error("lookup_events", service_error_code="ThrottlingException", service_message="Rate exceeded",
                          http_status_code=400, expected_params=params(KMS))
    stub.add_response("lookup_events", page(rec), params(KMS))
    clock = FakeClock()
    with stub:
        got = list(lookup_pages(client, SINCE, UNTIL, RateLimiter(2.0, clock=clock, sleep=clock.sleep), throttle_pause=2.0))
        stub.assert_no_pending_responses()
    assert sum(len(e) for _, e in got) == len(rec)
    assert clock.sleeps == [0.5, 2.0]  # the normal spacing, then the back-off after the throttle


def test_a_persistent_throttle_or_another_error_is_raised():
    client, stub = stubbed()
    for _ in range(3):
        stub.add_client_error("lookup_events", service_error_code="ThrottlingException", http_status_code=400)
    clock = FakeClock()
    with stub, pytest.raises(Exception, match="ThrottlingException"):
        list(lookup_pages(client, SINCE, UNTIL, RateLimiter(2.0, clock=clock, sleep=clock.sleep), throttle_retries=2))
    client, stub = stubbed()
    stub.add_client_error("lookup_events", service_error_code="AccessDeniedException", http_status_code=400)
    with stub, pytest.raises(Exception, match="AccessDenied"):
        list(lookup_pages(client, SINCE, UNTIL, RateLimiter(2.0, clock=clock, sleep=clock.sleep)))
    assert len(clock.sleeps) <= 3  # no retry of an access denial


def test_botocore_standard_retry_handles_a_throttling_response(monkeypatch):
    """The client the CLI builds retries ThrottlingException itself (standard mode), before our back-off."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "x")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    client = lookup.cloudtrail_client("eu-west-1")
    assert client.meta.config.retries["mode"] == "standard"
    monkeypatch.setattr("botocore.retries.standard.ExponentialBackoff.delay_amount", lambda self, ctx: 0)
    answers = [(400, {"__type": "ThrottlingException", "message": "Rate exceeded"}), (200, {"Events": []})]
    sent = []

    def respond(request, **_):
        status, body = answers[len(sent)]
        sent.append(request.url)
        return AWSResponse(request.url, status, {"x-amzn-requestid": "r"}, _Raw(json.dumps(body).encode()))

    client.meta.events.register("before-send.cloudtrail.LookupEvents", respond)
    assert client.lookup_events(LookupAttributes=SM)["Events"] == []
    assert len(sent) == 2


class _Raw:
    def __init__(self, data):
        self.data = data

    def stream(self, **_):
        yield self.data


# ------------------------------------------------------------------------------------------------
def test_cli_lookup_classifies_events_of_every_region_each_with_its_own_limiter(monkeypatch, capsys):
    east = records("secret.not-found", "success")
    west = records("kms.key-disabled", "kms.key-pending-deletion")
    by_region = {}
    for region, recs in (("us-east-1", east), ("eu-west-1", west)):
        client, stub = stubbed(region)
        sm = [r for r in recs if r["eventSource"].startswith("secretsmanager")]
        kms = [r for r in recs if r["eventSource"].startswith("kms")]
        stub.add_response("lookup_events", page(sm[:1], "n"), params(SM))
        stub.add_response("lookup_events", page(sm[1:]), params(SM, "n"))
        stub.add_response("lookup_events", page(kms), params(KMS))
        stub.activate()
        by_region[region] = (client, stub, sm, kms)
    limiters = []

    class Limiter(RateLimiter):
        def __init__(self, rate=2.0):
            clock = FakeClock()
            super().__init__(rate, clock=clock, sleep=clock.sleep)
            self.calls = 0
            limiters.append(self)

        def wait(self):
            self.calls += 1
            super().wait()

    monkeypatch.setattr(lookup, "cloudtrail_client", lambda region: by_region[region][0])
    monkeypatch.setattr(lookup, "RateLimiter", Limiter)
    monkeypatch.setattr(windows, "now", lambda: UNTIL)
    code = cli.main(["lookup", "--since", "24h", "--regions", "us-east-1,eu-west-1", "--format", "jsonl"])
    out, err = capsys.readouterr()
    assert code == 0, err
    for client, stub, *_ in by_region.values():
        stub.assert_no_pending_responses()
    findings = [json.loads(line) for line in out.splitlines()]
    expected = [r["eventID"].rsplit("-", 1)[0] for r in east + west if not r["eventID"].startswith("success")]
    assert sorted(f["cause"] for f in findings) == sorted(expected)
    assert {f["event_id"] for f in findings} == {r["eventID"] for r in east + west if not r["eventID"].startswith("success")}
    assert sorted(limiter.calls for limiter in limiters) == [3, 3]  # one limiter per region, its own calls only
    successes = sum(1 for r in east if not r.get("errorCode"))
    assert f"{successes} successful call(s) skipped" in err and "6 page(s)" in err


def test_cli_lookup_names_a_failing_region_exits_2_and_still_prints_the_others(monkeypatch, capsys):
    good, stub = stubbed("us-east-1")
    rec = records("kms.key-disabled")
    stub.add_response("lookup_events", page([]), params(SM))
    stub.add_response("lookup_events", page(rec), params(KMS))
    stub.activate()
    bad, bad_stub = stubbed("eu-west-1")
    bad_stub.add_client_error("lookup_events", service_error_code="AccessDeniedException",
                              service_message="User is not authorized to perform: cloudtrail:LookupEvents", http_status_code=400)
    bad_stub.activate()
    monkeypatch.setattr(lookup, "cloudtrail_client", lambda region: {"us-east-1": good, "eu-west-1": bad}[region])
    monkeypatch.setattr(lookup, "RateLimiter", lambda rate=2.0: RateLimiter(rate, sleep=lambda s: None))
    monkeypatch.setattr(windows, "now", lambda: UNTIL)
    code = cli.main(["lookup", "--since", "24h", "--regions", "us-east-1,eu-west-1", "--format", "jsonl"])
    out, err = capsys.readouterr()
    assert code == 2
    assert "cannot read LookupEvents in eu-west-1: AccessDeniedException" in err
    assert [json.loads(line)["cause"] for line in out.splitlines()] == ["kms.key-disabled"] * len(rec)


def test_cli_lookup_rejects_a_bad_time(capsys):
    assert cli.main(["lookup", "--since", "last week"]) == cli.EXIT_USAGE
    assert "not a time" in capsys.readouterr().err



def _region_with_pages(region, *pages_of_records):
    """A stubbed client whose Secrets Manager query returns the given pages, KMS none."""
    client, stub = stubbed(region)
    for n, recs in enumerate(pages_of_records):
        more = f"t{n + 1}" if n + 1 < len(pages_of_records) else None
        stub.add_response("lookup_events", page(recs, more), params(SM, f"t{n}" if n else None))
    stub.add_response("lookup_events", page([]), params(KMS))
    stub.activate()
    return client, stub


def test_cli_lookup_a_page_that_fails_is_named_and_the_next_pages_are_still_read(monkeypatch, capsys):
    from auditor.cli import stages

    recs = records("secret.not-found", "access-denied.identity-policy", "secret.pending-deletion")
    recs = [r for r in recs if r["eventSource"].startswith("secretsmanager")][:3]
    client, stub = _region_with_pages("us-east-1", [recs[0]], [recs[1]], [recs[2]])
    real = stages.iter_documents

    def iter_documents(data, name, limit):
        if name.endswith(recs[1]["eventID"]):
            raise MemoryError
        return real(data, name, limit)

    monkeypatch.setattr(stages, "iter_documents", iter_documents)
    monkeypatch.setattr(lookup, "cloudtrail_client", lambda region: client)
    monkeypatch.setattr(lookup, "RateLimiter", lambda rate=2.0: RateLimiter(rate, sleep=lambda s: None))
    monkeypatch.setattr(windows, "now", lambda: UNTIL)
    code = cli.main(["lookup", "--since", "24h", "--regions", "us-east-1", "--format", "jsonl"])
    out, err = capsys.readouterr()
    stub.assert_no_pending_responses()
    assert code == 2
    assert "cannot read LookupEvents in us-east-1 (secretsmanager, page 2): out of memory while reading it" in err
    assert [json.loads(line)["event_id"] for line in out.splitlines()] == [recs[0]["eventID"], recs[2]["eventID"]]


def test_cli_lookup_a_page_over_the_limit_is_named(monkeypatch, capsys):
    rec = [r for r in records("secret.not-found") if r["eventSource"].startswith("secretsmanager")][:1]
    big = dict(rec[0], eventID="big", errorMessage="x" * 4096)
    client, stub = _region_with_pages("us-east-1", [big], rec)
    monkeypatch.setattr(lookup, "cloudtrail_client", lambda region: client)
    monkeypatch.setattr(lookup, "RateLimiter", lambda rate=2.0: RateLimiter(rate, sleep=lambda s: None))
    monkeypatch.setattr(windows, "now", lambda: UNTIL)
    code = cli.main(["lookup", "--since", "24h", "--regions", "us-east-1", "--format", "jsonl", "--max-file-mb", "0.003"])
    out, err = capsys.readouterr()
    assert code == 2
    assert ("cannot read LookupEvents in us-east-1 (secretsmanager, page 1): larger than the 0.003 MiB limit; "
            "raise it with --max-file-mb") in err
    assert [json.loads(line)["event_id"] for line in out.splitlines()] == [rec[0]["eventID"]]


def test_lookup_window_stays_within_the_90_days_lookup_events_keeps():
    since, until = windows.lookup_window("0001-01-01", "9999-12-31", UNTIL)
    assert (since, until) == (UNTIL - timedelta(days=90), UNTIL)
    assert windows.lookup_window("24h", None, UNTIL) == (UNTIL - timedelta(hours=24), UNTIL)
