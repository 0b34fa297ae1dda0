"""The PagerDuty forwarder end to end: the real handler, its routing key in a secret and its
dead-letter queue on the moto server, and PagerDuty played by an HTTP stand-in on the loopback
address answering 2xx, 429, 5xx, too slowly, or refusing the key. Retries stay bounded, what is
not delivered ends in the dead-letter queue, and the key is never in a log line or a kept message.
Nothing reaches the internet."""

from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from auditor import pagerduty_forwarder as forwarder
from auditor.contract import ForwarderEnv
from auditor.incident_event import incident_event
from demo import scenarios as s

from ..unit import oncall_shapes as shapes
from ..unit.eventbridge_input import envelope, target_input
from ..unit.incident_samples import BUS, SOURCE, scenario_notices

pytestmark = pytest.mark.integration

#: A distinctive fake routing key: it must appear in the request to PagerDuty, and nowhere else.
KEY = "PDFAKEROUTINGKEY" + uuid.uuid4().hex.upper()


@dataclass
class Answer:
    status: int = 202
    body: str = '{"status":"success","message":"Event processed","dedup_key":"x"}'
    headers: dict = field(default_factory=dict)
    delay: float = 0.0


class PagerDutyStandIn:
    """An HTTP server on 127.0.0.1 that answers from a script (the last answer repeats) and records requests."""

    def __init__(self) -> None:
        self.script: list[Answer] = [Answer()]
        self.requests: list[tuple[str, dict]] = []
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                stand_in.requests.append((self.path, body))
                answer = stand_in.script.pop(0) if len(stand_in.script) > 1 else stand_in.script[0]
                if answer.delay:
                    time.sleep(answer.delay)
                try:
                    self.send_response(answer.status)
                    for k, v in answer.headers.items():
                        self.send_header(k, v)
                    data = answer.body.replace("{key}", body.get("routing_key", "")).encode()
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up waiting

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Context:
    def __init__(self, remaining_ms: int = 90_000):
        self.remaining_ms = remaining_ms

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


@dataclass
class Rig:
    pagerduty: PagerDutyStandIn
    dead_letter_url: str
    aws: object
    capsys: object

    def dead_letters(self) -> list[dict]:
        sqs = self.aws("sqs")
        out = []
        while batch := sqs.receive_message(QueueUrl=self.dead_letter_url, MaxNumberOfMessages=10).get("Messages", []):
            for m in batch:
                assert KEY not in m["Body"], "the routing key is in a kept message"
                out.append(json.loads(m["Body"]))
                sqs.delete_message(QueueUrl=self.dead_letter_url, ReceiptHandle=m["ReceiptHandle"])
        return out

    def logs(self) -> list[dict]:
        out = self.capsys.readouterr()
        assert KEY not in out.out and KEY not in out.err, "the routing key is in the logs"
        return [json.loads(line) for line in out.out.splitlines() if line.startswith("{")]


@pytest.fixture
def rig(aws, monkeypatch, capsys):
    pagerduty = PagerDutyStandIn()
    name = f"pd-{uuid.uuid4().hex[:8]}"
    aws("secretsmanager").create_secret(Name=name, SecretString=KEY)
    queue = aws("sqs").create_queue(QueueName=name)["QueueUrl"]
    monkeypatch.setenv(ForwarderEnv.SECRET_ID, name)
    monkeypatch.setenv(ForwarderEnv.SECRET_FIELD, "")
    monkeypatch.setenv(ForwarderEnv.DEAD_LETTER_URL, queue)
    monkeypatch.setenv(ForwarderEnv.EVENTS_URL, pagerduty.url + "/v2/enqueue")
    monkeypatch.setenv(ForwarderEnv.CHANGE_EVENTS_URL, pagerduty.url + "/v2/change/enqueue")
    # the same bounds, on a test's clock
    monkeypatch.setattr(forwarder, "TIMEOUT_SECONDS", 0.5)
    monkeypatch.setattr(forwarder, "BACKOFF_SECONDS", 0.01)
    monkeypatch.setattr(forwarder, "RETRY_AFTER_CAP", 0.05)
    forwarder.forget_key()
    yield Rig(pagerduty, queue, aws, capsys)
    forwarder.forget_key()
    pagerduty.close()


def alert(status: str = "opened", kind: str = "key-policy") -> dict:
    """What the incidents rule hands the forwarder: the event's detail.oncall.pagerduty (InputPath)."""
    incident, finding = scenario_notices(status)[kind]
    event = envelope(incident_event(status, incident, finding, source=SOURCE, bus_name=BUS))
    return json.loads(target_input({"InputPath": "$.detail.oncall.pagerduty"}, event))


@pytest.mark.parametrize("status", ["opened", "updated", "resolved"])
def test_2xx_delivers_once_with_the_routing_key_added(rig, status):
    body = alert(status)
    assert forwarder.handler(body, Context())["delivered"] is True
    ((path, sent),) = rig.pagerduty.requests
    assert path == "/v2/enqueue"
    shapes.pagerduty_alert(sent, key=KEY)
    assert {k: v for k, v in sent.items() if k != "routing_key"} == body  # exactly what the function rendered
    assert rig.dead_letters() == []
    (line,) = rig.logs()
    assert (line["outcome"], line["dedup_key"], line["attempts"]) == ("delivered", body["dedup_key"], 1)


def test_429_is_retried_after_its_retry_after_then_delivered(rig):
    rig.pagerduty.script = [Answer(429, '{"status":"throttle"}', {"Retry-After": "1"}), Answer(202)]
    assert forwarder.handler(alert(), Context())["attempts"] == 2
    assert len(rig.pagerduty.requests) == 2 and rig.dead_letters() == []


