"""Every cause matches its own fixtures, and no other cause steals them.

The fixtures are realistic CloudTrail records under tests/fixtures/<cause-id>/ (see the
README there); a ``.facts`` sidecar holds what enrichment would have found.
"""

from __future__ import annotations

import ast
import json
import re
import sys
from pathlib import Path

import pytest

from auditor.causes import BY_ID, CATALOG
from auditor.classify import _finding, candidates, classify
from auditor.facts import Facts, KeyFacts, SecretFacts, SimulationFacts
from auditor.records import FailedCall, parse_record

from .conftest import FIXTURES, fixture_records

ARCHITECTURE = Path(__file__).resolve().parents[3] / "shared" / "ARCHITECTURE.md"
RECORDS = fixture_records()
NEEDS_FACTS = {"consistency.not-yet-visible", "access-denied.condition"}


def _ids(rows):
    return [f"{cause}/{path.stem}" for cause, path, _, _ in rows]


def test_catalog_has_exactly_the_architecture_cause_ids():
    if not ARCHITECTURE.exists():
        pytest.skip("../shared/ARCHITECTURE.md is not beside the repo")
    table = ARCHITECTURE.read_text().split("## The cause catalog", 1)[1].split("## The finding", 1)[0]
    documented = set()
    for cell in re.findall(r"^\| ([^|]+) \|", table, re.MULTILINE):
        documented.update(i.strip() for i in cell.split(",") if re.fullmatch(r"\s*[a-z-]+(\.[a-z-]+)?\s*", i))
    documented.discard("id")
    assert documented == set(BY_ID)


@pytest.mark.parametrize("cause", CATALOG, ids=lambda c: c.id)
def test_each_cause_is_a_complete_unit(cause):
    assert cause.title and cause.topic and cause.doc_url.startswith("https://docs.aws.amazon.com/")
    assert cause.severity in {"critical", "high", "medium", "low", "info"}


CAUSES_DIR = Path(__file__).resolve().parents[2] / "functions" / "auditor" / "causes"
CAUSE_MODULES = sorted(p for p in CAUSES_DIR.glob("*.py") if not p.name.startswith("_"))


