"""The dashboard and alarms on-call relies on, parsed from the synthesized template. (Whether the
function emits what they read is tests/infra/test_contract.py's question.)"""

from __future__ import annotations

import pytest

from auditor.contract import NAMESPACE, SERVICE, Dimension, Log, Metric

from .conftest import resources
from .dashboard import expressions, log_queries, metric_rows, parse_search, query_comparisons, query_fields, widgets

pytestmark = pytest.mark.infra

def graphed(widget: dict) -> dict[tuple[str, str], list]:
    """(metric name, stat) -> [namespace, dims...] of every plain metric row."""
    out = {}
    for row in metric_rows(widget):
        options = row[-1] if isinstance(row[-1], dict) else {}
        namespace, name, *dims = [x for x in row if not isinstance(x, dict)]
        out[(name, options.get("stat", "Average"))] = [namespace, *dims]  # CDK leaves the default stat out
    return out


def test_incident_widgets_show_opened_resolved_open_and_time_to_resolve(template):
    w = widgets(template)
    lifecycle = graphed(w["Incidents opened, updated and resolved"])
    assert set(lifecycle) == {(Metric.INCIDENTS_OPENED, "Sum"), (Metric.INCIDENTS_UPDATED, "Sum"), (Metric.INCIDENTS_RESOLVED, "Sum")}
    assert graphed(w["Open incidents"]) == {(Metric.OPEN_INCIDENTS, "Maximum"): [NAMESPACE, Dimension.SERVICE, SERVICE]}
    assert set(graphed(w["Time to resolve (s)"])) == {(Metric.TIME_TO_RESOLVE, "Average"), (Metric.TIME_TO_RESOLVE, "Maximum")}
    for title in ("Incidents opened, updated and resolved", "Time to resolve (s)"):
        for where in graphed(w[title]).values():
            assert where == [NAMESPACE, Dimension.SERVICE, SERVICE], title


def test_findings_by_cause_and_by_service_use_search_over_the_emitted_dimensions(template):
    w = widgets(template)
    (by_cause,) = expressions(w["Findings by cause"])
    assert by_cause == f"SEARCH('{{{NAMESPACE},service,AwsService,Cause}} MetricName=\"Findings\"', 'Sum', 300)"
    assert parse_search(by_cause) == [(NAMESPACE, Metric.FINDINGS, {"service": None, "AwsService": None, "Cause": None})]
    by_service = expressions(w["Findings by service"])
    assert len(by_service) == 2
    for service in ("kms", "secretsmanager"):
        (e,) = [e for e in by_service if f'AwsService="{service}"' in e]
        assert e.startswith("SUM(SEARCH(")
        assert parse_search(e)[0][2][Dimension.AWS_SERVICE] == service


def test_pipeline_counters_are_graphed_with_only_the_service_dimension(template):
    w = widgets(template)
    counters = {**graphed(w["Records and notifications"]), **graphed(w["Auditor failures"])}
    expected = [Metric.FINDINGS_TOTAL, Metric.NOTIFICATIONS, Metric.JOINED_RECORDS, Metric.PARKED_RECORDS, Metric.CHANGES_RECORDED,
                Metric.REDELIVERED_EVENTS, Metric.MALFORMED_EVENTS, Metric.IGNORED_EVENTS, Metric.PUBLISH_FAILURES,
                Metric.ENRICHMENT_FAILURES, Metric.CLASSIFIER_ERRORS, Metric.STATE_UNAVAILABLE, Metric.STATE_RETRIES,
                Metric.LATE_FAILURES, Metric.STATE_TIMEOUTS, Metric.SWEEP_DEFERRED]
    assert {name for name, _ in counters} == set(expected)
    for (name, stat), where in counters.items():
        assert stat == "Sum" and where == [NAMESPACE, Dimension.SERVICE, SERVICE], name
    gone = {"SuppressedDuplicates", "DedupUnavailable", "DedupRetries"}
    body = str(widgets(template))
    assert not any(name in body for name in gone)


def test_logs_insights_widgets_count_each_failure_once_from_the_function_log_group(template):
    w = widgets(template)
    (log_group,) = resources(template, "AWS::Logs::LogGroup")
    queries = log_queries(template)
    assert set(queries) == {"Top principals", "Top resources", "Findings by account and region", "Busiest incidents", "Incident log"}
    for title in queries:
        assert w[title]["properties"]["query"].startswith("SOURCE 'TOKEN") and log_group in w[title]["properties"]["query"], title
        assert w[title]["type"] == "log"
    for title, field in (("Top principals", "finding.principal.arn"), ("Top resources", "finding.resource"),
                         ("Findings by account and region", "finding.account, finding.region"),
                         ("Busiest incidents", "incident_id, finding.cause")):
        query = queries[title]
        # the lines the Findings metric counts: not a retried publish, a redelivery, a record still
        # waiting, or the other half of a failure counted before
        assert (Log.FIELD_MESSAGE, "=", [Log.FINDING]) in query_comparisons(query), title
        assert (Log.FIELD_OUTCOME, "not in", sorted(Log.NOT_COUNTED, key=list(Log.NOT_COUNTED).index)) in query_comparisons(query)
        assert set(Log.NOT_COUNTED) == {"retried", "redelivered", "parked", "joined"}
        assert f"by {field}" in query and "sort" in query and "limit" in query, title


def test_the_incident_log_reads_the_incident_lines(template):
    query = log_queries(template)["Incident log"]
    assert query_comparisons(query) == [(Log.FIELD_MESSAGE, "=", [Log.INCIDENT])]
    assert {Log.FIELD_STATUS, Log.FIELD_PUBLISHED, "incident.id", "incident.cause", "incident.change.action"} <= query_fields(query)
    assert "sort @timestamp desc" in query


