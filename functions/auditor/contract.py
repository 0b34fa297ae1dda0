"""The names the stack and the function agree on, in one place: ``infra/`` imports this module.

Rename a metric, a dimension, a log field, an environment variable, a table attribute or an
event name here, and both sides follow; `tests/infra/test_contract.py` runs the handler, reads
what it emitted and fails when an alarm, a dashboard widget or the rule reads a name the
function never emits (or the other way round).

This module is data only: no imports beyond the standard library, so infra can import it
without loading the function's dependencies.
"""

from __future__ import annotations

from types import MappingProxyType

#: CloudWatch namespace of the function's metrics (embedded metric format) and its Powertools service.
NAMESPACE = "SecretsKmsAuditor"
SERVICE = "secrets-kms-auditor"


class Env:
    """The function's environment variables (set by infra/function.py, read by auditor/config.py)."""

    TOPIC_ARN = "FINDINGS_TOPIC_ARN"
    TABLE_NAME = "DEDUP_TABLE_NAME"  # the incident state table (it also keeps storms out of the channel)
    QUIET_SECONDS = "INCIDENT_QUIET_SECONDS"
    UPDATE_SECONDS = "INCIDENT_UPDATE_SECONDS"
    CHANGE_RETENTION_DAYS = "CHANGE_RETENTION_DAYS"
    CONSISTENCY_WINDOW_SECONDS = "CONSISTENCY_WINDOW_SECONDS"
    SIMULATE_POLICIES = "SIMULATE_POLICIES"
    TRACE_SUBSEGMENTS = "AUDITOR_TRACE_SUBSEGMENTS"
    POWERTOOLS_SERVICE_NAME = "POWERTOOLS_SERVICE_NAME"
    POWERTOOLS_METRICS_NAMESPACE = "POWERTOOLS_METRICS_NAMESPACE"
    POWERTOOLS_LOG_LEVEL = "POWERTOOLS_LOG_LEVEL"
    #: The function's timeout: the state table's timeouts and the scheduled run's work are sized from it.
    TIMEOUT_SECONDS = "AUDITOR_TIMEOUT_SECONDS"
    #: The incidents bus (infra/oncall.py): every message also goes there as an EventBridge event.
    INCIDENT_BUS_NAME = "INCIDENT_BUS_NAME"


class Metric:
    """Counters (unit Count) unless noted. All carry Powertools' ``service`` dimension."""

    FINDINGS = "Findings"  # dimensions AwsService, Cause
    FINDINGS_TOTAL = "FindingsTotal"
    NOTIFICATIONS = "Notifications"  # SNS messages sent (opened, updated, resolved)
    INCIDENTS_OPENED = "IncidentsOpened"
    INCIDENTS_UPDATED = "IncidentsUpdated"
    INCIDENTS_RESOLVED = "IncidentsResolved"
    OPEN_INCIDENTS = "OpenIncidents"  # gauge, emitted by every scheduled run
    TIME_TO_RESOLVE = "TimeToResolve"  # unit Seconds: opened -> resolved
    JOINED_RECORDS = "JoinedRecords"  # records folded into another record's failure (SM + KMS, rotation)
    PARKED_RECORDS = "ParkedRecords"  # waiting for the record they belong with
    CHANGES_RECORDED = "ChangesRecorded"
    LATE_ATTRIBUTIONS = "LateAttributions"  # an open incident updated: the change that started it arrived after it
    MALFORMED_EVENTS = "MalformedEvents"
    IGNORED_EVENTS = "IgnoredEvents"
    REDELIVERED_EVENTS = "RedeliveredEvents"
    PUBLISH_FAILURES = "PublishFailures"
    ENRICHMENT_FAILURES = "EnrichmentFailures"
    CLASSIFIER_ERRORS = "ClassifierErrors"
    STATE_UNAVAILABLE = "StateUnavailable"  # the state table could not be used: notified anyway
    STATE_RETRIES = "StateRetries"  # a write met another invocation's and was decided again
    STATE_TIMEOUTS = "StateTimeouts"  # a state call outlived its timeout and was sent again (same idempotency token)
    LATE_FAILURES = "LateFailures"  # failures older than the quiet period when they arrived: recorded, not paged
    SWEEP_DEFERRED = "SweepDeferred"  # due incidents the scheduled run left to the next run (time ran out)


class Dimension:
    AWS_SERVICE = "AwsService"
    CAUSE = "Cause"
    SERVICE = "service"  # Powertools' default dimension


