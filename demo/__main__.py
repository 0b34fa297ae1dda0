"""`make demo`: the whole pipeline on a local AWS stand-in, no account needed.

1. synthesize the CDK stack and read the detection rule's pattern from the template;
2. start moto in server mode on 127.0.0.1 (unless AWS_ENDPOINT_URL points elsewhere);
3. create the findings topic with an SQS subscriber, the dedup table, and an EventBridge rule
   with the template's pattern whose target is an ingestion queue (as deployed);
4. put the bundled sample CloudTrail records on the bus, hand what the rule queued to the real
   Lambda handler in SQS batches, and print the findings, the messages the subscriber received
   and the metrics emitted.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import os
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

from .stand_in import findings_stack, free_port, queue_arn

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"


def say(text: str = "") -> None:
    print(text, flush=True)


def synthesized_pattern() -> dict:
    """Synthesize the stack (as `make synth` does) and read the rule's pattern back from the template."""
    sys.path.insert(0, str(ROOT))
    # aws-cdk-lib runs on Node.js: prefer the pinned one in .venv (as the Makefile does), quietly.
    bindir = Path(sys.executable).parent
    if (bindir / "node").exists():
        os.environ["PATH"] = f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}"
    os.environ.setdefault("JSII_SILENCE_WARNING_UNTESTED_NODE_VERSION", "1")
    os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
    from app import build, new_app
    from infra.pattern import detection_pattern

    outdir = Path(tempfile.mkdtemp(prefix="auditor-demo-cdk-"))
    app = new_app(str(outdir), {"nag": False})
    stack = build(app)
    app.synth()
    template = json.loads((outdir / f"{stack.stack_name}.template.json").read_text())
    return detection_pattern(template)


def start_moto() -> object:
    from moto.server import ThreadedMotoServer
    import logging

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    os.environ["AWS_ENDPOINT_URL"] = f"http://127.0.0.1:{port}"
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    return server


def sample_records() -> list[dict]:
    records = []
    for path in sorted(SAMPLES.glob("*.json.gz")):
        records += json.loads(gzip.decompress(path.read_bytes()))["Records"]
    return records


def drain(sqs, url: str, raw: bool = False) -> list[dict]:
    out = []
    while True:
        batch = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", [])
        if not batch:
            return out
        for m in batch:
            out.append(m if raw else json.loads(m["Body"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])


class Context:
    function_name = "secrets-kms-auditor-demo"
    memory_limit_in_mb = 256
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:secrets-kms-auditor-demo"
    aws_request_id = "demo"


def main() -> int:
    started = time.monotonic()
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    say("1/4 Synthesizing the CDK stack and reading the detection rule from the template ...")
    pattern = synthesized_pattern()
    server = None
    if not os.environ.get("AWS_ENDPOINT_URL"):
        server = start_moto()
        say(f"2/4 Local AWS stand-in (moto server) at {os.environ['AWS_ENDPOINT_URL']}")
    else:
        say(f"2/4 Using the endpoint in AWS_ENDPOINT_URL: {os.environ['AWS_ENDPOINT_URL']}")
    import boto3

    name = f"auditor-demo-{uuid.uuid4().hex[:6]}"
    sns, sqs, ddb, events = (boto3.client(s) for s in ("sns", "sqs", "dynamodb", "events"))
    topic, inbox = findings_stack(sns, sqs, ddb, name, subscriber=f"{name}-subscriber")
    delivery = sqs.create_queue(QueueName=f"{name}-rule-target")["QueueUrl"]
    events.put_rule(Name=name, EventPattern=json.dumps(pattern), State="ENABLED")
    events.put_targets(Rule=name, Targets=[{"Id": "delivery", "Arn": queue_arn(sqs, delivery)}])
    say(f"3/4 Created topic {topic} with an SQS subscriber, dedup table {name}, and rule {name}")

    from auditor.records import to_eventbridge

    records = sample_records()
    for start in range(0, len(records), 10):
        entries = []
        for record in records[start:start + 10]:
            envelope = to_eventbridge(record)
            entries.append({"Source": envelope["source"], "DetailType": envelope["detail-type"], "Detail": json.dumps(record)})
        events.put_events(Entries=entries)
    delivered = drain(sqs, delivery, raw=True)
    say(f"4/4 Put {len(records)} sample CloudTrail records on the bus; the rule queued {len(delivered)} "
        f"(successful calls are filtered out by the pattern); the handler reads them in SQS batches of 10\n")

    os.environ.update(FINDINGS_TOPIC_ARN=topic, DEDUP_TABLE_NAME=name, POWERTOOLS_SERVICE_NAME="secrets-kms-auditor",
                      POWERTOOLS_METRICS_NAMESPACE="SecretsKmsAuditor")
    import auditor.handler as handler

    captured = io.StringIO()
    handler.logger.registered_handler.setStream(captured)
    with contextlib.redirect_stdout(captured):
        for start in range(0, len(delivered), 10):  # as the event source mapping hands them over
            records = [{"messageId": m["MessageId"], "eventSource": "aws:sqs", "body": m["Body"]} for m in delivered[start:start + 10]]
            result = handler.handler({"Records": records}, Context())
            if result["batchItemFailures"]:
                say(f"  {len(result['batchItemFailures'])} record(s) would be retried by SQS")
    lines = [json.loads(line) for line in captured.getvalue().splitlines() if line.startswith("{")]
    findings = [line["finding"] for line in lines if line.get("message") == "finding"]

    say(f"FINDINGS ({len(findings)}, one per failed call)")
    say(f"{'CAUSE':<36} {'CONF':<6} {'CALL':<34} {'PRINCIPAL':<40} RESOURCE")
    for f in findings:
        principal = f["principal"]["arn"].rsplit(":", 1)[-1] or "-"
        say(f"{f['cause']:<36} {f['confidence']:<6} {(f['service'] + ':' + f['action'])[:34]:<34} {principal[:40]:<40} {f['resource'][:50]}")

    received = drain(sqs, inbox)
    say(f"\nSNS MESSAGES RECEIVED BY THE SUBSCRIBER ({len(received)}: one per distinct failure, repeats suppressed)")
    for envelope in received[:12]:
        body = json.loads(envelope["Message"])
        say(f"  {envelope.get('Subject', '')}")
        say(f"      fix: {body['remediation'][:150]}...")
    if len(received) > 12:
        say(f"  ... and {len(received) - 12} more")

    totals: Counter = Counter()
    for line in lines:
        if "_aws" not in line:
            continue
        for directive in line["_aws"]["CloudWatchMetrics"]:
            for metric in directive["Metrics"]:
                value = line[metric["Name"]]
                value = sum(value) if isinstance(value, list) else value
                key = metric["Name"] + (f"[{line['Cause']}]" if metric["Name"] == "Findings" else "")
                totals[key] += value
    say("\nMETRICS EMITTED (CloudWatch embedded metric format, namespace SecretsKmsAuditor)")
    for key in sorted(k for k in totals if not k.startswith("Findings[")):
        say(f"  {key:<28} {int(totals[key])}")
    say("  Findings by cause:")
    for key, value in sorted(((k, v) for k, v in totals.items() if k.startswith("Findings[")), key=lambda kv: -kv[1]):
        say(f"    {key[9:-1]:<38} {int(value)}")
    say(f"\nDone in {time.monotonic() - started:.1f} s.")
    if server is not None:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
