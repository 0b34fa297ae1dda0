"""Enrichment against a moto server over real HTTP (boto3's normal configuration through
AWS_ENDPOINT_URL): every outcome, including denied, throttled and timed-out lookups.

Where moto cannot produce the AWS answer, a botocore Stubber on a client handed in through
``session=`` plays AWS's documented response:
* DescribeSecret failing with AccessDenied / Throttling (moto does not enforce IAM by default);
* real Secrets Manager's refusal to resolve an ambiguous partial ARN (moto resolves it);
* iam:SimulatePrincipalPolicy (moto 5.2.5 does not implement it: shown below).
"""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import boto3
import pytest
from botocore.stub import Stubber

from auditor.classify import classify
from auditor.enrich import Enricher
from auditor.records import parse_record

pytestmark = pytest.mark.integration
ACCOUNT = "123456789012"  # moto's account
OTHER = "999999999999"
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


# -- records ---------------------------------------------------------------------------------
def sm_failure(secret_id: str, code="ResourceNotFoundException", message="Secrets Manager can't find the specified secret.",
               action="GetSecretValue", when="2026-11-23T14:07:31Z", kms_key="", account=ACCOUNT):
    params = {"secretId": secret_id}
    if kms_key:
        params["kmsKeyId"] = kms_key
    return parse_record({
        "eventSource": "secretsmanager.amazonaws.com", "eventName": action, "awsRegion": "us-east-1",
        "recipientAccountId": account, "eventTime": when, "errorCode": code, "errorMessage": message,
        "userIdentity": {"type": "IAMUser", "arn": f"arn:aws:iam::{account}:user/app", "accountId": account},
        "requestParameters": params,
    })


def kms_failure(key_id: str, code: str, message: str, action="GenerateDataKey"):
    return parse_record({
        "eventSource": "kms.amazonaws.com", "eventName": action, "awsRegion": "us-east-1", "recipientAccountId": ACCOUNT,
        "errorCode": code, "errorMessage": message, "requestParameters": {"keyId": key_id},
        "userIdentity": {"type": "AssumedRole", "arn": f"arn:aws:sts::{ACCOUNT}:assumed-role/app/s", "invokedBy": "secretsmanager.amazonaws.com"},
    })


def fixture(cause: str, name: str, **params):
    """A fixture record moved into moto's account (every occurrence of its recipient account),
    with requestParameters overridden; resources of a third account stay where they are."""
    text = (FIXTURES / cause / f"{name}.json").read_text()
    record = json.loads(text)
    text = text.replace(record["recipientAccountId"], ACCOUNT)
    record = json.loads(text)
    record["awsRegion"] = "us-east-1"
    record.setdefault("requestParameters", {}).update(params)
    return parse_record(record)


# -- stubbing: a session whose clients for some services are stubbed ------------------------
class StubbedSession:
    """A boto3 Session look-alike for ``Enricher(session=...)``: real clients (to moto) except
    the services given, whose clients carry an active Stubber."""

    def __init__(self, **stubs: Stubber):
        self.real = boto3.session.Session()
        self.stubs = stubs
        self.created: list[str] = []

    def client(self, service, region_name=None, config=None):
        self.created.append(service)
        if service in self.stubs:
            return self.stubs[service].client
        return self.real.client(service, region_name=region_name, config=config)


def stub(service: str) -> Stubber:
    s = Stubber(boto3.client(service, region_name="us-east-1"))
    s.activate()
    return s


def count_requests(enricher: Enricher, service: str, region="us-east-1") -> list:
    """Every HTTP request the enricher's client for ``service`` sends (botocore before-send hook)."""
    sent = []
    enricher.client(service, region).meta.events.register("before-send", lambda request, **_: sent.append(request.url))
    return sent


@pytest.fixture
def enricher(moto_server):
    return Enricher(timeout_seconds=2)


