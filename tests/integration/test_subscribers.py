"""What each kind of subscriber gets, end to end over HTTP on a moto server: a chat channel
(Amazon Q Developer in chat applications subscribes over HTTP(S)), e-mail, SQS, and what AWS
sees when publishing fails in an SQS batch; and the handler run standalone, configured only
by FINDINGS_TOPIC_ARN, DEDUP_TABLE_NAME and AWS_ENDPOINT_URL."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from demo.envelope import to_eventbridge

from ..unit.linkify import live_links
from ..unit.test_publish import CHATBOT_SCHEMA
from .test_incidents import SCHEDULED
from .conftest import Context, emf, metric_total

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]

HOSTILE = ("<!channel> @here ping [click](https://evil.example) <https://evil.example|login> `rm -rf` *b* _i_ ~s~"
           "\r\nBcc: victim@example.com\r\nSubject: spoofed\u202e\x1b[31m www.evil.example ｅｖｉｌ．ｅｘａｍｐｌｅ")


@pytest.fixture
def chat_endpoint():
    """A local HTTP endpoint subscribed like a chat integration: collects the notifications SNS posts."""
    received: list[dict] = []

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's naming
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            received.append(json.loads(body))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/chat", received
    server.shutdown()
    server.server_close()


def hostile_record(failures) -> dict:
    record = copy.deepcopy(next(r for c, n, r in failures if c == "access-denied.identity-policy"))
    record["errorMessage"] = HOSTILE + " " + record.get("errorMessage", "")
    record["userAgent"] = HOSTILE
    record["requestParameters"] = {"secretId": "https://evil.example/reset-password" + HOSTILE}
    record["userIdentity"]["type"] = "AssumedRole\nBcc: victim@evil.example"
    record["eventID"] = "hostile-0001"
    return record


def test_chat_channel_gets_a_valid_custom_notification_and_email_text_is_readable(stack, aws, failures, chat_endpoint):
    jsonschema = pytest.importorskip("jsonschema")
    import auditor.handler as handler

    url, received = chat_endpoint
    aws("sns").subscribe(TopicArn=stack.topic_arn, Protocol="http", Endpoint=url)
    published: list[dict] = []  # what went over the wire to SNS (moto does not deliver e-mail)
    handler.pipeline().publisher.client.meta.events.register(
        "provide-client-params.sns.Publish", lambda params, **_: published.append(copy.deepcopy(params)))

    handler.handler(to_eventbridge(hostile_record(failures)), Context())

    (sqs_msg,) = stack.drain()
    (notification,) = [r for r in received if r.get("Type") == "Notification"]
    payload = json.loads(notification["Message"])
    jsonschema.validate(payload, CHATBOT_SCHEMA)
    assert payload["metadata"]["threadId"] == sqs_msg.attributes["incident_id"]  # one thread per incident
    assert payload["metadata"]["eventType"] == sqs_msg.body["cause"]
    assert payload["content"]["keywords"][:3] == [sqs_msg.body["cause"], sqs_msg.body["severity"], sqs_msg.body["service"]]
    context = json.loads(payload["metadata"]["additionalContext"]["finding"])  # the finding as people may read it
    assert context["cause"] == sqs_msg.body["cause"] and context["resource"].startswith("hxxps[://]evil[.]example/reset-password")
    shown = payload["content"]["title"] + payload["content"]["description"] + "".join(payload["content"]["nextSteps"])
    for spoof in ("<!channel>", "@here", "](https://evil", "<https://evil", "`rm", "*b*", "_i_", "~s~", "\u202e", "\x1b", "\r"):
        assert spoof not in shown, spoof
    assert notification["Subject"] == sqs_msg.subject
    # nothing a person reads carries a link but our documentation URL
    assert live_links(notification["Message"], allow_docs=True) == [] and "evil.example" not in notification["Message"]

    (params,) = published
    bodies = json.loads(params["Message"])
    assert bodies["https"] == notification["Message"]  # the chat integration subscribes over HTTPS
    email = bodies["email"]
    assert json.loads(bodies["default"]) == sqs_msg.body  # SQS, Lambda, Firehose: the exact finding
    assert sqs_msg.body["resource"].startswith("https://evil.example/reset-password")
    people = json.loads(bodies["email-json"])  # e-mail-json: read in a mail client, so sanitised
    assert set(people) == set(sqs_msg.body) and people == context
    assert people["principal"]["type"] == "AssumedRole Bcc: victim@evil[.]example"
    for body in (email, bodies["email-json"], params["Subject"]):
        assert live_links(body, allow_docs=True) == [] and "evil.example" not in body
    lines = email.splitlines()
    assert lines[0] == sqs_msg.body["title"]
    for label in ("Cause:", "Call:", "Caller:", "Resource:", "Where:", "When:", "Evidence:", "Fix:", "Documentation:"):
        assert any(line.startswith(label) for line in lines), label
    assert "hostile-0001" in email and sqs_msg.body["doc_url"] in email
    assert "\r" not in email and "\x1b" not in email and "\u202e" not in email
    assert not any(line.startswith(("Bcc:", "Subject:")) for line in lines)  # no header lines smuggled in
    # the report's own lines (the incident's six, a line per field, one per evidence, the policy, the link): nothing the
    # event carried started one
    assert lines[2].startswith("Incident:   OPENED ") and lines[3].startswith("Root:       ")
    assert len(lines) == 6 + 16 + len(sqs_msg.body["evidence"]) + (3 if sqs_msg.body["policy"] else 0)
    subject = params["Subject"]
    assert subject.isascii() and len(subject) < 100 and "\n" not in subject


def throttled(*args, **kwargs):
    raise ClientError({"Error": {"Code": "Throttling", "Message": "Rate exceeded"}}, "Publish")


def test_sqs_batch_with_throttled_publish_keeps_every_alert_owed_and_the_scheduled_run_sends_each_once(
        stack, failures, monkeypatch, capsys):
    import time

    import auditor.handler as handler

    chosen = {}
    for cause, name, record in failures:
        chosen.setdefault(cause, record)
    # four root causes whose records are whole failures (none waits for a partner record)
    events = [to_eventbridge(chosen[c]) for c in ("access-denied.identity-policy", "secret.not-found", "throttling", "validation")]
    records = [{"messageId": f"m{i}", "eventSource": "aws:sqs", "body": json.dumps(e)} for i, e in enumerate(events)]
    records.append({"messageId": "junk", "eventSource": "aws:sqs", "body": "not json"})
    batch = {"Records": records}

    client = handler.pipeline().publisher.client
    client.publish_batch = client.publish = throttled  # SNS throttles every call of this invocation
    try:
        result = handler.handler(batch, Context())
    finally:
        del client.publish_batch, client.publish
    assert result == {"batchItemFailures": []}  # nothing for SQS to redeliver: the table keeps the alerts owed
    assert stack.drain() == []
    first = capsys.readouterr().out
    assert metric_total(emf(first), "PublishFailures") == 4 and metric_total(emf(first), "MalformedEvents") == 1

    pipe = handler.pipeline()
    monkeypatch.setattr(pipe, "clock", lambda: time.time() + 61)  # the next scheduled run after a failed send
    handler.handler(SCHEDULED, Context())
    assert sorted(m.attributes["status"] for m in stack.drain()) == ["opened"] * 4
    handler.handler(SCHEDULED, Context())
    assert stack.drain() == []  # once


def test_a_direct_invocation_never_raises_for_a_throttled_publish_but_without_the_table_it_does(stack, failures,
                                                                                                 monkeypatch):
    import auditor.handler as handler

    monkeypatch.setattr(handler.pipeline().publisher.client, "publish", throttled)
    record = next(r for c, n, r in failures if c == "kms.key-disabled")
    assert handler.handler(to_eventbridge(record), Context())["notified"] == 0  # owed in the table
    assert stack.drain() == []
    monkeypatch.delenv("DEDUP_TABLE_NAME")
    monkeypatch.setattr(handler, "_pipeline", None)
    monkeypatch.setattr(handler.pipeline().publisher.client, "publish", throttled)
    with pytest.raises(handler.PublishFailed):  # nothing keeps it but the event: EventBridge must retry
        handler.handler(to_eventbridge(record), Context())



def test_handler_runs_standalone_with_only_topic_table_and_endpoint(stack, failures, moto_server, tmp_path):
    events = [to_eventbridge(r) for c, n, r in failures[:6]]
    (tmp_path / "events.json").write_text(json.dumps(events))
    script = (
        "import json, sys\n"
        "from auditor.handler import handler\n"
        "class Context:\n"
        "    function_name = 'auditor'; memory_limit_in_mb = 256; aws_request_id = 'r'\n"
        "    invoked_function_arn = 'arn:aws:lambda:us-east-1:111122223333:function:auditor'\n"
        "for event in json.load(open(sys.argv[1])):\n"
        "    handler(event, Context())\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "POWERTOOLS_", "FINDINGS_", "DEDUP_"))}
    env.update(FINDINGS_TOPIC_ARN=stack.topic_arn, DEDUP_TABLE_NAME=stack.table, AWS_ENDPOINT_URL=moto_server,
               AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing")  # dummy credentials, no region
    result = subprocess.run([sys.executable, "-c", script, str(tmp_path / "events.json")], cwd=REPO / "functions",
                            env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
    logged = [json.loads(line) for line in result.stdout.splitlines() if '"message":"finding"' in line]
    assert len(logged) == 6
    opened = {line["incident_id"] for line in logged if line["outcome"] == "opened"}
    assert opened and len(stack.drain()) == len(opened)
