"""Incidents on EventBridge, and the on-call tools that follow them without glue code.

* ``IncidentBus`` (always): the custom bus ``<stackName>-incidents``. The function puts every
  notice on it (opened, updated, resolved) as a documented event (``auditor.incident_event``,
  docs/events.md); users route incidents from it with rules of their own.
* ``PagerDutyDelivery`` (``pagerduty`` in cdk.json): a rule on that bus whose target is the
  forwarder function (``auditor.pagerduty_forwarder``), which adds the routing key read from the
  secret the user names at run time. PagerDuty takes the key only inside the JSON body, and
  EventBridge documents no way to keep a secret there (the forwarder's docstring has the
  evidence), so an API destination would have put the key in the template. With
  ``changeEvents``, a second rule on the buses the stack's change rule reads sends the changes
  the auditor watches as PagerDuty change events.
* ``OpsgenieDelivery`` (``opsgenie`` in cdk.json): an EventBridge connection (API key
  authorization, the header ``Authorization: GenieKey <key>``, the key a CloudFormation dynamic
  reference to the user's secret: EventBridge keeps it in a secret of its own), two API
  destinations (create alert, close alert by alias) with a rate limit, and a rule for each. No
  code of ours runs per alert.

Every target passes a JSON object of the event verbatim (``InputPath``): the bodies are rendered
by the function (``detail.oncall``), because an input transformer does not escape what it
substitutes and incident texts may hold quotes (tests/unit/test_oncall_transformers.py shows
both). Every target retries (EventBridge's retry policy) and keeps what it could not deliver in
an encrypted dead-letter queue per tool; the stack alarms on each queue like on its other
dead-letter queues.

How long a delivery is retried (``delivery_age``) is bounded below the quiet period: a trigger
or a create that is still being retried when its incident resolves would otherwise land after
the resolve and leave an alert open that nothing closes. (Changes, which nothing follows, are
retried for two hours, like the stack's other rules.)
"""

from __future__ import annotations

from typing import Iterable, Optional

from aws_cdk import Aws, Duration, Fn, RemovalPolicy, SecretValue
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_destinations as destinations
from aws_cdk import aws_logs as logs
from constructs import Construct

from auditor.contract import ForwarderEnv, IncidentEvent
from auditor.pagerduty_forwarder import CHANGE_EVENTS_URLS, EVENTS_URLS, MAX_ATTEMPTS, RETRY_AFTER_CAP, TIMEOUT_SECONDS

from .config import AuditorConfig, Opsgenie, PagerDuty, SecretRef
from .detection import pattern_rule
from .function import RUNTIME
from .pattern import CHANGE_PATTERN, CHANGE_RULE_STATE
from .queues import parking_queue

#: Where the function's pre-rendered bodies are in an incident event (auditor.incident_event).
PAGERDUTY_BODY = "$.detail.oncall.pagerduty"
OPSGENIE_BODY = "$.detail.oncall.opsgenie"
INCIDENT_ID = "$.detail.incident.id"
#: A change rule's event passes its CloudTrail record (the forwarder renders the change event).
CHANGE_RECORD = "$.detail"
OPSGENIE_HOSTS = {"us": "api.opsgenie.com", "eu": "api.eu.opsgenie.com"}
RETRY_ATTEMPTS = 8
#: The forwarder's budget: every attempt and backoff (auditor.pagerduty_forwarder), with room to spare.
FORWARDER_TIMEOUT = Duration.seconds(int(MAX_ATTEMPTS * TIMEOUT_SECONDS + (MAX_ATTEMPTS - 1) * RETRY_AFTER_CAP + 30))


def incident_bus_name(stack_name: str) -> str:
    return f"{stack_name}{IncidentEvent.BUS_SUFFIX}"