# -- DescribeSecret on moto ------------------------------------------------------------------
def test_partial_arn_is_confirmed_by_describing_the_name(aws, enricher):
    name = f"MySecret-{uuid.uuid4().hex[:6]}"
    arn = aws("secretsmanager").create_secret(Name=name, SecretString="x")["ARN"]
    call = sm_failure(f"arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:{name}")
    facts = enricher.facts_for(call)
    assert facts.secret.found and facts.secret.arn == arn and facts.secret.name == name
    assert arn != call.resource and arn.startswith(call.resource + "-")
    finding = classify(call, facts)
    assert (finding.cause, finding.confidence) == ("secret.partial-arn", "high")
    assert any(arn in e for e in finding.evidence)


def test_partial_arn_as_real_secrets_manager_answers_it():
    """Real AWS: DescribeSecret(ARN) fails like the call did, DescribeSecret(name) finds it. The name is asked first."""
    sm = stub("secretsmanager")
    given = f"arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:MySecret-abcdef"
    full = given + "-nutBrk"
    sm.add_response("describe_secret", {"ARN": full, "Name": "MySecret-abcdef"}, {"SecretId": "MySecret-abcdef"})
    enricher = Enricher(session=StubbedSession(secretsmanager=sm), own_account=ACCOUNT)
    call = sm_failure(given)
    finding = classify(call, facts := enricher.facts_for(call))
    assert facts.secret.arn == full and (finding.cause, finding.confidence) == ("secret.partial-arn", "high")
    sm.assert_no_pending_responses()


def test_complete_arn_of_a_missing_secret_is_asked_by_name_then_by_arn():
    sm = stub("secretsmanager")
    given = f"arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:prod/db-AbCdEf"
    sm.add_client_error("describe_secret", "ResourceNotFoundException", expected_params={"SecretId": "prod/db-AbCdEf"})
    sm.add_client_error("describe_secret", "ResourceNotFoundException", expected_params={"SecretId": given})
    enricher = Enricher(session=StubbedSession(secretsmanager=sm), own_account=ACCOUNT)
    finding = classify(call := sm_failure(given), enricher.facts_for(call))
    assert (finding.cause, finding.confidence) == ("secret.not-found", "high")
    assert enricher.requests == 2 and enricher.failures == 0
    sm.assert_no_pending_responses()


def test_not_found_is_confirmed(enricher):
    finding = classify(call := sm_failure(f"nothing/{uuid.uuid4().hex[:6]}"), enricher.facts_for(call))
    assert (finding.cause, finding.confidence) == ("secret.not-found", "high")
    assert "DescribeSecret confirms: no such secret" in finding.evidence


@pytest.mark.parametrize("name", ["name-typo", "wrong-region", "full-arn-random-suffix"])
def test_not_found_fixtures_are_confirmed_on_an_empty_account(enricher, name):
    call = fixture("secret.not-found", name)
    finding = classify(call, enricher.facts_for(call))
    assert (finding.cause, finding.confidence) == ("secret.not-found", "high"), finding.evidence


def test_pending_deletion_is_confirmed(aws, enricher):
    name = f"old/{uuid.uuid4().hex[:6]}"
    sm = aws("secretsmanager")
    sm.create_secret(Name=name, SecretString="x")
    sm.delete_secret(SecretId=name, RecoveryWindowInDays=7)
    call = sm_failure(name, "InvalidRequestException", "You can't perform this operation on the secret because it was marked for deletion.")
    facts = enricher.facts_for(call)
    assert facts.secret.deleted_date and facts.window_seconds == 600
    finding = classify(call, facts)
    assert finding.cause == "secret.pending-deletion" and any("DeletedDate" in e for e in finding.evidence)