def _imports(path: Path):
    """(line, what) for every import statement of a module, at any depth (a function's too)."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, 0, alias.name
        elif isinstance(node, ast.ImportFrom):
            yield node.lineno, node.level, node.module or ""


#: The catalog's shared modules: what causes may import (each a job of its own).
SHARED = frozenset(p.stem for p in CAUSES_DIR.glob("_*.py") if p.stem != "__init__")


@pytest.mark.parametrize("path", CAUSE_MODULES, ids=lambda p: p.stem)
def test_a_cause_imports_only_the_shared_helper_modules_and_the_standard_library(path):
    """Causes stay independent: what they share lives in the catalog's shared modules (``_base``,
    ``_arns``, ``_statements``, ``_denied``, ``_key_state``), and a cause imports nothing else of
    the project (no other cause, not the parser, not the facts directly)."""
    wrong = []
    for line, level, module in _imports(path):
        if level == 1 and module in SHARED:
            continue
        if level == 0 and (module == "__future__" or module.partition(".")[0] in sys.stdlib_module_names):
            continue
        wrong.append(f"line {line}: {'.' * level}{module}")
    assert not wrong, f"{path.name} imports {wrong}; import shared helpers from {sorted(SHARED)} only"
    assert "importlib" not in path.read_text() and "__import__" not in path.read_text()


def test_the_import_check_catches_what_it_must():
    bad = CAUSES_DIR.parent.parent.parent / "tests" / "unit" / "_probe_cause.py"
    try:
        for source in ("from ._other_helper import said\n", "from ..records import FailedCall\n", "from . import throttling\n",
                       "import auditor.records\n", "def f():\n    from .throttling import match\n", "import boto3\n"):
            bad.write_text(source)
            with pytest.raises(AssertionError):
                test_a_cause_imports_only_the_shared_helper_modules_and_the_standard_library(bad)
        bad.write_text("from __future__ import annotations\nimport re\nfrom ._base import Cause\n")
        test_a_cause_imports_only_the_shared_helper_modules_and_the_standard_library(bad)
    finally:
        bad.unlink(missing_ok=True)


def test_every_cause_module_defines_a_cause_and_the_shared_modules_are_the_known_ones():
    helpers = {p.stem for p in CAUSES_DIR.glob("_*.py")} - {"__init__"}
    assert helpers == {"_base", "_arns", "_statements", "_denied", "_key_state"}, sorted(helpers)
    assert {p.stem for p in CAUSE_MODULES} == {c.id.replace(".", "_").replace("-", "_") for c in CATALOG}


@pytest.mark.parametrize("cause", [c.id for c in CATALOG])
def test_each_cause_has_at_least_three_fixtures(cause):
    count = len(list((FIXTURES / cause).glob("*.json")))
    assert count >= 3, f"{cause} has {count} fixtures"


@pytest.mark.parametrize("cause, path, record, facts", RECORDS, ids=_ids(RECORDS))
def test_fixture_is_classified_as_its_cause(cause, path, record, facts):
    call = parse_record(record, path.name)
    if cause == "success":
        assert not isinstance(call, FailedCall), "a successful call must not become a finding"
        return
    assert isinstance(call, FailedCall), call
    found = classify(call, Facts.from_dict(facts) if facts and cause in NEEDS_FACTS else None)
    assert found.cause == cause, f"{path.name}: {found.cause} stole it; evidence: {found.evidence}"
    assert found.evidence and found.remediation and found.fingerprint


@pytest.mark.parametrize(
    "cause, path, record, facts", [r for r in RECORDS if r[3] is not None], ids=_ids([r for r in RECORDS if r[3] is not None])
)
def test_facts_confirm_the_cause_with_high_confidence(cause, path, record, facts):
    found = classify(parse_record(record), Facts.from_dict(facts))
    assert found.cause == cause
    assert found.confidence in ("high", "medium")


@pytest.mark.parametrize("cause", sorted(NEEDS_FACTS))
def test_causes_that_need_facts_never_fire_on_the_record_alone(cause):
    for c, path, record, _ in RECORDS:
        call = parse_record(record)
        if isinstance(call, FailedCall):
            assert classify(call).cause != cause, path


def test_partial_arn_is_a_low_confidence_heuristic_until_confirmed():
    rows = [r for r in RECORDS if r[0] == "secret.partial-arn"]
    if not rows:
        pytest.skip("no partial-ARN fixtures yet")
    for _, path, record, _ in rows:
        found = classify(parse_record(record))
        assert found.confidence == "low" and any("heuristic" in e for e in found.evidence), path



def test_kms_hedged_denial_is_a_medium_confidence_key_policy_cause_that_checks_the_region_first():
    """KMS will not say whether the ciphertext's key is elsewhere or its policy says no: the finding
    names all three possibilities, and the fix starts with the Region."""
    path = FIXTURES / "access-denied.resource-policy" / "independent-kms-ciphertext-resource-not-in-region-or-no-policy.json"
    found = classify(parse_record(json.loads(path.read_text())))
    assert (found.cause, found.confidence) == ("access-denied.resource-policy", "medium")
    assert "three possibilities" in found.evidence[0]
    assert found.remediation.startswith("First make sure the call goes to the Region the ciphertext was encrypted in")
    plain = json.loads(path.read_text())
    plain["errorMessage"] = ("User: arn:aws:iam::111122223333:role/app is not authorized to perform: kms:Decrypt on resource: "
                             "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab because no "
                             "resource-based policy allows the kms:Decrypt action")
    unhedged = classify(parse_record(plain))
    assert (unhedged.cause, unhedged.confidence) == ("access-denied.resource-policy", "high")
    assert not unhedged.remediation.startswith("First")


def test_a_full_arn_with_a_random_suffix_is_not_called_a_partial_arn():
    record = {
        "eventSource": "secretsmanager.amazonaws.com", "eventName": "GetSecretValue", "awsRegion": "us-east-2",
        "recipientAccountId": "111122223333", "errorCode": "ResourceNotFoundException",
        "errorMessage": "Secrets Manager can't find the specified secret.",
        "requestParameters": {"secretId": "arn:aws:secretsmanager:us-east-2:111122223333:secret:MySecret-a1B2c3"},
    }
    assert classify(parse_record(record)).cause == "secret.not-found"
    record["requestParameters"]["secretId"] = "arn:aws:secretsmanager:us-east-2:111122223333:secret:MySecret-abcdef"
    assert classify(parse_record(record)).cause == "secret.partial-arn"
    confirmed = Facts.from_dict({"secret": {"found": True, "name": "MySecret-abcdef",
                                            "arn": "arn:aws:secretsmanager:us-east-2:111122223333:secret:MySecret-abcdef-nutBrk"}})
    found = classify(parse_record(record), confirmed)
    assert (found.cause, found.confidence) == ("secret.partial-arn", "high")
    assert classify(parse_record(record), Facts.from_dict({"secret": {"found": False}})).cause == "secret.not-found"


def test_most_specific_cause_wins_and_the_evidence_says_why():
    record = {
        "eventSource": "kms.amazonaws.com", "eventName": "Decrypt", "awsRegion": "us-east-1",
        "recipientAccountId": "111122223333", "errorCode": "AccessDeniedException",
        "userIdentity": {"type": "IAMUser", "arn": "arn:aws:iam::111122223333:user/app", "invokedBy": "secretsmanager.amazonaws.com"},
        "errorMessage": "User: arn:aws:iam::111122223333:user/app is not authorized to perform: kms:Decrypt on resource: "
        "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab because no resource-based policy allows the kms:Decrypt action",
    }
    found = classify(parse_record(record))
    assert found.cause == "access-denied.kms-key"
    assert any("more specific than access-denied.resource-policy" in e for e in found.evidence)
    assert found.policy["Condition"] == {"StringEquals": {"kms:ViaService": "secretsmanager.us-east-1.amazonaws.com"}}


def test_remediation_names_the_least_privilege_statement():
    record = json.loads(json.dumps({
        "eventSource": "secretsmanager.amazonaws.com", "eventName": "GetSecretValue", "awsRegion": "eu-west-1",
        "recipientAccountId": "111122223333", "errorCode": "AccessDenied",
        "userIdentity": {"type": "IAMUser", "arn": "arn:aws:iam::111122223333:user/app"},
        "errorMessage": "User: arn:aws:iam::111122223333:user/app is not authorized to perform: secretsmanager:GetSecretValue "
        "on resource: prod/db because no identity-based policy allows the secretsmanager:GetSecretValue action",
        "requestParameters": {"secretId": "prod/db"},
    }))
    found = classify(parse_record(record))
    assert found.cause == "access-denied.identity-policy"
    assert found.policy == {"Effect": "Allow", "Action": "secretsmanager:GetSecretValue",
                            "Resource": "arn:aws:secretsmanager:eu-west-1:111122223333:secret:prod/db-??????"}
    assert json.dumps(found.policy, separators=(", ", ": ")) in found.remediation


def test_unknown_errors_are_still_findings():
    record = {"eventSource": "kms.amazonaws.com", "eventName": "Decrypt", "errorCode": "KMSInternalException"}
    found = classify(parse_record(record))
    assert found.cause == "unknown" and "KMSInternalException" in found.evidence[0]


def test_fingerprint_groups_sessions_of_one_role_and_separates_causes():
    def call(session, code="ThrottlingException"):
        return parse_record({
            "eventSource": "kms.amazonaws.com", "eventName": "Decrypt", "errorCode": code,
            "userIdentity": {"type": "AssumedRole", "arn": f"arn:aws:sts::111122223333:assumed-role/app/{session}"},
            "requestParameters": {"keyId": "alias/app"},
        })
    assert classify(call("a")).fingerprint == classify(call("b")).fingerprint
    assert classify(call("a")).fingerprint != classify(call("a", "DisabledException")).fingerprint


@pytest.mark.parametrize("tail, untyped_cause", [
    (". The security token included in the request is expired", "credentials.expired"),
    (". This secret is managed by Amazon RDS, and you must use that service to update it", "secret.service-managed"),
    (" (the secret's KMS key)", "access-denied.kms-key"),
])
def test_a_denial_that_names_a_policy_type_is_that_policy_whatever_else_its_message_says(tail, untyped_cause):
    """IAM's wording names the refused action and the policy that refused it: an expired token is refused
    before any policy is read, Secrets Manager refuses a managed secret in its own words, and a refused
    secretsmanager: action is not KMS refusing. The same extra words without IAM's verdict still name
    their own cause."""
    def call(message):
        return parse_record({
            "eventSource": "secretsmanager.amazonaws.com", "eventName": "PutSecretValue", "awsRegion": "eu-west-1",
            "recipientAccountId": "111122223333", "errorCode": "AccessDeniedException",
            "userIdentity": {"type": "IAMUser", "arn": "arn:aws:iam::111122223333:user/app"},
            "requestParameters": {"secretId": "rds!db-0123"}, "errorMessage": message,
        })
    verdict = ("User: arn:aws:iam::111122223333:user/app is not authorized to perform: secretsmanager:PutSecretValue "
               "on resource: rds!db-0123 because no identity-based policy allows the secretsmanager:PutSecretValue action")
    assert classify(call(verdict + tail)).cause == "access-denied.identity-policy"
    assert classify(call("Access denied" + tail)).cause == untyped_cause


def test_the_index_offers_every_cause_that_names_the_code_plus_catch_alls():
    offered = {c.id for c in candidates("ResourceNotFoundException")}
    assert {"secret.partial-arn", "secret.not-found", "consistency.not-yet-visible", "unknown"} <= offered
    assert "throttling" not in offered


def test_actions_without_resource_level_permissions_get_a_star_resource():
    record = {
        "eventSource": "secretsmanager.amazonaws.com", "eventName": "ListSecrets", "awsRegion": "us-east-1",
        "recipientAccountId": "111122223333", "errorCode": "AccessDeniedException",
        "userIdentity": {"type": "IAMUser", "arn": "arn:aws:iam::111122223333:user/app"},
        "errorMessage": "User: arn:aws:iam::111122223333:user/app is not authorized to perform: secretsmanager:ListSecrets "
                        "because no identity-based policy allows the secretsmanager:ListSecrets action",
    }
    found = classify(parse_record(record))
    assert found.policy == {"Effect": "Allow", "Action": "secretsmanager:ListSecrets", "Resource": "*"}


# ------------------------------------------------------------------------------------------------
# applies() is the cheap half of match(): they must agree, and classify() must give the finding a
# classifier that calls match() on every candidate would give.
# ------------------------------------------------------------------------------------------------
FACT_VARIANTS = [None, Facts()] + [
    Facts(key=KeyFacts(found=True, key_state=state, key_spec=spec, arn="arn:aws:kms:us-east-1:111122223333:key/k"))
    for state in ("Enabled", "Disabled", "PendingDeletion", "PendingReplicaDeletion", "PendingImport", "Unavailable", "")
    for spec in ("SYMMETRIC_DEFAULT", "RSA_2048")
] + [
    Facts(secret=SecretFacts(found=True, arn="arn:aws:secretsmanager:us-east-1:111122223333:secret:MySecret-abcdef-nutBrk",
                             name="MySecret-abcdef", owning_service=owner, deleted_date=deleted,
                             created_date="2026-11-23T14:04:30Z", kms_key_id="alias/app"))
    for owner in ("", "rds") for deleted in ("", "2026-11-20T00:00:00Z")
] + [
    Facts(secret=SecretFacts(found=False)), Facts(secret=SecretFacts(error="AccessDeniedException")),
    Facts(key=KeyFacts(error="AccessDeniedException")),
    Facts(simulation=SimulationFacts(decision="implicitDeny", condition_keys=("aws:SourceIp",), allowed_without_context=True)),
    Facts(simulation=SimulationFacts(decision="explicitDeny", allowed_without_context=False)),
    Facts(simulation=SimulationFacts(error="AccessDenied")), Facts(notes=("DescribeSecret was not called",)),
]


def _variants(seed: int = 11, per_record: int = 12):
    """Every fixture, then each with the error code and message of other fixtures (so every cause
    meets texts written for the others), each with a few of FACT_VARIANTS."""
    import random

    rng = random.Random(seed)
    texts = sorted({(r.get("errorCode"), r.get("errorMessage")) for _, _, r, _ in RECORDS if r.get("errorCode")}, key=str)
    for _, path, record, facts in RECORDS:
        records = [record] + [dict(record, errorCode=c, errorMessage=m) for c, m in rng.sample(texts, per_record)]
        for variant in records:
            call = parse_record(variant, path.name)
            if isinstance(call, FailedCall):
                yield call, Facts.from_dict(facts) if facts else None
                for f in rng.sample(FACT_VARIANTS, 4):
                    yield call, f


VARIANTS = list(_variants())


@pytest.mark.parametrize("cause", CATALOG, ids=lambda c: c.id)
def test_applies_is_true_exactly_when_match_returns_a_match(cause):
    assert len(VARIANTS) > 5000
    for call, facts in VARIANTS:
        assert cause.applies(call, facts) == (cause.match(call, facts) is not None), (
            f"{cause.id}: applies and match disagree on {call.origin} {call.error_code} {call.error_message[:80]!r} {facts}")
        # The index leaves a cause out for other services' calls, or without facts: it must never fit them.
        if cause.services is not None and call.service not in cause.services:
            assert not cause.applies(call, facts), f"{cause.id} fits a {call.service} call"
        if cause.needs_facts and facts is None:
            assert not cause.applies(call, facts), f"{cause.id} fits without facts"


def _classify_by_matching_every_candidate(call, facts=None):
    """The classifier before applies(): match() on every candidate of the error code, the runners-up too."""
    tried = candidates(call.error_code, call.denial.policy_type if call.denial is not None else None)
    matches = [(c, c.match(call, facts)) for c in tried]
    matches = [(c, m) for c, m in matches if m is not None]
    (cause, found), rest = matches[0], matches[1:]
    evidence = found.evidence
    runners_up = [c.id for c, _ in rest if not c.fallback]
    if runners_up:
        evidence += (f"{cause.id} is more specific than {', '.join(runners_up[:3])}, which also fit",)
    if facts is not None and facts.notes:
        evidence += facts.notes
    return _finding(call, cause, found, evidence)


def test_classify_gives_the_finding_that_matching_every_candidate_gives():
    for call, facts in VARIANTS:
        assert classify(call, facts).to_dict() == _classify_by_matching_every_candidate(call, facts).to_dict()


# ------------------------------------------------------------------------------------------------
# The shared helpers written out for speed say what the general code they replace says.
# ------------------------------------------------------------------------------------------------
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_JSON_VALUES = st.recursive(st.text() | st.integers() | st.none() | st.booleans(),
                            lambda inner: st.dictionaries(st.text(), inner, max_size=4) | st.lists(inner, max_size=3),
                            max_leaves=12)


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(st.text(), _JSON_VALUES, min_size=1, max_size=5))
def test_render_prints_what_the_json_encoder_prints(stmt):
    from auditor.causes._statements import _ENCODER, render

    assert render(stmt) == _ENCODER.encode(stmt) == json.dumps(stmt, separators=(", ", ": "))


_LEAF = st.text(max_size=8) | st.integers() | st.booleans() | st.none()
_EXTRA = _LEAF | st.dictionaries(st.text(max_size=4) | st.integers(), _LEAF | st.dictionaries(st.text(max_size=4), _LEAF,
                                                                                            max_size=2), max_size=2)


@settings(max_examples=600, deadline=None)
@given(st.permutations(["Effect", "Action", "Resource", "Condition", "Principal"]), st.integers(3, 5),
       st.lists(_EXTRA, min_size=5, max_size=5), st.booleans())
def test_render_of_the_statements_the_causes_write_is_the_json_encoders(keys, size, values, again):
    """render memoises the shapes policy_statement writes (and the Principal one): whatever the keys'
    order, the values' types and the nesting, it prints what the encoder prints, first time and again."""
    from auditor.causes._statements import _ENCODER, policy_statement, render

    stmt = dict(zip(keys[:size], values))
    assert render(stmt) == _ENCODER.encode(stmt)
    if again:
        assert render(stmt) == _ENCODER.encode(stmt)
    plain = policy_statement(str(values[0]), str(values[1]), values[2] if type(values[2]) is dict else None)
    assert render(plain) == render(dict(plain)) == _ENCODER.encode(plain)


