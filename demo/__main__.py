"""`make demo`: the whole pipeline on a local AWS stand-in, no account needed.

1. synthesize the CDK stack and read the detection rules' patterns from the template;
2. start moto in server mode on 127.0.0.1 (unless AWS_ENDPOINT_URL points elsewhere);
3. create the findings topic with an SQS subscriber, the incident state table, and EventBridge
   rules with the template's patterns whose target is an ingestion queue (as deployed);
4. a story: a key policy replaced (two roles can no longer read three secrets), a key disabled
   under two services, a role's policy detached, a change nothing followed: put on the bus,
   handed to the real Lambda handler in SQS batches; the alerts the subscriber receives (one
   per root cause, naming the change), then the schedule's Scheduled Event after the quiet
   period (the "resolved" alerts);
5. the bundled sample log (every fixture of every cause) the same way, its event times moved to
   now (the function never pages old news), summarised; the EventBridge incident events the
   function put on the incidents bus (docs/events.md), as a rule of the user's own receives them;
   the metrics.
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

from . import scenarios as story
from .stand_in import findings_stack, free_port, one_table_request_at_a_time, queue_arn

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"
QUIET_SECONDS = 3  # the deployed default is 1800 (30 minutes)


def say(text: str = "") -> None:
    print(text, flush=True)


def synthesized_patterns() -> tuple[dict, dict]:
    """Synthesize the stack (as `make synth` does) and read the rules' patterns back from the template."""
    sys.path.insert(0, str(ROOT))
    # aws-cdk-lib runs on Node.js: prefer the pinned one in .venv (as the Makefile does), quietly.
    bindir = Path(sys.executable).parent
    if (bindir / "node").exists():
        os.environ["PATH"] = f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}"
    os.environ.setdefault("JSII_SILENCE_WARNING_UNTESTED_NODE_VERSION", "1")
    os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
    from app import build, new_app
    from infra.pattern import change_pattern, detection_pattern

    outdir = Path(tempfile.mkdtemp(prefix="auditor-demo-cdk-"))
    app = new_app(str(outdir), {"nag": False})
    stack = build(app)
    app.synth()
    template = json.loads((outdir / f"{stack.stack_name}.template.json").read_text())
    return detection_pattern(template), change_pattern(template)


def start_moto() -> object:
    from moto.server import ThreadedMotoServer
    import logging

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    one_table_request_at_a_time()  # the function writes transactions in parallel: atomic, as on AWS
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


def story_records() -> list[dict]:
    """What just happened (demo.scenarios: two minutes ago), in the order CloudTrail delivered it."""
    records = [story.put_key_policy(-900)]
    for role in ("orders-api", "billing-worker"):
        for secret in ("prod/orders/db", "prod/billing/api-key", "prod/shared/smtp"):
            for t in (0, 60, 120):  # each caller retries every minute
                records.append(story.get_secret_value_kms_denied(t, role, secret))
                records.append(story.decrypt_for_secret_denied(t + 0.3, role, secret))
    other_key = story.KEY_ARN.replace("1234abcd", "0987dcba")
    records.append(story.disable_key(-300, other_key))
    records += [story.decrypt_disabled(t, "ingest", "s3.amazonaws.com", other_key) for t in (10, 70, 130)]
    records += [story.decrypt_disabled(t, "ledger", "dynamodb.amazonaws.com", other_key) for t in (40, 100)]
    policy = "arn:aws:iam::111122223333:policy/read-checkout-secrets"
    records.append(story.detach_role_policy(-120, "checkout", policy))
    records += [story.identity_denied(t, "checkout", f"prod/checkout/{name}") for t in (5, 65) for name in ("db", "stripe")]
    records.append(story.put_key_policy(200, story.KEY_ARN.replace("1234abcd", "5555aaaa")))  # nothing fails after it
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


def put_on_bus(events, records: list[dict]) -> None:
    from demo.envelope import to_eventbridge

    for start in range(0, len(records), 10):
        entries = []
        for record in records[start:start + 10]:
            envelope = to_eventbridge(record)
            entries.append({"Source": envelope["source"], "DetailType": envelope["detail-type"], "Detail": json.dumps(record)})
        events.put_events(Entries=entries)


