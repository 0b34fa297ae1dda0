"""`auditor classify s3://...` against an organization trail's bucket on the moto server (real HTTP,
boto3's normal configuration through AWS_ENDPOINT_URL): only the requested days are listed and
read, findings are those days', an unreadable object is named and the rest still processed."""

from __future__ import annotations

import argparse
import gzip
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

import boto3
import pytest

from auditor import cli
from auditor.cli import s3_trail, windows
from auditor.cli.s3_trail import TrailBucket, ordered

from ..unit.conftest import fixture_records

pytestmark = pytest.mark.integration

ORG = "o-a1b2c3d4e5"
ACCOUNTS = ("111122223333", "444455556666")
REGIONS = ("us-east-1", "eu-west-1")
DAYS = ("2026/11/19", "2026/11/20", "2026/11/21", "2026/11/22")
HOURS = ("0105", "1305")  # two files a day: one early, one in the afternoon
LONE_ACCOUNT = "999988887777"  # an account trail (no org id) in the same bucket
AUDITOR = str(Path(sys.executable).with_name("auditor"))

RECORDS = [r for c, p, r, _ in fixture_records()]
FAILURES_PER_FILE = sum(1 for c, p, r, _ in fixture_records() if c != "success")


def _file(day: str, account: str, region: str, hour: str) -> bytes:
    """A gzip log file holding every fixture record (failures and successes), event ids naming the file."""
    tag = f"{day.replace('/', '')}T{hour}|{account}|{region}"
    records = [dict(r, eventID=f"{tag}|{i}") for i, r in enumerate(RECORDS)]
    return gzip.compress(json.dumps({"Records": records}).encode())


@pytest.fixture(scope="module")
def bucket(aws):
    s3 = aws("s3")
    name = f"org-trail-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=name)
    keys = {}

    def put(key, body):
        s3.put_object(Bucket=name, Key=key, Body=body)
        keys[key] = body

    for day in DAYS:
        for hour in HOURS:
            stamp = f"{day.replace('/', '')}T{hour}Z"
            for account in ACCOUNTS:
                for region in REGIONS:
                    put(f"AWSLogs/{ORG}/{account}/CloudTrail/{region}/{day}/"
                        f"{account}_CloudTrail_{region}_{stamp}_{uuid.uuid4().hex[:16]}.json.gz", _file(day, account, region, hour))
            put(f"AWSLogs/{LONE_ACCOUNT}/CloudTrail/us-west-2/{day}/{LONE_ACCOUNT}_CloudTrail_us-west-2_{stamp}_a.json.gz",
                _file(day, LONE_ACCOUNT, "us-west-2", hour))
            put(f"trails/AWSLogs/{ORG}/{ACCOUNTS[0]}/CloudTrail/us-east-1/{day}/{ACCOUNTS[0]}_CloudTrail_us-east-1_{stamp}_p.json.gz",
                _file(day, "prefixed", "us-east-1", hour))
    # Neighbours a careless walk would read: digests, Insights, the bucket's own test object.
    s3.put_object(Bucket=name, Key=f"AWSLogs/{ORG}/{ACCOUNTS[0]}/CloudTrail-Digest/us-east-1/2026/11/21/d.json.gz", Body=b"x")
    s3.put_object(Bucket=name, Key=f"AWSLogs/{ORG}/{ACCOUNTS[0]}/CloudTrail-Insight/us-east-1/2026/11/21/i.json.gz", Body=b"x")
    s3.put_object(Bucket=name, Key="AWSLogs/ConfigWritabilityCheckFile", Body=b"")
    return name, keys


@pytest.fixture
def calls(monkeypatch):
    """Every ListObjectsV2 (prefix, delimiter) and GetObject key the CLI's S3 client sends."""
    seen = {"list": [], "get": []}
    lock = threading.Lock()
    make = s3_trail.s3_client

    def client():
        c = make()
        c.meta.events.register("before-parameter-build.s3.ListObjectsV2",
                               lambda params, **_: (lock.acquire(), seen["list"].append((params.get("Prefix", ""), params.get("Delimiter"))), lock.release()))
        c.meta.events.register("before-parameter-build.s3.GetObject",
                               lambda params, **_: (lock.acquire(), seen["get"].append(params["Key"]), lock.release()))
        return c

    monkeypatch.setattr(s3_trail, "s3_client", client)
    return seen