_TAIL = re.compile(r"-(?P<tail>[A-Za-z0-9]{6})$")
_ARN_HEAD = st.sampled_from(["arn:aws:secretsmanager:us-east-2:111122223333:secret:", "arn:aws-cn:secretsmanager:::secret:",
                             "arn:aws:kms:us-east-1:111122223333:key/", "arn::secretsmanager:x:y:secret:", "", "arn:"])
_NAMES = st.text(alphabet=st.sampled_from("aB3-_/!é\n:xyzZ09"), max_size=14)


@settings(max_examples=600, deadline=None)
@given(_ARN_HEAD, _NAMES)
def test_split_secret_arn_is_the_regular_expressions_it_replaced(head, name):
    from auditor.causes._arns import _SECRET_ARN, split_secret_arn

    resource = head + name
    m = _SECRET_ARN.match(resource)
    tail = _TAIL.search(m.group("name")) if m else None
    assert split_secret_arn(resource) == ((m.group("name"), tail.group("tail")) if tail else None)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(["arn:aws:iam::1:user/a", "arn:aws-us-gov:sts::1:x", "arn:aws-cn:kms:x", "arn:awsx:y",
                                 "arn:aws:", "arn:aws", "", "prod/db", "arn:aws-Cn:x:", "arn:partition:x:"]), min_size=3, max_size=3))
