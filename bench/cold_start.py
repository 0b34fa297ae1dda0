"""cold_start_vs_boto3_publish: what a cold start costs the user, against the least any
function that publishes to SNS pays.

* auditor: a fresh interpreter imports ``auditor.handler`` and handles its first event (an SQS
  batch of one failure that opens an incident: the state read and claim, the change lookup,
  the SNS publish), against the moto server;
* baseline: a fresh interpreter imports boto3 and publishes one SNS message to the same server.

Each side is a whole process (interpreter start included), timed from outside; rounds
alternate which side goes first; the figure is the median of the per-round ratios. Every
round's event names a new role, so each first event opens a new incident (the dearer path).
moto runs in its own process (bench/common.start_moto).
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid

from .common import HANDLER_ENV, PY, median, start_moto, timed

_AUDITOR = r"""
import json, sys
from auditor.handler import handler
class Context:
    function_name, memory_limit_in_mb, aws_request_id = "auditor", 256, "cold"
    invoked_function_arn = "arn:aws:lambda:us-east-1:111122223333:function:auditor"
    def get_remaining_time_in_millis(self): return 30000
result = handler(json.loads(sys.argv[1]), Context())
assert result == {"batchItemFailures": []}, result
"""

_BASELINE = r"""
import sys
import boto3
boto3.client("sns").publish(TopicArn=sys.argv[1], Message="x")
"""


def _event(role: str) -> dict:
    from demo import scenarios as s
    from auditor.records import to_eventbridge

    record = s.identity_denied(0, role, "prod/orders/db", seed=role)
    return {"Records": [{"messageId": str(uuid.uuid4()), "eventSource": "aws:sqs", "body": json.dumps(to_eventbridge(record))}]}


def measure(rounds: int) -> dict:
    import boto3

    server, endpoint = start_moto()
    try:
        env = dict(os.environ, **HANDLER_ENV, AWS_ENDPOINT_URL=endpoint, AWS_ACCESS_KEY_ID="testing",
                   AWS_SECRET_ACCESS_KEY="testing")
        env.pop("AWS_PROFILE", None)
        env.pop("AWS_SESSION_TOKEN", None)
        saved = {k: os.environ.get(k) for k in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
        os.environ.update(AWS_ENDPOINT_URL=endpoint, AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing")
        try:
            from demo.stand_in import findings_stack

            name = f"cold-{uuid.uuid4().hex[:8]}"
            topic, _ = findings_stack(boto3.client("sns", region_name="us-east-1"), boto3.client("sqs", region_name="us-east-1"),
                                      boto3.client("dynamodb", region_name="us-east-1"), name)
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        env.update(FINDINGS_TOPIC_ARN=topic, DEDUP_TABLE_NAME=name)

        def auditor() -> float:
            event = json.dumps(_event(f"cold-{uuid.uuid4().hex[:10]}"))
            return timed(lambda: subprocess.run([PY, "-c", _AUDITOR, event], env=env, check=True,
                                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))

        def baseline() -> float:
            return timed(lambda: subprocess.run([PY, "-c", _BASELINE, topic], env=env, check=True,
                                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))

        auditor(), baseline(), auditor()  # page the files in, write .pyc
        ours, base, ratios = [], [], []
        for i in range(rounds):
            if i % 2:
                b, a = baseline(), auditor()
            else:
                a, b = auditor(), baseline()
            ours.append(a)
            base.append(b)
            ratios.append(a / b)
        return {"rounds": rounds, "auditor_s": median(ours), "baseline_s": median(base), "ratio": median(ratios)}
    finally:
        server.terminate()
        server.wait(timeout=10)