def test_service_managed_is_confirmed_by_owning_service(aws, enricher):
    """moto's RDS creates the master-user secret with OwningService rds, as RDS does."""
    db = aws("rds").create_db_instance(DBInstanceIdentifier=f"db{uuid.uuid4().hex[:8]}", DBInstanceClass="db.t3.micro",
                                       Engine="postgres", MasterUsername="admin", ManageMasterUserPassword=True,
                                       AllocatedStorage=20)["DBInstance"]
    arn = db["MasterUserSecret"]["SecretArn"]
    call = fixture("secret.service-managed", "putsecretvalue-rds-managed", secretId=arn)
    facts = enricher.facts_for(call)
    assert facts.secret.owning_service == "rds"
    finding = classify(call, facts)
    assert (finding.cause, finding.confidence) == ("secret.service-managed", "high")
    assert any("DescribeSecret's OwningService" in e for e in finding.evidence)


def test_a_secret_created_just_before_the_failure_is_eventual_consistency(aws, enricher):
    name = f"new/{uuid.uuid4().hex[:6]}"
    created = aws("secretsmanager").create_secret(Name=name, SecretString="x")
    described = aws("secretsmanager").describe_secret(SecretId=name)
    when = described["CreatedDate"].timestamp() + 3
    call = sm_failure(name, when=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(when)))
    finding = classify(call, enricher.facts_for(call))
    assert (finding.cause, finding.confidence) == ("consistency.not-yet-visible", "high"), finding.evidence
    assert created["ARN"] in finding.evidence[0]


def test_a_secret_created_long_before_the_failure_is_not_consistency(aws):
    name = f"old/{uuid.uuid4().hex[:6]}"
    aws("secretsmanager").create_secret(Name=name, SecretString="x")
    created = aws("secretsmanager").describe_secret(SecretId=name)["CreatedDate"].timestamp()
    call = sm_failure(name, "AccessDeniedException", "not authorized", when=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(created + 120)))
    assert classify(call, Enricher(consistency_window_seconds=60).facts_for(call)).cause != "consistency.not-yet-visible"
    assert classify(call, Enricher(consistency_window_seconds=600).facts_for(call)).cause == "consistency.not-yet-visible"


# -- DescribeKey on moto ---------------------------------------------------------------------
def test_asymmetric_key_is_confirmed_by_describe_key(aws, enricher):
    key = aws("kms").create_key(KeySpec="RSA_2048", KeyUsage="ENCRYPT_DECRYPT")["KeyMetadata"]["KeyId"]
    call = sm_failure("prod/new", "EncryptionFailure", "Secrets Manager can't encrypt the protected secret text.", "CreateSecret", kms_key=key)
    facts = enricher.facts_for(call)
    assert (facts.key.key_spec, facts.key.key_usage) == ("RSA_2048", "ENCRYPT_DECRYPT")
    finding = classify(call, facts)
    assert (finding.cause, finding.confidence) == ("kms.asymmetric-key", "high")
    assert any("RSA_2048" in e for e in finding.evidence)


def test_disabled_key_is_confirmed(aws, enricher):
    kms = aws("kms")
    key = kms.create_key()["KeyMetadata"]["KeyId"]
    kms.disable_key(KeyId=key)
    call = kms_failure(key, "DisabledException", f"{key} is disabled.")
    finding = classify(call, enricher.facts_for(call))
    assert finding.cause == "kms.key-disabled" and any("KeyState Disabled" in e for e in finding.evidence)


def test_decryption_failure_describes_the_secrets_own_key(aws, enricher):
    """GetSecretValue names no key: DescribeSecret's KmsKeyId leads to DescribeKey, which shows it disabled."""
    kms = aws("kms")
    meta = kms.create_key()["KeyMetadata"]
    key = meta["Arn"]
    name = f"app/{uuid.uuid4().hex[:6]}"
    aws("secretsmanager").create_secret(Name=name, SecretString="x", KmsKeyId=key)
    kms.disable_key(KeyId=meta["KeyId"])  # moto's DisableKey takes no ARN (AWS's does)
    call = sm_failure(name, "DecryptionFailure", "Secrets Manager can't decrypt the protected secret text using the provided KMS key.")
    facts = enricher.facts_for(call)
    assert facts.secret.kms_key_id == key and facts.key.key_state == "Disabled"
    finding = classify(call, facts)
    assert (finding.cause, finding.confidence) == ("kms.key-disabled", "high"), finding.evidence


