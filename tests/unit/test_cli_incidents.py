"""`auditor classify --incidents`: a history's failures grouped by root cause, the change that
started each found in the same history, as on-call reads them (table) or a tool does (JSON Lines)."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys

from demo import scenarios as s

AUDITOR = [sys.executable, "-m", "auditor.cli"]
OTHER_KEY = s.KEY_ARN.replace("1234abcd", "0987dcba")


def run(*args):
    return subprocess.run([*AUDITOR, *args], capture_output=True, text=True, timeout=120)


def write(path, records):
    path.write_bytes(gzip.compress(json.dumps({"Records": records}).encode()))
    return path


def history(tmp_path):
    """Two files, as CloudTrail delivers them: the key policy change in one, the failures it
    caused split across both (a Secrets Manager call in one file, the KMS call Secrets Manager
    made for it in the other); a disabled key that failed twice an hour apart; a role denied."""
    change = s.put_key_policy(-600)
    first = [change, s.get_secret_value_kms_denied(0, "orders-api", "prod/orders/db"),
             s.decrypt_for_secret_denied(60.4, "billing-worker", "prod/orders/db"),
             s.decrypt_disabled(100, "ingest", "s3.amazonaws.com", OTHER_KEY),
             s.identity_denied(200, "reports", "prod/reports")]
    second = [s.decrypt_for_secret_denied(0.4, "orders-api", "prod/orders/db"),
              s.get_secret_value_kms_denied(60, "billing-worker", "prod/orders/db"),
              s.decrypt_disabled(100 + 3600, "ingest", "s3.amazonaws.com", OTHER_KEY),
              s.identity_denied(200, "reports", "prod/reports")]  # the same record again (two trails): one failure
    write(tmp_path / "111122223333_CloudTrail_eu-west-1_20261130T0900Z_a.json.gz", first)
    write(tmp_path / "111122223333_CloudTrail_eu-west-1_20261130T0905Z_b.json.gz", second)
    return change


def test_one_incident_per_root_cause_with_the_change_that_started_it(tmp_path):
    change = history(tmp_path)
    out = run("classify", str(tmp_path), "--incidents", "--format", "jsonl", "--jobs", "2")
    assert out.returncode == 0, out.stderr
    incidents = [json.loads(line) for line in out.stdout.splitlines()]
    by_root = {}
    for incident in incidents:
        by_root.setdefault((incident["root"]["kind"], incident["root"]["id"]), []).append(incident)

    key_policy = by_root[("key-policy", "key:" + s.KEY_ARN)]
    assert len(key_policy) == 1  # four records, two failures, one root cause
    (policy,) = key_policy
    assert policy["failures"] == 2 and policy["principals"]["count"] == 2
    assert policy["change"]["event_id"] == change["eventID"] and policy["change"]["action"] == "PutKeyPolicy"
    assert policy["remediation"].startswith("Start with PutKeyPolicy")
    assert policy["resources"]["listed"] == ["prod/orders/db"]

    disabled = by_root[("key-state", "key:" + OTHER_KEY)]
    assert [i["failures"] for i in disabled] == [1, 1]  # an hour apart, over the 30-minute quiet period: twice
    assert [i["occurrence"] for i in disabled] == [1, 2]
    assert [i["status"] for i in disabled] == ["resolved", "open"]  # the second still failing at the end
    assert disabled[0]["change"] is None and "key" in disabled[0]["searched"]

    (role,) = by_root[("principal-permissions", f"role:{s.ACCOUNT}:reports")]
    assert role["failures"] == 1  # the same event in two files
    assert len(incidents) == 4
    assert "4 incident(s) from 7 failed call(s)" in out.stderr  # 8 records, one of them twice


def test_the_quiet_period_decides_what_one_incident_is(tmp_path):
    history(tmp_path)
    out = run("classify", str(tmp_path), "--incidents", "--format", "jsonl", "--quiet-minutes", "120")
    assert out.returncode == 0, out.stderr
    disabled = [i for line in out.stdout.splitlines() if (i := json.loads(line))["root"]["id"] == "key:" + OTHER_KEY]
    assert [i["failures"] for i in disabled] == [2]


def test_table_names_status_root_and_the_change(tmp_path):
    history(tmp_path)
    out = run("classify", str(tmp_path), "--incidents", "--jobs", "1")
    assert out.returncode == 0, out.stderr
    header, *rows = out.stdout.splitlines()
    assert header.split()[:2] == ["STATUS", "FIRST"] and "ROOT CAUSE" in header and "STARTED BY" in header
    assert len(rows) == 4
    policy = next(r for r in rows if "the key policy of KMS key" in r)
    assert "PutKeyPolicy by platform-admin/alice@example.com, 10 min before" in policy
    assert policy.split()[0] == "resolved"  # no failure of it in the last hour of the input


def test_hostile_text_in_a_root_stays_on_its_line(tmp_path):
    record = s.identity_denied(0, "reports", "prod/reports")
    record["userIdentity"]["arn"] += "\n\x1b[31mFAKE  resolved"
    write(tmp_path / "x.json.gz", [record])
    out = run("classify", str(tmp_path), "--incidents")
    assert out.returncode == 0, out.stderr
    assert len(out.stdout.splitlines()) == 2 and "\x1b" not in out.stdout
    jsonl = run("classify", str(tmp_path), "--incidents", "--format", "jsonl")
    assert len(jsonl.stdout.splitlines()) == 1 and json.loads(jsonl.stdout)["failures"] == 1


def test_unreadable_inputs_still_exit_2_and_bad_quiet_minutes_is_a_usage_error(tmp_path):
    history(tmp_path)
    (tmp_path / "broken.json.gz").write_bytes(gzip.compress(b'{"Records": [')[:-6])
    out = run("classify", str(tmp_path), "--incidents", "--format", "jsonl")
    assert out.returncode == 2 and "broken.json.gz" in out.stderr
    assert len(out.stdout.splitlines()) == 4
    for bad in ("0", "-5", "soon"):
        usage = run("classify", str(tmp_path), "--incidents", "--quiet-minutes", bad)
        assert usage.returncode == 1 and "--quiet-minutes" in usage.stderr and usage.stdout == ""