@pytest.mark.parametrize("answer, says", [(Answer(429, "{}", {"Retry-After": "30"}), "HTTP 429"),
                                          (Answer(503, "unavailable"), "HTTP 503"), (Answer(500, "oops"), "HTTP 500")])
def test_429_and_5xx_are_retried_a_bounded_number_of_times_then_kept_in_the_dead_letter_queue(rig, answer, says):
    rig.pagerduty.script = [answer]
    body = alert()
    started = time.monotonic()
    assert forwarder.handler(body, Context())["delivered"] is False
    assert time.monotonic() - started < 5  # backoff and Retry-After are capped
    assert len(rig.pagerduty.requests) == forwarder.MAX_ATTEMPTS == 4
    (kept,) = rig.dead_letters()
    assert kept["reason"] == f"gave up after 4 attempt(s): {says}" and kept["attempts"] == 4
    assert kept["request"] == body and "routing_key" not in kept["request"]
    assert [line["outcome"] for line in rig.logs()] == ["dead-lettered"]


def test_a_timeout_is_retried_a_bounded_number_of_times_then_kept(rig):
    rig.pagerduty.script = [Answer(202, delay=1.5)]
    assert forwarder.handler(alert(), Context())["delivered"] is False
    assert len(rig.pagerduty.requests) == 4
    (kept,) = rig.dead_letters()
    assert kept["reason"] == "gave up after 4 attempt(s): timed out" and kept["status"] == 0


def test_a_refused_key_is_not_retried_and_is_read_again_next_time(rig):
    # PagerDuty refuses the event; even should its answer echo the key, what is kept does not
    rig.pagerduty.script = [Answer(400, '{"status":"invalid event","message":"Event object is invalid",'
                                        '"errors":["Invalid routing key {key}"]}')]
    assert forwarder.handler(alert(), Context())["delivered"] is False
    assert len(rig.pagerduty.requests) == 1
    (kept,) = rig.dead_letters()
    assert kept["reason"].startswith("refused: HTTP 400: ") and "Invalid routing key [routing key]" in kept["reason"]
    assert forwarder._secret["value"] is None  # a rotated key is read again on the next event
    rig.logs()


def test_the_remaining_time_bounds_the_retries(rig):
    rig.pagerduty.script = [Answer(503)]
    forwarder.handler(alert(), Context(remaining_ms=int((forwarder.RESERVE_SECONDS + forwarder.TIMEOUT_SECONDS - 0.1) * 1000)))
    assert len(rig.pagerduty.requests) == 1  # no room left for another attempt and the dead letter
    assert len(rig.dead_letters()) == 1


def test_a_missing_secret_sends_nothing_and_is_kept(rig, monkeypatch):
    monkeypatch.setenv(ForwarderEnv.SECRET_ID, f"missing-{uuid.uuid4().hex[:6]}")
    assert forwarder.handler(alert(), Context())["delivered"] is False
    assert rig.pagerduty.requests == []
    (kept,) = rig.dead_letters()
    assert kept["reason"] == "routing key unavailable: cannot read the secret: ResourceNotFoundException"


def test_the_key_can_be_one_field_of_a_json_secret(rig, aws, monkeypatch):
    name = f"pd-json-{uuid.uuid4().hex[:8]}"
    aws("secretsmanager").create_secret(Name=name, SecretString=json.dumps({"routingKey": KEY, "other": "x"}))
    monkeypatch.setenv(ForwarderEnv.SECRET_ID, name)
    monkeypatch.setenv(ForwarderEnv.SECRET_FIELD, "routingKey")
    assert forwarder.handler(alert(), Context())["delivered"] is True
    assert rig.pagerduty.requests[0][1]["routing_key"] == KEY
    monkeypatch.setenv(ForwarderEnv.SECRET_FIELD, "nope")
    forwarder.forget_key()
    assert forwarder.handler(alert(), Context())["delivered"] is False
    assert "no string field 'nope'" in rig.dead_letters()[0]["reason"]


def test_changes_go_to_the_change_events_endpoint(rig):
    record = s.put_key_policy(-900)
    assert forwarder.handler(record, Context())["delivered"] is True  # the change rule's InputPath: $.detail
    ((path, sent),) = rig.pagerduty.requests
    assert path == "/v2/change/enqueue"
    shapes.pagerduty_change(sent, key=KEY)
    assert "PutKeyPolicy" in sent["payload"]["summary"]
    # a change that touches nothing an incident can be rooted in: nothing sent, nothing kept
    described = dict(s.record("secretsmanager", "UpdateSecret", 0, s.admin_identity(), {"secretId": "prod/a", "description": "x"}))
    assert forwarder.handler(described, Context()).get("skipped") is True
    assert len(rig.pagerduty.requests) == 1 and rig.dead_letters() == []


def test_an_input_that_is_neither_is_kept_with_its_reason(rig):
    forwarder.handler({"unexpected": True}, Context())
    (kept,) = rig.dead_letters()
    assert kept["reason"] == "neither an alert event nor a CloudTrail record" and kept["input"] == {"unexpected": True}
    assert rig.pagerduty.requests == []


def test_a_routing_key_in_the_input_is_ignored(rig):
    forwarder.handler({**alert(), "routing_key": "injected"}, Context())
    assert rig.pagerduty.requests[0][1]["routing_key"] == KEY


def test_when_the_dead_letter_queue_cannot_be_reached_the_function_fails_for_lambdas_on_failure_destination(rig, monkeypatch):
    monkeypatch.setenv(ForwarderEnv.DEAD_LETTER_URL, rig.dead_letter_url + "-missing")
    rig.pagerduty.script = [Answer(400, "{}")]
    with pytest.raises(Exception):
        forwarder.handler(alert(), Context())
    assert KEY not in str(rig.capsys.readouterr())
