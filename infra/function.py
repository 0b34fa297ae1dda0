"""The auditor function: Python 3.13 on arm64, Powertools from its official public layer,
a role that can read metadata but never a secret."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Optional

import jsii
from aws_cdk import Annotations, AssetHashType, Aws, BundlingOptions, Duration, ILocalBundling, RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_ssm as ssm
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_sns as sns
from constructs import Construct

from auditor.contract import NAMESPACE, SERVICE, Env, Table

from . import bytecode
from .config import AuditorConfig
from .state import INDEX_ACTIONS, STATE_ACTIONS

ROOT = Path(__file__).resolve().parent.parent
#: The function's runtime; its bytecode is built by an interpreter of the same version.
RUNTIME = lambda_.Runtime.PYTHON_3_13
#: The function's timeout (its environment says it: the state table's timeouts and the scheduled
#: run's pages are sized from it).
TIMEOUT = Duration.seconds(30)


@jsii.implements(ILocalBundling)
class _PackageBundler:
    """Builds the asset on this machine (no Docker): infra/bytecode.py."""

    def __init__(self, directory: Path, interpreter: Optional[str]) -> None:
        self.directory, self.interpreter = directory, interpreter

    def try_bundle(self, output_dir: str, options: BundlingOptions) -> bool:  # noqa: ARG002 - the interface's
        bytecode.build(self.directory, Path(output_dir), self.interpreter)
        return True


def function_code(directory: Path = ROOT / "functions", *, interpreter: Optional[str] = None,
                  scope: Optional[Construct] = None) -> lambda_.Code:
    """The function's code asset: the ``auditor`` package's sources under ``directory``, with
    their bytecode when ``interpreter`` (default: one of the runtime's version, found on this
    machine) can compile it; without, a warning on ``scope``. The asset's hash is its content's."""
    version = RUNTIME.name.removeprefix("python")
    interpreter = interpreter or bytecode.interpreter_for(version)
    if interpreter is None and scope is not None:
        Annotations.of(scope).add_warning_v2(
            "auditor:no-bytecode",
            f"No Python {version} interpreter here (none runs the CDK app, no python{version} on the PATH): the "
            f"function ships its sources without bytecode, and each cold start compiles them (about 50 ms more). "
            f"Synthesize with Python {version} to ship the bytecode.")
    return lambda_.Code.from_asset(
        str(directory), asset_hash_type=AssetHashType.OUTPUT,
        bundling=BundlingOptions(image=RUNTIME.bundling_image, local=_PackageBundler(directory, interpreter)))


def powertools_version(requirements: Path = ROOT / "requirements.txt") -> str:
    """The aws-lambda-powertools pin: the layer must be the version the tests ran against."""
    match = re.search(r"^aws-lambda-powertools==([\w.]+)\s*$", requirements.read_text(), re.MULTILINE)
    if not match:
        raise ValueError(f"{requirements} does not pin aws-lambda-powertools==X.Y.Z")
    return match.group(1)


def environment(config: AuditorConfig, *, topic_arn: str, table_name: str, incident_bus_name: str) -> dict[str, str]:
    """The function's environment (auditor/config.py reads it; the names are ``auditor.contract.Env``)."""
    return {
        Env.TOPIC_ARN: topic_arn,
        Env.INCIDENT_BUS_NAME: incident_bus_name,  # a literal (the bus is named): no token, no dependency
        Env.TABLE_NAME: table_name,  # the incident state table (the variable kept its first name)
        Env.QUIET_SECONDS: str(config.incident_quiet_minutes * 60),
        Env.UPDATE_SECONDS: str(config.incident_update_minutes * 60),
        Env.CHANGE_RETENTION_DAYS: str(config.change_retention_days),
        Env.CONSISTENCY_WINDOW_SECONDS: str(config.consistency_window_minutes * 60),
        Env.SIMULATE_POLICIES: "true" if config.simulate_policies else "false",
        Env.POWERTOOLS_SERVICE_NAME: SERVICE,
        Env.POWERTOOLS_METRICS_NAMESPACE: NAMESPACE,
        Env.POWERTOOLS_LOG_LEVEL: "INFO",
        Env.TIMEOUT_SECONDS: str(int(TIMEOUT.to_seconds())),
    }