def run_cli(capsys, *argv) -> tuple[int, list[dict], str]:
    code = cli.main(["classify", *argv, "--format", "jsonl", "--jobs", "1"])
    out, err = capsys.readouterr()
    return code, [json.loads(line) for line in out.splitlines()], err


def files_of(findings) -> set[str]:
    return {f["event_id"].rsplit("|", 1)[0] for f in findings}


# ------------------------------------------------------------------------------------------------
def test_only_the_requested_days_are_listed_and_read(bucket, calls, capsys):
    name, keys = bucket
    code, findings, err = run_cli(capsys, f"s3://{name}/", "--since", "2026-11-20", "--until", "2026-11-20T23:59:59Z")
    assert code == 0, err
    wanted = {k for k in keys if "/2026/11/20/" in k and not k.startswith("trails/")}
    assert sorted(calls["get"]) == sorted(wanted)  # each file of the day once, nothing else
    assert len(wanted) == len(HOURS) * (len(ACCOUNTS) * len(REGIONS) + 1)
    day_listings = [p for p, d in calls["list"] if d is None]
    assert day_listings and all(p.endswith("/2026/11/20/") for p in day_listings)
    walk = [p for p, d in calls["list"] if d == "/"]
    assert all(p == "AWSLogs/" or p.count("/") <= 5 and "/20" not in p for p in walk), walk  # never below a region
    assert "" not in [p for p, _ in calls["list"]]  # never the whole bucket
    assert len(findings) == FAILURES_PER_FILE * len(wanted)
    assert files_of(findings) == {f"20261120T{h}|{a}|{r}" for h in HOURS for a, r in
                                  [(a, r) for a in ACCOUNTS for r in REGIONS] + [(LONE_ACCOUNT, "us-west-2")]}
    assert f"{len(wanted)} file(s)" in err and "0 unreadable" in err


def test_a_window_within_days_reads_only_files_delivered_in_it(bucket, calls, capsys):
    name, _ = bucket
    code, findings, err = run_cli(capsys, f"s3://{name}/AWSLogs/{ORG}/", "--since", "2026-11-21T12:00:00Z",
                                  "--until", "2026-11-22T06:00:00Z")
    assert code == 0, err
    assert {p[-11:] for p, d in calls["list"] if d is None} == {"2026/11/21/", "2026/11/22/"}
    assert {k.split("_")[-2] for k in calls["get"]} == {"20261121T1305Z", "20261122T0105Z"}
    assert {f["event_id"].split("|")[1] for f in findings} == set(ACCOUNTS)  # the org prefix leaves out the account trail


def test_account_and_region_filters_prune_the_walk(bucket, calls, capsys):
    name, _ = bucket
    code, findings, err = run_cli(capsys, f"s3://{name}/", "--since", "2026-11-19", "--until", "2026-11-22T23:00Z",
                                  "--accounts", ACCOUNTS[1], "--regions", "eu-west-1")
    assert code == 0, err
    assert len(calls["get"]) == len(DAYS) * len(HOURS)
    assert all(f"/{ACCOUNTS[1]}/CloudTrail/eu-west-1/" in k for k in calls["get"])
    assert not any(ACCOUNTS[0] in p or "us-east-1" in p for p, _ in calls["list"])  # pruned before listing
    assert files_of(findings) == {f"{d.replace('/', '')}T{h}|{ACCOUNTS[1]}|eu-west-1" for d in DAYS for h in HOURS}


