"""A seeded, realistic CloudTrail corpus: the fixture records as templates, varied the way real
traffic varies.

Cardinalities (why): real failure streams repeat — the same role failing on the same secret —
but are not copies: session names, event ids, times and source IPs change on every call. So
principals come from a few hundred roles/users with a fresh session name per record, resources
from a few thousand secrets and keys, and 60 % of records are successful calls, 5 % other
services' records (an organization trail mixes services), 35 % failures spread over every cause.
"""

from __future__ import annotations

import copy
import json
import random
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
SHARE_SUCCESS, SHARE_OTHER = 0.60, 0.05
REGIONS = ["us-east-1", "us-east-2", "us-west-2", "eu-west-1", "eu-central-1", "ap-southeast-2"]


def templates() -> tuple[list[dict], list[dict]]:
    failures, successes = [], []
    for path in sorted(FIXTURES.glob("*/*.json")):
        record = json.loads(path.read_text())
        (successes if path.parent.name == "success" else failures).append(record)
    return failures, successes


def _other_service(rng: random.Random, base: dict) -> dict:
    r = copy.deepcopy(base)
    r.pop("errorCode", None)
    r.pop("errorMessage", None)
    r["eventSource"], r["eventName"] = rng.choice([("s3.amazonaws.com", "GetObject"), ("sts.amazonaws.com", "AssumeRole"),
                                                   ("ec2.amazonaws.com", "DescribeInstances")])
    r["requestParameters"] = {"bucketName": f"logs-{rng.randrange(500)}", "key": f"app/{uuid.UUID(int=rng.getrandbits(128))}.json"}
    return r


def records(n: int, seed: int = 42) -> list[dict]:
    rng = random.Random(seed)
    failures, successes = templates()
    roles = [f"service-{i:03d}" for i in range(300)]
    secrets = [f"{rng.choice(['prod', 'stage', 'dev'])}/{rng.choice(['db', 'api', 'cache', 'queue'])}/app-{i:04d}" for i in range(3000)]
    keys = [str(uuid.UUID(int=rng.getrandbits(128))) for _ in range(400)]
    out = []
    for i in range(n):
        roll = rng.random()
        if roll < SHARE_SUCCESS:
            base = rng.choice(successes)
        elif roll < SHARE_SUCCESS + SHARE_OTHER:
            out.append(_other_service(rng, rng.choice(successes)))
            continue
        else:
            base = rng.choice(failures)
        text = json.dumps(base)
        ident = base.get("userIdentity") or {}
        old_arn = ident.get("arn") or ""
        if ":assumed-role/" in old_arn:
            role = rng.choice(roles)
            account = old_arn.split(":")[4]
            new_arn = f"arn:aws:sts::{account}:assumed-role/{role}/session-{rng.getrandbits(40):010x}"
            text = text.replace(old_arn, new_arn).replace(old_arn.rsplit("/", 1)[0].replace(":sts:", ":iam:").replace("assumed-role/", "role/"),
                                                          f"arn:aws:iam::{account}:role/{role}")
        record = json.loads(text)
        params = record.get("requestParameters")
        if isinstance(params, dict):
            if isinstance(params.get("secretId"), str) and not params["secretId"].startswith("arn:"):
                new = rng.choice(secrets)
                record["errorMessage"] = (record.get("errorMessage") or "").replace(params["secretId"], new) or None
                params["secretId"] = new
            if isinstance(params.get("keyId"), str) and len(params["keyId"]) == 36:
                params["keyId"] = rng.choice(keys)
        record["eventID"] = str(uuid.UUID(int=rng.getrandbits(128)))
        record["requestID"] = str(uuid.UUID(int=rng.getrandbits(128)))
        record["eventTime"] = f"2026-11-{rng.randrange(1, 29):02d}T{rng.randrange(24):02d}:{rng.randrange(60):02d}:{rng.randrange(60):02d}Z"
        if record.get("sourceIPAddress", "").count(".") == 3:
            record["sourceIPAddress"] = f"{rng.choice([10, 52, 54, 198, 203])}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
        if "errorMessage" in record and record["errorMessage"] is None:
            del record["errorMessage"]
        record["awsRegion"] = rng.choice(REGIONS) if rng.random() < 0.3 else record.get("awsRegion")
        out.append(record)
    return out


def record_lines(n: int, seed: int = 42) -> list[bytes]:
    cache = ROOT / "bench" / ".corpus" / f"records-{seed}-{n}.jsonl"
    if cache.exists():
        return cache.read_bytes().splitlines()
    lines = [json.dumps(r).encode() for r in records(n, seed)]
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_bytes(b"\n".join(lines))
    return lines
