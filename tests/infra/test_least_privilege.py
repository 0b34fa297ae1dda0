"""Least privilege, read from the synthesized template: what the function may do is what its
code calls and nothing more; no statement anywhere allows a "*" action; no principal of the
stack may read a secret value, decrypt with any key but the topic key, or change Secrets
Manager or KMS."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from .conftest import REPO, resources
from .policies import actions, as_list, every_statement, grants, identity_statements, render, role_statements, text

pytestmark = pytest.mark.infra

TEMPLATES = ["template", "full_template"]

#: What the Lambda never imports: the CLI package and its history readers (local credentials).
CLI_PACKAGE = REPO / "functions" / "auditor" / "cli"
#: The PagerDuty forwarder: a function of its own, with a role of its own (tests/infra/test_oncall.py).
FORWARDER = REPO / "functions" / "auditor" / "pagerduty_forwarder.py"


def cli_only(path: Path) -> bool:
    return CLI_PACKAGE in path.parents


def not_the_auditors(path: Path) -> bool:
    """Modules the auditor function never imports: the CLI's, and the PagerDuty forwarder."""
    return cli_only(path) or path == FORWARDER


#: APIs authorized by another IAM action than their own name.
AUTHORIZED_AS = {"sns:PublishBatch": "sns:Publish",
                 # IAM authorizes each action of a transaction as that action (there is no TransactWriteItems action)
                 "dynamodb:TransactWriteItems": "dynamodb:UpdateItem"}
#: APIs that no IAM policy can allow or deny ("No permissions are required to perform this
#: operation", STS API reference): the enricher's fallback when it runs outside Lambda.
NEEDS_NO_PERMISSION = {"sts:GetCallerIdentity"}
#: Secrets Manager and KMS actions the function may hold, and on what.
READ_ONLY_LOOKUPS = {"secretsmanager:DescribeSecret", "kms:DescribeKey"}
TOPIC_KEY_USE = {"kms:Decrypt", "kms:GenerateDataKey*"}

#: Never granted to anyone by this stack (checked against wildcards too: "kms:Re*" would match).
FORBIDDEN = [
    "secretsmanager:GetSecretValue", "secretsmanager:BatchGetSecretValue", "secretsmanager:PutSecretValue",
    "secretsmanager:UpdateSecret", "secretsmanager:CreateSecret", "secretsmanager:DeleteSecret",
    "secretsmanager:RestoreSecret", "secretsmanager:RotateSecret", "secretsmanager:CancelRotateSecret",
    "secretsmanager:PutResourcePolicy", "secretsmanager:DeleteResourcePolicy", "secretsmanager:UpdateSecretVersionStage",
    "secretsmanager:TagResource", "secretsmanager:ReplicateSecretToRegions", "secretsmanager:GetRandomPassword",
    "kms:Encrypt", "kms:ReEncryptFrom", "kms:ReEncryptTo", "kms:GenerateMac", "kms:Sign", "kms:DeriveSharedSecret",
    "kms:CreateKey", "kms:CreateGrant", "kms:PutKeyPolicy", "kms:ScheduleKeyDeletion", "kms:DisableKey",
    "kms:EnableKey", "kms:ImportKeyMaterial", "kms:UpdateKeyDescription",
    "iam:PassRole", "iam:CreateRole", "iam:AttachRolePolicy", "iam:PutRolePolicy",
    "dynamodb:Scan", "dynamodb:DeleteTable", "dynamodb:UpdateTable", "dynamodb:DeleteItem",
    "cloudwatch:PutMetricData",
]


def function_role_id(template: dict) -> str:
    (fn,) = [f for f in resources(template, "AWS::Lambda::Function").values()
             if f["Properties"].get("Handler") == "auditor.handler.handler"]
    return fn["Properties"]["Role"]["Fn::GetAtt"][0]


def logical_id_of(template: dict, kind: str, prefix: str) -> str:
    (logical_id,) = [k for k in resources(template, kind) if k.startswith(prefix)]
    return logical_id


def api_calls_of_the_function() -> set[str]:
    """IAM actions for every AWS API the Lambda's modules call (botocore's own operation names)."""
    import botocore.session
    from botocore import xform_name

    session = botocore.session.get_session()
    by_method: dict[str, set[str]] = {}
    for service in ("dynamodb", "sns", "secretsmanager", "kms", "iam", "sts", "sqs", "logs", "cloudwatch", "s3", "cloudtrail",
                    "events"):
        model = session.get_service_model(service)
        for operation in model.operation_names:
            by_method.setdefault(xform_name(operation), set()).add(f"{model.signing_name}:{operation}")
    calls: set[str] = set()
    sources = [p for p in (REPO / "functions" / "auditor").rglob("*.py") if not not_the_auditors(p)]
    for path in sources:
        text_ = path.read_text()
        # client.describe_key(...), and the state table's edge: self.table.call("update_item", ...)
        called = set(re.findall(r"\.([a-z_][a-z0-9_]*)\(", text_)) | set(re.findall(r"[._]call\(\s*\"([a-z_]+)\"", text_))
        for name in called:
            calls |= {AUTHORIZED_AS.get(a, a) for a in by_method.get(name, ())}
    return calls


