"""cold_start_vs_boto3_publish: what a cold start costs the user, against the least any
function that publishes to SNS pays.

* auditor: a fresh interpreter imports ``auditor.handler`` and handles its first event (an SQS
  batch of one failure that opens an incident: the state read and claim, the change lookup,
  the SNS publish), against the moto server;
* baseline: a fresh interpreter imports boto3 and publishes one SNS message to the same server.

Each side is a fresh process, timed from outside: from the spawn (interpreter start included)
to the moment the side reports its work done, through a pipe, right after the handler returns
or the publish is answered. That is what a user pays: Lambda returns the first event's response
there, and never tears the interpreter down on the request path, so neither side's interpreter
teardown (module clean-up and final garbage collections, ~40-130 ms) is counted. Rounds
alternate which side goes first; the figure is the median of the per-round ratios. Every
round's event names a new role, so each first event opens a new incident (the dearer path).
moto runs in its own process (bench/common.start_moto).

As deployed: the function's asset is built by infra/bytecode.py, the package's ``.py`` files
and their bytecode compiled by an interpreter of the runtime's version (here the interpreter
running the bench stands in for the runtime's). Without such an interpreter at synthesis, the
asset holds the sources only and every cold start compiles them (Lambda's /var/task is
read-only): ``measure(..., bytecode=False)`` measures that case, printed for information. The
function runs with PYTHONDONTWRITEBYTECODE=1 (nothing can be written back, as on Lambda); boto3
and Powertools come with their bytecode, as in the runtime and the layer.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import time
import uuid

from .common import HANDLER_ENV, PY, median, start_moto, stop

_AUDITOR = r"""
import json, sys
from auditor.handler import handler
class Context:
    function_name, memory_limit_in_mb, aws_request_id = "auditor", 256, "cold"
    invoked_function_arn = "arn:aws:lambda:us-east-1:111122223333:function:auditor"
    def get_remaining_time_in_millis(self): return 30000
result = handler(json.loads(sys.argv[1]), Context())
assert result == {"batchItemFailures": []}, result
import os; os.write(int(sys.argv[2]), b"1")
"""

_BASELINE = r"""
import sys
import boto3
boto3.client("sns").publish(TopicArn=sys.argv[1], Message="x")
import os; os.write(int(sys.argv[2]), b"1")
"""


def _event(role: str) -> dict:
    from demo import scenarios as s
    from demo.envelope import to_eventbridge

    record = s.identity_denied(0, role, "prod/orders/db", seed=role)
    return {"Records": [{"messageId": str(uuid.uuid4()), "eventSource": "aws:sqs", "body": json.dumps(to_eventbridge(record))}]}


def asset_copy(bytecode: bool = True) -> str:
    """The function's code as the stack ships it (infra/bytecode.py), in a new folder."""
    import sys
    import tempfile
    from pathlib import Path

    from infra import bytecode as asset

    target = Path(tempfile.mkdtemp(prefix="auditor-asset-"))
    asset.build(Path(__file__).resolve().parent.parent / "functions", target, sys.executable if bytecode else None)
    return str(target)


@contextlib.contextmanager
def function_environment(bytecode: bool = True):
    """moto in its own process with the findings topic and state table; yields the environment
    a fresh interpreter runs the function with (the asset copy) and the topic ARN."""
    import boto3

    from demo.stand_in import findings_stack

    server, endpoint = start_moto()
    try:
        aws = dict(AWS_ENDPOINT_URL=endpoint, AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing")
        clients = [boto3.client(name, region_name="us-east-1", endpoint_url=endpoint, aws_access_key_id="testing",
                                aws_secret_access_key="testing") for name in ("sns", "sqs", "dynamodb")]
        name = f"cold-{uuid.uuid4().hex[:8]}"
        topic, _ = findings_stack(*clients, name)
        env = {**os.environ, **HANDLER_ENV, **aws, "PYTHONDONTWRITEBYTECODE": "1", "PYTHONPATH": asset_copy(bytecode),
               "FINDINGS_TOPIC_ARN": topic, "DEDUP_TABLE_NAME": name}
        env.pop("AWS_PROFILE", None)
        env.pop("AWS_SESSION_TOKEN", None)
        yield env, topic
    finally:
        stop(server)


def until_done(code: str, argument: str, env: dict) -> float:
    """Seconds from spawning ``python -c code argument fd`` to the byte it writes to ``fd`` when
    its work is done; the process is then waited for (untimed) and must exit 0."""
    read, write = os.pipe()
    try:
        started = time.perf_counter()
        process = subprocess.Popen([PY, "-c", code, argument, str(write)], env=env, pass_fds=(write,),
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(write)
        write = -1
        done = os.read(read, 1)
        elapsed = time.perf_counter() - started
    finally:
        os.close(read)
        if write >= 0:
            os.close(write)
    if process.wait() != 0 or done != b"1":
        raise RuntimeError(f"cold start side failed (exit {process.returncode})")
    return elapsed


def measure(rounds: int, bytecode: bool = True) -> dict:
    with function_environment(bytecode) as (env, topic):
        def auditor() -> float:
            return until_done(_AUDITOR, json.dumps(_event(f"cold-{uuid.uuid4().hex[:10]}")), env)

        def baseline() -> float:
            return until_done(_BASELINE, topic, env)

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
t = T(); import auditor.handler as h; marks["import auditor (its bytecode)"] = T() - t
from auditor import aws, storage, publish, enrich
create = aws.client
def client(service, *a, **k):
    t = T(); c = create(service, *a, **k); marks[f"client {service}"] = T() - t
    c.meta.events.register("before-send.*.*", lambda request, **_: marks.__setitem__("_sent", T()))
    c.meta.events.register("after-call.*.*", lambda model, **_: marks.__setitem__(
        f"request {service}:{model.name}", marks.get(f"request {service}:{model.name}", 0) + T() - marks["_sent"]))
    return c
for module in (storage, publish, enrich):
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
