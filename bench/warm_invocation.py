"""warm_invocation (information) and batch_vs_single: the handler against a moto server.

moto runs as ``moto_server`` in its own process on 127.0.0.1 (a free port), not as a
ThreadedMotoServer inside this process: AWS is remote, and an in-process server would compete
with the handler for the GIL and charge its own CPU to the handler being timed. The stack is
what the function has: an SNS topic with an SQS subscriber, a DynamoDB table (pk string, TTL on
expires_at); FINDINGS_TOPIC_ARN, DEDUP_TABLE_NAME, AWS_ENDPOINT_URL and dummy credentials in the
environment. Events are the corpus's failures in corpus order, as EventBridge delivers them
(so the corpus's repeats meet the dedup window, as in production).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import uuid

from demo.stand_in import environment, findings_stack

from .common import HANDLER_ENV, LambdaContext, median, start_moto, stop, timed
from .corpus import corpus


@contextlib.contextmanager
def moto_server():
    server, endpoint = start_moto()
    try:
        with environment(**HANDLER_ENV, AWS_ENDPOINT_URL=endpoint, AWS_ACCESS_KEY_ID="testing",
                         AWS_SECRET_ACCESS_KEY="testing", AWS_SESSION_TOKEN=None, AWS_PROFILE=None):
            yield endpoint
    finally:
        stop(server)


def stack() -> None:
    """A fresh topic (with an SQS subscriber) and dedup table; the environment points at them."""
    import boto3

    name = f"bench-{uuid.uuid4().hex[:8]}"
    topic, _ = findings_stack(boto3.client("sns"), boto3.client("sqs"), boto3.client("dynamodb"), name)
    os.environ.update(FINDINGS_TOPIC_ARN=topic, DEDUP_TABLE_NAME=name)
    import auditor.handler as handler

    if hasattr(handler, "_pipeline"):
        handler._pipeline = None  # rebuilt from the environment on the next event


def failure_events(n: int, seed: int, events: int) -> list[dict]:
    from auditor.records import FailedCall, parse_record
    from demo.envelope import to_eventbridge

    out = []
    for raw in corpus(n, seed).lines:
        record = json.loads(raw)
        if type(parse_record(record)) is FailedCall:
            out.append(to_eventbridge(record, event_id=str(uuid.UUID(int=len(out) + 1))))
            if len(out) == events:
                break
    return out


@contextlib.contextmanager
def quiet_handler():
    """Handler logs and EMF lines go to a buffer: formatted as in Lambda, not written to a terminal."""
    import auditor.handler as handler

    sink = io.StringIO()
    registered = getattr(getattr(handler, "logger", None), "registered_handler", None)
    if registered is not None and hasattr(registered, "setStream"):
        registered.setStream(sink)
    with contextlib.redirect_stdout(sink):
        yield


def measure(n: int, seed: int, events: int = 300, batch_rounds: int = 5) -> dict:
    from auditor.classify import classify
    from auditor.records import parse_record

    envelopes = failure_events(n, seed, events + 1)
    with moto_server():
        stack()
        import auditor.handler as handler

        context = LambdaContext()
        per_event = []
        with quiet_handler():
            handler.handler(envelopes[0], context)  # the first call builds clients: not a warm invocation
            for e in envelopes[1:]:
                per_event.append(timed(lambda: handler.handler(e, context)))
        total = sum(per_event)
        classify_t = timed(lambda: [classify(parse_record(e)) for e in envelopes[1:]])
        per_event.sort()
        warm = {"events": len(per_event), "per_event_ms": total / len(per_event) * 1000,
                "median_ms": median(per_event) * 1000, "p95_ms": per_event[int(len(per_event) * 0.95)] * 1000,
                "classification_share": classify_t / total}
        warm["batch"] = batch_vs_single(envelopes, batch_rounds)
    return warm


def batch_vs_single(envelopes: list[dict], rounds: int) -> dict:
    """Handler cost per event: SQS batches of 100 vs one EventBridge event per invocation, same
    events, a fresh topic and table for each side of each round; the two sides alternate which
    goes first (as in classify_vs_parse: neither always meets a warmer or busier moto); median
    of per-round ratios."""
    import auditor.handler as handler

    context = LambdaContext()
    events = envelopes[: len(envelopes) // 100 * 100 or len(envelopes)]

    def batches():
        for start in range(0, len(events), 100):
            chunk = events[start:start + 100]
            handler.handler({"Records": [{"messageId": str(uuid.UUID(int=start + i + 1)), "eventSource": "aws:sqs",
                                          "receiptHandle": "r", "body": json.dumps(e), "attributes": {},
                                          "messageAttributes": {}, "md5OfBody": "", "eventSourceARN":
                                          "arn:aws:sqs:us-east-1:123456789012:findings", "awsRegion": "us-east-1"}
                                         for i, e in enumerate(chunk)]}, context)

    single, batched, ratios = [], [], []
    with quiet_handler():
        def side(run) -> float:
            stack()
            handler.handler(envelopes[-1], context)
            return timed(run) / len(events)

        def one_by_one():
            for e in events:
                handler.handler(e, context)

        for i in range(rounds):
            if i % 2:
                b, s = side(batches), side(one_by_one)
            else:
                s, b = side(one_by_one), side(batches)
            single.append(s)
            batched.append(b)
            ratios.append(b / s)
    return {"events": len(events), "rounds": rounds, "single_ms": median(single) * 1000,
            "batch_ms": median(batched) * 1000, "ratio": median(ratios)}