# -- failed lookups --------------------------------------------------------------------------
@pytest.mark.parametrize("code,status", [("AccessDeniedException", 400), ("ThrottlingException", 400)])
def test_a_failed_lookup_lowers_confidence_and_says_so(moto_server, code, status):
    sm = stub("secretsmanager")
    sm.add_client_error("describe_secret", service_error_code=code, http_status_code=status)
    enricher = Enricher(session=StubbedSession(secretsmanager=sm))  # STS: moto, over HTTP
    call = sm_failure(f"arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:MySecret-abcdef")
    facts = enricher.facts_for(call)
    assert facts.secret.error == code
    finding = classify(call, facts)
    assert finding.cause == "secret.partial-arn" and finding.confidence == "low"
    assert f"DescribeSecret failed ({code}): confidence lowered" in finding.evidence
    assert enricher.failures == 1
    # cached briefly: the storm's next event gets the same lowered facts, and AWS is not asked again
    again = enricher.facts_for(call)
    assert again.secret.error == code and enricher.failures == 1 and enricher.requests == 1
    sm.assert_no_pending_responses()


def test_denied_lookup_of_a_not_found_secret_stays_medium(moto_server):
    sm = stub("secretsmanager")
    sm.add_client_error("describe_secret", service_error_code="AccessDeniedException")
    enricher = Enricher(session=StubbedSession(secretsmanager=sm))
    finding = classify(call := sm_failure("prod/db"), enricher.facts_for(call))
    assert (finding.cause, finding.confidence) == ("secret.not-found", "medium")
    assert "could not confirm: DescribeSecret failed with AccessDeniedException" in finding.evidence