def test_query_fields_reads_fields_not_keywords_aliases_or_strings():
    query = ("fields @timestamp, finding.principal.arn\n| filter message = 'finding' and outcome not in ['retried', 'x.y']\n"
             "| stats count(*) as findings by finding.principal.arn, incident_id | sort findings desc | limit 20")
    assert query_fields(query) == {"finding.principal.arn", "message", "outcome", "incident_id"}
    assert query_comparisons(query) == [("message", "=", ["finding"]), ("outcome", "not in", ["retried", "x.y"])]


def test_function_health_schedule_and_queue_depth_widgets(template):
    w = widgets(template)
    errors = [row[1] for row in metric_rows(w["Function errors and throttles"])]
    assert errors == ["Errors", "Throttles"]
    stats = sorted(row[-1]["stat"] for row in metric_rows(w["Function duration"]))
    assert stats == ["p50", "p99"] and all(row[1] == "Duration" for row in metric_rows(w["Function duration"]))
    schedule = [row[1] for row in metric_rows(w["Incident schedule"])]
    assert schedule == ["Invocations", "FailedInvocations", "AsyncEventsDropped"]
    depth = metric_rows(w["Dead-letter queue depth"])
    assert [row[1] for row in depth] == ["ApproximateNumberOfMessagesVisible"] * 2
    rule_targets = next(v for k, v in resources(template, "AWS::Events::Rule").items() if k.startswith("DetectionFailedCalls"))["Properties"]["Targets"][0]
    undelivered = rule_targets["DeadLetterConfig"]["Arn"]["Fn::GetAtt"][0]
    failed = template["Resources"][rule_targets["Arn"]["Fn::GetAtt"][0]]["Properties"]["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0]
    queue_tokens = " ".join(str(row[3]) for row in depth)
    assert undelivered in queue_tokens and failed in queue_tokens


def test_alarms_notify_the_topic_and_ignore_missing_data(template, full_template):
    topic = {"Ref": next(iter(resources(template, "AWS::SNS::Topic")))}
    alarms = [a["Properties"] for a in resources(template, "AWS::CloudWatch::Alarm").values()]
    for a in alarms:
        assert a["AlarmActions"] == [topic] and a["TreatMissingData"] == "notBreaching" and a["EvaluationPeriods"] == 1
        assert a["ComparisonOperator"] == "GreaterThanThreshold"
    by_metric: dict[str, list[dict]] = {}
    for a in alarms:
        by_metric.setdefault(a["MetricName"], []).append(a)
    (errors,) = by_metric["Errors"]
    assert (errors["Namespace"], errors["Threshold"], errors["Statistic"]) == ("AWS/Lambda", 0, "Sum")
    assert len(by_metric["ApproximateNumberOfMessagesVisible"]) == 2
    (spike,) = by_metric[Metric.FINDINGS_TOTAL]
    assert (spike["Namespace"], spike["Statistic"], spike["Period"], spike["Threshold"]) == (NAMESPACE, "Sum", 300, 100)
    assert spike["Dimensions"] == [{"Name": Dimension.SERVICE, "Value": SERVICE}]
    # the table not answering: the function notifies anyway, but storms are no longer one incident
    (state,) = by_metric[Metric.STATE_UNAVAILABLE]
    assert (state["Namespace"], state["Statistic"], state["Threshold"]) == (NAMESPACE, "Sum", 0)
    assert state["Dimensions"] == [{"Name": Dimension.SERVICE, "Value": SERVICE}]
    # the schedule: EventBridge could not invoke the function (its errors are the Errors alarm's)
    (schedule,) = by_metric["FailedInvocations"]
    (rule_id,) = [k for k, r in resources(template, "AWS::Events::Rule").items() if "ScheduleExpression" in r["Properties"]]
    assert schedule["Namespace"] == "AWS/Events" and schedule["Dimensions"] == [{"Name": "RuleName", "Value": {"Ref": rule_id}}]


def test_spike_threshold_and_dashboard_name_come_from_context(full_template):
    (spike,) = [a["Properties"] for a in resources(full_template, "AWS::CloudWatch::Alarm").values()
                if a["Properties"].get("MetricName") == Metric.FINDINGS_TOTAL]
    assert spike["Threshold"] == 250
    (dashboard,) = resources(full_template, "AWS::CloudWatch::Dashboard").values()
    assert dashboard["Properties"]["DashboardName"] == "AuditorUnderTest-findings"


def test_infra_names_come_from_the_contract_module():
    """No metric name, dimension, namespace or log field of the function is spelled out in infra/:
    each is imported from auditor.contract (one home; the contract test checks the function)."""
    import re

    from .conftest import REPO

    names = [v for cls in (Metric, Dimension) for k, v in vars(cls).items() if not k.startswith("_") and isinstance(v, str)]
    names += [NAMESPACE, SERVICE, Log.FINDING, Log.INCIDENT, Log.FIELD_OUTCOME, Log.FIELD_INCIDENT_ID, Log.FIELD_PUBLISHED,
              *Log.NOT_COUNTED]
    for path in (REPO / "infra").glob("*.py"):
        # the topic's construct id "Findings" is a name of the stack's, not a metric
        text = re.sub(r'\(\s*self,\s*"Findings"', "", path.read_text())
        for name in set(names):
            assert not re.search(rf"[\"']{re.escape(name)}[\"']", text), f"{path.name} spells out {name!r}: import it from auditor.contract"