def test_partition_of_is_the_regular_expression_it_replaced(arns):
    from types import SimpleNamespace

    from auditor.causes._arns import _ARN_PARTITION, partition_of

    call = SimpleNamespace(principal=SimpleNamespace(arn=arns[0]), resource=arns[1], secret_arn=arns[2])
    expected = next((m.group(1) for m in map(_ARN_PARTITION.match, arns) if m), "aws")
    assert partition_of(call) == expected


# ------------------------------------------------------------------------------------------------
# Key states: the message names the state, whatever the exception (KMS key-state table)
# ------------------------------------------------------------------------------------------------
KEY = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"


def _kms_failure(code, message, action="Decrypt", **extra):
    record = {"eventSource": "kms.amazonaws.com", "eventName": action, "awsRegion": "us-east-1", "recipientAccountId": "111122223333",
              "errorCode": code, "errorMessage": message, "requestParameters": {"keyId": KEY},
              "userIdentity": {"type": "IAMUser", "arn": "arn:aws:iam::111122223333:user/app"}}
    record.update(extra)
    return parse_record(record)


@pytest.mark.parametrize("code, message, cause, fix", [
    ("DisabledException", f"{KEY} is disabled.", "kms.key-disabled", "aws kms enable-key"),  # [1]
    ("DisabledException", f"{KEY} is pending deletion.", "kms.key-pending-deletion", "cancel-key-deletion"),  # [2]
    ("DisabledException", f"{KEY} is pending replica deletion.", "kms.key-pending-deletion", "each replica"),  # [2]
    ("KMSInvalidStateException", f"{KEY} is pending deletion.", "kms.key-pending-deletion", "cancel-key-deletion"),  # [3]
    ("KMSInvalidStateException", f"{KEY} is pending replica deletion.", "kms.key-pending-deletion", "each replica"),  # [3]
    ("KMSInvalidStateException", f"{KEY} is not pending deletion.", "validation", "rejected as invalid"),  # [4]
    ("KMSInvalidStateException", f"{KEY} is pending import.", "kms.key-disabled", "import-key-material"),  # [5]
    ("KMSInvalidStateException", f"{KEY} is unavailable.", "kms.key-disabled", "connect-custom-key-store"),  # [11]
    ("KMSInvalidStateException", f"{KEY} is creating.", "kms.key-disabled", "ReplicateKey"),  # [14]
    ("KMSInvalidStateException", f"{KEY} is updating.", "kms.key-disabled", "UpdatePrimaryRegion"),  # [15]
    ("KeyUnavailableException", "The request was rejected because the specified KMS key is not available. You can retry the request.",
     "kms.key-disabled", "retry with backoff"),
])
def test_the_state_the_message_names_decides_the_cause_and_its_fix(code, message, cause, fix):
    found = classify(_kms_failure(code, message))
    assert (found.cause, found.confidence) == (cause, "high"), found.evidence
    assert fix in found.remediation
    if code == "DisabledException" and cause != "kms.key-disabled":
        assert any("the message decides, not the exception's name" in e for e in found.evidence)