@pytest.fixture
def black_hole():
    """A local socket that accepts connections and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    held = []

    def accept():
        while True:
            try:
                held.append(listener.accept())
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    listener.close()
    for conn, _ in held:
        conn.close()


def test_a_lookup_that_hangs_times_out_and_the_event_still_classifies(monkeypatch, black_hole):
    monkeypatch.setenv("AWS_ENDPOINT_URL", black_hole)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    enricher = Enricher(timeout_seconds=0.5, own_account=ACCOUNT)
    sent = count_requests(enricher, "secretsmanager")
    started = time.monotonic()
    call = sm_failure("prod/db")
    facts = enricher.facts_for(call)
    # bounded: the 0.5 s timeout, twice retried (botocore's jittered backoff in between); never a hang
    assert len(sent) == 3 and time.monotonic() - started < 10
    assert "Timeout" in facts.secret.error and enricher.failures == 1
    finding = classify(call, facts)
    assert finding.cause == "secret.not-found" and finding.confidence == "medium"
    assert any("DescribeSecret failed (ReadTimeoutError)" in e for e in finding.evidence), finding.evidence
    # the endpoint did not answer: another secret right after is not asked (no second wait)
    other = enricher.facts_for(sm_failure("prod/other"))
    assert len(sent) == 3 and enricher.requests == 1  # nothing sent, so nothing waited for
    assert any("did not answer" in n for n in other.notes)


def test_own_account_lookup_that_hangs_skips_enrichment(monkeypatch, black_hole):
    monkeypatch.setenv("AWS_ENDPOINT_URL", black_hole)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")  # as in Lambda; not left to whatever ran before
    enricher = Enricher(timeout_seconds=0.5)
    sent = count_requests(enricher, "sts", "")
    started = time.monotonic()
    facts = enricher.facts_for(sm_failure("prod/db"))
    assert len(sent) == 3 and time.monotonic() - started < 10  # the timeout, twice retried, then no lookup
    assert facts.secret is None and enricher.failures == 1 and enricher.requests == 0
    assert any("GetCallerIdentity failed (ReadTimeoutError)" in n for n in facts.notes)


# -- cost: caching, single flight, no lookup when nothing can change -------------------------
def test_lookups_are_cached_for_a_storm(aws, enricher):
    name = f"storm/{uuid.uuid4().hex[:6]}"
    aws("secretsmanager").create_secret(Name=name, SecretString="x")
    sent = count_requests(enricher, "secretsmanager")
    call = sm_failure(name, "AccessDeniedException", "not authorized")
    for _ in range(50):
        assert enricher.facts_for(call).secret.found
    assert len(sent) == 1 and enricher.requests == 1
    missing = sm_failure(f"missing/{uuid.uuid4().hex[:6]}")
    for _ in range(20):
        assert not enricher.facts_for(missing).secret.found  # not-found is cached too (for a minute)
    assert len(sent) == 2


def test_parallel_events_of_a_batch_share_one_lookup(aws, enricher):
    name = f"batch/{uuid.uuid4().hex[:6]}"
    aws("secretsmanager").create_secret(Name=name, SecretString="x")
    sent = count_requests(enricher, "secretsmanager")
    call = sm_failure(name, "AccessDeniedException", "not authorized")
    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(enricher.facts_for, [call] * 64))
    assert all(f.secret.found for f in results) and len(sent) == 1


def test_cache_is_bounded_and_expires():
    from auditor.enrich import TTLCache

    now = [0.0]
    cache = TTLCache(size=3, ttl=300, clock=lambda: now[0])
    for i in range(5):
        cache.put(i, i)
    assert len(cache) == 3 and cache.get(0) is None and cache.get(4) == 4
    now[0] = 301
    assert cache.get(4) is None


@pytest.mark.parametrize("cause", ["credentials.expired", "credentials.invalid-signature", "throttling"])
def test_most_failures_need_no_lookup(moto_server, cause):
    enricher = Enricher()
    for path in sorted((FIXTURES / cause).glob("*.json")):
        call = parse_record(json.loads(path.read_text()))
        assert enricher.facts_for(call) is None, path.name
    assert enricher.requests == 0 and not enricher._clients  # not even a client was created


def test_no_client_is_created_at_import_or_construction(monkeypatch):
    import boto3 as b

    monkeypatch.setattr(b.session.Session, "client", lambda *a, **k: pytest.fail("client created"))
    Enricher()


# -- other accounts --------------------------------------------------------------------------
def test_resources_of_other_accounts_are_not_looked_up(enricher):
    call = sm_failure(f"arn:aws:secretsmanager:us-east-1:{OTHER}:secret:theirs-AbCdEf")
    facts = enricher.facts_for(call)
    assert enricher.requests == 0 and enricher.failures == 0
    assert any("not looked up: resource in another account" in n for n in facts.notes)
    finding = classify(call, facts)
    assert any("another account" in e for e in finding.evidence)


@pytest.mark.parametrize("region", ["yesterday", "us-east-1\n", "evil.example.com/x", "a" * 64, "US-EAST-1"])
def test_a_record_whose_region_is_not_a_region_name_is_not_looked_up(enricher, region):
    """awsRegion names the endpoint a lookup calls: a made-up one gets no client and no request, and says so."""
    call = sm_failure("prod/db")
    call.region = region
    facts = enricher.facts_for(call)
    assert enricher.requests == 0 and enricher.failures == 0 and set(enricher._clients) == {("sts", "")}  # its own account
    assert any(f"the record's awsRegion {region!r} is not the name of an AWS Region" in n for n in facts.notes)
    finding = classify(call, facts)
    assert finding.cause == "secret.not-found" and finding.confidence == "medium"


def test_every_region_botocore_knows_is_a_region_name_lookups_go_to():
    from auditor.enrich import _REGION_NAME

    from ..unit.conftest import botocore_regions

    regions = botocore_regions()
    assert len(regions) > 30 and [r for r in sorted(regions) if not _REGION_NAME.fullmatch(r)] == []


def test_lookups_go_to_a_bounded_number_of_regions(monkeypatch, enricher):
    """Records naming ever new well-formed Regions cannot make a container build a client for each."""
    from auditor import enrich

    monkeypatch.setattr(enrich, "MAX_REGIONS", 3)
    asked = []
    monkeypatch.setattr(enricher, "_describe_secret", lambda region, secret_id: asked.append(region) or enrich.SecretFacts(
        found=False))
    notes = []
    for i, region in enumerate(("us-east-1", "eu-west-1", "ap-south-1", "sa-east-1", "us-east-1", "me-central-1")):
        call = sm_failure(f"prod/{i}")
        call.region = region
        facts = enricher.facts_for(call)
        notes.append([n for n in (facts.notes if facts else ()) if "Regions" in n])
    assert asked == ["us-east-1", "eu-west-1", "ap-south-1", "us-east-1"]
    assert notes[3] == ["not looked up: this function already looks up in 3 Regions, the most it will "
                        "(the record names sa-east-1)"] and notes[5] and not any(notes[:3]) and not notes[4]


def test_a_record_forwarded_from_another_account_is_not_looked_up_here(aws, enricher):
    """Organization mode: a member account's record names a secret by name; the same name here proves nothing."""
    name = f"shared/{uuid.uuid4().hex[:6]}"
    aws("secretsmanager").create_secret(Name=name, SecretString="x")  # exists in the auditor's account
    call = sm_failure(name, account=OTHER)
    facts = enricher.facts_for(call)
    assert facts.secret is None and enricher.requests == 0
    assert any("another account" in n for n in facts.notes)
    assert classify(call, facts).confidence == "medium"  # not "confirmed"