def run_handler(handler, delivered: list[dict], captured: io.StringIO) -> None:
    with contextlib.redirect_stdout(captured):
        for start in range(0, len(delivered), 100):  # as the event source mapping hands them over
            records = [{"messageId": m["MessageId"], "eventSource": "aws:sqs", "body": m["Body"]} for m in delivered[start:start + 100]]
            result = handler.handler({"Records": records}, Context())
            if result["batchItemFailures"]:
                say(f"  {len(result['batchItemFailures'])} record(s) would be retried by SQS")


def alerts(received: list[dict]) -> list[tuple[str, dict, dict]]:
    out = []
    for envelope in received:
        body = json.loads(envelope["Message"])
        out.append((envelope["MessageAttributes"]["status"]["Value"], body["incident"], body))
    return out


def show(rows: list[tuple[str, dict, dict]]) -> None:
    for status, incident, body in rows:
        change = incident.get("change")
        what = (f"{change['action']} by {change['actor'].rsplit('/', 1)[-1]}, {change['lead']} before"
                if change else "no recorded change explains it")
        say(f"  {status.upper():<9}{incident['id']:<40}{incident['failures']:>4} failure(s), "
            f"{incident['principals']['count']} principal(s), {incident['resources']['count']} resource(s)")
        say(f"           root: {incident['root']['label'][:110]}")
        say(f"           cause: {incident['cause']}; what changed: {what}")


