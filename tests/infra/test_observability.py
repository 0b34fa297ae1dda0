"""The dashboard and alarms on-call relies on, parsed from the synthesized DashboardBody (an
Fn::Join of strings and tokens) into widgets, and matched against what the function emits."""

from __future__ import annotations

import json
import re

import pytest

from infra.function import METRICS_NAMESPACE, SERVICE_NAME

from .conftest import resources

pytestmark = pytest.mark.infra

SERVICE_ONLY = ["Notifications", "SuppressedDuplicates", "MalformedEvents", "PublishFailures", "EnrichmentFailures", "FindingsTotal"]


def widgets(template: dict) -> dict[str, dict]:
    """Title -> widget, with every CloudFormation token replaced by a JSON string placeholder."""
    (dashboard,) = resources(template, "AWS::CloudWatch::Dashboard").values()
    body = dashboard["Properties"]["DashboardBody"]
    parts = body["Fn::Join"][1] if isinstance(body, dict) else [body]
    text = "".join(p if isinstance(p, str) else "TOKEN" + re.sub(r"\W", "_", json.dumps(p, sort_keys=True)) for p in parts)
    parsed = json.loads(text)
    return {w["properties"].get("title", f"untitled-{i}"): w for i, w in enumerate(parsed["widgets"])}


def metric_rows(widget: dict) -> list[list]:
    return widget["properties"].get("metrics", [])


def expressions(widget: dict) -> list[str]:
    return [row[0]["expression"] for row in metric_rows(widget) if row and isinstance(row[0], dict) and "expression" in row[0]]


def test_findings_by_cause_and_by_service_use_search_over_the_emitted_dimensions(template):
    w = widgets(template)
    by_cause = expressions(w["Findings by cause"])
    assert by_cause == [f"SEARCH('{{{METRICS_NAMESPACE},service,AwsService,Cause}} MetricName=\"Findings\" ', 'Sum', 300)"]
    by_service = expressions(w["Findings by service"])
    assert len(by_service) == 2
    for service in ("kms", "secretsmanager"):
        assert any(f'AwsService="{service}"' in e and e.startswith("SUM(SEARCH(") for e in by_service), service


def test_pipeline_counters_are_graphed_with_only_the_service_dimension(template):
    w = widgets(template)["Notifications and suppression"]
    graphed = {}
    for row in metric_rows(w):
        namespace, name, *dims = [x for x in row if not isinstance(x, dict)]
        graphed[name] = (namespace, dims)
    for name in SERVICE_ONLY:
        assert graphed[name] == (METRICS_NAMESPACE, ["service", SERVICE_NAME]), name


def test_logs_insights_widgets_rank_principals_and_resources_from_the_function_log_group(template):
    w = widgets(template)
    (log_group,) = resources(template, "AWS::Logs::LogGroup")
    for title, field in (("Top principals", "finding.principal.arn"), ("Top resources", "finding.resource")):
        query = w[title]["properties"]["query"]
        assert query.startswith("SOURCE 'TOKEN") and log_group in query, query  # the function's own log group
        assert "filter message = 'finding' and outcome != 'retried'" in query and f"stats count(*) as findings by {field}" in query
        assert "sort findings desc" in query and "limit" in query
        assert w[title]["type"] == "log"


def test_function_health_and_queue_depth_widgets(template):
    w = widgets(template)
    errors = [row[1] for row in metric_rows(w["Function errors and throttles"])]
    assert errors == ["Errors", "Throttles"]
    stats = sorted(row[-1]["stat"] for row in metric_rows(w["Function duration"]))
    assert stats == ["p50", "p99"] and all(row[1] == "Duration" for row in metric_rows(w["Function duration"]))
    depth = metric_rows(w["Dead-letter queue depth"])
    assert [row[1] for row in depth] == ["ApproximateNumberOfMessagesVisible"] * 2
    rule_targets = next(v for k, v in resources(template, "AWS::Events::Rule").items() if k.startswith("Detection"))["Properties"]["Targets"][0]
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
    (spike,) = by_metric["FindingsTotal"]
    assert (spike["Namespace"], spike["Statistic"], spike["Period"], spike["Threshold"]) == (METRICS_NAMESPACE, "Sum", 300, 100)
    assert spike["Dimensions"] == [{"Name": "service", "Value": SERVICE_NAME}]


def test_spike_threshold_and_dashboard_name_come_from_context(full_template):
    (spike,) = [a["Properties"] for a in resources(full_template, "AWS::CloudWatch::Alarm").values()
                if a["Properties"].get("MetricName") == "FindingsTotal"]
    assert spike["Threshold"] == 250
    (dashboard,) = resources(full_template, "AWS::CloudWatch::Dashboard").values()
    assert dashboard["Properties"]["DashboardName"] == "AuditorUnderTest-findings"