def test_kms_key_of_another_account_is_not_described(enricher):
    key = f"arn:aws:kms:us-east-1:{OTHER}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    facts = enricher.facts_for(kms_failure(key, "DisabledException", f"{key} is disabled."))
    assert facts.key is None and enricher.requests == 0 and any("another account" in n for n in facts.notes)


# -- IAM policy simulation (opt-in) ----------------------------------------------------------
def denied_record(ip="192.0.2.7", when="2026-11-23T02:00:00Z"):
    return parse_record({
        "eventSource": "secretsmanager.amazonaws.com", "eventName": "GetSecretValue", "awsRegion": "us-east-1",
        "recipientAccountId": ACCOUNT, "eventTime": when, "sourceIPAddress": ip,
        "errorCode": "AccessDeniedException", "userIdentity": {"type": "IAMUser", "arn": f"arn:aws:iam::{ACCOUNT}:user/night"},
        "requestParameters": {"secretId": f"arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:x-AbCdEf"},
        "errorMessage": f"User: arn:aws:iam::{ACCOUNT}:user/night is not authorized to perform: secretsmanager:GetSecretValue "
                        f"on resource: arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:x-AbCdEf with an explicit deny in an identity-based policy",
    })


def evaluation(decision, statements=(), missing=(), resource=f"arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:x-AbCdEf"):
    """An EvaluationResult as AWS documents it: with ResourceArns given, missing keys are per resource."""
    matched = [{"SourcePolicyId": s, "SourcePolicyType": "IAM Policy"} for s in statements]
    return {"EvaluationResults": [{
        "EvalActionName": "secretsmanager:GetSecretValue", "EvalResourceName": resource, "EvalDecision": decision,
        "MatchedStatements": matched, "MissingContextValues": [],
        "ResourceSpecificResults": [{"EvalResourceName": resource, "EvalResourceDecision": decision,
                                     "MatchedStatements": matched, "MissingContextValues": list(missing)}],
    }]}


@pytest.mark.parametrize("region, endpoint", [("cn-north-1", "https://iam.cn-north-1.amazonaws.com.cn/"),
                                              ("us-gov-west-1", "https://iam.us-gov.amazonaws.com/"),
                                              ("eu-west-1", "https://iam.amazonaws.com/")])
