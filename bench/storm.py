"""storm_requests_per_event: AWS requests the function makes per failure event during a storm
of 10,000 failures spread over 3 root causes, in SQS batches of 100 (as the event source
mapping delivers them), then one change to a shared IAM policy breaking 1,000 roles (a new
default version of a managed policy attached to all of them, in moto's IAM: one failure per
role, after the change), counted with botocore event hooks (IAM lookups included):
deterministic, independent of the machine and of the local stand-in's speed.

The storm: a key policy replaced under two roles that read three secrets (each GetSecretValue
with the KMS Decrypt Secrets Manager made for it: two records, one failure), a role whose
policy was detached (identity-policy denials on its secrets), and a burst of throttling. Every
record has its own eventID; they arrive in event-time order. The function runs as deployed:
the real handler, its incident state table, its enricher (own account = the records' account,
so lookups are made where they can change a verdict), SNS. moto runs in its own process.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import uuid

from demo import scenarios as s

from .common import LambdaContext, start_moto
from .warm_invocation import moto_server, quiet_handler

#: The storm's records, in order: (share, builder of the i-th record(s)).
TOTAL = 10_000
BATCH = 100
#: Roles the shared policy's new version breaks.
SHARED_ROLES = 1_000


def storm_records(total: int = TOTAL) -> list[dict]:
    """``total`` failure records over three root causes, deterministic."""
    out: list[dict] = []
    roles, secrets = ("orders-api", "billing-worker"), ("prod/orders/db", "prod/billing/api-key", "prod/shared/smtp")
    i = 0
    while len(out) < total:
        t = i * 0.05  # 20 failures a second
        kind = i % 3
        if kind == 0:  # key policy: a Secrets Manager call and its KMS call, one failure, two records
            role, secret = roles[i % 2], secrets[i % 3]
            out.append(s.get_secret_value_kms_denied(t, role, secret, seed=f"storm-sm-{i}"))
            out.append(s.decrypt_for_secret_denied(t + 0.02, role, secret, seed=f"storm-kms-{i}"))
        elif kind == 1:
            out.append(s.identity_denied(t, "checkout", f"prod/checkout/{i % 4}", seed=f"storm-id-{i}"))
        else:
            rec = s.record("kms", "GenerateDataKey", t, s.role_identity("ingest"), {"keyId": s.KEY_ARN},
                           error="ThrottlingException", message="Rate exceeded", resources=s.key_resource(),
                           seed=f"storm-throttle-{i}", read_only=True)
            out.append(rec)
        i += 1
    return out[:total]


def shared_policy(boto3, roles: int = SHARED_ROLES) -> tuple[str, list[dict]]:
    """``roles`` roles in moto's IAM with one managed policy attached; the policy's new default
    version and then one failure per role (an identity-policy denial), in event-time order."""
    iam = boto3.client("iam")
    document = json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": "*"}]})
    arn = iam.create_policy(PolicyName=f"shared-{uuid.uuid4().hex[:6]}", PolicyDocument=document)["Policy"]["Arn"]
    trust = json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"Service": "ecs-tasks.amazonaws.com"}, "Action": "sts:AssumeRole"}]})
    names = [f"svc-{i:04d}" for i in range(roles)]
    for name in names:
        iam.create_role(RoleName=name, AssumeRolePolicyDocument=trust)
        iam.attach_role_policy(RoleName=name, PolicyArn=arn)
    start = s.since_t0()
    records = [s.create_policy_version(start, arn)]
    records += [s.identity_denied(start + 5 + i * 0.05, name, "prod/shared/db", seed=f"shared-{name}")
                for i, name in enumerate(names)]
    return arn, records


def count_requests() -> dict:
    """Register a before-send hook on every botocore client created from now on: URL -> count."""
    import botocore.session

    sent: dict = {"total": 0, "by_operation": {}}
    original = botocore.session.Session.create_client

    def create_client(self, *args, **kwargs):
        client = original(self, *args, **kwargs)

        def before_send(request, **_):
            sent["total"] += 1

        def after_call(model, **_):
            key = f"{client.meta.service_model.service_name}:{model.name}"
            sent["by_operation"][key] = sent["by_operation"].get(key, 0) + 1

        if sent.get("on", True):
            client.meta.events.register("before-send.*.*", before_send)
            client.meta.events.register("after-call.*.*", after_call)
        return client

    botocore.session.Session.create_client = create_client
    def restore():
        sent["on"] = False
        botocore.session.Session.create_client = original

    sent["restore"] = restore
    return sent


def measure(total: int = TOTAL, shared_roles: int = SHARED_ROLES) -> dict:
    from demo.stand_in import findings_stack

    records = storm_records(total)
    with moto_server():
        import boto3

        arn, shared = shared_policy(boto3, shared_roles) if shared_roles else ("", [])
        records += shared
        name = f"storm-{uuid.uuid4().hex[:8]}"
        topic, _ = findings_stack(boto3.client("sns"), boto3.client("sqs"), boto3.client("dynamodb"), name)
        os.environ.update(FINDINGS_TOPIC_ARN=topic, DEDUP_TABLE_NAME=name)
        import auditor.handler as handler

        handler._pipeline = None
        sent = count_requests()
        try:
            context = LambdaContext()
            context.invoked_function_arn = f"arn:aws:lambda:eu-west-1:{s.ACCOUNT}:function:auditor"
            notified = 0
            with quiet_handler():
                for start in range(0, len(records), BATCH):
                    chunk = records[start:start + BATCH]
                    batch = {"Records": [{"messageId": str(uuid.UUID(int=start + n + 1)), "eventSource": "aws:sqs",
                                          "body": json.dumps(s_to_eb(r))} for n, r in enumerate(chunk)]}
                    result = handler.handler(batch, context)
                    assert result == {"batchItemFailures": []}, result
        finally:
            sent["restore"]()
            handler._pipeline = None
        requests, by_operation = sent["total"], dict(sent["by_operation"])  # the function's only, not the drain below
        messages = _drain_notifications(boto3, name)
        notified = len(messages)
        about_shared = [m for m in messages if arn and arn in json.loads(m["Body"]).get("Message", "")]
    return {"events": len(records), "requests": requests, "ratio": requests / len(records),
            "by_operation": dict(sorted(by_operation.items(), key=lambda kv: -kv[1])), "alerts": notified,
            "shared_roles": shared_roles, "shared_messages": len(about_shared)}


def s_to_eb(record: dict) -> dict:
    from demo.envelope import to_eventbridge

    return to_eventbridge(record)


def _drain_notifications(boto3, queue_name: str) -> list:
    sqs = boto3.client("sqs")
    url = sqs.get_queue_url(QueueName=queue_name)["QueueUrl"]
    out = []
    while True:
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        if not got:
            return out
        out += got
        for m in got:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
