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

As deployed: the function's asset holds the package's ``.py`` files and no bytecode, and
Lambda's /var/task is read-only, so every cold start compiles the package. The auditor side
runs from such a copy with PYTHONDONTWRITEBYTECODE=1; boto3 and Powertools come with their
bytecode, as in the runtime and the layer.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import uuid

from .common import HANDLER_ENV, PY, median, start_moto, stop, timed

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


def asset_copy() -> str:
    """The function's code as CDK ships it: the auditor package's .py files, nothing else."""
    import shutil
    import tempfile
    from pathlib import Path

    source = Path(__file__).resolve().parent.parent / "functions" / "auditor"
    target = Path(tempfile.mkdtemp(prefix="auditor-asset-"))
    for path in source.rglob("*.py"):
        dest = target / "auditor" / path.relative_to(source)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, dest)
    return str(target)


@contextlib.contextmanager
def function_environment():
    """moto in its own process with the findings topic and state table; yields the environment
    a fresh interpreter runs the function with (the asset copy, no bytecode) and the topic ARN."""
    import boto3

    from demo.stand_in import findings_stack

    server, endpoint = start_moto()
    try:
        aws = dict(AWS_ENDPOINT_URL=endpoint, AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing")
        clients = [boto3.client(name, region_name="us-east-1", endpoint_url=endpoint, aws_access_key_id="testing",
                                aws_secret_access_key="testing") for name in ("sns", "sqs", "dynamodb")]
        name = f"cold-{uuid.uuid4().hex[:8]}"
        topic, _ = findings_stack(*clients, name)
        env = {**os.environ, **HANDLER_ENV, **aws, "PYTHONDONTWRITEBYTECODE": "1", "PYTHONPATH": asset_copy(),
               "FINDINGS_TOPIC_ARN": topic, "DEDUP_TABLE_NAME": name}
        env.pop("AWS_PROFILE", None)
        env.pop("AWS_SESSION_TOKEN", None)
        yield env, topic
    finally:
        stop(server)


def measure(rounds: int) -> dict:
    with function_environment() as (env, topic):
        def auditor() -> float:
            event = json.dumps(_event(f"cold-{uuid.uuid4().hex[:10]}"))
            return timed(lambda: subprocess.run([PY, "-c", _AUDITOR, event], env=env, check=True,
                                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))

        def baseline() -> float:
            return timed(lambda: subprocess.run([PY, "-c", _BASELINE, topic], env=env, check=True,
                                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))

        auditor(), baseline(), auditor()  # page the files in
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


_STAGES = r"""
import json, sys, time
T = time.perf_counter
marks = {}
t = T(); import botocore.session; marks["import botocore (the handler's AWS SDK)"] = T() - t
t = T(); import aws_lambda_powertools.logging, aws_lambda_powertools.metrics; marks["import Powertools"] = T() - t
t = T(); import auditor.handler as h; marks["import auditor (compiled from source)"] = T() - t
from auditor import aws, state, publish, enrich
create = aws.client
def client(service, *a, **k):
    t = T(); c = create(service, *a, **k); marks[f"client {service}"] = T() - t
    c.meta.events.register("before-send.*.*", lambda request, **_: marks.__setitem__("_sent", T()))
    c.meta.events.register("after-call.*.*", lambda model, **_: marks.__setitem__(
        f"request {service}:{model.name}", marks.get(f"request {service}:{model.name}", 0) + T() - marks["_sent"]))
    return c
for module in (state, publish, enrich):
    module.aws_client = client
class Context:
    function_name, memory_limit_in_mb, aws_request_id = "auditor", 256, "cold"
    invoked_function_arn = "arn:aws:lambda:us-east-1:111122223333:function:auditor"
t = T(); h.handler(json.loads(sys.argv[1]), Context()); marks["first event (all of it)"] = T() - t
marks.pop("_sent", None)
sys.stderr.write(json.dumps({k: v * 1000 for k, v in marks.items()}))
"""


def stages() -> dict:
    """Where one cold start's time goes, stage by stage (milliseconds), for the report."""
    with function_environment() as (env, _):
        done = subprocess.run([PY, "-c", _STAGES, json.dumps(_event(f"cold-{uuid.uuid4().hex[:10]}"))], env=env,
                              capture_output=True, text=True)
        return json.loads(done.stderr.strip().splitlines()[-1])