def test_cli_only_modules_are_not_imported_by_the_lambda_path():
    """The exclusion above is only sound if the function never reaches the CLI's modules."""
    assert cli_only(CLI_PACKAGE / "s3_trail.py") and cli_only(CLI_PACKAGE / "lookup_events.py")
    for path in (REPO / "functions" / "auditor").rglob("*.py"):
        if not cli_only(path):
            assert not re.search(r"^\s*(from\s+\S*\bcli\b\S*\s+import|import\s+\S*\bcli\b)", path.read_text(), re.MULTILINE), path
        # nor the PagerDuty forwarder, whose Secrets Manager read the auditor's role may never make
        if not not_the_auditors(path):
            assert not re.search(r"^\s*(from\s+\S*pagerduty_forwarder\s+import|import\s+\S*pagerduty_forwarder"
                                 r"|from\s+\S+\s+import\s+.*\bpagerduty_forwarder\b)", path.read_text(), re.MULTILINE), path


def test_the_function_may_call_every_api_its_code_calls(full_template):
    calls = api_calls_of_the_function()
    assert {"dynamodb:UpdateItem", "sns:Publish", "secretsmanager:DescribeSecret"} <= calls  # the scan finds calls
    granted = [a for s in role_statements(full_template, function_role_id(full_template)) if s.get("Effect") == "Allow"
               for a in actions(s)]
    missing = {call for call in calls - NEEDS_NO_PERMISSION if not any(grants(g, call) for g in granted)}
    assert missing == set(), f"the function's code calls {sorted(missing)} but its role does not allow them"


def test_the_state_statement_is_exactly_what_the_code_calls_on_its_table(template):
    """No more than auditor/storage.py and the modules over it call (no Scan, GetItem, DeleteItem,
    BatchWriteItem left over; Query on the due index only)."""
    from infra.state import INDEX_ACTIONS, STATE_ACTIONS

    called = {a for a in api_calls_of_the_function() if a.startswith("dynamodb:")}
    assert called == set(STATE_ACTIONS) | set(INDEX_ACTIONS)
    # TransactWriteItems is authorized per item action: only Put and Update items (storage.py builds
    # both, as "Put" and "Update"), so PutItem and UpdateItem cover them.
    storage = (REPO / "functions" / "auditor" / "storage.py").read_text()
    assert "transact_write_items" in storage and '{"Put": put}' in storage and '{"Update": update}' in storage
    assert {"dynamodb:PutItem", "dynamodb:UpdateItem"} <= called
    for part in ("storage.py", "joins.py", "change_log.py", "sweep.py", "pipeline.py"):
        text_ = (REPO / "functions" / "auditor" / part).read_text()
        assert not re.search(r"[\"'](Delete|ConditionCheck)[\"']\s*:", text_), f"{part}: a transaction item of another kind needs its action"
    # the one Query is on the due index (auditor/sweep.py names it)
    assert "IndexName" in (REPO / "functions" / "auditor" / "sweep.py").read_text()


