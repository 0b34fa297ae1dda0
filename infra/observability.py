"""What on-call looks at: a dashboard of findings and of the auditor's own health, and alarms
that publish to the findings topic."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from .config import AuditorConfig
from .function import METRICS_NAMESPACE, SERVICE_NAME

FIVE_MINUTES = Duration.minutes(5)


def own_metric(name: str, label: str | None = None) -> cw.Metric:
    """A counter the function emits (EMF) with only Powertools' ``service`` dimension."""
    return cw.Metric(namespace=METRICS_NAMESPACE, metric_name=name, dimensions_map={"service": SERVICE_NAME},
                     statistic="Sum", period=FIVE_MINUTES, label=label)


def search(dimension_keys: str, label: str, extra: str = "") -> cw.MathExpression:
    return cw.MathExpression(
        expression=f"SEARCH('{{{METRICS_NAMESPACE},service,AwsService,Cause}} MetricName=\"Findings\" {extra}', 'Sum', 300)",
        label=label, period=FIVE_MINUTES, using_metrics={},
    )


class Observability(Construct):
    def __init__(self, scope: Construct, id: str, *, config: AuditorConfig, function: lambda_.Function,
                 log_group: logs.ILogGroup, queues: dict[str, sqs.IQueue], backlog: sqs.IQueue, topic: sns.ITopic) -> None:
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

        alarm("FunctionErrors", function.metric_errors(period=FIVE_MINUTES, statistic="Sum"), 0,
              "The auditor function failed: failures are retried, then kept in the failed-invocations queue.")
        for name, queue in queues.items():
            alarm(f"{name}Visible", queue.metric_approximate_number_of_messages_visible(period=FIVE_MINUTES, statistic="Maximum"), 0,
                  f"Events are waiting in {name}: they were not processed. Inspect them and redrive.")
        alarm("IngestionBacklog", backlog.metric_approximate_age_of_oldest_message(period=FIVE_MINUTES, statistic="Maximum"), 900,
              "Failure events have waited more than 15 minutes in the ingestion queue: the function is throttled or failing.")
        alarm("FindingsSpike", own_metric("FindingsTotal"), config.findings_spike_threshold,
              f"More than {config.findings_spike_threshold} Secrets Manager/KMS failures in 5 minutes.")

        by_cause = search("", "Findings by cause")
        kms = cw.MathExpression(expression=f"SUM(SEARCH('{{{METRICS_NAMESPACE},service,AwsService,Cause}} MetricName=\"Findings\" AwsService=\"kms\"', 'Sum', 300))",
                                label="kms", period=FIVE_MINUTES, using_metrics={})
        sm = cw.MathExpression(expression=f"SUM(SEARCH('{{{METRICS_NAMESPACE},service,AwsService,Cause}} MetricName=\"Findings\" AwsService=\"secretsmanager\"', 'Sum', 300))",
                               label="secretsmanager", period=FIVE_MINUTES, using_metrics={})
        top = (  # one line per failure: a publish that failed is logged again when its retry settles
            "fields @timestamp, finding.cause, finding.principal.arn, finding.resource\n"
            "| filter message = 'finding' and outcome != 'retried'\n"
        )
        self.dashboard = cw.Dashboard(self, "Dashboard", dashboard_name=f"{config.stack_name}-findings"[:255])
        self.dashboard.add_widgets(
            cw.GraphWidget(title="Findings by cause", left=[by_cause], width=12, stacked=True),
            cw.GraphWidget(title="Findings by service", left=[sm, kms], width=12, stacked=True),
        )
        self.dashboard.add_widgets(
            cw.LogQueryWidget(title="Top principals", log_group_names=[log_group.log_group_name], width=8,
                              query_string=top + "| stats count(*) as findings by finding.principal.arn, finding.cause | sort findings desc | limit 20"),
            cw.LogQueryWidget(title="Top resources", log_group_names=[log_group.log_group_name], width=8,
                              query_string=top + "| stats count(*) as findings by finding.resource, finding.cause | sort findings desc | limit 20"),
            cw.LogQueryWidget(title="Findings by account and region", log_group_names=[log_group.log_group_name], width=8,
                              query_string=top + "| stats count(*) as findings by finding.account, finding.region | sort findings desc | limit 20"),
        )
        self.dashboard.add_widgets(
            cw.GraphWidget(title="Notifications and suppression", width=12, left=[
                own_metric("FindingsTotal", "findings"), own_metric("Notifications", "notified"), own_metric("SuppressedDuplicates", "suppressed duplicates"),
                own_metric("MalformedEvents", "malformed"), own_metric("PublishFailures", "publish failures"),
                own_metric("EnrichmentFailures", "enrichment failures"), own_metric("DedupUnavailable", "dedup unavailable")]),
            cw.GraphWidget(title="Function errors and throttles", width=6, left=[
                function.metric_errors(period=FIVE_MINUTES, statistic="Sum"), function.metric_throttles(period=FIVE_MINUTES, statistic="Sum")]),
            cw.GraphWidget(title="Function duration", width=6, left=[
                function.metric_duration(period=FIVE_MINUTES, statistic="p50"), function.metric_duration(period=FIVE_MINUTES, statistic="p99")]),
        )
        self.dashboard.add_widgets(
            cw.GraphWidget(title="Dead-letter queue depth", width=8, left=[
                q.metric_approximate_number_of_messages_visible(period=FIVE_MINUTES, statistic="Maximum", label=name) for name, q in queues.items()]),
            cw.GraphWidget(title="Ingestion backlog", width=8, left=[
                backlog.metric_approximate_number_of_messages_visible(period=FIVE_MINUTES, statistic="Maximum", label="queued events")],
                right=[backlog.metric_approximate_age_of_oldest_message(period=FIVE_MINUTES, statistic="Maximum", label="oldest (s)")]),
            cw.AlarmStatusWidget(title="Alarms", alarms=self.alarms, width=8),
        )