class Log:
    """Log messages and fields the dashboard's Logs Insights queries read."""

    FIELD_MESSAGE = "message"  # Powertools' key for the message of every line
    FINDING = "finding"  # message of the one line per failure; field "finding" holds the finding JSON
    FIELD_FINDING = "finding"
    FIELD_OUTCOME = "outcome"  # grouped | opened | updated | joined | parked | retried | redelivered
    GROUPED = "grouped"  # counted into an incident already open (or, without the table, into the batch's)
    OPENED = "opened"  # opened an incident
    UPDATED = "updated"  # counted into an open incident whose update was published
    JOINED = "joined"  # the other half of a failure counted earlier (SM + KMS, rotation): not a failure of its own
    FIELD_INCIDENT_ID = "incident_id"  # on "finding" lines: the incident the failure was counted into
    RETRIED = "retried"  # the publish failed: SQS redelivers the record, which is logged again
    REDELIVERED = "redelivered"  # a record seen before (logged when it was first seen)
    PARKED = "parked"  # waiting for its partner record: logged again when it is counted
    LATE = "late"  # older than the quiet period when it arrived (or than the last resolution): recorded, not paged
    #: Outcomes whose line is not (yet) a counted failure: the Findings metric skips them, and so
    #: do the dashboard's Logs Insights widgets, so that each failure is one line.
    NOT_COUNTED = (RETRIED, REDELIVERED, PARKED, JOINED)
    INCIDENT = "incident"  # message of one line per incident state change; field "incident"
    FIELD_INCIDENT = "incident"
    FIELD_STATUS = "status"  # on "incident" lines: opened | updated | resolved
    FIELD_PUBLISHED = "published"  # on "incident" lines: whether the message reached the topic


class Table:
    """The state table: one partition key, TTL on ``expires_at``, and one sparse global secondary
    index, ``due``: the items the scheduled run must look at (open incidents, messages to retry,
    records waiting for their partner), sharded on ``due_shard`` and sorted by ``due_at`` (epoch
    seconds), so that finding them needs no scan and no single hot item."""

    PARTITION_KEY = "pk"
    TTL_ATTRIBUTE = "expires_at"
    DUE_INDEX = "due"
    DUE_SHARD = "due_shard"
    DUE_AT = "due_at"
    #: Index partitions: each takes its share of the writes that arm a timer (DynamoDB's
    #: per-partition limits); the scheduled run queries each. Changing it strands armed items.
    DUE_SHARDS = 16


class Attribute:
    """SNS message attributes every message carries (subscription filter policies read them)."""

    STATUS = "status"  # opened | updated | resolved
    INCIDENT_ID = "incident_id"
    CAUSE = "cause"
    SEVERITY = "severity"
    SERVICE = "service"
    ACCOUNT = "account"
    REGION = "region"
    CONFIDENCE = "confidence"


class Status:
    OPENED = "opened"
    UPDATED = "updated"
    RESOLVED = "resolved"


# --------------------------------------------------------------------------------------------
# What the detection rule matches (infra/pattern.py builds the pattern from these)
# --------------------------------------------------------------------------------------------
API_CALL = "AWS API Call via CloudTrail"
SERVICE_EVENT = "AWS Service Event via CloudTrail"
#: CloudTrail network activity events (calls through a VPC endpoint, logged for the endpoint's owner
#: when the trail selects them): https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-service-event-cloudtrail.html
NETWORK_ACTIVITY = "AWS Network Activity Event via CloudTrail"
SCHEDULED_EVENT = "Scheduled Event"

#: Secrets Manager service events that report a failure (they carry no errorCode).
FAILURE_SERVICE_EVENTS = ("RotationFailed", "RotationAbandoned", "TestRotationFailed")

#: Services whose failed calls are audited.
AUDITED_SOURCES = ("aws.secretsmanager", "aws.kms")