def test_iam_is_asked_in_the_partition_the_function_runs_in(monkeypatch, region, endpoint):
    """A function in China or GovCloud asks its own partition's IAM (its credentials are valid
    nowhere else) for what governs a caller, who is attached to a policy, and the simulation."""
    from auditor.aws import partition_of_region

    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    session = boto3.session.Session(region_name=region, aws_access_key_id="a", aws_secret_access_key="b")
    sent = []

    def refuse(request, **_):  # where it would have gone; then no network
        sent.append(request.url)
        raise ConnectionRefusedError("test: no network")

    session.events.register("before-send.iam", refuse)
    partition = partition_of_region(region)
    enricher = Enricher(session=session, own_account=ACCOUNT, simulate_policies=True, look_up_links=False)
    enricher.links(f"arn:{partition}:iam::{ACCOUNT}:role/app", ACCOUNT)
    enricher.entities(f"arn:{partition}:iam::{ACCOUNT}:policy/shared")
    enricher._simulate(("s",), f"arn:{partition}:iam::{ACCOUNT}:user/night", "secretsmanager:GetSecretValue", "", [])
    assert sent == [endpoint] * 3, sent  # the links, the policy's principals, the simulation


def test_policy_simulation_names_the_condition(moto_server):
    iam = stub("iam")
    resource = f"arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:x-AbCdEf"
    iam.add_response("simulate_principal_policy", evaluation("explicitDeny", ["DenyOutsideOffice"]), {
        "PolicySourceArn": f"arn:aws:iam::{ACCOUNT}:user/night", "ActionNames": ["secretsmanager:GetSecretValue"],
        "ResourceArns": [resource], "ContextEntries": [
            {"ContextKeyName": "aws:SourceIp", "ContextKeyValues": ["192.0.2.7"], "ContextKeyType": "ip"},
            {"ContextKeyName": "aws:CurrentTime", "ContextKeyValues": ["2026-11-23T02:00:00Z"], "ContextKeyType": "date"},
            {"ContextKeyName": "aws:RequestedRegion", "ContextKeyValues": ["us-east-1"], "ContextKeyType": "string"}]})
    iam.add_response("simulate_principal_policy", evaluation("allowed", ["AllowAppSecrets"], missing=["aws:SourceIp"]), {
        "PolicySourceArn": f"arn:aws:iam::{ACCOUNT}:user/night", "ActionNames": ["secretsmanager:GetSecretValue"],
        "ResourceArns": [resource]})
    session = StubbedSession(iam=iam)
    enricher = Enricher(simulate_policies=True, session=session, look_up_links=False)
    call = denied_record()
    facts = enricher.facts_for(call)
    assert facts.simulation.decision == "explicitDeny" and facts.simulation.allowed_without_context
    assert facts.simulation.condition_keys == ("aws:SourceIp",)  # only the key the policy reads, not all we sent
    assert facts.simulation.matched_statements == ("DenyOutsideOffice",)
    finding = classify(call, facts)
    assert (finding.cause, finding.confidence) == ("access-denied.condition", "high"), finding.evidence
    assert "condition keys involved: aws:SourceIp" in finding.evidence
    iam.assert_no_pending_responses()
    # same principal, action, resource, minute: the storm's next denial is not simulated again
    # (the Stubber has no response left: a second simulation would come back as an error)
    assert enricher.facts_for(denied_record(when="2026-11-23T02:00:40Z")).simulation == facts.simulation
    assert enricher.failures == 0


def test_simulation_of_an_allow_whose_condition_failed_reports_the_key(moto_server):
    """Allow ... Condition IpAddress: denied with and without the context (a missing key fails the
    condition), and the simulator names the key the allow depends on."""
    iam = stub("iam")
    iam.add_response("simulate_principal_policy", evaluation("implicitDeny"))
    iam.add_response("simulate_principal_policy", evaluation("implicitDeny", missing=["aws:SourceIp"]))
    enricher = Enricher(simulate_policies=True, session=StubbedSession(iam=iam), look_up_links=False)
    sim = enricher.facts_for(denied_record()).simulation
    assert (sim.decision, sim.allowed_without_context, sim.condition_keys) == ("implicitDeny", False, ("aws:SourceIp",))


