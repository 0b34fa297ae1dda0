"""One stack: detection -> ingestion -> function (incident state, schedule) -> alerting, observed by
a dashboard and alarms; in organization mode also the central bus and the forwarder StackSet."""

from __future__ import annotations

from aws_cdk import Acknowledgment, CfnOutput, Stack, Validations
from constructs import Construct

from .alerting import Alerting
from .config import AuditorConfig
from .detection import Detection
from .function import AuditorFunction
from .ingestion import Ingestion
from .organization import CentralBus, ForwarderRollout
from .observability import Observability
from .management_trail import ManagementTrail
from .oncall import IncidentBus, OnCall
from .schedule import IncidentSchedule
from .state import IncidentState


class AuditorStack(Stack):
    def __init__(self, scope: Construct, id: str, *, config: AuditorConfig,
                 remote_queues: tuple[tuple[str, str, str], ...] = (), **kwargs) -> None:
        """``remote_queues``: parking queues of this auditor's stacks in other regions (label, region,
        queue name), graphed on the dashboard."""
        super().__init__(scope, id, description="Names the documented cause of every failed Secrets Manager and KMS call", **kwargs)
        alerting = Alerting(self, "Alerting", config=config)
        state = IncidentState(self, "IncidentState")
        incidents = IncidentBus(self, "Incidents", stack_name=config.stack_name)
        fn = AuditorFunction(self, "Auditor", config=config, topic=alerting.topic, topic_key=alerting.key, table=state.table,
                             incident_bus=incidents.bus, incident_bus_name=incidents.name)
        ingestion = Ingestion(self, "Ingestion", function=fn.function, max_concurrency=config.max_concurrency)
        detection = Detection(self, "Detection", queue=ingestion.queue)
        schedule = IncidentSchedule(self, "IncidentSchedule", function=fn.function)
        parking = {"UndeliveredEvents": detection.dead_letters, "FailedEvents": ingestion.dead_letters}
        change_buses = [None]  # the default bus, which the stack's change rule reads
        if config.organization is not None:
            central = CentralBus(self, "Organization", org=config.organization, stack_name=config.stack_name, queue=ingestion.queue)
            ForwarderRollout(self, "Rollout", org=config.organization, stack_name=config.stack_name, central=central)
            acknowledge(central.dead_letters, ("AwsSolutions-SQS3", "This queue is itself a dead-letter queue; an alarm watches its depth."))
            parking["UndeliveredForwardedEvents"] = central.dead_letters
            CfnOutput(self, "CentralBusArn", value=central.bus.event_bus_arn)
            change_buses.append(central.bus)
        oncall = OnCall(self, "OnCall", config=config, bus=incidents.bus, code=fn.code, change_buses=change_buses)
        for name, queue in oncall.dead_letters.items():
            acknowledge(queue, ("AwsSolutions-SQS3", f"This queue is itself the dead-letter queue of the {name.removesuffix('Undelivered')} "
                                                     "delivery; an alarm watches its depth."))
            parking[name] = queue
        if oncall.pagerduty is not None:
            acknowledge(oncall.pagerduty.function, ("AwsSolutions-L1", "Pinned to Python 3.13 like the auditor function: it runs "
                                                    "from the same package asset and bytecode."))
        Observability(self, "Observability", config=config, function=fn.function, log_group=fn.log_group,
                      queues=parking, backlog=ingestion.queue, topic=alerting.topic, schedule=schedule.rule,
                      remote_queues=remote_queues)
        if config.create_trail:
            ManagementTrail(self, "ManagementTrail")
        CfnOutput(self, "FindingsTopicArn", value=alerting.topic.topic_arn)
        CfnOutput(self, "IncidentBusName", value=incidents.name,
                  description="Every incident notice as an EventBridge event (docs/events.md): add rules of your own here")
        CfnOutput(self, "FunctionName", value=fn.function.function_name)
        CfnOutput(self, "StateTableName", value=state.table.table_name,
                  description="The incident state table (open incidents, recent changes, records waiting for their partner)")
        self._suppress(fn, detection, ingestion)

    def _suppress(self, fn: AuditorFunction, detection: Detection, ingestion: Ingestion) -> None:
        """cdk-nag findings that are deliberate, each acknowledged with its reason."""
        partition_wildcards = {
            "Resource::arn:<AWS::Partition>:secretsmanager:*:<AWS::AccountId>:secret:*":
                "Read-only DescribeSecret on any secret of this account: a failure can name any secret; GetSecretValue is never granted.",
            "Resource::arn:<AWS::Partition>:kms:*:<AWS::AccountId>:key/*":
                "Read-only DescribeKey on any key of this account: a failure can name any key; Decrypt is never granted.",
            "Resource::*":
                "X-Ray PutTraceSegments/PutTelemetryRecords support no resource-level permissions.",
            "Action::kms:GenerateDataKey*":
                "Publishing to an SSE-KMS topic needs the GenerateDataKey family, scoped to the topic's own key only.",
            "Resource::arn:<AWS::Partition>:iam::<AWS::AccountId>:role/*":
                "Read-only lookups (GetRole, ListAttachedRolePolicies; opt-in policy simulation) of the denied principal, "
                "which can be any role of the account.",
            "Resource::arn:<AWS::Partition>:iam::<AWS::AccountId>:user/*":
                "Read-only lookups (GetUser, ListAttachedUserPolicies, ListGroupsForUser; opt-in policy simulation) of the "
                "denied principal, which can be any user of the account.",
            "Resource::arn:<AWS::Partition>:iam::<AWS::AccountId>:group/*":
                "Read-only ListAttachedGroupPolicies of a denied user's groups, which can be any group of the account.",
            "Resource::arn:<AWS::Partition>:iam::<AWS::AccountId>:policy/*":
                "Read-only ListEntitiesForPolicy of a managed policy that just got a new default version, which can be any "
                "policy of the account.",
        }
        acknowledge(fn.role, *[(f"AwsSolutions-IAM5[{finding}]", reason) for finding, reason in partition_wildcards.items()])
        acknowledge(fn.function, ("AwsSolutions-L1", "Pinned to Python 3.13: the runtime the code, the Powertools layer and the tests are built for."))
        for queue in (detection.dead_letters, ingestion.dead_letters):
            acknowledge(queue, ("AwsSolutions-SQS3", "This queue is itself a dead-letter queue; an alarm watches its depth."))


def acknowledge(scope, *rules: tuple[str, str]) -> None:
    Validations.of(scope).acknowledge(*[Acknowledgment(id=rule, reason=reason) for rule, reason in rules])
