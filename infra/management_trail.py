"""Opt-in (context createTrail): a multi-region CloudTrail trail recording management events,
which EventBridge needs to see read-only calls, with a private, encrypted, expiring bucket."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_cloudtrail as cloudtrail
from aws_cdk import aws_s3 as s3
from constructs import Construct


class ManagementTrail(Construct):
    def __init__(self, scope: Construct, id: str) -> None:
        super().__init__(scope, id)
        self.access_logs = s3.Bucket(
            self, "AccessLogs", encryption=s3.BucketEncryption.S3_MANAGED, block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True, versioned=True, removal_policy=RemovalPolicy.RETAIN,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            lifecycle_rules=[s3.LifecycleRule(expiration=Duration.days(365), noncurrent_version_expiration=Duration.days(30))],
        )
        self.bucket = s3.Bucket(
            self, "Logs", encryption=s3.BucketEncryption.S3_MANAGED, block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True, versioned=True, removal_policy=RemovalPolicy.RETAIN,
            server_access_logs_bucket=self.access_logs, server_access_logs_prefix="trail-bucket/",
            lifecycle_rules=[s3.LifecycleRule(
                transitions=[s3.Transition(storage_class=s3.StorageClass.INFREQUENT_ACCESS, transition_after=Duration.days(30))],
                expiration=Duration.days(365), noncurrent_version_expiration=Duration.days(30))],
        )
        self.trail = cloudtrail.Trail(
            self, "Trail", bucket=self.bucket, is_multi_region_trail=True, include_global_service_events=True,
            enable_file_validation=True, management_events=cloudtrail.ReadWriteType.ALL, send_to_cloud_watch_logs=False,
        )