def test_secrets_manager_reports_the_key_state_in_its_own_errors():
    def sm(code, message):
        return classify(parse_record({
            "eventSource": "secretsmanager.amazonaws.com", "eventName": "GetSecretValue", "awsRegion": "us-east-1",
            "recipientAccountId": "111122223333", "errorCode": code, "errorMessage": message,
            "requestParameters": {"secretId": "prod/db"}, "userIdentity": {"type": "IAMUser", "arn": "arn:aws:iam::111122223333:user/app"}}))
    prefix = "Secrets Manager can't decrypt the protected secret text using the provided KMS key. "
    assert sm("DecryptionFailure", prefix + f"{KEY} is pending deletion.").cause == "kms.key-pending-deletion"
    assert sm("DecryptionFailure", prefix + f"{KEY} is creating.").cause == "kms.key-disabled"
    assert sm("DecryptionFailure", prefix + "The external key store proxy is in an unhealthy state.").cause == "kms.key-disabled"
    assert sm("DecryptionFailure", prefix.strip()).cause == "access-denied.kms-key"  # no state named: permission first
    # A secret (not a key) scheduled for deletion: no KMS key-state cause is named beside it.
    found = sm("InvalidRequestException", "You can't create this secret because a secret with this name is already scheduled for deletion.")
    assert found.cause == "secret.pending-deletion" and not any("kms.key" in e for e in found.evidence), found.evidence