def test_simulation_is_off_by_default(moto_server):
    iam = stub("iam")  # no responses: any call would raise
    facts = Enricher(session=StubbedSession(iam=iam)).facts_for(denied_record())
    assert facts.simulation is None


def test_moto_has_no_policy_simulation_and_the_failure_is_noted(enricher):
    """moto 5.2.5 does not implement SimulatePrincipalPolicy: the lookup fails, the event still classifies."""
    enricher.simulate = True
    call = denied_record()
    facts = enricher.facts_for(call)
    assert facts.simulation.error and enricher.failures == 1
    finding = classify(call, facts)
    assert finding.cause == "access-denied.identity-policy" or finding.cause.startswith("access-denied.")
    assert any("policy simulation failed" in e for e in finding.evidence)


def test_simulation_skips_callers_it_cannot_simulate(moto_server):
    iam = stub("iam")
    enricher = Enricher(simulate_policies=True, session=StubbedSession(iam=iam), own_account=ACCOUNT, look_up_links=False)
    record = json.loads(json.dumps({
        "eventSource": "secretsmanager.amazonaws.com", "eventName": "GetSecretValue", "awsRegion": "us-east-1",
        "recipientAccountId": ACCOUNT, "errorCode": "AccessDeniedException", "errorMessage": "not authorized",
        "userIdentity": {"type": "Root", "arn": f"arn:aws:iam::{ACCOUNT}:root"}, "requestParameters": {"secretId": "a"},
    }))
    facts = enricher.facts_for(parse_record(record))
    assert facts.simulation is None and any("not simulated" in n for n in facts.notes)


def test_what_governs_a_denied_caller_is_looked_up_once_bounded_and_said_when_it_cannot_be(aws):
    """The role's boundary and attached policies (GetRole, ListAttachedRolePolicies), cached across
    invocations; at most LINK_LOOKUPS_PER_INVOCATION principals an invocation; a caller of another
    account is not looked up, and the links say why."""
    from auditor import enrich as module

    iam = aws("iam")
    tag = uuid.uuid4().hex[:6]
    doc = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:ListBucket", "Resource": "*"}]})
    policy = iam.create_policy(PolicyName=f"p-{tag}", PolicyDocument=doc)["Policy"]["Arn"]
    bound = iam.create_policy(PolicyName=f"b-{tag}", PolicyDocument=doc)["Policy"]["Arn"]
    trust = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"},
                                                                "Action": "sts:AssumeRole"}]})
    iam.create_role(RoleName=f"r-{tag}", AssumeRolePolicyDocument=trust, PermissionsBoundary=bound)
    iam.attach_role_policy(RoleName=f"r-{tag}", PolicyArn=policy)
    enricher = Enricher(own_account=ACCOUNT)
    arn = f"arn:aws:iam::{ACCOUNT}:role/r-{tag}"
    links = enricher.links(arn, ACCOUNT)
    assert links.known and links.policies == (policy,) and links.boundary == bound and links.source == "lookups"
    requests = enricher.requests
    assert enricher.links(arn, ACCOUNT) == links and enricher.requests == requests  # cached
    assert "another account" in enricher.links("arn:aws:iam::444455556666:role/x", ACCOUNT).note
    gone = enricher.links(f"arn:aws:iam::{ACCOUNT}:role/gone-{tag}", ACCOUNT)
    assert gone.known and not gone.policies and "no such role" in gone.note and enricher.failures == 0
    enricher.begin()
    for i in range(module.LINK_LOOKUPS_PER_INVOCATION + 3):
        last = enricher.links(f"arn:aws:iam::{ACCOUNT}:role/many-{tag}-{i}", ACCOUNT)
    assert "more than" in last.note and not last.known  # the bound: said, not looked up
