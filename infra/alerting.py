"""Where findings go: an encrypted SNS topic and its subscribers (e-mail, HTTPS, Slack via
Amazon Q Developer in chat applications), and the dedup table that keeps them from storms."""

from __future__ import annotations

from aws_cdk import Aws, Duration, RemovalPolicy
from aws_cdk import aws_chatbot as chatbot
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subs
from constructs import Construct

from .config import AuditorConfig


#: What the account (through IAM policies) may do with the topic key: administer it (the
#: key administrator actions of KMS's default console policy, so the key can never be locked
#: out) and the two calls SNS makes on a publisher's behalf. No Encrypt/ReEncrypt: nothing
#: but SNS ever encrypts with this key.
ACCOUNT_KEY_ACTIONS = [
    "kms:Create*", "kms:Describe*", "kms:Enable*", "kms:List*", "kms:Put*", "kms:Update*", "kms:Revoke*",
    "kms:Disable*", "kms:Get*", "kms:Delete*", "kms:TagResource", "kms:UntagResource", "kms:ScheduleKeyDeletion",
    "kms:CancelKeyDeletion", "kms:RotateKeyOnDemand",
    "kms:Decrypt", "kms:GenerateDataKey*",
]
#: Services that publish to the encrypted topic themselves: CloudWatch alarm actions. (The
#: detection rule targets the ingestion queue, not the topic, so EventBridge needs no grant:
#: which matters, because for EventBridge-to-encrypted-topic delivery the key policy may not
#: carry the conditions below, see the SNS page cited in topic_key_policy.)
PUBLISHING_SERVICES = ("cloudwatch.amazonaws.com",)


def this_accounts_alarms() -> dict:
    """Confused-deputy conditions for CloudWatch acting for an alarm: only this account's
    alarms in this Region (the stack's own alarms; their names are ASCII, as the keys require)."""
    return {
        "StringEquals": {"aws:SourceAccount": Aws.ACCOUNT_ID},
        "ArnLike": {"aws:SourceArn": f"arn:{Aws.PARTITION}:cloudwatch:{Aws.REGION}:{Aws.ACCOUNT_ID}:alarm:*"},
    }


def topic_key_policy() -> iam.PolicyDocument:
    """The topic key's policy: the account administers it and delegates use through IAM
    (the function's role gets Decrypt/GenerateDataKey* on this key only); this account's alarms
    may publish."""
    statements = [
        iam.PolicyStatement(sid="AccountAdministersAndDelegatesThroughIam", principals=[iam.AccountRootPrincipal()],
                            actions=ACCOUNT_KEY_ACTIONS, resources=["*"]),  # in a key policy, "*" means this key
    ]
    for service in PUBLISHING_SERVICES:
        # Amazon SNS Developer Guide, "Managing Amazon SNS encryption keys and costs", Enable
        # compatibility between event sources from AWS services and encrypted topics
        # (https://docs.aws.amazon.com/sns/latest/dg/sns-key-management.html#compatibility-with-aws-services),
        # whose table of event sources starts with Amazon CloudWatch (cloudwatch.amazonaws.com):
        # "Add the aws:SourceAccount and aws:SourceArn condition keys to the KMS resource policy to
        # further protect the KMS key from confused deputy attacks." The one exception it names is
        # EventBridge: "Adding the aws:SourceAccount, aws:SourceArn, and aws:SourceOrgID to a AWS KMS
        # policy is not supported for EventBridge-to-encrypted topics."
        statements.append(iam.PolicyStatement(
            sid=f"Allow{service.split('.')[0].capitalize()}ToPublish", principals=[iam.ServicePrincipal(service)],
            actions=["kms:Decrypt", "kms:GenerateDataKey*"], resources=["*"], conditions=this_accounts_alarms()))
    return iam.PolicyDocument(statements=statements)


class Alerting(Construct):
    def __init__(self, scope: Construct, id: str, *, config: AuditorConfig) -> None:
        super().__init__(scope, id)
        # A customer managed key: the AWS managed SNS key cannot be used by CloudWatch alarms,
        # and this key's policy says exactly who may use it. The policy is written out rather
        # than CDK's default, which grants the account "kms:*": no "*" action anywhere.
        self.key = kms.Key(
            self,
            "TopicKey",
            description="Encrypts the Secrets Manager and KMS failure auditor's findings topic",
            enable_key_rotation=True,
            removal_policy=RemovalPolicy.DESTROY,
            pending_window=Duration.days(7),
            policy=topic_key_policy(),
        )
        self.topic = sns.Topic(
            self,
            "Findings",
            display_name="Secrets Manager and KMS failures",
            master_key=self.key,
            enforce_ssl=True,
        )
        # enforce_ssl gives the topic a policy of its own, which replaces SNS's default policy:
        # CloudWatch alarm actions then need an explicit Allow (the function's role publishes
        # through its IAM policy). Only this account's alarms, in this Region: Amazon CloudWatch
        # User Guide, "Notifying users on alarm changes", Preventing confused deputy security issues
        # (https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/Notify_Users_Alarm_Changes.html#SNS_Confused_Deputy):
        # "The value of aws:SourceArn must be the ARN of the alarm that is sending notifications."
        # Its example topic policy has both keys, ArnLike aws:SourceArn "arn:aws:cloudwatch:
        # <region>:<account>:alarm:*" and StringEquals aws:SourceAccount "<account>".
        self.topic.add_to_resource_policy(iam.PolicyStatement(
            sid="AllowThisAccountsAlarmsToPublish", principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
            actions=["sns:Publish"], resources=[self.topic.topic_arn], conditions=this_accounts_alarms(),
        ))
        for address in config.notification_emails:
            self.topic.add_subscription(subs.EmailSubscription(address))
        for url in config.https_endpoints:
            self.topic.add_subscription(subs.UrlSubscription(url, protocol=sns.SubscriptionProtocol.HTTPS))
        if config.slack is not None:
            chatbot.SlackChannelConfiguration(
                self,
                "Slack",
                slack_channel_configuration_name=f"{config.stack_name}-findings"[:128],
                slack_workspace_id=config.slack.workspace_id,
                slack_channel_id=config.slack.channel_id,
                notification_topics=[self.topic],
                # Notifications only: the channel cannot run commands against the account.
                guardrail_policies=[iam.ManagedPolicy.from_aws_managed_policy_name("AWSDenyAll")],
                logging_level=chatbot.LoggingLevel.ERROR,
            )
        # Dedup state is a cache: on-demand, expiring by TTL, nothing to keep on deletion.
        self.table = dynamodb.Table(
            self,
            "Dedup",
            partition_key=dynamodb.Attribute(name="pk", type=dynamodb.AttributeType.STRING),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            time_to_live_attribute="expires_at",
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(point_in_time_recovery_enabled=True),
            encryption=dynamodb.TableEncryption.AWS_MANAGED,
            removal_policy=RemovalPolicy.DESTROY,
        )