def delivery_age(quiet_minutes: int) -> Duration:
    """How long each hop may keep retrying a delivery: a third of the quiet period, between the
    least EventBridge and Lambda accept (60 s) and an hour. An incident resolves a quiet period
    after the last failure arrived, and a trigger crosses at most two retrying hops (EventBridge to
    the forwarder, Lambda's queue) and the forwarder's own bounded retries (FORWARDER_TIMEOUT): with
    a quiet period of 5 minutes or more, a trigger given up by then can never land after its resolve."""
    return Duration.seconds(max(60, min(3600, quiet_minutes * 60 // 3)))


def incident_pattern(*statuses: str) -> events.EventPattern:
    """The auditor's incident events of these statuses (opened, updated, resolved)."""
    return events.EventPattern(source=[IncidentEvent.SOURCE], detail_type=[IncidentEvent.DETAIL_TYPES[s] for s in statuses])


class IncidentBus(Construct):
    """The bus every incident notice is put on (``events:PutEvents`` for the function only, by its
    identity policy: the bus has no resource policy, so no other account can put on it)."""

    def __init__(self, scope: Construct, id: str, *, stack_name: str) -> None:
        super().__init__(scope, id)
        self.name = incident_bus_name(stack_name)
        self.bus = events.EventBus(self, "Bus", event_bus_name=self.name,
                                   description="Incidents of the Secrets Manager and KMS failure auditor (docs/events.md)")


def secret_arns(key: SecretRef) -> list[str]:
    """The ARNs an identity policy must name to read ``key``'s secret: by name, any of the six
    characters Secrets Manager appends (its documented ``-??????``); by ARN, the ARN as given and,
    should it be a partial ARN, that with the six characters."""
    if key.is_arn:
        return [key.secret, f"{key.secret}-??????"]
    return [f"arn:{Aws.PARTITION}:secretsmanager:{Aws.REGION}:{Aws.ACCOUNT_ID}:secret:{key.secret}-??????"]


class PagerDutyDelivery(Construct):
    """Incidents (and optionally changes) to PagerDuty through the forwarder function."""

    def __init__(self, scope: Construct, id: str, *, settings: PagerDuty, bus: events.IEventBus, code: lambda_.Code,
                 age: Duration, log_retention: logs.RetentionDays, change_buses: Iterable[Optional[events.IEventBus]] = ()) -> None:
        super().__init__(scope, id)
        self.dead_letters = parking_queue(self, "Undelivered")
        self.log_group = logs.LogGroup(self, "Logs", retention=log_retention, removal_policy=RemovalPolicy.DESTROY)
        self.role = iam.Role(self, "Role", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
                             description="PagerDuty forwarder: reads the routing key's secret, nothing else of Secrets Manager")
        self.role.add_to_policy(iam.PolicyStatement(
            sid="WriteOwnLogs", actions=["logs:CreateLogStream", "logs:PutLogEvents"], resources=[self.log_group.log_group_arn]))
        self.role.add_to_policy(iam.PolicyStatement(
            sid="ReadRoutingKey", actions=["secretsmanager:GetSecretValue"], resources=secret_arns(settings.key)))
        if settings.secret_kms_key:
            # Secrets Manager decrypts the secret with its key on the caller's behalf; only that way.
            self.role.add_to_policy(iam.PolicyStatement(
                sid="DecryptRoutingKeyThroughSecretsManager", actions=["kms:Decrypt"], resources=[settings.secret_kms_key],
                conditions={"StringEquals": {"kms:ViaService": f"secretsmanager.{Aws.REGION}.amazonaws.com"}}))
        self.function = lambda_.Function(
            self, "Forwarder",
            runtime=RUNTIME, architecture=lambda_.Architecture.ARM_64,
            handler="auditor.pagerduty_forwarder.handler", code=code,
            memory_size=128, timeout=FORWARDER_TIMEOUT, role=self.role, log_group=self.log_group,
            description="Sends the auditor's incidents (and changes) to PagerDuty with the routing key read at run time",
            environment={
                ForwarderEnv.SECRET_ID: settings.key.secret,
                ForwarderEnv.SECRET_FIELD: settings.key.field,
                ForwarderEnv.DEAD_LETTER_URL: self.dead_letters.queue_url,
                ForwarderEnv.EVENTS_URL: EVENTS_URLS[settings.region],
                ForwarderEnv.CHANGE_EVENTS_URL: CHANGE_EVENTS_URLS[settings.region],
            },
        )
        # The function retries itself (bounded) and keeps what it gives up in the queue; Lambda does
        # not retry on top of it. A failure of the function itself lands in the same queue.
        self.function.configure_async_invoke(retry_attempts=0, max_event_age=age,
                                             on_failure=destinations.SqsDestination(self.dead_letters))
        self.rule = events.Rule(self, "Incidents", event_bus=bus, event_pattern=incident_pattern("opened", "updated", "resolved"),
                                description="Incident notices -> PagerDuty alert events (trigger, resolve)")
        self.rule.add_target(targets.LambdaFunction(self.function, event=events.RuleTargetInput.from_event_path(PAGERDUTY_BODY),
                                                    dead_letter_queue=self.dead_letters, retry_attempts=RETRY_ATTEMPTS,
                                                    max_event_age=age))
        self.change_rules: list[events.Rule] = []
        if settings.change_events:
            for i, change_bus in enumerate(change_buses):
                rule = pattern_rule(self, "Changes" if i == 0 else f"Changes{i}", pattern=CHANGE_PATTERN, state=CHANGE_RULE_STATE,
                                    event_bus=change_bus,
                                    description="Changes the auditor watches -> PagerDuty change events (Recent changes)")
                rule.add_target(targets.LambdaFunction(self.function, event=events.RuleTargetInput.from_event_path(CHANGE_RECORD),
                                                       dead_letter_queue=self.dead_letters, retry_attempts=RETRY_ATTEMPTS,
                                                       max_event_age=Duration.hours(2)))
                self.change_rules.append(rule)


class OpsgenieDelivery(Construct):
    """Incidents to Opsgenie through EventBridge API destinations."""

    def __init__(self, scope: Construct, id: str, *, settings: Opsgenie, bus: events.IEventBus, age: Duration) -> None:
        super().__init__(scope, id)
        host = OPSGENIE_HOSTS[settings.region]
        self.dead_letters = parking_queue(self, "Undelivered")
        # A dynamic reference: CloudFormation reads the user's secret at deployment, EventBridge keeps
        # the header in the connection's own secret (events!connection/...). The template holds the
        # reference only ("Get a secret or secret value from Secrets Manager", CloudFormation User Guide).
        key = SecretValue.secrets_manager(settings.key.secret, json_field=settings.key.field or None)
        header = SecretValue.unsafe_plain_text(Fn.join("", ["GenieKey ", key.unsafe_unwrap()]))
        self.connection = events.Connection(self, "Connection", authorization=events.Authorization.api_key("Authorization", header),
                                            description="Opsgenie Alert API (an API integration's key, from the secret named in cdk.json)")
        self.create = events.ApiDestination(self, "CreateAlert", connection=self.connection, endpoint=f"https://{host}/v2/alerts",
                                            http_method=events.HttpMethod.POST, rate_limit_per_second=settings.rate_limit_per_second,
                                            description="Opsgenie: create an alert (alias = incident id)")
        self.close = events.ApiDestination(self, "CloseAlert", connection=self.connection,
                                           endpoint=f"https://{host}/v2/alerts/*/close", http_method=events.HttpMethod.POST,
                                           rate_limit_per_second=settings.rate_limit_per_second,
                                           description="Opsgenie: close the alert whose alias is the incident id")
        body = events.RuleTargetInput.from_event_path(OPSGENIE_BODY)
        self.open_rule = events.Rule(self, "OpenOrUpdate", event_bus=bus, event_pattern=incident_pattern("opened", "updated"),
                                     description="Incident opened or updated -> Opsgenie create alert")
        self.open_rule.add_target(targets.ApiDestination(self.create, event=body, dead_letter_queue=self.dead_letters,
                                                         retry_attempts=RETRY_ATTEMPTS, max_event_age=age))
        self.close_rule = events.Rule(self, "Resolve", event_bus=bus, event_pattern=incident_pattern("resolved"),
                                      description="Incident resolved -> Opsgenie close alert by alias")
        # The incident id fills the path's "*": ids are <kind>-<16 hex>, nothing to encode.
        self.close_rule.add_target(targets.ApiDestination(self.close, event=body, path_parameter_values=[INCIDENT_ID],
                                                          query_string_parameters={"identifierType": "alias"},
                                                          dead_letter_queue=self.dead_letters, retry_attempts=RETRY_ATTEMPTS,
                                                          max_event_age=age))


class OnCall(Construct):
    """The configured on-call deliveries; ``dead_letters`` (name -> queue) for the alarms."""

    def __init__(self, scope: Construct, id: str, *, config: AuditorConfig, bus: events.IEventBus, code: lambda_.Code,
                 change_buses: Iterable[Optional[events.IEventBus]] = (None,)) -> None:
        super().__init__(scope, id)
        age = delivery_age(config.incident_quiet_minutes)
        self.dead_letters = {}
        self.pagerduty = self.opsgenie = None
        if config.pagerduty is not None:
            self.pagerduty = PagerDutyDelivery(self, "PagerDuty", settings=config.pagerduty, bus=bus, code=code, age=age,
                                               log_retention=config.log_retention, change_buses=list(change_buses))
            self.dead_letters["PagerDutyUndelivered"] = self.pagerduty.dead_letters
        if config.opsgenie is not None:
            self.opsgenie = OpsgenieDelivery(self, "Opsgenie", settings=config.opsgenie, bus=bus, age=age)
            self.dead_letters["OpsgenieUndelivered"] = self.opsgenie.dead_letters
