"""The CLI as a user runs it: files, directories, gzip, stdin, exit codes, output formats."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import pytest

from .test_records import DENIED

AUDITOR = [sys.executable, "-m", "auditor.cli"]
REPO = Path(__file__).resolve().parents[2]


def run(*args, stdin: bytes | None = None):
    return subprocess.run([*AUDITOR, *args], input=stdin, capture_output=True, timeout=120)


@pytest.fixture
def logs(tmp_path):
    ok = {k: v for k, v in DENIED.items() if k not in ("errorCode", "errorMessage")}
    log = {"Records": [DENIED, ok, {**DENIED, "eventSource": "s3.amazonaws.com"}, "garbage"]}
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "111122223333_CloudTrail_eu-west-1_20261124T0815Z_x.json.gz").write_bytes(gzip.compress(json.dumps(log).encode()))
    (tmp_path / "b.json").write_text(json.dumps(DENIED))
    (tmp_path / "notes.txt").write_text("not a log")
    return tmp_path


def test_jsonl_prints_one_finding_per_failed_record_and_a_summary(logs):
    result = run("classify", str(logs), "--format", "jsonl")
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.decode().splitlines()]
    assert len(rows) == 2
    assert {r["cause"] for r in rows} == {"access-denied.organizations-policy"}
    required = {"event_id", "event_time", "account", "region", "service", "action", "error_code", "error_message",
                "principal", "source_ip", "user_agent", "resource", "cause", "title", "severity", "confidence",
                "evidence", "remediation", "doc_url", "fingerprint"}
    assert required <= set(rows[0])
    err = result.stderr.decode()
    assert "1 successful call(s) skipped" in err and "1 malformed" in err
    assert "x.json.gz#3" in err  # names the file and the record index
    assert "2  access-denied.organizations-policy" in err


def test_table_format_and_stdin(logs):
    result = run("classify", "-", stdin=(logs / "b.json").read_bytes())
    assert result.returncode == 0
    out = result.stdout.decode().splitlines()
    assert out[0].startswith("TIME") and "access-denied.organizations-policy" in out[1]


def test_unreadable_input_exits_2_names_it_and_still_processes_the_rest(logs):
    result = run("classify", str(logs / "missing.json"), str(logs / "b.json"), "--format", "jsonl")
    assert result.returncode == 2
    assert "missing.json" in result.stderr.decode()
    assert len(result.stdout.decode().splitlines()) == 1


def test_parallel_and_serial_runs_print_the_same_findings(logs):
    for i in range(3):
        (logs / f"c{i}.json").write_text(json.dumps({"Records": [DENIED] * (i + 1)}))
    one = run("classify", str(logs), "--format", "jsonl", "--jobs", "1").stdout
    two = run("classify", str(logs), "--format", "jsonl", "--jobs", "2").stdout
    assert one == two and len(one.splitlines()) == 8


def test_causes_lists_the_catalog():
    result = run("causes", "--format", "jsonl")
    ids = [json.loads(line)["id"] for line in result.stdout.decode().splitlines()]
    assert "secret.partial-arn" in ids and ids[-1] == "unknown" and len(ids) == 27


def test_installed_console_script_runs_over_the_fixture_corpus():
    script = Path(sys.executable).with_name("auditor")
    if not script.exists():
        pytest.skip("auditor is not installed in this environment")
    result = subprocess.run([str(script), "classify", str(REPO / "tests" / "fixtures"), "--format", "jsonl"],
                            capture_output=True, timeout=120, cwd=REPO)
    assert result.returncode == 0, result.stderr
    for line in result.stdout.decode().splitlines():
        assert json.loads(line)["cause"]


def test_no_secret_value_reaches_the_cli_output_even_unredacted():
    fixtures = REPO / "tests" / "fixtures"
    canaries = [p for p in fixtures.rglob("*.json") if "CANARY" in p.read_text()]
    assert len(canaries) >= 2  # the scan finds them: a corpus without canaries would prove nothing
    for fmt in ("jsonl", "table"):
        result = run("classify", *map(str, canaries), "--format", fmt)
        assert result.returncode == 0 and result.stdout
        assert b"CANARY" not in result.stdout + result.stderr


def test_athena_query_results_csv_is_read_through_its_record_column(tmp_path):
    import csv

    rows = [(p, r) for c, p, r, _ in __import__("tests.unit.conftest", fromlist=["x"]).fixture_records() if c != "success"][:5]
    path = tmp_path / "4a1b6b5e-athena-results.csv"
    with path.open("w", newline="") as f:
        writer = csv.writer(f, quoting=csv.QUOTE_ALL)  # Athena quotes every field and doubles inner quotes
        writer.writerow(["record"])
        for _, record in rows:
            writer.writerow([json.dumps(record)])
        writer.writerow(["{broken"])
    result = run("classify", str(path), "--format", "jsonl")
    assert result.returncode == 0
    assert len(result.stdout.decode().splitlines()) == 5
    assert "athena-results.csv:7: the record column is not JSON" in result.stderr.decode()


# ------------------------------------------------------------------------------------------------
# Arguments: every bad one is a usage error (status 1, one message, nothing read), never a traceback
# ------------------------------------------------------------------------------------------------
DAY_URL = "s3://trail-bucket/AWSLogs/111122223333/CloudTrail/us-east-1/2026/11/21/"


@pytest.mark.parametrize("argv, message", [
    (["classify", "x.json", "--since", "1000000d"], "'1000000d' reaches back before the year 1"),
    (["classify", "s3://b/", "--since", "99999999999999999999999w"], "reaches back before the year 1"),
    (["classify", "s3://b/", "--since", "1" * 5000 + "m"], "reaches back before the year 1"),
    (["classify", "s3://b/", "--since", "yesterday"], "not a time: 'yesterday'"),
    (["classify", "s3://b/", "--since", "0001-01-01T00:00:00+01:00"], "is out of range in UTC"),
    (["classify", "s3://b/", "--until", "9999-12-31T23:59:59-01:00"], "is out of range in UTC"),
    (["classify", "s3://b/", "--since", "2026-11-20", "--until", "2026-11-19"],
     "--since 2026-11-20T00:00Z is after --until 2026-11-19T00:00Z"),
    (["classify", "x.json", "--since", "2d", "--until", "3d"], "is after --until"),
    (["classify", "s3://b/", "--since", "9999-12-31"], "is after --until"),
    (["classify", DAY_URL, "--since", "2026-11-22"], "the URL names 2026/11/21, which is outside the window"),
    (["classify", DAY_URL, "--until", "2026-11-20"], "the URL names 2026/11/21, which is outside the window"),
    (["classify", DAY_URL.replace("/11/21/", "/13/"), "--since", "1d"], "'2026/13' below the region is not a date folder"),
    (["classify", DAY_URL.replace("/2026/11/21/", "/yesterday/")], "not a date folder"),
    (["classify", "s3://"], "no bucket in 's3://'"),
    (["classify", "s3://b/", "--accounts", "1234"], "12-digit account ids"),
    (["classify", "s3://b/", "--regions", ","], "region names"),
    (["classify", "x.json", "--jobs", "0"], "argument --jobs: must be from 1 to 256, not 0"),
    (["classify", "x.json", "--jobs", "-2"], "argument --jobs"),
    (["classify", "x.json", "--jobs", "two"], "argument --jobs: not a whole number: 'two'"),
    (["classify", "x.json", "--max-file-mb", "0"], "argument --max-file-mb: must be a positive number"),
    (["classify", "x.json", "--max-file-mb", "-5"], "argument --max-file-mb"),
    (["classify", "x.json", "--max-file-mb", "nan"], "argument --max-file-mb"),
    (["classify", "x.json", "--max-file-mb", "inf"], "argument --max-file-mb"),
    (["classify", "x.json", "--max-file-mb", "1e300"], "argument --max-file-mb"),
    (["classify", "x.json", "--max-file-mb", "lots"], "argument --max-file-mb: not a number: 'lots'"),
    (["classify", "x.json", "--format", "xml"], "argument --format: invalid choice"),
    (["classify", "x.json", "--bogus\x1b[2J"], "unrecognized arguments: --bogus\\x1b[2J"),
    (["classify"], "the following arguments are required: PATH"),
    ([], "the following arguments are required: command"),
    (["lookup", "--since", "1000000d"], "reaches back before the year 1"),
    (["lookup", "--since", "2h", "--until", "3h"], "is after --until"),
    (["lookup", "--since", "0001-01-01", "--until", "200d"], "is more than 90 days ago"),
    (["lookup", "--until", "9999-12-31T23:59:59-01:00"], "is out of range in UTC"),
    (["lookup", "--regions", "us-east-1,Not A Region"], "region names"),
    (["lookup", "--max-file-mb", "0"], "argument --max-file-mb"),
])
def test_bad_arguments_are_usage_errors_with_a_message_and_exit_1(argv, message):
    result = run(*argv)
    err = result.stderr.decode()
    assert result.returncode == 1, err
    assert message in err and "Traceback" not in err and "\x1b" not in err
    assert not result.stdout  # nothing was read: no table header, no findings


@pytest.mark.parametrize("argv", [
    ["--since", "0001-01-01", "--until", "9999-12-31T23:59:59.999999Z"],
    ["--since", "0001-01-01T00:00:00Z", "--until", "0001-01-01T00:00:00Z"],
    ["--since", "9999-12-31T23:59:59Z", "--until", "9999-12-31T23:59:59.999999+00:00"],
    ["--since", "0m"],
])
def test_the_edges_of_time_are_accepted(logs, argv):
    result = run("classify", str(logs / "b.json"), "--format", "jsonl", *argv)
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) == 1


def test_argument_errors_are_returned_not_raised_in_process(capsys):
    from auditor import cli

    assert cli.main(["classify"]) == cli.EXIT_USAGE
    assert cli.main(["classify", "x", "--jobs", "0"]) == cli.EXIT_USAGE
    assert cli.main(["--help"]) == cli.EXIT_OK
    assert "usage: auditor" in capsys.readouterr().out


def test_successful_changes_are_counted_as_the_calls_they_are(tmp_path):
    """A key policy put (Secrets Manager/KMS) is a successful call; an IAM role policy attached is
    another service's record: the summary counts them as it always has, none is malformed."""
    ok = {k: v for k, v in DENIED.items() if k not in ("errorCode", "errorMessage")}
    put_policy = {**ok, "eventSource": "kms.amazonaws.com", "eventName": "PutKeyPolicy",
                  "requestParameters": {"keyId": "1234abcd-12ab-34cd-56ef-1234567890ab", "policyName": "default"}}
    attach = {**ok, "eventSource": "iam.amazonaws.com", "eventName": "AttachRolePolicy",
              "requestParameters": {"roleName": "app", "policyArn": "arn:aws:iam::aws:policy/ReadOnlyAccess"}}
    (tmp_path / "changes.json").write_text(json.dumps({"Records": [put_policy, attach, DENIED]}))
    result = run("classify", str(tmp_path / "changes.json"), "--format", "jsonl")
    err = result.stderr.decode()
    assert result.returncode == 0, err
    assert len(result.stdout.splitlines()) == 1
    assert "1 successful call(s) skipped, 1 other-service record(s) skipped, 0 malformed" in err


def test_a_stdout_that_cannot_encode_a_character_gets_valid_json_lines_and_a_readable_table(tmp_path):
    import os

    (tmp_path / "uni.json").write_text(json.dumps({**DENIED, "requestParameters": {"secretId": "prod/中文-é-😀"}}))
    env = dict(os.environ, PYTHONIOENCODING="ascii")
    result = subprocess.run([*AUDITOR, "classify", str(tmp_path / "uni.json"), "--format", "jsonl"], capture_output=True,
                            env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.isascii() and json.loads(result.stdout)["resource"] == "prod/中文-é-😀"
    table = subprocess.run([*AUDITOR, "classify", str(tmp_path / "uni.json")], capture_output=True, env=env, timeout=60)
    assert table.returncode == 0, table.stderr
    assert b"prod/\\u4e2d\\u6587-\\xe9" in table.stdout
