"""Athena: the failures query in docs/history.md rebuilds each record as one JSON column `record`;
the CLI reads Athena's CSV results. Athena is not available here, so the query's projection is
mirrored in Python (field by field, with the key lists read from the document itself) and the
findings from that CSV must equal the findings from the original records."""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from ..unit.conftest import fixture_records

pytestmark = pytest.mark.integration
DOC = Path(__file__).resolve().parents[2] / "docs" / "history.md"
AUDITOR = str(Path(sys.executable).with_name("auditor"))

TOP = ["eventVersion", "eventTime", "eventSource", "eventName", "awsRegion", "sourceIPAddress", "userAgent",
       "errorCode", "errorMessage", "eventID", "eventType", "recipientAccountId", "vpcEndpointId",
       "requestParameters", "additionalEventData", "serviceEventDetails", "userIdentity", "resources"]
IDENTITY = ["type", "principalId", "arn", "accountId", "invokedBy", "accessKeyId", "userName", "sessionContext"]
ISSUER = ["type", "principalId", "arn", "accountId", "userName"]
RESOURCE = ["ARN", "accountId", "type"]


def query_text() -> str:
    text = DOC.read_text()
    return text[text.index("SELECT json_format("):text.index("AS record")]


def test_the_documented_query_builds_the_fields_mirrored_here():
    arrays = [re.findall(r"'([^']+)'", a) for a in re.findall(r"ARRAY\[('[^\]]+)\]", query_text())]
    assert arrays == [TOP, IDENTITY, ["sessionIssuer"], ISSUER, RESOURCE]
    where = DOC.read_text().split("FROM cloudtrail_org", 1)[1]
    assert "eventsource IN ('secretsmanager.amazonaws.com', 'kms.amazonaws.com')" in where
    assert "errorcode IS NOT NULL OR eventname IN ('RotationFailed', 'RotationAbandoned', 'TestRotationFailed')" in where


def selected(record: dict) -> bool:
    """The query's WHERE (partition columns aside)."""
    return record.get("eventSource") in ("secretsmanager.amazonaws.com", "kms.amazonaws.com") and (
        record.get("errorCode") is not None or record.get("eventName") in ("RotationFailed", "RotationAbandoned", "TestRotationFailed"))


def as_athena(record: dict) -> dict:
    """What the query's `record` column holds for one CloudTrail record: the table's columns
    (struct fields lower-cased by the SerDe, JSON text columns parsed back) under CloudTrail's names."""
    ident = record.get("userIdentity") or {}
    issuer = (ident.get("sessionContext") or {}).get("sessionIssuer") or {}
    columns = {k: record.get(k) for k in TOP[:16]}
    columns["userIdentity"] = {**{k: ident.get(k) for k in IDENTITY[:-1]},
                               "sessionContext": {"sessionIssuer": {k: issuer.get(k) for k in ISSUER}}}
    resources = record.get("resources")
    columns["resources"] = None if resources is None else [{k: r.get(k) for k in RESOURCE} for r in resources]
    return columns


def naive(record: dict) -> dict:
    """CAST(useridentity AS JSON) and CAST(resources AS JSON): the table's lower-case field names."""
    out = as_athena(record)
    out["userIdentity"] = json.loads(json.dumps(record.get("userIdentity") or {}).lower())
    out["resources"] = [{k.lower(): v for k, v in r.items()} for r in record.get("resources") or []] or None
    return out


def write_results(path: Path, rows: list[dict | None]) -> None:
    """Athena's CSV: a quoted header, every value quoted, inner quotes doubled, NULL as an empty field."""
    with path.open("w", newline="") as f:
        writer = csv.writer(f, quoting=csv.QUOTE_ALL, lineterminator="\n")
        writer.writerow(["record"])
        for row in rows:
            writer.writerow(["" if row is None else json.dumps(row, separators=(",", ":"))])


def findings(*paths: Path) -> tuple[list[dict], str, int]:
    r = subprocess.run([AUDITOR, "classify", *map(str, paths), "--format", "jsonl", "--jobs", "1"],
                       capture_output=True, text=True, timeout=60)
    return [json.loads(line) for line in r.stdout.splitlines()], r.stderr, r.returncode


def test_findings_from_athena_results_equal_findings_from_the_trail(tmp_path):
    records = [r for _, _, r, _ in fixture_records()]
    chosen = [r for r in records if selected(r)]
    assert len(chosen) == sum(1 for c, *_ in fixture_records() if c != "success")  # every failure, no success
    original = tmp_path / "trail.json"
    original.write_text(json.dumps({"Records": records}))
    results = tmp_path / "4a1b6b5e-athena.csv"
    write_results(results, [as_athena(r) for r in chosen])
    assert results.read_text().startswith('"record"\n"{""eventVersion"":')  # the shape Athena writes

    expected, _, code = findings(original)
    got, err, code2 = findings(results)
    assert code == code2 == 0, err
    assert len(got) == len(expected)
    assert sorted(got, key=lambda f: f["event_id"]) == sorted(expected, key=lambda f: f["event_id"])


def test_lower_case_struct_json_would_lose_what_the_classifier_needs(tmp_path):
    """Why the query spells CloudTrail's names out: with the table's lower-case fields, the
    principal's temporary credentials or its resource go missing for some records."""
    chosen = [r for _, _, r, _ in fixture_records() if selected(r)]
    right, wrong = tmp_path / "right.csv", tmp_path / "wrong.csv"
    write_results(right, [as_athena(r) for r in chosen])
    write_results(wrong, [naive(r) for r in chosen])
    good, _, _ = findings(right)
    bad, _, _ = findings(wrong)
    differ = [g for g, b in zip(good, bad) if (g["principal"], g["cause"], g["resource"]) != (b["principal"], b["cause"], b["resource"])]
    assert differ


def test_null_and_non_json_rows_are_named_and_the_rest_classified(tmp_path):
    record = next(r for c, _, r, _ in fixture_records() if c == "secret.pending-deletion")
    results = tmp_path / "results.csv"
    write_results(results, [as_athena(record), None, as_athena(record)])
    with results.open("a") as f:
        f.write('"not json, ""quoted"""\n')
    got, err, code = findings(results)
    assert code == 0 and [f["cause"] for f in got] == ["secret.pending-deletion"] * 2
    assert "results.csv:3: the record column is not JSON" in err and "results.csv:5: the record column is not JSON" in err
