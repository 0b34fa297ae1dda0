"""What on-call looks at: a dashboard of incidents, findings and the auditor's own health, and
alarms that publish to the findings topic.

Every metric name, dimension, namespace and log field here comes from ``auditor.contract``, the
names the function emits; ``tests/infra/test_contract.py`` runs the function and checks every
one of them against what it actually emitted.
"""

from __future__ import annotations

from typing import Iterable

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_events as events
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from auditor.contract import AUDITED_SOURCES, NAMESPACE, SERVICE, Dimension, Log, Metric, Status

from .config import AuditorConfig

FIVE_MINUTES = Duration.minutes(5)
FINDINGS_DIMENSIONS = (Dimension.SERVICE, Dimension.AWS_SERVICE, Dimension.CAUSE)
#: Values of the AwsService dimension: the audited services ("aws.kms" -> "kms").
AWS_SERVICES = tuple(source.removeprefix("aws.") for source in AUDITED_SOURCES)


def own_metric(name: str, label: str | None = None, statistic: str = "Sum") -> cw.Metric:
    """A metric the function emits (EMF) with only Powertools' ``service`` dimension."""
    return cw.Metric(namespace=NAMESPACE, metric_name=name, dimensions_map={Dimension.SERVICE: SERVICE},
                     statistic=statistic, period=FIVE_MINUTES, label=label)


def findings_search(**filters: str) -> str:
    """SEARCH over the per-cause ``Findings`` metrics (the schema is exactly the dimensions the
    function emits them with), optionally narrowed by dimension values."""
    terms = [f'MetricName="{Metric.FINDINGS}"'] + [f'{key}="{value}"' for key, value in filters.items()]
    schema = ",".join((NAMESPACE, *FINDINGS_DIMENSIONS))
    return f"SEARCH('{{{schema}}} {' '.join(terms)}', 'Sum', 300)"


# ---- Logs Insights --------------------------------------------------------------------------
def finding_field(path: str) -> str:
    return f"{Log.FIELD_FINDING}.{path}"


def incident_field(path: str) -> str:
    return f"{Log.FIELD_INCIDENT}.{path}"


def _quoted(values: Iterable[str]) -> str:
    return ", ".join(f"'{v}'" for v in values)


#: One line per failure, counted once: the lines the ``Findings`` metric counts (a record whose
#: publish failed, that was seen before, or that waits for its partner is logged again later).
COUNTED_FINDINGS = (f"filter {Log.FIELD_MESSAGE} = '{Log.FINDING}' "
                    f"and {Log.FIELD_OUTCOME} not in [{_quoted(Log.NOT_COUNTED)}]\n")
#: One line per incident state change (opened, updated, resolved).
INCIDENT_LINES = f"filter {Log.FIELD_MESSAGE} = '{Log.INCIDENT}'\n"

PRINCIPAL, RESOURCE, CAUSE = finding_field("principal.arn"), finding_field("resource"), finding_field("cause")
ACCOUNT, REGION = finding_field("account"), finding_field("region")


def top(by: Iterable[str], count_as: str = "findings", limit: int = 20) -> str:
    return f"| stats count(*) as {count_as} by {', '.join(by)} | sort {count_as} desc | limit {limit}"


QUERIES = {
    "Top principals": f"fields @timestamp, {PRINCIPAL}, {CAUSE}\n| {COUNTED_FINDINGS}" + top((PRINCIPAL, CAUSE)),
    "Top resources": f"fields @timestamp, {RESOURCE}, {CAUSE}\n| {COUNTED_FINDINGS}" + top((RESOURCE, CAUSE)),
    "Findings by account and region": f"fields @timestamp, {ACCOUNT}, {REGION}\n| {COUNTED_FINDINGS}" + top((ACCOUNT, REGION)),
    "Busiest incidents": f"fields @timestamp, {Log.FIELD_INCIDENT_ID}, {CAUSE}\n| {COUNTED_FINDINGS}"
                         + top((Log.FIELD_INCIDENT_ID, CAUSE), count_as="failures"),
    "Incident log": (
        f"fields @timestamp, {Log.FIELD_STATUS}, {incident_field('id')}, {incident_field('cause')}, "
        f"{incident_field('root.label')}, {incident_field('failures')}, {incident_field('change.action')}, "
        f"{incident_field('change.actor')}, {Log.FIELD_PUBLISHED}\n| {INCIDENT_LINES}| sort @timestamp desc | limit 50"
    ),
}


