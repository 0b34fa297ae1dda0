"""`make bench`: the auditor's speed, each figure a ratio against a baseline in the same run.

    classify_vs_parse     parse + classify N records / json.loads of the same bytes        (target <= 2.0)
    cli_vs_jq             auditor classify --format jsonl over .json.gz logs / jq filter    (target <= 0.5)
    cold_import_vs_boto3  fresh interpreter importing the handler / importing boto3 alone  (target <= 1.3)
    warm invocation       handler time per event against a moto server (information)
    batch_vs_single       handler cost per event in batches of 100 / one event per invocation (target <= 0.3)
    s3_vs_local           the CLI over moto S3 / over the same files on disk (information)
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from .corpus import ROOT, record_lines

WORK = ROOT / "bench" / ".work"
PY = sys.executable
AUDITOR = str(Path(PY).with_name("auditor"))


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} cores, Python {platform.python_version()}"


def timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


# ------------------------------------------------------------------------------------------------
def classify_vs_parse(n: int, rounds: int, seed: int) -> dict:
    from auditor.classify import classify
    from auditor.trail import FailedCall, parse_record

    lines = record_lines(n, seed)
    loads = json.loads

    def baseline():
        for raw in lines:
            loads(raw)

    def auditor():
        for raw in lines:
            call = parse_record(loads(raw))
            if type(call) is FailedCall:
                classify(call)

    auditor()  # warm the index and caches once, as a long-running process would be
    base, full = [], []
    for _ in range(rounds):
        base.append(timed(baseline))
        full.append(timed(auditor))
    ratios = [f / b for f, b in zip(full, base)]
    return {"n": n, "json_loads_s": statistics.median(base), "parse_classify_s": statistics.median(full),
            "ratio": statistics.median(ratios), "bytes": sum(map(len, lines))}


# ------------------------------------------------------------------------------------------------
def log_files(total: int, per_file: int, seed: int) -> Path:
    target = WORK / f"logs-{seed}-{total}-{per_file}"
    if target.exists():
        return target
    lines = record_lines(total, seed + 1)
    target.mkdir(parents=True)
    for i in range(0, total, per_file):
        records = b",".join(lines[i:i + per_file])
        name = f"111122223333_CloudTrail_us-east-1_20261123T{i // per_file:04d}Z_bench{i:06d}.json.gz"
        (target / name).write_bytes(gzip.compress(b'{"Records":[' + records + b"]}", compresslevel=6))
    return target


def cli_vs_jq(total: int, per_file: int, rounds: int, seed: int) -> dict:
    logs = log_files(total, per_file, seed)
    files = sorted(str(p) for p in logs.glob("*.json.gz"))
    jq = shutil.which("jq")
    jobs = os.cpu_count() or 1
    cli = [AUDITOR, "classify", str(logs), "--format", "jsonl", "--quiet", "--jobs", str(jobs)]
    # The fairest fast jq pipeline: one gzip stream of all files into one jq process.
    jq_cmd = f"gzip -dc {logs}/*.json.gz | {jq} -c '.Records[] | select(.errorCode)'"
    floor_code = ("import gzip,json,sys\nfor f in sys.argv[1:]:\n json.loads(gzip.decompress(open(f,'rb').read()))")

    def run(cmd, shell=False):
        with open(os.devnull, "wb") as null:
            subprocess.run(cmd, shell=shell, stdout=null, check=True)

    out = {"records": total, "files": len(files), "jobs": jobs}
    cli_t, jq_t, floor_t = [], [], []
    for _ in range(rounds):
        cli_t.append(timed(lambda: run(cli)))
        floor_t.append(timed(lambda: run([PY, "-c", floor_code, *files])))
        if jq:
            jq_t.append(timed(lambda: run(jq_cmd, shell=True)))
    out["cli_s"] = statistics.median(cli_t)
    out["floor_single_process_s"] = statistics.median(floor_t)
    if jq:
        out["jq_s"] = statistics.median(jq_t)
        out["ratio"] = statistics.median(c / j for c, j in zip(cli_t, jq_t))
    return out


# ------------------------------------------------------------------------------------------------
def cold_import(rounds: int) -> dict:
    env = dict(os.environ, POWERTOOLS_SERVICE_NAME="secrets-kms-auditor", POWERTOOLS_METRICS_NAMESPACE="SecretsKmsAuditor",
               FINDINGS_TOPIC_ARN="arn:aws:sns:us-east-1:123456789012:findings", DEDUP_TABLE_NAME="dedup",
               AWS_DEFAULT_REGION="us-east-1")

    def start(module: str) -> float:
        return timed(lambda: subprocess.run([PY, "-c", f"import {module}"], env=env, check=True))

    start("auditor.handler"), start("boto3")  # page the files in once
    handler, boto3 = [], []
    for _ in range(rounds):
        handler.append(start("auditor.handler"))
        boto3.append(start("boto3"))
    top = subprocess.run([PY, "-X", "importtime", "-c", "import auditor.handler"], env=env, capture_output=True, text=True).stderr
    rows = []
    for line in top.splitlines():
        parts = line.split("|")
        if len(parts) == 3 and parts[1].strip().isdigit():
            rows.append((int(parts[1]), parts[2].rstrip()))
    return {"handler_s": statistics.median(handler), "boto3_s": statistics.median(boto3),
            "ratio": statistics.median(h / b for h, b in zip(handler, boto3)), "top": sorted(rows, reverse=True)[:15]}


# ------------------------------------------------------------------------------------------------
def warm_invocation(events: int) -> dict:
    import contextlib
    import io
    import socket
    import uuid

    import boto3
    import logging

    from auditor.classify import classify
    from auditor.trail import FailedCall, parse_record, to_eventbridge

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # moto in its own process, as AWS would be: its CPU is not charged to the handler being timed.
    server = subprocess.Popen([str(Path(PY).with_name("moto_server")), "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(200):
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.05)
    os.environ.update(AWS_ENDPOINT_URL=f"http://127.0.0.1:{port}", AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
                      AWS_DEFAULT_REGION="us-east-1")
    try:
        name = f"bench-{uuid.uuid4().hex[:6]}"
        topic = boto3.client("sns").create_topic(Name=name)["TopicArn"]
        boto3.client("dynamodb").create_table(TableName=name, KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                                              AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                                              BillingMode="PAY_PER_REQUEST")
        os.environ.update(FINDINGS_TOPIC_ARN=topic, DEDUP_TABLE_NAME=name)
        import auditor.handler as handler

        records = [json.loads(line) for line in record_lines(20_000, 7)]
        failed = [r for r in records if type(parse_record(r)) is FailedCall][:events]
        envelopes = [to_eventbridge(r) for r in failed]

        class Context:
            function_name, memory_limit_in_mb, aws_request_id = "bench", 256, "bench"
            invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:bench"

        sink = io.StringIO()
        handler.logger.registered_handler.setStream(sink)
        with contextlib.redirect_stdout(sink):
            handler.handler(envelopes[0], Context())  # the first (cold) call creates clients
            total = timed(lambda: [handler.handler(e, Context()) for e in envelopes[1:]])
        classify_t = timed(lambda: [classify(parse_record(e)) for e in envelopes[1:]])
        n = len(envelopes) - 1
        result = {"events": n, "per_event_ms": total / n * 1000, "classification_share": classify_t / total}
        result["batch"] = batch_vs_single()
        result["s3"] = s3_vs_local()
        return result
    finally:
        server.terminate()
        server.wait(timeout=10)


def batch_vs_single(events: int = 300, rounds: int = 3) -> dict:
    """Handler cost per event: batches of 100 (SQS) vs one event per invocation, same records, against moto."""
    import contextlib
    import io
    import uuid

    import boto3

    import auditor.handler as handler
    from auditor.trail import FailedCall, parse_record, to_eventbridge

    records = [json.loads(line) for line in record_lines(20_000, 11)]
    failed = [r for r in records if type(parse_record(r)) is FailedCall][:events]
    envelopes = [to_eventbridge(r) for r in failed]

    class Context:
        function_name, memory_limit_in_mb, aws_request_id = "bench", 256, "bench"
        invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:bench"

    def fresh():
        name = f"bench-{uuid.uuid4().hex[:6]}"
        topic = boto3.client("sns").create_topic(Name=name)["TopicArn"]
        boto3.client("dynamodb").create_table(TableName=name, KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                                              AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                                              BillingMode="PAY_PER_REQUEST")
        os.environ.update(FINDINGS_TOPIC_ARN=topic, DEDUP_TABLE_NAME=name)
        handler._pipeline = None

    sink = io.StringIO()
    handler.logger.registered_handler.setStream(sink)
    single, batched = [], []
    with contextlib.redirect_stdout(sink):
        for _ in range(rounds):
            fresh()
            handler.handler(envelopes[0], Context())
            single.append(timed(lambda: [handler.handler(e, Context()) for e in envelopes]) / len(envelopes))
            fresh()
            handler.handler(envelopes[0], Context())
            def run_batches():
                for start in range(0, len(envelopes), 100):
                    chunk = envelopes[start:start + 100]
                    handler.handler({"Records": [{"messageId": str(i), "eventSource": "aws:sqs", "body": json.dumps(e)}
                                                 for i, e in enumerate(chunk)]}, Context())
            batched.append(timed(run_batches) / len(envelopes))
    return {"single_ms": statistics.median(single) * 1000, "batch_ms": statistics.median(batched) * 1000,
            "ratio": statistics.median(b / s for b, s in zip(batched, single))}


def s3_vs_local(rounds: int = 3) -> dict:
    """The CLI over the same gzip log files served by moto S3 (org-trail layout) vs read from disk."""
    import boto3

    logs = log_files(40_000, 2_000, 42)
    bucket = "bench-org-trail"
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=bucket)
    files = sorted(logs.glob("*.json.gz"))
    for i, path in enumerate(files):
        key = f"AWSLogs/o-a1b2c3d4e5/111122223333/CloudTrail/us-east-1/2026/11/23/{path.name}"
        s3.put_object(Bucket=bucket, Key=key, Body=path.read_bytes())

    def run(args):
        with open(os.devnull, "wb") as null:
            subprocess.run([AUDITOR, "classify", *args, "--format", "jsonl", "--quiet"], stdout=null, check=True)

    remote = [f"s3://{bucket}/", "--since", "2026-11-23", "--until", "2026-11-23T23:59:00Z"]
    s3_t = [timed(lambda: run(remote)) for _ in range(rounds)]
    local_t = [timed(lambda: run([str(logs)])) for _ in range(rounds)]
    return {"files": len(files), "s3_s": statistics.median(s3_t), "local_s": statistics.median(local_t),
            "ratio": statistics.median(a / b for a, b in zip(s3_t, local_t))}


def main() -> int:
    p = argparse.ArgumentParser(prog="bench")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--n", type=int, default=100_000)
    p.add_argument("--cli-records", type=int, default=200_000)
    p.add_argument("--per-file", type=int, default=2_000)
    args = p.parse_args()
    print(f"machine: {machine()}", flush=True)

    c = classify_vs_parse(args.n, args.rounds, args.seed)
    print(f"classify_vs_parse: {c['n']} records ({c['bytes'] / 1e6:.0f} MB): json.loads {c['json_loads_s']:.3f} s, "
          f"parse+classify {c['parse_classify_s']:.3f} s (median of {args.rounds})", flush=True)
    j = cli_vs_jq(args.cli_records, args.per_file, max(3, args.rounds // 2), args.seed)
    print(f"cli_vs_jq: {j['records']} records in {j['files']} .json.gz files: auditor {j['cli_s']:.2f} s "
          f"({j['jobs']} workers), jq {j.get('jq_s', float('nan')):.2f} s, floor (gunzip + json.loads, 1 process) "
          f"{j['floor_single_process_s']:.2f} s", flush=True)
    k = cold_import(15)
    print(f"cold start: import auditor.handler {k['handler_s'] * 1000:.0f} ms, import boto3 {k['boto3_s'] * 1000:.0f} ms "
          "(median of 15 fresh interpreters); largest imports of the handler (cumulative us):", flush=True)
    for us, module in k["top"]:
        print(f"    {us:>8}  {module}")
    w = warm_invocation(200)
    print(f"warm invocation: {w['per_event_ms']:.2f} ms per event against a moto server over HTTP "
          f"({w['events']} events); classification is {w['classification_share'] * 100:.1f} % of it", flush=True)

    b, r = w["batch"], w["s3"]
    print(f"batch vs single: {b['batch_ms']:.2f} ms per event in batches of 100, {b['single_ms']:.2f} ms per event "
          "one per invocation (same records, moto server)", flush=True)
    print(f"s3 vs local: {r['files']} files, CLI reading moto S3 {r['s3_s']:.2f} s, reading disk {r['local_s']:.2f} s", flush=True)

    def verdict(value, target):
        return "ok" if value <= target else "MISSED"

    print(f"# targets: classify_vs_parse <= 2.0 ({verdict(c['ratio'], 2.0)}), cli_vs_jq <= 0.5 "
          f"({verdict(j.get('ratio', 9), 0.5)}), cold_import_vs_boto3 <= 1.3 ({verdict(k['ratio'], 1.3)}), "
          f"batch_vs_single <= 0.3 ({verdict(b['ratio'], 0.3)}), s3_vs_local: information")
    print(f"classify_vs_parse={c['ratio']:.3f}")
    print(f"cli_vs_jq={j['ratio']:.3f}" if "ratio" in j else "cli_vs_jq=nan  # jq not installed")
    print(f"cold_import_vs_boto3={k['ratio']:.3f}")
    print(f"batch_vs_single={b['ratio']:.3f}")
    print(f"s3_vs_local={r['ratio']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