XKS_EXTRA = {"additionalEventData": {"customKeyStoreId": "cks-9876543210fedcba9", "xksKeyId": "abc01234567890fe"}}


@pytest.mark.parametrize("message, cause, fix", [
    ("The external key store proxy rejected the request because it could not find the external key.", "kms.key-disabled", "re-associate"),
    ("The external key store proxy rejected the request because the external key is not enabled in the external key manager.",
     "kms.key-disabled", "Enable the external key"),
    ("The external key store proxy rejected the request because it could not authenticate AWS KMS. Verify the credentials for your "
     "external key store and update if necessary.", "kms.key-disabled", "--xks-proxy-authentication-credential"),
    ("AWS KMS rejected the request because the external key store proxy did not respond in time. Retry the request.",
     "kms.key-disabled", "did not answer within"),
    ("The external key store proxy denied access to the operation. Verify that the user and the external key are both authorized "
     "for this operation, and try the request again.", "kms.key-disabled", "authorization rules"),
    ("KMS cannot communicate with your CloudHSM cluster", "kms.key-disabled", "CloudHSM cluster"),
    ("The external key store proxy rejected the request because the specified ciphertext or additional authenticated data is "
     "corrupted, missing, or otherwise invalid.", "kms.invalid-ciphertext", "exact same encryption context"),
])
def test_key_store_problems_behind_kms_invalid_state(message, cause, fix):
    found = classify(_kms_failure("KMSInvalidStateException", message, **XKS_EXTRA))
    assert found.cause == cause and fix in found.remediation, (found.cause, found.remediation)


