"""sweep_10k_requests: the AWS requests of one scheduled run over 10,000 open incidents, all quiet
(each resolved and announced once), counted with botocore's event hooks: deterministic,
independent of the machine and of the local stand-in's speed.

The incidents are made as the function makes them (a failure each, decided by the lifecycle,
written by the storage layer, its "opened" announced and confirmed), on moto in this process
(with its table backed up once per transaction, demo.stand_in). Then the clock moves past the
quiet period and the real pipeline's scheduled run resolves them: the index queried shard by
shard, the items read 100 a request, resolutions claimed 100 a transaction, sent (SNS
PublishBatch, 10 a request), confirmed 100 a transaction. Also printed: how many were sent,
and that a second run finds nothing left.
"""

from __future__ import annotations

import time
import uuid

from demo import scenarios as s

TOTAL = 10_000


class _Metrics:
    def __init__(self):
        self.counts: dict = {}
        self.gauges: dict = {}

    def count(self, name, value=1):
        self.counts[name] = self.counts.get(name, 0) + value

    def findings(self, service, cause, value):
        pass

    def gauge(self, name, value):
        self.gauges[name] = value

    def seconds(self, name, value):
        pass


class _Log:
    def _log(self, *args, **kwargs):
        pass

    info = warning = error = exception = _log


def _incidents(state, total: int, now: float) -> None:
    """``total`` open incidents, each opened by one failure of its own role and announced on SNS:
    the items the function's own writes would leave (storage.Writes: its open, a Put of the whole
    item, and its acknowledgement applied to it), put directly (the stand-in parses every update expression: ten thousand
    transactions of them would only time moto)."""
    from auditor import lifecycle
    from auditor.classify import classify, root_of
    from auditor.incidents import Failure
    from auditor.lifecycle import Notice
    from auditor.records import parse_record
    from auditor.roots import affected
    from auditor.storage import Claim, new_token

    client = state.table.client
    token = new_token()
    for i in range(total):
        call = parse_record(s.identity_denied(0, f"role-{i}", "prod/x", seed=f"sweep-{i}"))
        finding = classify(call)
        when, note = lifecycle.effective_time(call.event_time, now, state.settings)
        failure = Failure(finding, root_of(finding.cause, call), (), (call.event_id,), call.principal.identity_arn,
                          affected(call), when, note)
        decision = lifecycle.decide(None, [failure], now, state.settings)
        notice = Notice("opened", decision.after, finding, "", ("sns",))
        opened = state.writes.decision(decision, None, now, Claim(token, now + 90), None)
        item = dict(opened["Put"]["Item"])  # a new incident is a Put of the whole item
        update = state.writes.acknowledge(decision.after.id, token, {"sns": notice.mark(now)},
                                          lifecycle.quiet_at(decision.after, state.settings))["Update"]
        names, values = update["ExpressionAttributeNames"], update["ExpressionAttributeValues"]
        clauses = update["UpdateExpression"].split(" REMOVE ")
        for assignment in clauses[0].removeprefix("SET ").split(", "):
            name, value = assignment.split(" = ")
            item[names.get(name, name)] = values[value]
        for name in (clauses[1].split(", ") if len(clauses) > 1 else ()):
            item.pop(names[name.strip()], None)
        client.put_item(TableName=state.table.name, Item=item)


def measure(total: int = TOTAL) -> dict:
    from moto import mock_aws

    from demo.stand_in import create_state_table, environment, one_backup_per_transaction, one_table_request_at_a_time

    from .storm import count_requests

    one_backup_per_transaction()
    one_table_request_at_a_time()  # the run writes four transactions at once: atomic, as on AWS
    with environment(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1",
                     AWS_ENDPOINT_URL=None), mock_aws():
        import boto3

        import auditor.aws

        auditor.aws._SESSION = None  # a session made before moto's mock (another figure's) would reach AWS

        from auditor.pipeline import Pipeline, State
        from auditor.publish import Publisher

        name = f"sweep-{uuid.uuid4().hex[:8]}"
        create_state_table(boto3.client("dynamodb"), name)
        topic = boto3.client("sns").create_topic(Name=name)["TopicArn"]  # no subscriber: the run's requests only
        now = s.T0.timestamp() + 60
        state = State.create(name, quiet_seconds=1800, update_seconds=900, timeout_seconds=900)
        started = time.perf_counter()
        _incidents(state, total, now)
        made = time.perf_counter() - started
        clock = [now + 1801]
        metrics = _Metrics()
        sent = count_requests()  # every client made from here on: the run's own
        state = State.create(name, quiet_seconds=1800, update_seconds=900, timeout_seconds=900)
        # The in-process stand-in copies the whole table for each transaction (seconds on 10,000
        # items, four at a time under one GIL), where DynamoDB answers in milliseconds: the
        # function's 10 s cap on a call would cut this run short and count requests of a run
        # that never happens on AWS. The stand-in's speed only; the requests are the same.
        state.table.call_timeout = 300.0
        pipe = Pipeline(publisher=Publisher(topic), state=state, metrics=metrics, logger=_Log(), clock=lambda: clock[0])
        try:
            started = time.perf_counter()
            report = pipe.scheduled(remaining=lambda: 900.0)
            took = time.perf_counter() - started
            requests, by_operation = sent["total"], dict(sent["by_operation"])
        finally:
            sent["restore"]()
        resolved = sum(1 for status, _ in report.notified if status == "resolved")
        clock[0] += 120
        again = pipe.scheduled(remaining=lambda: 900.0)
    return {"incidents": total, "requests": requests, "per_incident": requests / total, "resolved": resolved,
            "left_after": len(again.notified), "open_after": metrics.gauges.get("OpenIncidents"),
            "by_operation": dict(sorted(by_operation.items(), key=lambda kv: -kv[1])), "setup_s": made, "run_s": took}