@pytest.mark.parametrize("which", TEMPLATES)
def test_the_function_role_holds_exactly_these_statements(which, request):
    template = request.getfixturevalue(which)
    role = function_role_id(template)
    by_sid = {s.get("Sid"): s for s in role_statements(template, role)}
    key = {"Fn::GetAtt": [logical_id_of(template, "AWS::KMS::Key", "AlertingTopicKey"), "Arn"]}
    topic = {"Ref": logical_id_of(template, "AWS::SNS::Topic", "AlertingFindings")}
    table = {"Fn::GetAtt": [logical_id_of(template, "AWS::DynamoDB::Table", "IncidentStateTable"), "Arn"]}
    log_group = {"Fn::GetAtt": [logical_id_of(template, "AWS::Logs::LogGroup", "AuditorLogs"), "Arn"]}

    def pinned(sid: str, expected_actions: set[str], resource) -> None:
        stmt = by_sid.pop(sid)
        assert stmt["Effect"] == "Allow" and "Condition" not in stmt, stmt
        assert set(actions(stmt)) == expected_actions, sid
        assert stmt["Resource"] == resource, sid

    pinned("PublishFindings", {"sns:Publish"}, topic)
    pinned("UseTopicKeyForPublish", TOPIC_KEY_USE, key)
    pinned("IncidentState", {"dynamodb:BatchGetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"}, table)
    pinned("IncidentStateDueIndex", {"dynamodb:Query"}, {"Fn::Join": ["", [table, "/index/due"]]})
    # incident events, on the stack's incidents bus only (docs/events.md)
    pinned("PublishIncidentEvents", {"events:PutEvents"},
           {"Fn::GetAtt": [logical_id_of(template, "AWS::Events::EventBus", "IncidentsBus"), "Arn"]})
    pinned("WriteOwnLogs", {"logs:CreateLogStream", "logs:PutLogEvents"}, log_group)
    pinned("DescribeSecretsNeverRead", {"secretsmanager:DescribeSecret"},
           {"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, ":secretsmanager:*:", {"Ref": "AWS::AccountId"}, ":secret:*"]]})
    pinned("DescribeKeys", {"kms:DescribeKey"},
           {"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, ":kms:*:", {"Ref": "AWS::AccountId"}, ":key/*"]]})
    def account_arns(*kinds):
        return [{"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, ":iam::", {"Ref": "AWS::AccountId"}, f":{kind}/*"]]}
                for kind in kinds]

    # what governs a denied caller (read only): its boundary and managed policies, whom a policy governs
    stmt = by_sid.pop("ReadWhatGovernsCallers")
    assert stmt["Effect"] == "Allow" and "Condition" not in stmt
    assert set(actions(stmt)) == {"iam:GetRole", "iam:ListAttachedRolePolicies", "iam:GetUser", "iam:ListAttachedUserPolicies",
                                  "iam:ListGroupsForUser", "iam:ListAttachedGroupPolicies"}
    assert sorted(map(json.dumps, stmt["Resource"])) == sorted(map(json.dumps, account_arns("role", "user", "group")))
    pinned("ListWhomAPolicyGoverns", {"iam:ListEntitiesForPolicy"}, account_arns("policy")[0])
    if which == "full_template":  # simulatePolicies: true
        stmt = by_sid.pop("SimulatePolicies")
        assert set(actions(stmt)) == {"iam:SimulatePrincipalPolicy"}  # the only IAM call enrich.py makes
    assert "SimulatePolicies" not in by_sid

    # What CDK adds without a Sid: X-Ray (no resource-level permissions) and the SQS event source.
    rest = by_sid.pop(None, None)
    unnamed = [s for s in role_statements(template, role) if "Sid" not in s]
    assert by_sid == {}, f"unexpected statements {sorted(by_sid)}"
    assert rest is not None
    kinds = sorted(tuple(sorted(actions(s))) for s in unnamed)
    assert kinds == [
        ("sqs:ChangeMessageVisibility", "sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:GetQueueUrl", "sqs:ReceiveMessage"),
        ("xray:PutTelemetryRecords", "xray:PutTraceSegments"),
    ]
    for s in unnamed:
        if actions(s)[0].startswith("sqs:"):
            assert s["Resource"]["Fn::GetAtt"][0].startswith("IngestionEvents")
        else:
            assert s["Resource"] == "*"


@pytest.mark.parametrize("which", TEMPLATES)
def test_no_statement_anywhere_allows_a_wildcard_action(which, request):
    """Identity, key, queue, topic and bucket policies alike. A Deny may be broad, and the only
    broad ones are the TLS-only guards (deny everything over plain HTTP)."""
    template = request.getfixturevalue(which)
    seen = 0
    for logical_id, kind, stmt in every_statement(template):
        seen += 1
        assert "NotAction" not in stmt and "NotPrincipal" not in stmt, (logical_id, stmt)
        for action in actions(stmt):
            if stmt["Effect"] == "Allow":
                assert action != "*" and not action.endswith(":*"), (logical_id, stmt)
            elif action == "*" or action.endswith(":*"):
                assert stmt["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}, (logical_id, stmt)
    assert seen >= 10


@pytest.mark.parametrize("which", TEMPLATES)
def test_forbidden_actions_are_allowed_to_no_one(which, request):
    """Granted to any principal the stack creates or names. The topic key's statement for the
    account itself is key administration delegated to the account's IAM (pinned below)."""
    template = request.getfixturevalue(which)
    for logical_id, kind, stmt in every_statement(template):
        if stmt["Effect"] != "Allow" or (kind == "AWS::KMS::Key" and ":root" in text(stmt.get("Principal"))):
            continue
        for action in actions(stmt):
            hit = [f for f in FORBIDDEN if grants(action, f)]
            assert not hit, f"{logical_id} ({kind}) allows {action}, which covers {hit}"
            # a new incident is written whole: PutItem, by the auditor on its state table only (pinned below)
            if grants(action, "dynamodb:PutItem"):
                assert stmt.get("Sid") == "IncidentState", f"{logical_id} ({kind}) allows {action}"


@pytest.mark.parametrize("which", TEMPLATES)
def test_identity_policies_touch_secrets_manager_and_kms_only_read_only_or_on_the_topic_key(which, request):
    template = request.getfixturevalue(which)
    key = {"Fn::GetAtt": [logical_id_of(template, "AWS::KMS::Key", "AlertingTopicKey"), "Arn"]}
    for stmt in identity_statements(template):
        if stmt["Effect"] != "Allow":
            continue
        for action in actions(stmt):
            if not action.startswith(("secretsmanager:", "kms:")):
                continue
            assert action in READ_ONLY_LOOKUPS | TOPIC_KEY_USE, stmt
            if action in TOPIC_KEY_USE:  # Decrypt (and data keys) on the topic's own key, nothing else
                assert as_list(stmt["Resource"]) == [key], stmt


def test_topic_key_policy_names_who_may_use_the_key(template):
    key = template["Resources"][logical_id_of(template, "AWS::KMS::Key", "AlertingTopicKey")]["Properties"]
    by_sid = {s["Sid"]: s for s in key["KeyPolicy"]["Statement"]}
    assert set(by_sid) == {"AccountAdministersAndDelegatesThroughIam", "AllowCloudwatchToPublish"}
    account = by_sid["AccountAdministersAndDelegatesThroughIam"]
    assert "root" in text(account["Principal"]) and "kms:*" not in actions(account)
    # Never lockable: the account can always put a new key policy and cancel a deletion.
    assert any(grants(a, "kms:PutKeyPolicy") for a in actions(account))
    assert "kms:CancelKeyDeletion" in actions(account)
    # ...but nothing encrypts with it except SNS: no Encrypt, ReEncrypt, Sign, MAC for anyone.
    for data_plane in ("kms:Encrypt", "kms:ReEncryptFrom", "kms:ReEncryptTo", "kms:Sign", "kms:GenerateMac"):
        assert not any(grants(a, data_plane) for s in by_sid.values() for a in actions(s)), data_plane
    alarms = by_sid["AllowCloudwatchToPublish"]
    assert alarms["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
    assert set(actions(alarms)) == TOPIC_KEY_USE
    # Confused deputy: CloudWatch may use the key only for this account's alarms in this Region
    # (SNS documents both keys as supported in the key policy for every event source but EventBridge).
    assert set(alarms["Condition"]) == {"StringEquals", "ArnLike"}
    assert alarms["Condition"]["StringEquals"] == {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}
    assert {k: render(v) for k, v in alarms["Condition"]["ArnLike"].items()} == {
        "aws:SourceArn": "arn:${AWS::Partition}:cloudwatch:${AWS::Region}:${AWS::AccountId}:alarm:*"}


def test_chat_channel_cannot_act_on_the_account(full_template):
    (config,) = resources(full_template, "AWS::Chatbot::SlackChannelConfiguration").values()
    props = config["Properties"]
    assert "AWSDenyAll" in text(props["GuardrailPolicies"])
    role_id = props["IamRoleArn"]["Fn::GetAtt"][0]
    role = full_template["Resources"][role_id]["Properties"]
    assert "ManagedPolicyArns" not in role and "Policies" not in role
    assert role_statements(full_template, role_id) == []
    assert role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {"Service": "chatbot.amazonaws.com"}


def test_every_acknowledged_cdk_nag_finding_has_a_specific_reason(full_synth):
    """Acknowledgments as recorded in the cloud assembly (not as written in the source)."""
    _, _, error, outdir = full_synth
    assert error is None, error
    import json

    metadata = json.loads(next(Path(outdir).glob("*.metadata.json")).read_text())
    acknowledged = {rule: reason for entries in metadata.values() for e in entries
                    if e["type"] == "aws:cdk:acknowledged-rules" for rule, reason in e["data"].items()}
    assert acknowledged, "no acknowledgments recorded"
    for rule, reason in acknowledged.items():
        assert rule.startswith("Annotation::AwsSolutions-"), rule
        assert len(reason) >= 40 and "TODO" not in reason, (rule, reason)
        if "AwsSolutions-IAM5" in rule:  # wildcard findings are acknowledged one wildcard at a time
            assert re.search(r"IAM5\[(Resource|Action)::.+\]$", rule), rule
    assert len(set(acknowledged.values())) >= len({r.split("[")[0] for r in acknowledged}), "reasons are copy-pasted"
