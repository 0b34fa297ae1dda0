"""Where findings go: an encrypted SNS topic and its subscribers (e-mail, HTTPS, Slack via
Amazon Q Developer in chat applications), and the dedup table that keeps them from storms."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_chatbot as chatbot
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subs
from constructs import Construct

from .config import AuditorConfig


class Alerting(Construct):
    def __init__(self, scope: Construct, id: str, *, config: AuditorConfig) -> None:
        super().__init__(scope, id)
        # A customer managed key: the AWS managed SNS key cannot be used by CloudWatch alarms,
        # and this key's policy says exactly who may use it.
        self.key = kms.Key(
            self,
            "TopicKey",
            description="Encrypts the Secrets Manager and KMS failure auditor's findings topic",
            enable_key_rotation=True,
            removal_policy=RemovalPolicy.DESTROY,
            pending_window=Duration.days(7),
        )
        for service in ("cloudwatch.amazonaws.com", "events.amazonaws.com"):
            self.key.add_to_resource_policy(
                iam.PolicyStatement(
                    sid=f"Allow{service.split('.')[0].capitalize()}ToPublish",
                    principals=[iam.ServicePrincipal(service)],
                    actions=["kms:Decrypt", "kms:GenerateDataKey*"],
                    resources=["*"],  # in a key policy, "*" means this key
                )
            )
        self.topic = sns.Topic(
            self,
            "Findings",
            display_name="Secrets Manager and KMS failures",
            master_key=self.key,
            enforce_ssl=True,
        )
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
