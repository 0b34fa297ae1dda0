"""History at organization scale: an organization trail's bucket on moto S3, and LookupEvents
(not in moto: botocore's Stubber with responses shaped like AWS's)."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import boto3
import pytest
from botocore.stub import Stubber

from auditor.cli.lookup_events import RateLimiter, lookup_records
from auditor.cli.s3_trail import TrailBucket
from auditor.cli.windows import parse_when

from ..unit.conftest import fixture_records

pytestmark = pytest.mark.integration
ORG, ACCOUNTS, REGIONS = "o-a1b2c3d4e5", ("111122223333", "444455556666"), ("us-east-1", "eu-west-1")
DAYS = ("2026/11/20", "2026/11/21", "2026/11/22")


@pytest.fixture(scope="module")
def trail_bucket(aws):
    """A bucket laid out like an organization trail: 3 days x 2 accounts x 2 regions x 2 files."""
    s3 = aws("s3")
    bucket = f"org-trail-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    records = [r for c, p, r, _ in fixture_records()]
    keys = []
    for day in DAYS:
        for account in ACCOUNTS:
            for region in REGIONS:
                for n in range(2):
                    stamp = day.replace("/", "") + f"T{10 + n:02d}05Z"
                    key = f"AWSLogs/{ORG}/{account}/CloudTrail/{region}/{day}/{account}_CloudTrail_{region}_{stamp}_{n:04d}.json.gz"
                    chunk = [dict(r, eventID=f"{day}-{account}-{region}-{n}-{i}") for i, r in enumerate(records[n::2])]
                    s3.put_object(Bucket=bucket, Key=key, Body=gzip.compress(json.dumps({"Records": chunk}).encode()))
                    keys.append(key)
    s3.put_object(Bucket=bucket, Key=f"AWSLogs/{ORG}/{ACCOUNTS[0]}/CloudTrail-Digest/us-east-1/{DAYS[0]}/digest.json.gz", Body=b"x")
    return bucket, keys


def counting(client):
    seen = {"get": [], "list": []}
    client.meta.events.register("before-parameter-build.s3.GetObject", lambda params, **_: seen["get"].append(params["Key"]))
    client.meta.events.register("before-parameter-build.s3.ListObjectsV2", lambda params, **_: seen["list"].append(params.get("Prefix", "")))
    return seen


def test_only_the_requested_days_are_listed_and_read(trail_bucket):
    bucket, keys = trail_bucket
    client = boto3.client("s3")
    seen = counting(client)
    trail = TrailBucket(bucket, "", client=client)
    since, until = datetime(2026, 11, 21, tzinfo=timezone.utc), datetime(2026, 11, 21, 23, 59, tzinfo=timezone.utc)
    wanted = [k for k, _ in trail.keys(since, until)]
    fetched = list(trail.fetch(wanted, workers=4, in_flight=3))
    assert sorted(wanted) == sorted(k for k in keys if "/2026/11/21/" in k) and len(wanted) == 8
    assert sorted(seen["get"]) == sorted(wanted)
    assert all(isinstance(data, bytes) for _, data in fetched)
    day_listings = [p for p in seen["list"] if p.count("/") >= 8]
    assert day_listings and all("/2026/11/21/" in p for p in day_listings)  # other days never listed
    assert not any(p == "" for p in seen["list"])  # never the whole bucket


def test_account_region_and_prefix_filters(trail_bucket):
    bucket, keys = trail_bucket
    since, until = datetime(2026, 11, 20, tzinfo=timezone.utc), datetime(2026, 11, 22, 23, 0, tzinfo=timezone.utc)
    trail = TrailBucket(bucket, "", client=boto3.client("s3"))
    only = [k for k, _ in trail.keys(since, until, accounts={"444455556666"}, regions={"eu-west-1"})]
    assert len(only) == 6 and all("/444455556666/CloudTrail/eu-west-1/" in k for k in only)
    deeper = TrailBucket(bucket, f"AWSLogs/{ORG}/111122223333/CloudTrail/us-east-1/", client=boto3.client("s3"))
    assert len([k for k, _ in deeper.keys(since, until)]) == 6


def test_cli_streams_findings_from_s3_and_names_an_unreadable_object(trail_bucket, moto_server, tmp_path):
    bucket, keys = trail_bucket
    s3 = boto3.client("s3")
    broken = f"AWSLogs/{ORG}/111122223333/CloudTrail/us-east-1/2026/11/22/111122223333_CloudTrail_us-east-1_20261122T2300Z_gone.json.gz"
    s3.put_object(Bucket=bucket, Key=broken, Body=b"\x1f\x8b truncated")
    cmd = [str(Path(sys.executable).with_name("auditor")), "classify", f"s3://{bucket}/", "--since", "2026-11-22",
           "--until", "2026-11-22T23:59:00Z", "--format", "jsonl"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    findings = [json.loads(line) for line in result.stdout.splitlines()]
    per_file = sum(1 for c, p, r, _ in fixture_records() if c != "success")
    assert len(findings) == per_file * len(ACCOUNTS) * len(REGIONS)
    assert {f["event_id"].split("-", 3)[0] for f in findings} == {"2026/11/22"}
    assert "gone.json.gz" in result.stderr and "not a readable gzip" in result.stderr


def test_parse_when():
    now = datetime(2026, 11, 24, 12, tzinfo=timezone.utc)
    assert parse_when("24h", now) == now - timedelta(hours=24) and parse_when("7d", now) == now - timedelta(days=7)
    assert parse_when("2026-11-20") == datetime(2026, 11, 20, tzinfo=timezone.utc)
    with pytest.raises(ValueError):
        parse_when("yesterday")


def test_lookup_events_paginated_both_sources_rate_limited_and_classified(monkeypatch):
    records = [r for c, p, r, _ in fixture_records() if c in ("secret.not-found", "kms.key-disabled", "success")]
    sm = [r for r in records if r["eventSource"].startswith("secretsmanager")]
    kms = [r for r in records if r["eventSource"].startswith("kms")]
    client = boto3.client("cloudtrail", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    stub = Stubber(client)

    def page(recs, token=None):
        body = {"Events": [{"EventId": r["eventID"], "EventName": r["eventName"], "CloudTrailEvent": json.dumps(r)} for r in recs]}
        if token:
            body["NextToken"] = token
        return body

    since, until = datetime(2026, 11, 23, tzinfo=timezone.utc), datetime(2026, 11, 24, tzinfo=timezone.utc)
    base = {"StartTime": since, "EndTime": until, "MaxResults": 50}
    sm_attr = [{"AttributeKey": "EventSource", "AttributeValue": "secretsmanager.amazonaws.com"}]
    kms_attr = [{"AttributeKey": "EventSource", "AttributeValue": "kms.amazonaws.com"}]
    stub.add_response("lookup_events", page(sm[:2], "t1"), {**base, "LookupAttributes": sm_attr})
    stub.add_response("lookup_events", page(sm[2:]), {**base, "LookupAttributes": sm_attr, "NextToken": "t1"})
    stub.add_response("lookup_events", page(kms), {**base, "LookupAttributes": kms_attr})
    stub.activate()
    clock = [0.0]
    sleeps = []
    limiter = RateLimiter(2.0, clock=lambda: clock[0], sleep=lambda s: (sleeps.append(s), clock.__setitem__(0, clock[0] + s)))
    got = list(lookup_records(client, since, until, limiter))
    stub.assert_no_pending_responses()
    assert len(got) == len(sm) + len(kms)
    assert sleeps == [0.5, 0.5]  # 3 calls at most 2 per second

    from auditor.classify import classify
    from auditor.records import FailedCall, parse_record

    causes = {classify(c).cause for c in (parse_record(json.loads(g)) for g in got) if type(c) is FailedCall}
    assert causes == {"secret.not-found", "kms.key-disabled"}
