"""The benchmark's corpus generator (bench/corpus.py): seeded, deterministic, realistic.

Small N, no cache: ``generate`` is called directly.
"""

from __future__ import annotations

import gzip
import json
import statistics
from collections import Counter

import pytest

from bench import corpus as bc

N = 6_000


@pytest.fixture(scope="module")
def sample():
    # 12 files of 500: each file is one (account, region) draw, and 6 draws of weighted accounts leave
    # fewer than 3 accounts for about 1 seed in 10, so any fixture added could tip a seed over.
    return bc.generate(N, seed=42, per_file=500)


def test_deterministic_for_a_seed_and_different_across_seeds(sample):
    again = bc.generate(N, seed=42, per_file=500)
    assert again.lines == sample.lines and again.labels == sample.labels and again.files == sample.files
    other = bc.generate(N, seed=7, per_file=1_000)
    assert other.lines != sample.lines


def test_every_cause_of_the_catalog_is_present(sample):
    from auditor.causes import CATALOG

    present = set(sample.labels)
    missing = {c.id for c in CATALOG} - present
    assert not missing, f"causes without records in the corpus: {sorted(missing)}"


def test_mix_of_successes_other_services_and_failures(sample):
    counts = Counter(sample.labels)
    assert len(sample.lines) == N
    assert counts["success"] / N == pytest.approx(bc.SHARE_SUCCESS, abs=0.03)
    assert counts["other-service"] / N == pytest.approx(bc.SHARE_OTHER, abs=0.015)
    sources = Counter(json.loads(line)["eventSource"] for line in sample.lines)
    assert {"secretsmanager.amazonaws.com", "kms.amazonaws.com"} <= set(sources)
    assert {s for s in sources if s.split(".")[0] not in ("secretsmanager", "kms")}, "no other-service records"
    successes = [json.loads(line) for line, label in zip(sample.lines, sample.labels) if label == "success"]
    assert not any(r.get("errorCode") for r in successes)


def test_realistic_record_sizes(sample):
    sizes = [len(line) for line in sample.lines]
    assert 1_000 <= statistics.median(sizes) <= 3_000
    assert min(sizes) >= 500 and max(sizes) <= 8_000


def test_varied_but_repeating_like_a_real_stream(sample):
    records = [json.loads(line) for line in sample.lines]
    assert len({r["eventID"] for r in records}) == N
    failures = [r for r, label in zip(records, sample.labels) if label not in ("success", "other-service")]
    principals = {(r.get("userIdentity") or {}).get("arn") for r in failures}
    roles = {((r.get("userIdentity") or {}).get("sessionContext") or {}).get("sessionIssuer", {}).get("arn")
             for r in records} - {None}
    assert len(roles) >= 50, "a few hundred roles at full size; dozens even at small N"
    assert len(principals) >= len(failures) // 10, "assumed-role session names vary per call"
    # Real failure streams repeat: the same principal's role failing the same call on the same request.
    situations = Counter(
        (((r.get("userIdentity") or {}).get("sessionContext") or {}).get("sessionIssuer", {}).get("arn")
         or (r.get("userIdentity") or {}).get("arn"), r["eventName"], r.get("errorCode"),
         json.dumps(r.get("requestParameters"), sort_keys=True))
        for r in failures)
    assert situations.most_common(1)[0][1] >= 10
    assert len(failures) / 40 <= len(situations) <= len(failures) / 2
    assert len({r.get("sourceIPAddress") for r in records}) >= 100
    assert len({r.get("userAgent") for r in records}) >= 50
    assert len({r["awsRegion"] for r in records}) >= 3 and len({r["recipientAccountId"] for r in records}) >= 3


def test_files_are_cloudtrail_like(sample):
    assert len(sample.files) == N // 500
    for name, first, end in sample.files:
        account, _, region = name.split("_")[:3]
        chunk = [json.loads(line) for line in sample.lines[first:end]]
        assert {r["recipientAccountId"] for r in chunk} == {account}
        assert {r["awsRegion"] for r in chunk} == {region}
        times = [r["eventTime"] for r in chunk]
        assert times == sorted(times)


def test_variants_classify_as_their_templates():
    """Variation keeps each template's shape: a varied record gets the cause its template gets."""
    import random

    from auditor.classify import classify
    from auditor.records import FailedCall, parse_record

    def cause(record):
        outcome = parse_record(record)
        return classify(outcome).cause if type(outcome) is FailedCall else repr(outcome)

    world = bc.World(3)
    for label, templates in bc.load_templates().items():
        for t in templates:
            want = cause(t.record)
            for i in range(3):
                rng = random.Random(i)
                account, region = world.pairs[i * 7 % len(world.pairs)]
                varied = bc.Situation(world, t, account, region, rng).record(rng, "2026-11-24T00:00:00Z")
                assert cause(varied) == want, (t.path, varied)


def test_log_files_round_trip(tmp_path, monkeypatch):
    monkeypatch.setattr(bc, "CACHE", tmp_path)
    where = bc.log_files(2_500, seed=1, per_file=1_000)
    files = sorted(where.glob("*.json.gz"))
    assert len(files) == 3
    total = sum(len(json.loads(gzip.decompress(f.read_bytes()))["Records"]) for f in files)
    assert total == 2_500
    assert bc.log_files(2_500, seed=1, per_file=1_000) == where  # cached


def test_the_sweep_figure_resolves_every_incident_it_made_and_counts_its_requests():
    """bench/sweep.py builds its incidents from the function's own writes: a change to those
    writes must not leave the figure unmeasurable (it once did, unnoticed until `make bench`)."""
    from bench import sweep

    result = sweep.measure(30)
    assert result["resolved"] == 30 and result["left_after"] == 0
    assert 0 < result["requests"] < 30
