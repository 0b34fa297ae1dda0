"""The contract between the stack and the function, checked end to end.

Synthesizes the stack, runs the real handler (a fresh interpreter, as Lambda does, with the
environment the template gives the function) on the moto server over every fixture record in
SQS batches, then lets the quiet period pass and sends the Scheduled Event; collects every
embedded-metric-format metric (namespace, name, dimension set) and every log line it printed;
then walks the template: every custom metric an alarm or a dashboard widget reads (SEARCH
expressions included) must be one the function emitted, with exactly those dimensions, and
every field a Logs Insights query reads, and every value it compares a field with, must occur
in the emitted log lines. It fails when a counter, a dimension, a log field or a message is
renamed on one side only.

Deviations from the deployed settings, so that one run shows everything: the quiet period is
1 s (not 30 min) and the update window 0 s (not 15 min); one phase runs against a topic that
does not exist (a publish failure: ``PublishFailures``, outcome ``retried``) and one against a
table that does not exist (``StateUnavailable``). Two counters need faults a run cannot cause
from outside (a classifier bug, two invocations racing on one incident); for those the test
checks the function's source emits exactly the contract's name (``NOT_PROVOKED``).
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
import os
import re
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from auditor.contract import NAMESPACE, Dimension, Env, Log, Metric

from .conftest import REPO, resources
from .dashboard import log_queries, query_comparisons, query_fields, watched_metrics

pytestmark = [pytest.mark.infra, pytest.mark.integration]

#: Counters the dashboard graphs whose cause cannot be produced from outside the function in a
#: test run -> the source file that emits them (checked below: it emits the contract's name).
NOT_PROVOKED = {Metric.CLASSIFIER_ERRORS: "pipeline.py", Metric.STATE_RETRIES: "pipeline.py",
                Metric.STATE_TIMEOUTS: "pipeline.py", Metric.SWEEP_DEFERRED: "pipeline.py"}
AUDITOR = REPO / "functions" / "auditor"

RUN = r"""
import json, sys, time
from auditor.handler import handler

class Context:
    function_name = "auditor"; memory_limit_in_mb = 256; aws_request_id = "contract"
    invoked_function_arn = "arn:aws:lambda:us-east-1:111122223333:function:auditor"

for step in json.load(open(sys.argv[1])):
    if step["kind"] == "sleep":
        time.sleep(step["seconds"])
    else:
        handler(step["event"], Context())