def test_the_record_is_the_truth_of_its_moment_and_a_later_describe_key_is_evidence():
    enabled = Facts(key=KeyFacts(found=True, key_state="Enabled"))
    proxy = _kms_failure("KMSInvalidStateException", "The external key store proxy is in an unhealthy state.", **XKS_EXTRA)
    assert classify(proxy, enabled).cause == "kms.key-disabled"  # a key store problem leaves the key enabled
    # disabled when called, enabled again (or scheduled for deletion) when described: still the disabled key
    for later in ("Enabled", "PendingDeletion"):
        found = classify(_kms_failure("DisabledException", f"{KEY} is disabled."), Facts(key=KeyFacts(found=True, key_state=later)))
        assert found.cause == "kms.key-disabled", later
        assert any(f"DescribeKey now reports KeyState {later}" in e and "it was Disabled then" in e for e in found.evidence)
    # pending deletion when called, the deletion cancelled since: still pending deletion
    found = classify(_kms_failure("KMSInvalidStateException", f"{KEY} is pending deletion."), enabled)
    assert found.cause == "kms.key-pending-deletion" and any("now reports KeyState Enabled" in e for e in found.evidence)
    # the exception names no state: DescribeKey decides which documented state it is
    found = classify(_kms_failure("DisabledException", "KMS key is not usable."), Facts(key=KeyFacts(found=True, key_state="PendingDeletion")))
    assert found.cause in ("kms.key-pending-deletion", "kms.key-disabled")


