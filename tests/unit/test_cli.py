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