#: Successful calls that can start an incident ("what changed"), by event source. IAM and
#: Organizations deliver their events to EventBridge in us-east-1 only (see infra/global_events.py).
CHANGE_EVENTS = MappingProxyType({
    "kms.amazonaws.com": (
        "PutKeyPolicy", "DisableKey", "EnableKey", "ScheduleKeyDeletion", "CancelKeyDeletion", "RevokeGrant",
        "RetireGrant", "CreateGrant", "CreateAlias", "UpdateAlias", "DeleteAlias", "DeleteImportedKeyMaterial",
        "ImportKeyMaterial", "DisconnectCustomKeyStore", "ConnectCustomKeyStore", "UpdatePrimaryRegion",
        "ReplicateKey",
    ),
    "secretsmanager.amazonaws.com": (
        "PutResourcePolicy", "DeleteResourcePolicy", "UpdateSecret", "DeleteSecret", "RestoreSecret",
        "RotateSecret", "CancelRotateSecret", "UpdateSecretVersionStage", "ReplicateSecretToRegions",
        "RemoveRegionsFromReplication", "StopReplicationToReplica",
    ),
    "iam.amazonaws.com": (
        "PutRolePolicy", "DeleteRolePolicy", "AttachRolePolicy", "DetachRolePolicy", "PutRolePermissionsBoundary",
        "DeleteRolePermissionsBoundary", "UpdateAssumeRolePolicy", "UpdateRole",
        "PutUserPolicy", "DeleteUserPolicy", "AttachUserPolicy", "DetachUserPolicy", "PutUserPermissionsBoundary",
        "DeleteUserPermissionsBoundary", "AddUserToGroup", "RemoveUserFromGroup", "UpdateAccessKey", "DeleteAccessKey",
        "PutGroupPolicy", "DeleteGroupPolicy", "AttachGroupPolicy", "DetachGroupPolicy",
        "CreatePolicyVersion", "SetDefaultPolicyVersion", "DeletePolicyVersion",
    ),
    "organizations.amazonaws.com": (
        "AttachPolicy", "DetachPolicy", "UpdatePolicy", "DeletePolicy", "EnablePolicyType", "DisablePolicyType",
    ),
    "ec2.amazonaws.com": ("ModifyVpcEndpoint", "DeleteVpcEndpoints"),
})

#: EventBridge ``source`` of each event source above.
CHANGE_SOURCES = tuple("aws." + source.split(".")[0] for source in CHANGE_EVENTS)

#: Event sources whose CloudTrail events EventBridge delivers only in us-east-1 (global services).
GLOBAL_EVENT_SOURCES = ("iam.amazonaws.com", "organizations.amazonaws.com")
GLOBAL_EVENTS_REGION = "us-east-1"


# --------------------------------------------------------------------------------------------
# Incidents on EventBridge, and on-call tools (issue 21). One block, appended: the function
# builds the events (auditor/incident_event.py), infra/oncall.py routes them.
# --------------------------------------------------------------------------------------------
class IncidentEvent:
    """An incident notice as an EventBridge event (docs/events.md has the schema).

    ``SOURCE`` is fixed, not derived from the stack's name: a rule written for one auditor
    matches every deployment, and AWS reserves only the ``aws.`` prefix. Deployments are told
    apart by the bus (``<stackName>-incidents``, also in ``detail.bus``) and by the event's own
    ``account`` and ``region``, which EventBridge keeps when it forwards an event to another bus.
    """

    SOURCE = "secrets-kms-failure-auditor"
    OPENED = "Incident Opened"
    UPDATED = "Incident Updated"
    RESOLVED = "Incident Resolved"
    #: ``detail.schema_version``: raised only for a change a consumer could break on (docs/events.md).
    SCHEMA_VERSION = "1"
    #: Notice status (``Status``) -> detail-type.
    DETAIL_TYPES = MappingProxyType({Status.OPENED: OPENED, Status.UPDATED: UPDATED, Status.RESOLVED: RESOLVED})
    #: The incidents bus's name: ``<stackName>`` + this.
    BUS_SUFFIX = "-incidents"


class ForwarderEnv:
    """The PagerDuty forwarder's environment (infra/oncall.py sets it, auditor/pagerduty_forwarder.py
    reads it). The routing key itself is never in it: only where the secret is."""

    SECRET_ID = "PAGERDUTY_SECRET_ID"  # name or ARN of the secret holding the routing (integration) key
    SECRET_FIELD = "PAGERDUTY_SECRET_FIELD"  # JSON key inside the secret string; "" = the whole string
    DEAD_LETTER_URL = "PAGERDUTY_DEAD_LETTER_URL"  # SQS queue that keeps what could not be delivered
    EVENTS_URL = "PAGERDUTY_EVENTS_URL"  # Events API v2 (alert events)
    CHANGE_EVENTS_URL = "PAGERDUTY_CHANGE_EVENTS_URL"  # Events API v2 (change events)