# ------------------------------------------------------------------------------------------------
# CloudTrail network activity events: a call the VPC endpoint's policy denied
# ------------------------------------------------------------------------------------------------
def test_a_network_activity_event_is_a_vpc_endpoint_policy_denial_from_a_trail_file_or_eventbridge():
    record = json.loads((FIXTURES / "access-denied.vpc-endpoint-policy" / "network-activity-doc-kms-listkeys-vpceaccessdenied.json").read_text())
    envelope = {"version": "0", "id": "1", "detail-type": "AWS Network Activity Event via CloudTrail", "source": "aws.kms",
                "account": "123456789012", "region": "us-east-1", "time": record["eventTime"], "resources": [], "detail": record}
    for given in (record, envelope):
        found = classify(parse_record(given))
        assert (found.cause, found.confidence) == ("access-denied.vpc-endpoint-policy", "high")
        assert found.evidence[0].startswith("CloudTrail network activity event for vpce-EXAMPLE08c1b6b9b7")
        assert "caller: AWSAccount (no ARN in the record; account 777788889999)" in found.evidence
        # The caller is another account than the endpoint's owner: the fix names the account, and says the policy may be right.
        assert found.remediation.startswith("The caller is in account 777788889999, not in 123456789012")
        assert '"Condition": {"StringEquals": {"aws:PrincipalAccount": "777788889999"}}' in found.remediation
    same_account = json.loads((FIXTURES / "access-denied.vpc-endpoint-policy" /
                               "network-activity-secretsmanager-getsecretvalue-vpceaccessdenied.json").read_text())
    found = classify(parse_record(same_account))
    assert found.remediation.startswith("The request went through vpce-0a1b2c3d4e5f6a7b8 for secretsmanager")
    assert '"aws:PrincipalArn": "arn:aws:iam::123456789012:role/orders-api"' in found.remediation


def test_a_successful_call_through_a_vpc_endpoint_is_no_finding():
    record = json.loads((FIXTURES / "success" / "network-activity-doc-kms-listkeys-through-vpc-endpoint.json").read_text())
    assert not isinstance(parse_record(record), FailedCall)