def test_account_trail_layout_prefix_before_awslogs_and_a_url_naming_a_day(bucket, calls, capsys):
    name, _ = bucket
    code, findings, _ = run_cli(capsys, f"s3://{name}/AWSLogs/{LONE_ACCOUNT}/", "--since", "2026-11-22", "--until", "2026-11-22T23:59Z")
    assert code == 0 and files_of(findings) == {f"20261122T{h}|{LONE_ACCOUNT}|us-west-2" for h in HOURS}
    code, findings, _ = run_cli(capsys, f"s3://{name}/trails/", "--since", "2026-11-19", "--until", "2026-11-19T23:59Z")
    assert code == 0 and files_of(findings) == {f"20261119T{h}|prefixed|us-east-1" for h in HOURS}
    calls["get"].clear()
    code, findings, _ = run_cli(capsys, f"s3://{name}/AWSLogs/{ORG}/{ACCOUNTS[0]}/CloudTrail/us-east-1/2026/11/21/")
    assert code == 0 and files_of(findings) == {f"20261121T{h}|{ACCOUNTS[0]}|us-east-1" for h in HOURS}
    assert len(calls["get"]) == len(HOURS)


def test_default_window_is_the_last_24_hours():
    args = argparse.Namespace(since=None, until=None)
    now = datetime(2026, 11, 24, 9, 30, tzinfo=timezone.utc)
    assert windows.s3_window(args, "", now) == (datetime(2026, 11, 23, 9, 30, tzinfo=timezone.utc), now)
    since, until = windows.s3_window(args, "2026/11", now)
    assert since == datetime(2026, 11, 1, tzinfo=timezone.utc) and until.date().isoformat() == "2026-11-30"
    args = argparse.Namespace(since="7d", until=None)
    assert windows.s3_window(args, "", now)[0] == datetime(2026, 11, 17, 9, 30, tzinfo=timezone.utc)


def test_bad_time_is_a_usage_error(capsys):
    assert cli.main(["classify", "s3://b/", "--since", "yesterday"]) == cli.EXIT_USAGE
    assert "not a time" in capsys.readouterr().err


def test_unreadable_object_exits_2_named_and_the_rest_processed_with_worker_processes(bucket, aws):
    """A log file a lifecycle rule moved to Glacier cannot be read (InvalidObjectState): named, exit 2;
    a truncated gzip is read but malformed: named too. Every other file of the day still comes out."""
    name, keys = bucket
    s3 = aws("s3")
    day = f"AWSLogs/{ORG}/{ACCOUNTS[0]}/CloudTrail/us-east-1/2026/11/22/{ACCOUNTS[0]}_CloudTrail_us-east-1_20261122T"
    archived, broken = day + "0905Z_archived.json.gz", day + "1505Z_broken.json.gz"
    s3.put_object(Bucket=name, Key=archived, Body=_file("2026/11/22", "archived", "us-east-1", "0905"), StorageClass="GLACIER")
    s3.put_object(Bucket=name, Key=broken, Body=b"\x1f\x8b\x08 truncated")
    try:
        result = subprocess.run([AUDITOR, "classify", f"s3://{name}/", "--since", "2026-11-22", "--until", "2026-11-22T23:59Z",
                                 "--format", "jsonl", "--jobs", "2"], capture_output=True, text=True, timeout=120)
    finally:
        s3.delete_objects(Bucket=name, Delete={"Objects": [{"Key": archived}, {"Key": broken}]})
    assert result.returncode == 2, result.stderr
    assert f"cannot read s3://{name}/{archived}: InvalidObjectState" in result.stderr
    assert f"s3://{name}/{broken}: not a readable gzip" in result.stderr
    findings = [json.loads(line) for line in result.stdout.splitlines()]
    files = len(HOURS) * (len(ACCOUNTS) * len(REGIONS) + 1)
    assert len(findings) == FAILURES_PER_FILE * files
    assert {f["event_id"].split("T")[0] for f in findings} == {"20261122"}
    assert "archived" not in files_of(findings)


def test_missing_bucket_and_empty_prefix_are_named_and_exit_2(moto_server, capsys):
    code, findings, err = run_cli(capsys, "s3://no-such-bucket-here/", "--since", "1d")
    assert code == 2 and "s3://no-such-bucket-here/: NoSuchBucket" in err and not findings
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="empty-trail-bucket")
    code, _, err = run_cli(capsys, "s3://empty-trail-bucket/", "--since", "1d")
    assert code == 2 and "no CloudTrail log folders" in err