class AuditorFunction(Construct):
    def __init__(self, scope: Construct, id: str, *, config: AuditorConfig, topic: sns.ITopic, topic_key: kms.IKey,
                 table: dynamodb.ITable, incident_bus: events.IEventBus, incident_bus_name: str) -> None:
        super().__init__(scope, id)
        # Pseudo parameters, not the stack's env: the template is the same whether the app knew the
        # account at synthesis or not (cdk-nag acknowledgments name these exact resources).
        partition, account = Aws.PARTITION, Aws.ACCOUNT_ID
        self.log_group = logs.LogGroup(self, "Logs", retention=config.log_retention, removal_policy=RemovalPolicy.DESTROY)
        self.role = iam.Role(self, "Role", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
                             description="Secrets Manager and KMS failure auditor: metadata reads, never secret values")
        #: The package's asset, shared with the stack's other functions of this package (infra/oncall.py).
        self.code = function_code(scope=self)
        layer_arn = ssm.StringParameter.value_for_string_parameter(
            self, f"/aws/service/powertools/python/arm64/python3.13/{powertools_version()}"
        )
        self.function = lambda_.Function(
            self,
            "Function",
            runtime=RUNTIME,
            architecture=lambda_.Architecture.ARM_64,
            handler="auditor.handler.handler",
            code=self.code,
            layers=[lambda_.LayerVersion.from_layer_version_arn(self, "Powertools", layer_arn)],
            memory_size=256,
            timeout=TIMEOUT,
            tracing=lambda_.Tracing.ACTIVE,
            role=self.role,
            log_group=self.log_group,
            environment=environment(config, topic_arn=topic.topic_arn, table_name=table.table_name,
                                    incident_bus_name=incident_bus_name),
        )
        # Least privilege, statement by statement (no managed policies, no "*" actions).
        self.role.add_to_policy(iam.PolicyStatement(
            sid="WriteOwnLogs", actions=["logs:CreateLogStream", "logs:PutLogEvents"],
            resources=[self.log_group.log_group_arn]))
        self.role.add_to_policy(iam.PolicyStatement(sid="PublishFindings", actions=["sns:Publish"], resources=[topic.topic_arn]))
        self.role.add_to_policy(iam.PolicyStatement(
            sid="UseTopicKeyForPublish", actions=["kms:GenerateDataKey*", "kms:Decrypt"], resources=[topic_key.key_arn]))
        self.role.add_to_policy(iam.PolicyStatement(
            sid="PublishIncidentEvents", actions=["events:PutEvents"], resources=[incident_bus.event_bus_arn]))
        self.role.add_to_policy(iam.PolicyStatement(sid="IncidentState", actions=list(STATE_ACTIONS), resources=[table.table_arn]))
        self.role.add_to_policy(iam.PolicyStatement(sid="IncidentStateDueIndex", actions=list(INDEX_ACTIONS),
                                                    resources=[f"{table.table_arn}/index/{Table.DUE_INDEX}"]))
        self.role.add_to_policy(iam.PolicyStatement(
            sid="DescribeSecretsNeverRead", actions=["secretsmanager:DescribeSecret"],
            resources=[f"arn:{partition}:secretsmanager:*:{account}:secret:*"]))
        self.role.add_to_policy(iam.PolicyStatement(
            sid="DescribeKeys", actions=["kms:DescribeKey"], resources=[f"arn:{partition}:kms:*:{account}:key/*"]))
        # What governs a denied caller (auditor/enrich.py, Enricher.links/entities): its boundary, its
        # attached and its groups' managed policies, and whom a changed policy is attached to. Reads
        # only, on this account's roles, users, groups and policies.
        self.role.add_to_policy(iam.PolicyStatement(
            sid="ReadWhatGovernsCallers",
            actions=["iam:GetRole", "iam:ListAttachedRolePolicies", "iam:GetUser", "iam:ListAttachedUserPolicies",
                     "iam:ListGroupsForUser", "iam:ListAttachedGroupPolicies"],
            resources=[f"arn:{partition}:iam::{account}:role/*", f"arn:{partition}:iam::{account}:user/*",
                       f"arn:{partition}:iam::{account}:group/*"]))
        self.role.add_to_policy(iam.PolicyStatement(
            sid="ListWhomAPolicyGoverns", actions=["iam:ListEntitiesForPolicy"],
            resources=[f"arn:{partition}:iam::{account}:policy/*"]))
        if config.simulate_policies:
            self.role.add_to_policy(iam.PolicyStatement(
                sid="SimulatePolicies", actions=["iam:SimulatePrincipalPolicy"],
                resources=[f"arn:{partition}:iam::{account}:role/*", f"arn:{partition}:iam::{account}:user/*"]))