"""


@dataclass
class Emitted:
    metrics: dict[tuple[str, str, frozenset], dict] = field(default_factory=dict)  # (ns, name, dim keys) -> dim values seen
    lines: list[dict] = field(default_factory=list)  # every JSON log line that is not EMF
    stdout: str = ""
    events: list[dict] = field(default_factory=list)  # what the function put on the incidents bus (docs/events.md)

    def names(self) -> set[str]:
        return {name for _, name, _ in self.metrics}


def sqs_batch(records: list, prefix: str) -> dict:
    from demo.envelope import to_eventbridge

    return {"Records": [{"messageId": f"{prefix}-{i}", "receiptHandle": "r", "eventSource": "aws:sqs", "attributes": {},
                         "messageAttributes": {}, "body": r if isinstance(r, str) else json.dumps(to_eventbridge(r))}
                        for i, r in enumerate(records)]}


SCHEDULED = {"version": "0", "id": "c0ffee00-0000-4000-8000-00000000c0de", "detail-type": "Scheduled Event",
             "source": "aws.events", "account": "111122223333", "time": "2026-11-30T10:00:00Z", "region": "us-east-1",
             "resources": ["arn:aws:events:us-east-1:111122223333:rule/auditor-schedule"], "detail": {}}


def function_environment(template: dict) -> dict[str, object]:
    (fn,) = [f["Properties"] for f in resources(template, "AWS::Lambda::Function").values()
             if f["Properties"].get("Handler") == "auditor.handler.handler"]
    return fn["Environment"]["Variables"]


def make_resources(aws, template: dict, name: str) -> tuple[str, str]:
    """The topic (with an SQS subscriber) and the table, the table as the template defines it."""
    (table,) = [t["Properties"] for t in resources(template, "AWS::DynamoDB::Table").values()]
    ddb, sns, sqs = aws("dynamodb"), aws("sns"), aws("sqs")
    ddb.create_table(TableName=name, KeySchema=table["KeySchema"], AttributeDefinitions=table["AttributeDefinitions"],
                     BillingMode=table["BillingMode"],
                     GlobalSecondaryIndexes=[{k: g[k] for k in ("IndexName", "KeySchema", "Projection")}
                                             for g in table.get("GlobalSecondaryIndexes", [])])
    ddb.update_time_to_live(TableName=name, TimeToLiveSpecification=table["TimeToLiveSpecification"])
    topic = sns.create_topic(Name=name)["TopicArn"]
    queue = sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn)
    return topic, name


def make_incident_bus(aws, name: str) -> tuple[str, str]:
    """The incidents bus (named as the function's environment names it) and a queue that a rule
    fills with every incident event put on it, as a rule of a user's own would."""
    from auditor.contract import IncidentEvent
    from demo.stand_in import queue_arn

    events, sqs = aws("events"), aws("sqs")
    bus = f"{name}{IncidentEvent.BUS_SUFFIX}"
    events.create_event_bus(Name=bus)
    queue = sqs.create_queue(QueueName=f"{name}-incident-events")["QueueUrl"]
    events.put_rule(Name="everything", EventBusName=bus, EventPattern=json.dumps({"source": [IncidentEvent.SOURCE]}), State="ENABLED")
    events.put_targets(Rule="everything", EventBusName=bus, Targets=[{"Id": "q", "Arn": queue_arn(sqs, queue)}])
    return bus, queue


def drain(aws, queue: str) -> list[dict]:
    sqs, out = aws("sqs"), []
    while batch := sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", []):
        for m in batch:
            out.append(json.loads(m["Body"]))
            sqs.delete_message(QueueUrl=queue, ReceiptHandle=m["ReceiptHandle"])
    return out


def run_handler(steps: list[dict], env: dict[str, str], tmp: Path) -> str:
    plan = tmp / f"steps-{uuid.uuid4().hex[:6]}.json"
    plan.write_text(json.dumps(steps))
    result = subprocess.run([sys.executable, "-c", RUN, str(plan)], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def scenario_records() -> list[list[dict]]:
    """Batches that open, join, park, update and attribute incidents (the SM + KMS halves of one
    failure split across batches, either half first), on top of every fixture."""
    from demo import scenarios as s

    change = s.put_key_policy(-900)
    callers = ((0, "orders-api"), (60, "billing-worker"), (120, "reports-job"))
    sm = [s.get_secret_value_kms_denied(t, role, "prod/orders/db") for t, role in callers]
    kms = [s.decrypt_for_secret_denied(t + 0.4, role, "prod/orders/db") for t, role in callers]
    other_key = s.KEY_ARN.replace("1234abcd", "0987dcba")
    later = [s.disable_key(-300, other_key)] + [s.decrypt_disabled(t, "ingest", "s3.amazonaws.com", other_key) for t in (10, 70)]
    # sm[0] and sm[1] wait for their KMS record; kms[2] is counted before sm[2], which joins it
    return [[change, sm[0]], [kms[0], sm[1]], [kms[1], kms[2]], [sm[2]], later]


@pytest.fixture(scope="module")
def emitted(template, aws, moto_server, tmp_path_factory) -> Emitted:
    from ..unit.conftest import fixture_records

    tmp = tmp_path_factory.mktemp("contract")
    name = f"contract-{uuid.uuid4().hex[:8]}"
    topic, table = make_resources(aws, template, name)
    declared = function_environment(template)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "POWERTOOLS_", "FINDINGS_", "DEDUP_", "INCIDENT_"))}
    env.update({k: v for k, v in declared.items() if isinstance(v, str)})  # the template's literal settings, as deployed
    assert {k for k, v in declared.items() if not isinstance(v, str)} == {Env.TOPIC_ARN, Env.TABLE_NAME}
    assert declared[Env.INCIDENT_BUS_NAME].endswith("-incidents")  # a literal: the stack names the bus
    bus, incident_queue = make_incident_bus(aws, name)
    env.update({Env.INCIDENT_BUS_NAME: bus})
    env.update({Env.TOPIC_ARN: topic, Env.TABLE_NAME: table, Env.QUIET_SECONDS: "1", Env.UPDATE_SECONDS: "0",
                "AWS_ENDPOINT_URL": moto_server, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_REGION": "us-east-1", "AWS_LAMBDA_FUNCTION_NAME": "auditor"})
    from demo.envelope import fresh

    records = [fresh([r])[0] for _, _, r, _ in fixture_records()]  # as if they had just happened: no old news
    steps = []
    for start in range(0, len(records), 10):  # small batches: one root cause spans several (updates)
        steps.append({"kind": "invoke", "event": sqs_batch(records[start:start + 10], f"f{start}")})
    for i, batch in enumerate(scenario_records()):
        steps.append({"kind": "invoke", "event": sqs_batch(batch, f"s{i}")})
    steps.append({"kind": "invoke", "event": sqs_batch(scenario_records()[1] + ["{\"detail\": 42", "not json"], "again")})
    steps.append({"kind": "sleep", "seconds": 1.2})
    steps.append({"kind": "invoke", "event": SCHEDULED})
    out = run_handler(steps, env, tmp)
    # A topic that does not exist: every publish fails (PublishFailures; the records are "retried").
    missing_topic = topic.rsplit(":", 1)[0] + f":missing-{uuid.uuid4().hex[:6]}"
    # (records newer than the scheduled run's resolutions, or they would be old news for the resolved incidents)
    soon = datetime.now(timezone.utc) + timedelta(seconds=30)
    out += run_handler([{"kind": "invoke", "event": sqs_batch(fresh(records[:5], soon, 0), "p")}],
                       {**env, Env.TOPIC_ARN: missing_topic}, tmp)
    # Secrets Manager and KMS endpoints that do not answer: lookups fail (EnrichmentFailures), confidence is lowered.
    # Other failures at the times of the first ones (new event ids): older than the resolutions, so old news
    # (LateFailures); the same events again would be records delivered again (RedeliveredEvents, the "again" step).
    from demo.stand_in import free_port

    closed = f"http://127.0.0.1:{free_port()}"
    others = [dict(r, eventID=f"{r.get('eventID') or i}-other") for i, r in enumerate(records)]
    out += run_handler([{"kind": "invoke", "event": sqs_batch(others, "e")}],
                       {**env, "AWS_ENDPOINT_URL_KMS": closed, "AWS_ENDPOINT_URL_SECRETS_MANAGER": closed}, tmp)
    # A table that does not exist: the function notifies anyway (StateUnavailable).
    out += run_handler([{"kind": "invoke", "event": sqs_batch(records[:5], "t")}, {"kind": "invoke", "event": SCHEDULED}],
                       {**env, Env.TABLE_NAME: f"missing-{uuid.uuid4().hex[:6]}"}, tmp)
    # ... and no topic either: nothing keeps the alert, so its records go back to SQS ("retried").
    out += run_handler([{"kind": "invoke", "event": sqs_batch(records[:2], "r")}],
                       {**env, Env.TABLE_NAME: f"missing-{uuid.uuid4().hex[:6]}", Env.TOPIC_ARN: missing_topic}, tmp)
    found = parse(out)
    found.events = drain(aws, incident_queue)
    return found


def parse(stdout: str) -> Emitted:
    found = Emitted(stdout=stdout)
    for line in stdout.splitlines():
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        if not isinstance(doc, dict):
            continue
        if "_aws" in doc:
            for directive in doc["_aws"]["CloudWatchMetrics"]:
                for dimension_set in directive["Dimensions"]:
                    for metric in directive["Metrics"]:
                        key = (directive["Namespace"], metric["Name"], frozenset(dimension_set))
                        values = found.metrics.setdefault(key, defaultdict(set))
                        for dim in dimension_set:
                            values[dim].add(doc.get(dim))
        else:
            found.lines.append(doc)
    return found


def paths(doc, prefix: str = "") -> set[str]:
    """Every dotted path in a JSON object, as Logs Insights discovers fields (lists by index)."""
    out = set()
    if isinstance(doc, dict):
        for key, value in doc.items():
            path = f"{prefix}{key}"
            out.add(path)
            out |= paths(value, path + ".")
    elif isinstance(doc, list):
        for i, value in enumerate(doc):
            path = f"{prefix}{i}"
            out.add(path)
            out |= paths(value, path + ".")
    return out


# ---- the run itself ------------------------------------------------------------------------
def test_the_run_exercised_the_incident_lifecycle(emitted):
    names = emitted.names()
    for name in (Metric.INCIDENTS_OPENED, Metric.INCIDENTS_UPDATED, Metric.INCIDENTS_RESOLVED, Metric.OPEN_INCIDENTS,
                 Metric.TIME_TO_RESOLVE, Metric.JOINED_RECORDS, Metric.PARKED_RECORDS, Metric.CHANGES_RECORDED,
                 Metric.PUBLISH_FAILURES, Metric.STATE_UNAVAILABLE, Metric.MALFORMED_EVENTS, Metric.FINDINGS,
                 Metric.ENRICHMENT_FAILURES, Metric.REDELIVERED_EVENTS, Metric.IGNORED_EVENTS, Metric.NOTIFICATIONS):
        assert name in names, (name, sorted(names))
    outcomes = {line.get(Log.FIELD_OUTCOME) for line in emitted.lines if line.get(Log.FIELD_MESSAGE) == Log.FINDING}
    assert set(Log.NOT_COUNTED) <= outcomes, outcomes
    statuses = {line.get(Log.FIELD_STATUS) for line in emitted.lines if line.get(Log.FIELD_MESSAGE) == Log.INCIDENT}
    assert statuses == {"opened", "updated", "resolved"}


# ---- the template against what was emitted ---------------------------------------------------
def test_every_custom_metric_the_template_reads_was_emitted_with_those_dimensions(template, emitted):
    watched = watched_metrics(template, namespace_prefix=NAMESPACE)
    assert len(watched) >= 20, watched  # alarms and widgets were found and parsed
    problems = []
    for w in watched:
        if w.name in NOT_PROVOKED:
            continue
        keys = frozenset(k for k, _ in w.dimensions)
        values = emitted.metrics.get((w.namespace, w.name, keys))
        if values is None:
            seen = sorted((ns, n, sorted(d)) for ns, n, d in emitted.metrics if n == w.name)
            problems.append(f"{w.where}: {w.namespace}/{w.name} {sorted(keys)} was never emitted (emitted as: {seen})")
            continue
        for key, value in w.dimensions:
            if value is not None and value not in values[key]:
                problems.append(f"{w.where}: {w.name} {key}={value!r}, emitted only {sorted(map(str, values[key]))}")
    assert problems == []


def test_counters_the_run_cannot_provoke_are_emitted_under_the_contracts_name(template):
    """A classifier bug, two invocations racing: the function's source must emit the contract's name."""
    watched = {w.name for w in watched_metrics(template, namespace_prefix=NAMESPACE)}
    for name, module in NOT_PROVOKED.items():
        assert name in watched, name  # still on the dashboard (else drop it from NOT_PROVOKED)
        attribute = next(k for k, v in vars(Metric).items() if v == name)
        source = (AUDITOR / module).read_text()
        assert f"Metric.{attribute}" in source or re.search(rf"counts\[\"{name}\"\]", source), (module, name)


def test_the_function_counts_only_by_the_contracts_names():
    """The pipeline's and the state's counters become metric names: a counter keyed by a string
    literal instead of a ``Metric`` name is a name the stack cannot follow when it is renamed."""
    literal = set()
    for path in AUDITOR.rglob("*.py"):
        literal |= {(path.name, name) for name in re.findall(r"counts\[\s*[\"']([^\"']+)[\"']\s*\]", path.read_text())}
    assert literal == set()


def test_every_emitted_metric_is_a_contract_name_in_the_contract_namespace(emitted):
    contract = {v for k, v in vars(Metric).items() if not k.startswith("_")}
    assert {ns for ns, _, _ in emitted.metrics} == {NAMESPACE}
    assert emitted.names() <= contract, sorted(emitted.names() - contract)
    for (_, name, dims), values in emitted.metrics.items():
        expected = {Dimension.SERVICE, Dimension.AWS_SERVICE, Dimension.CAUSE} if name == Metric.FINDINGS else {Dimension.SERVICE}
        assert dims == expected, (name, dims)


def test_every_field_a_logs_insights_query_reads_occurs_in_the_emitted_lines(template, emitted):
    queries = log_queries(template)
    assert len(queries) >= 5
    by_message: dict[str, set[str]] = defaultdict(set)
    values: dict[str, set] = defaultdict(set)
    for line in emitted.lines:
        by_message[line.get(Log.FIELD_MESSAGE)] |= paths(line)
        for path in (Log.FIELD_MESSAGE, Log.FIELD_OUTCOME, Log.FIELD_STATUS):
            if path in line:
                values[path].add(line[path])
    problems = []
    for title, query in queries.items():
        messages = [v for f, op, vs in query_comparisons(query) if f == Log.FIELD_MESSAGE and op == "=" for v in vs]
        assert messages, f"{title}: a query must select its lines by message"
        for message in messages:
            if message not in values[Log.FIELD_MESSAGE]:
                problems.append(f"{title}: no line has message {message!r}")
        available = set().union(*(by_message[m] for m in messages))
        for name in query_fields(query):
            if name not in available:
                problems.append(f"{title}: field {name!r} is in no {messages} line")
        for name, op, compared in query_comparisons(query):
            for value in compared:
                if value not in values.get(name, set()):
                    problems.append(f"{title}: {name} {op} {value!r}, but no line has {name} = {value!r}")
    assert problems == []


def test_the_contract_test_catches_a_renamed_counter_or_field(template, emitted):
    """The checks above, against a function that renamed one counter and one log field: they must fail."""
    renamed = parse(emitted.stdout.replace(f'"{Metric.INCIDENTS_RESOLVED}"', '"IncidentsClosed"')
                    .replace(f'"{Log.FIELD_INCIDENT_ID}"', '"incident"'))
    with pytest.raises(AssertionError, match=Metric.INCIDENTS_RESOLVED):
        test_every_custom_metric_the_template_reads_was_emitted_with_those_dimensions(template, renamed)
    with pytest.raises(AssertionError, match=Log.FIELD_INCIDENT_ID):
        test_every_field_a_logs_insights_query_reads_occurs_in_the_emitted_lines(template, renamed)


# ---- incident events on EventBridge (docs/events.md) --------------------------------------------------
def test_the_incident_events_the_function_puts_follow_the_documented_schema(emitted):
    """Every event on the incidents bus validates against docs/incident-event.schema.json, and
    each notice the function logged reached the bus. Skipped while the function puts none."""
    import jsonschema

    from auditor.contract import IncidentEvent

    if not emitted.events:
        pytest.skip("the function puts no incident events yet (issue 21, the function's side)")
    schema = json.loads((REPO / "docs" / "incident-event.schema.json").read_text())
    validator = jsonschema.Draft202012Validator(schema)
    for event in emitted.events:
        event.setdefault("account", "123456789012")  # moto (5.2.5) leaves the envelope's account out; EventBridge never does
        errors = [e.message for e in validator.iter_errors(event)]
        assert errors == [], (event["detail-type"], errors[:3])
        assert event["detail-type"] == IncidentEvent.DETAIL_TYPES[event["detail"]["status"]]
    put = {(e["detail"]["status"], e["detail"]["incident"]["id"]) for e in emitted.events}
    logged = {(line[Log.FIELD_STATUS], line[Log.FIELD_INCIDENT]["id"]) for line in emitted.lines
              if line.get(Log.FIELD_MESSAGE) == Log.INCIDENT and line.get(Log.FIELD_PUBLISHED)}
    assert {status for status, _ in put} == {"opened", "updated", "resolved"}
    assert logged <= put, sorted(logged - put)[:5]