def test_an_athena_results_csv_in_s3_is_read_as_one_object(moto_server, capsys):
    import csv
    import io

    record = next(r for c, p, r, _ in fixture_records() if c == "kms.key-disabled")
    text = io.StringIO()
    writer = csv.writer(text, quoting=csv.QUOTE_ALL, lineterminator="\n")
    writer.writerows([["record"], [json.dumps(record)]])
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="athena-results")
    s3.put_object(Bucket="athena-results", Key="q/4a1b6b5e.csv", Body=text.getvalue().encode())
    code, findings, err = run_cli(capsys, "s3://athena-results/q/4a1b6b5e.csv")
    assert code == 0, err
    assert [f["cause"] for f in findings] == ["kms.key-disabled"]


# ------------------------------------------------------------------------------------------------
def test_downloads_keep_a_bounded_window_in_memory():
    """ordered(): never more than `ahead` results fetched and not yet consumed; order kept."""
    held, peak, lock = [0], [0], threading.Lock()

    def fetch(i):
        time.sleep(0.001 * (i % 3))
        with lock:
            held[0] += 1
            peak[0] = max(peak[0], held[0])
        return i * 10

    out = []
    with ThreadPoolExecutor(max_workers=8) as pool:
        for item, value in ordered(pool, fetch, range(100), ahead=5):
            time.sleep(0.002)  # a slow consumer (classification)
            out.append(value)
            with lock:
                held[0] -= 1
    assert out == [i * 10 for i in range(100)]
    assert peak[0] <= 5


def test_trail_bucket_lists_days_in_order_and_skips_non_log_files(bucket):
    name, keys = bucket
    trail = TrailBucket(name, f"AWSLogs/{ORG}/", client=boto3.client("s3"))
    since, until = datetime(2026, 11, 19, tzinfo=timezone.utc), datetime(2026, 11, 20, 23, 59, tzinfo=timezone.utc)
    listed = [k for k, _ in trail.keys(since, until)]
    assert listed == sorted(listed)  # account, region, day, file: the order a person reads them in
    assert len(listed) == 2 * len(HOURS) * len(ACCOUNTS) * len(REGIONS)
    assert not any("Digest" in k or "Insight" in k for k in listed)


# ------------------------------------------------------------------------------------------------
# Windows, bounds and failures of one object or one day folder
# ------------------------------------------------------------------------------------------------
def test_day_folders_without_log_files_say_so_even_off_a_terminal(bucket, capsys):
    name, _ = bucket
    code, findings, err = run_cli(capsys, f"s3://{name}/", "--since", "2026-11-10", "--until", "2026-11-12T23:59Z")
    assert code == 0 and not findings
    assert f"auditor: s3://{name}/: no log files in the 15 day folder(s) from 2026-11-10 00:00 to 2026-11-12 23:59 UTC" in err


def test_a_window_of_years_discovers_the_day_folders_instead_of_listing_every_day(bucket, calls, capsys):
    name, keys = bucket
    code, findings, err = run_cli(capsys, f"s3://{name}/AWSLogs/{ORG}/{ACCOUNTS[0]}/CloudTrail/us-east-1/",
                                  "--since", "0001-01-01", "--until", "9999-12-31T23:59:59.999999Z")
    assert code == 0, err
    wanted = {k for k in keys if k.startswith(f"AWSLogs/{ORG}/{ACCOUNTS[0]}/CloudTrail/us-east-1/")}
    assert sorted(calls["get"]) == sorted(wanted) and len(findings) == FAILURES_PER_FILE * len(wanted)
    day_listings = [p for p, d in calls["list"] if d is None]
    assert sorted(day_listings) == sorted({k.rsplit("/", 1)[0] + "/" for k in wanted})  # the days that exist, no others
    assert len(calls["list"]) < 20  # a handful of delimiter listings, not one per day of ten thousand years