def main() -> int:
    started = time.monotonic()
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    say("1/5 Synthesizing the CDK stack and reading the detection rules from the template ...")
    failures_pattern, changes_pattern = synthesized_patterns()
    server = None
    if not os.environ.get("AWS_ENDPOINT_URL"):
        server = start_moto()
        say(f"2/5 Local AWS stand-in (moto server) at {os.environ['AWS_ENDPOINT_URL']}")
    else:
        say(f"2/5 Using the endpoint in AWS_ENDPOINT_URL: {os.environ['AWS_ENDPOINT_URL']}")
    import boto3

    name = f"auditor-demo-{uuid.uuid4().hex[:6]}"
    sns, sqs, ddb, events = (boto3.client(s) for s in ("sns", "sqs", "dynamodb", "events"))
    topic, inbox = findings_stack(sns, sqs, ddb, name, subscriber=f"{name}-subscriber")
    delivery = sqs.create_queue(QueueName=f"{name}-rule-target")["QueueUrl"]
    for rule, pattern in ((name, failures_pattern), (f"{name}-changes", changes_pattern)):
        events.put_rule(Name=rule, EventPattern=json.dumps(pattern), State="ENABLED")
        events.put_targets(Rule=rule, Targets=[{"Id": "delivery", "Arn": queue_arn(sqs, delivery)}])
    from auditor.contract import IncidentEvent

    bus = f"{name}{IncidentEvent.BUS_SUFFIX}"
    events.create_event_bus(Name=bus)
    incident_events = sqs.create_queue(QueueName=f"{name}-incident-events")["QueueUrl"]
    events.put_rule(Name=f"{name}-on-call", EventBusName=bus, EventPattern=json.dumps({"source": [IncidentEvent.SOURCE]}),
                    State="ENABLED")
    events.put_targets(Rule=f"{name}-on-call", EventBusName=bus, Targets=[{"Id": "q", "Arn": queue_arn(sqs, incident_events)}])
    say(f"3/5 Created topic {topic} with an SQS subscriber, incident state table {name}, the rules "
        f"{name} (failures) and {name}-changes (what changed), and the incidents bus {bus} with a rule of a user's own")

    os.environ.update(FINDINGS_TOPIC_ARN=topic, DEDUP_TABLE_NAME=name, POWERTOOLS_SERVICE_NAME="secrets-kms-auditor",
                      POWERTOOLS_METRICS_NAMESPACE="SecretsKmsAuditor", INCIDENT_QUIET_SECONDS=str(QUIET_SECONDS),
                      INCIDENT_BUS_NAME=bus)
    import auditor.handler as handler

    captured = io.StringIO()
    handler.logger.registered_handler.setStream(captured)

    def deliver(records: list[dict]) -> list[dict]:
        """Put records on the bus; what the rules queued, handed to the handler in SQS batches."""
        put_on_bus(events, records)
        delivered = drain(sqs, delivery, raw=True)
        run_handler(handler, delivered, captured)
        return delivered

    records = story_records()
    delivered = deliver(records)
    say(f"4/5 The story: {len(records)} CloudTrail records (four changes; the failures that followed them, every "
        f"Secrets Manager call with the KMS call it made); the rules queued {len(delivered)}, the handler read them in "
        "SQS batches\n")
    opened = alerts(drain(sqs, inbox))
    say(f"ALERTS ({len(opened)}: one per root cause, naming the change that most likely started it; the fourth change, "
        "which no failure followed, gets none)")
    show(opened)
    say(f"\n  ... {QUIET_SECONDS} s without a failure (INCIDENT_QUIET_SECONDS; deployed: 1800), then the schedule's "
        "Scheduled Event:")
    time.sleep(QUIET_SECONDS + 0.2)
    with contextlib.redirect_stdout(captured):
        handler.handler({"version": "0", "id": str(uuid.uuid4()), "detail-type": "Scheduled Event", "source": "aws.events",
                         "account": "123456789012", "time": "", "region": "us-east-1", "resources": [], "detail": {}},
                        Context())
    resolved = alerts(drain(sqs, inbox))
    say(f"\nALERTS ({len(resolved)}: one \"resolved\" per incident)")
    show(resolved)

    from .envelope import fresh

    samples = [fresh([r])[0] for r in sample_records()]  # replayed as if each had just happened
    before = len(captured.getvalue().splitlines())
    delivered = deliver(samples)
    say(f"\n5/5 The bundled sample log: {len(samples)} records (every fixture of every cause, successful calls, a "
        f"burst of 20 identical throttling failures), each replayed as if it had just happened (the function never "
        f"pages old news); the rules queued {len(delivered)} (successful calls that change nothing are filtered out)")
    lines = [json.loads(line) for line in captured.getvalue().splitlines()[before:] if line.startswith("{")]
    findings = [line for line in lines if line.get("message") == "finding"]
    received = alerts(drain(sqs, inbox))
    kinds = Counter(incident["root"]["kind"] for _, incident, _ in received)
    causes = Counter(line["finding"]["cause"] for line in findings)
    say(f"  {len(findings)} failure records -> {len(received)} alerts (one per root cause), by root:")
    for kind, count in kinds.most_common():
        say(f"    {count:>3}  {kind}")
    say(f"  the burst of 20 throttling failures: {causes['throttling']} throttling findings, "
        f"{kinds['request-rate']} request-rate alert(s)")

    put = [json.loads(m["Body"]) for m in drain(sqs, incident_events, raw=True)]
    say(f"\nINCIDENT EVENTS on the bus {bus} ({len(put)}: every alert above, as an EventBridge event a rule of your own "
        "can route to PagerDuty, Opsgenie, Step Functions or another account; docs/events.md)")
    for event in put[:3]:
        detail = event["detail"]
        say(f"  {event['detail-type']:<18} source {event['source']}, incident {detail['incident']['id']} "
            f"(occurrence {detail['incident']['occurrence']}), console {detail['links']['console'][:70]}")
    by_type = Counter(event["detail-type"] for event in put)
    say("  " + ", ".join(f"{count} {kind}" for kind, count in sorted(by_type.items())))

    totals: Counter = Counter()
    for line in (json.loads(raw) for raw in captured.getvalue().splitlines() if raw.startswith("{")):
        if "_aws" not in line:
            continue
        for directive in line["_aws"]["CloudWatchMetrics"]:
            for metric in directive["Metrics"]:
                value = line[metric["Name"]]
                value = sum(value) if isinstance(value, list) else value
                if metric["Name"] != "Findings":
                    totals[metric["Name"]] += value
    say("\nMETRICS EMITTED (CloudWatch embedded metric format, namespace SecretsKmsAuditor; both parts)")
    for key in sorted(totals):
        say(f"  {key:<28} {int(totals[key])}")
    say(f"\nDone in {time.monotonic() - started:.1f} s.")
    if server is not None:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