class Observability(Construct):
    def __init__(self, scope: Construct, id: str, *, config: AuditorConfig, function: lambda_.Function,
                 log_group: logs.ILogGroup, queues: dict[str, sqs.IQueue], backlog: sqs.IQueue, topic: sns.ITopic,
                 schedule: events.IRule, remote_queues: Iterable[tuple[str, str, str]] = ()) -> None:
        """``remote_queues``: (label, region, queue name) of parking queues in other regions (graphed;
        CloudWatch alarms cannot watch another region's metrics)."""
        super().__init__(scope, id)
        notify = actions.SnsAction(topic)
        self.alarms: list[cw.Alarm] = []

        def alarm(name: str, metric: cw.IMetric, threshold: float, description: str) -> cw.Alarm:
            a = cw.Alarm(self, name, metric=metric, threshold=threshold, evaluation_periods=1,
                         comparison_operator=cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
                         treat_missing_data=cw.TreatMissingData.NOT_BREACHING, alarm_description=description)
            a.add_alarm_action(notify)
            self.alarms.append(a)
            return a

        def schedule_metric(name: str, label: str | None = None) -> cw.Metric:
            """EventBridge's own metrics of the schedule rule (AWS/Events, by RuleName)."""
            return cw.Metric(namespace="AWS/Events", metric_name=name, dimensions_map={"RuleName": schedule.rule_name},
                             statistic="Sum", period=FIVE_MINUTES, label=label)

        schedule_failed = schedule_metric("FailedInvocations")  # no label: the alarm reads the metric itself
        schedule_ran = schedule_metric("Invocations", "schedule: invocations")

        alarm("FunctionErrors", function.metric_errors(period=FIVE_MINUTES, statistic="Sum"), 0,
              "The auditor function failed: failures are retried, then kept in the failed-invocations queue.")
        for name, queue in queues.items():
            alarm(f"{name}Visible", queue.metric_approximate_number_of_messages_visible(period=FIVE_MINUTES, statistic="Maximum"), 0,
                  f"Events are waiting in {name}: they were not processed. Inspect them and redrive.")
        alarm("IngestionBacklog", backlog.metric_approximate_age_of_oldest_message(period=FIVE_MINUTES, statistic="Maximum"), 900,
              "Failure events have waited more than 15 minutes in the ingestion queue: the function is throttled or failing.")
        alarm("FindingsSpike", own_metric(Metric.FINDINGS_TOTAL), config.findings_spike_threshold,
              f"More than {config.findings_spike_threshold} Secrets Manager/KMS failures in 5 minutes.")
        alarm("IncidentStateUnavailable", own_metric(Metric.STATE_UNAVAILABLE), 0,
              "The incident state table could not be used: the function notified every root cause of its batches anyway, "
              "so alerts may repeat (a storm is no longer one incident) and nothing resolves until the table answers.")
        alarm("ScheduleFailing", schedule_failed, 0,
              "EventBridge could not invoke the auditor's every-minute schedule: quiet incidents are not resolved and records "
              "waiting for their partner are not counted until it runs again.")

        self.dashboard = cw.Dashboard(self, "Dashboard", dashboard_name=f"{config.stack_name}-findings"[:255])

        def logs_widget(title: str, width: int) -> cw.LogQueryWidget:
            return cw.LogQueryWidget(title=title, log_group_names=[log_group.log_group_name], width=width, query_string=QUERIES[title])

        # Incidents: what on-call acts on.
        self.dashboard.add_widgets(
            cw.GraphWidget(title="Incidents opened, updated and resolved", width=8, left=[
                own_metric(Metric.INCIDENTS_OPENED, Status.OPENED), own_metric(Metric.INCIDENTS_UPDATED, Status.UPDATED),
                own_metric(Metric.INCIDENTS_RESOLVED, Status.RESOLVED)]),
            cw.GraphWidget(title="Open incidents", width=8, left=[
                own_metric(Metric.OPEN_INCIDENTS, "open (at the last scheduled run)", statistic="Maximum")]),
            cw.GraphWidget(title="Time to resolve (s)", width=8, left=[
                own_metric(Metric.TIME_TO_RESOLVE, "average", statistic="Average"),
                own_metric(Metric.TIME_TO_RESOLVE, "max", statistic="Maximum")]),
        )
        self.dashboard.add_widgets(logs_widget("Incident log", 16), logs_widget("Busiest incidents", 8))
        # Findings: every failure, by cause, service, principal, resource, account and region.
        self.dashboard.add_widgets(
            cw.GraphWidget(title="Findings by cause", width=12, stacked=True, left=[
                cw.MathExpression(expression=findings_search(), label="Findings by cause", period=FIVE_MINUTES, using_metrics={})]),
            cw.GraphWidget(title="Findings by service", width=12, stacked=True, left=[
                cw.MathExpression(expression=f"SUM({findings_search(**{Dimension.AWS_SERVICE: service})})", label=service,
                                  period=FIVE_MINUTES, using_metrics={}) for service in AWS_SERVICES]),
        )
        self.dashboard.add_widgets(*(logs_widget(title, 8) for title in ("Top principals", "Top resources",
                                                                          "Findings by account and region")))
        # The auditor's own health.
        self.dashboard.add_widgets(
            cw.GraphWidget(title="Records and notifications", width=12, left=[
                own_metric(Metric.FINDINGS_TOTAL, "findings"), own_metric(Metric.NOTIFICATIONS, "notifications"),
                own_metric(Metric.JOINED_RECORDS, "records joined into another's failure"),
                own_metric(Metric.PARKED_RECORDS, "records waiting for their partner"),
                own_metric(Metric.CHANGES_RECORDED, "changes recorded"), own_metric(Metric.REDELIVERED_EVENTS, "records seen before"),
                own_metric(Metric.LATE_FAILURES, "old news (recorded, not paged)"),
                own_metric(Metric.MALFORMED_EVENTS, "malformed"), own_metric(Metric.IGNORED_EVENTS, "ignored")]),
            cw.GraphWidget(title="Auditor failures", width=12, left=[
                own_metric(Metric.PUBLISH_FAILURES, "publish failures"), own_metric(Metric.ENRICHMENT_FAILURES, "enrichment failures"),
                own_metric(Metric.CLASSIFIER_ERRORS, "classifier errors"), own_metric(Metric.STATE_UNAVAILABLE, "state table unavailable"),
                own_metric(Metric.STATE_RETRIES, "state write conflicts retried"),
                own_metric(Metric.STATE_TIMEOUTS, "state calls retried after a timeout"),
                own_metric(Metric.SWEEP_DEFERRED, "due items left to the next scheduled run")]),
        )
        self.dashboard.add_widgets(
            cw.GraphWidget(title="Function errors and throttles", width=8, left=[
                function.metric_errors(period=FIVE_MINUTES, statistic="Sum"), function.metric_throttles(period=FIVE_MINUTES, statistic="Sum")]),
            cw.GraphWidget(title="Function duration", width=8, left=[
                function.metric_duration(period=FIVE_MINUTES, statistic="p50"), function.metric_duration(period=FIVE_MINUTES, statistic="p99")]),
            cw.GraphWidget(title="Incident schedule", width=8, left=[schedule_ran, schedule_failed.with_(label="schedule: failed invocations")], right=[
                function.metric("AsyncEventsDropped", period=FIVE_MINUTES, statistic="Sum", label="scheduled runs dropped")]),
        )
        depth = [q.metric_approximate_number_of_messages_visible(period=FIVE_MINUTES, statistic="Maximum", label=name)
                 for name, q in queues.items()]
        depth += [cw.Metric(namespace="AWS/SQS", metric_name="ApproximateNumberOfMessagesVisible", dimensions_map={"QueueName": queue},
                            region=region, statistic="Maximum", period=FIVE_MINUTES, label=f"{label} ({region})")
                  for label, region, queue in remote_queues]
        self.dashboard.add_widgets(
            cw.GraphWidget(title="Dead-letter queue depth", width=8, left=depth),
            cw.GraphWidget(title="Ingestion backlog", width=8, left=[
                backlog.metric_approximate_number_of_messages_visible(period=FIVE_MINUTES, statistic="Maximum", label="queued events")],
                right=[backlog.metric_approximate_age_of_oldest_message(period=FIVE_MINUTES, statistic="Maximum", label="oldest (s)")]),
            cw.AlarmStatusWidget(title="Alarms", alarms=self.alarms, width=8),
        )