def test_an_object_whose_processing_fails_is_named_and_the_walk_goes_on(bucket, calls, capsys, monkeypatch):
    from auditor.cli import stages

    name, keys = bucket
    real = stages.iter_documents
    bad = sorted(k for k in keys if "/2026/11/20/" in k and not k.startswith("trails/"))[1]

    def iter_documents(data, origin, limit):
        if origin.endswith(bad):
            raise TypeError("unhashable type: 'dict'")
        return real(data, origin, limit)

    monkeypatch.setattr(stages, "iter_documents", iter_documents)
    code, findings, err = run_cli(capsys, f"s3://{name}/", "--since", "2026-11-20", "--until", "2026-11-20T23:59:59Z")
    assert code == 2
    assert f"auditor: cannot read s3://{name}/{bad}: could not be processed (TypeError: unhashable type: 'dict')" in err
    read = {k for k in keys if "/2026/11/20/" in k and not k.startswith("trails/")} - {bad}
    assert len(findings) == FAILURES_PER_FILE * len(read) and len(calls["get"]) == len(read) + 1


def test_a_worker_that_dies_on_one_object_loses_only_that_object(bucket, moto_server):
    from ..unit.test_cli_inputs import FAULT

    name, keys = bucket
    day = sorted(k for k in keys if "/2026/11/21/" in k and not k.startswith("trails/"))
    result = subprocess.run([sys.executable, "-c", FAULT, "iter_documents", "exit", day[2].rsplit("/", 1)[1], "--",
                             "classify", f"s3://{name}/", "--since", "2026-11-21", "--until", "2026-11-21T23:59Z",
                             "--format", "jsonl", "--jobs", "2"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert f"cannot read s3://{name}/{day[2]}: its worker process died while reading it" in result.stderr
    assert len(result.stdout.splitlines()) == FAILURES_PER_FILE * (len(day) - 1)


def test_an_object_larger_than_the_limit_is_named_without_downloading_it(bucket, aws, calls, capsys):
    name, keys = bucket
    s3 = aws("s3")
    big = f"AWSLogs/{ORG}/{ACCOUNTS[1]}/CloudTrail/eu-west-1/2026/11/19/{ACCOUNTS[1]}_CloudTrail_eu-west-1_20261119T2200Z_big.json.gz"
    s3.put_object(Bucket=name, Key=big, Body=os.urandom(2 << 20))
    try:
        code, findings, err = run_cli(capsys, f"s3://{name}/", "--since", "2026-11-19", "--until", "2026-11-19T23:59Z",
                                      "--accounts", ACCOUNTS[1], "--regions", "eu-west-1", "--max-file-mb", "1")
    finally:
        s3.delete_object(Bucket=name, Key=big)
    assert code == 2
    assert f"cannot read s3://{name}/{big}: larger than the 1 MiB limit; raise it with --max-file-mb" in err
    assert big not in calls["get"] and len(calls["get"]) == len(HOURS)
    assert len(findings) == FAILURES_PER_FILE * len(HOURS)


def test_a_single_object_over_the_limit_is_named(moto_server, capsys):
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="athena-big")
    s3.put_object(Bucket="athena-big", Key="q/big.csv", Body=b'"record"\n' + b"x" * (2 << 20))
    code, findings, err = run_cli(capsys, "s3://athena-big/q/big.csv", "--max-file-mb", "1")
    assert code == 2 and not findings
    assert "cannot read s3://athena-big/q/big.csv: larger than the 1 MiB limit; raise it with --max-file-mb" in err


def test_a_day_folder_that_cannot_be_listed_is_named_and_the_other_days_are_read(bucket, capsys, monkeypatch):
    name, keys = bucket
    real = TrailBucket._list_day
    broken = f"AWSLogs/{ORG}/{ACCOUNTS[0]}/CloudTrail/us-east-1/2026/11/21/"

    def list_day(self, prefix):
        if prefix == broken:
            raise RuntimeError("connection reset")
        return real(self, prefix)

    monkeypatch.setattr(TrailBucket, "_list_day", list_day)
    code, findings, err = run_cli(capsys, f"s3://{name}/AWSLogs/{ORG}/", "--since", "2026-11-21", "--until", "2026-11-22T23:59Z")
    assert code == 2
    assert f"cannot read s3://{name}/{broken}: RuntimeError: connection reset" in err
    read = {k for k in keys if k.startswith(f"AWSLogs/{ORG}/") and ("/2026/11/21/" in k or "/2026/11/22/" in k)
            and not k.startswith(broken)}
    assert len(findings) == FAILURES_PER_FILE * len(read)
