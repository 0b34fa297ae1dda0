"""Incident notices as EventBridge events (auditor/incident_event.py): the entry, the versioned
detail, the console links per root kind and partition, the size rule against hostile inputs,
and the PagerDuty and Opsgenie bodies rendered into it."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from urllib.parse import urlsplit

import pytest

from auditor.contract import IncidentEvent
from auditor.incident_event import (ENTRY_BUDGET, PUT_EVENTS_LIMIT, batches, cloudtrail_link, console_link, entry_size,
                                    incident_event, opsgenie_request, pagerduty_change_event, pagerduty_event)
from demo import scenarios as s

from . import oncall_shapes as shapes
from .incident_samples import BUS, SOURCE, fixture_notices, scenario_notices, with_extra_keys

STATUSES = ("opened", "updated", "resolved")
CONSOLE_HOSTS = ("console.aws.amazon.com", "console.amazonaws.cn", "console.amazonaws-us-gov.com")


def event(status: str, incident: dict, finding: dict, **kw) -> dict:
    return incident_event(status, incident, finding, source=SOURCE, bus_name=BUS, **kw)


def detail(entry: dict) -> dict:
    # strict JSON: no NaN, no lone surrogate (what EventBridge would refuse)
    text = entry["Detail"]
    text.encode("utf-8")
    return json.loads(text, parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))


# ---- the entry --------------------------------------------------------------------------------
@pytest.mark.parametrize("status", STATUSES)
def test_an_entry_per_notice_with_the_contracts_source_detail_type_and_bus(status):
    incident, finding = scenario_notices(status)["key-policy"]
    entry = event(status, incident, finding)
    assert set(entry) == {"Source", "DetailType", "Detail", "EventBusName", "Resources"}
    assert entry["Source"] == IncidentEvent.SOURCE == "secrets-kms-failure-auditor"
    assert entry["DetailType"] == {"opened": "Incident Opened", "updated": "Incident Updated", "resolved": "Incident Resolved"}[status]
    assert entry["EventBusName"] == BUS
    assert entry["Resources"] == [s.KEY_ARN]  # the root's own ARN
    d = detail(entry)
    assert set(d) == {"schema_version", "status", "bus", "incident", "finding", "links", "oncall", "truncated"}
    assert (d["schema_version"], d["status"], d["bus"], d["truncated"]) == ("1", status, BUS, [])
    assert d["incident"] == incident and d["finding"] == finding  # as given, whole
    assert d["links"] == {"console": f"https://eu-west-1.console.aws.amazon.com/kms/home?region=eu-west-1#/kms/keys/{s.KEY_ID}",
                          "troubleshooting": finding["doc_url"]}
    assert entry_size(entry) <= ENTRY_BUDGET


def test_the_incident_keeps_what_it_names_the_change_that_started_it_and_how_it_ended():
    incident, finding = scenario_notices("resolved")["key-policy"]
    d = detail(event("resolved", incident, finding))
    assert d["incident"]["change"]["action"] == "PutKeyPolicy"
    assert d["incident"]["principals"]["count"] == 2 and d["incident"]["resources"]["listed"] == ["prod/orders/db"]
    assert d["incident"]["open_seconds"] == 2400 and d["incident"]["resolved_at"]


def test_keys_the_function_adds_later_are_copied_through():
    incident, finding = scenario_notices()["key-policy"]
    extra = with_extra_keys(incident)
    d = detail(event("updated", extra, finding))
    assert d["incident"] == extra
    assert d["incident"]["ended_by"]["action"] == "PutKeyPolicy" and d["incident"]["principals"]["exact"] is False


def test_the_inputs_are_not_changed_and_the_same_input_gives_the_same_entry():
    incident, finding = scenario_notices()["key-policy"]
    before = copy.deepcopy((incident, finding))
    huge = copy.deepcopy(incident)
    huge["remediation"] = "x" * 300_000
    first = event("opened", huge, finding)
    assert (incident, finding) == before and len(huge["remediation"]) == 300_000
    assert event("opened", huge, finding) == first


def test_account_and_region_default_to_the_findings_and_can_be_given():
    incident, finding = scenario_notices()["principal-permissions"]
    d = detail(event("opened", incident, finding))
    assert d["oncall"]["pagerduty"]["payload"]["source"] == "111122223333/eu-west-1"
    d = detail(event("opened", incident, finding, account="444455556666", region="us-east-1"))
    assert d["oncall"]["pagerduty"]["payload"]["source"] == "444455556666/us-east-1"


def test_a_status_that_is_not_a_notice_is_refused():
    incident, finding = scenario_notices()["key-policy"]
    with pytest.raises(ValueError, match="status"):
        event("open", incident, finding)


def test_every_fixture_notice_makes_a_valid_entry_for_every_status():
    notices = fixture_notices()
    assert len(notices) > 100
    kinds = set()
    for name, incident, finding in notices:
        for status in STATUSES:
            entry = event(status, incident, finding)
            d = detail(entry)
            assert d["truncated"] == [] and entry_size(entry) <= ENTRY_BUDGET, name
            assert d["incident"] == incident, name
            link = d["links"]["console"]
            assert urlsplit(link).scheme == "https" and urlsplit(link).hostname.endswith(CONSOLE_HOSTS), (name, link)
            kinds.add(incident["root"]["kind"])
    assert len(kinds) >= 15


# ---- size ---------------------------------------------------------------------------------------
def test_entry_size_is_eventbridges_own_computation():
    entry = {"Source": "a", "DetailType": "bé", "Detail": "{\"x\":\"€\"}", "Resources": ["arn:x", "ü"], "EventBusName": "ignored"}
    assert entry_size(entry) == 1 + 3 + len("{\"x\":\"€\"}".encode()) + 5 + 2
    assert entry_size({**entry, "Time": "2026-11-30T09:00:00Z"}) == entry_size(entry) + 14


def test_batches_keep_requests_under_the_request_limit_and_ten_entries():
    incident, finding = scenario_notices()["key-policy"]
    big = copy.deepcopy(incident)
    big["remediation"] = "r" * 40_000
    entries = [event("opened", big if i % 2 else incident, finding) for i in range(25)]
    groups = batches(entries)
    assert [e for g in groups for e in g] == entries  # in order, none lost
    for group in groups:
        assert 1 <= len(group) <= 10 and sum(entry_size(e) for e in group) < PUT_EVENTS_LIMIT
    assert PUT_EVENTS_LIMIT // ENTRY_BUDGET == 4  # four incidents of the largest size fit one request


def hostile(incident: dict, finding: dict) -> tuple[dict, dict]:
    """Everything the caller chooses, as large and as strange as it can be."""
    inc, fnd = copy.deepcopy(incident), copy.deepcopy(finding)
    evil = 'quote " backslash \\ newline \n tab \t nul \x00 bidi \u202e emoji 🔑 han 鍵 ' * 2000
    fnd["error_message"] = evil
    fnd["user_agent"] = "ua/" + "é" * 500_000
    fnd["evidence"] = [evil] * 500
    fnd["remediation"] = evil
    fnd["policy"] = {"Statement": [{"Resource": evil}] * 50}
    fnd["joined"] = [{"event_id": str(i), "resource": evil} for i in range(200)]
    inc["remediation"] = evil * 3
    inc["evidence"] = [evil] * 300
    inc["searched"] = evil
    inc["title"] = evil
    inc["root"]["label"] = evil
    inc["principals"]["listed"] = [f"arn:aws:iam::111122223333:role/r{i}-{'p' * 400}" for i in range(5000)]
    inc["resources"]["listed"] = [f"prod/{i}/{'s' * 400}" for i in range(5000)]
    inc["change"] = dict(inc["change"] or {}, summary=evil)
    inc["later_changes"] = [{"event_id": str(i), "summary": evil} for i in range(300)]
    inc["superseded_by"] = {"deep": [[[[["x" * 100_000]]]]] * 40}
    inc["odd"] = {1: {b"bytes", float("nan")}, "lone": "\ud800surrogate", "inf": float("inf")}
    nested: dict = {}
    cursor = nested
    for _ in range(500):
        cursor["n"] = {}
        cursor = cursor["n"]
    inc["nested"] = nested
    shared: dict = {}
    shared["a"] = shared["b"] = shared  # a structure that contains itself, twice over
    inc["cyclic"] = shared
    return inc, fnd


@pytest.mark.parametrize("status", STATUSES)
@pytest.mark.parametrize("kind", ["key-policy", "principal-permissions", "org-policy"])
def test_huge_hostile_notices_are_cut_to_the_budget_in_the_documented_order(kind, status):
    incident, finding = scenario_notices(status)[kind]
    inc, fnd = hostile(incident, finding)
    entry = event(status, inc, fnd)
    assert entry_size(entry) <= ENTRY_BUDGET
    d = detail(entry)
    truncated = d["truncated"]
    assert truncated and len(truncated) == len(set(truncated))
    steps = [next((i for i, p in enumerate(("texts", "lists", "finding", "incident", "core")) if _step_of(path) == p)) for path in truncated]
    assert steps == sorted(steps), truncated  # the steps ran in the documented order
    assert d["incident"]["id"] == incident["id"] and d["incident"]["status"] == status
    assert d["oncall"]["pagerduty"]["dedup_key"] == incident["id"]
    _valid_oncall(status, d["oncall"])


def _step_of(path: str) -> str:
    if path == "finding":
        return "finding"
    texts = {"finding.error_message", "finding.user_agent", "finding.remediation", "finding.evidence", "finding.policy",
             "incident.remediation", "incident.evidence", "incident.searched", "incident.title", "incident.root.label",
             "incident.change.summary", "incident.later_changes.summary"}
    lists = {"incident.principals.listed", "incident.resources.listed", "incident.later_changes", "finding.joined"}
    if path in texts:
        return "texts"
    if path in lists:
        return "lists"
    return "incident" if path.startswith("incident.") else "core"


def test_each_step_runs_only_when_the_previous_ones_did_not_suffice():
    incident, finding = scenario_notices()["key-policy"]
    # a long remediation alone: cut as a text, nothing else
    inc = dict(incident, remediation="x" * 80_000)
    assert detail(event("opened", inc, finding))["truncated"] == ["incident.remediation"]
    # many listed principals of modest length: texts cannot help, lists do
    inc = copy.deepcopy(incident)
    inc["principals"]["listed"] = [f"arn:aws:iam::111122223333:role/team-{i}-{'x' * 100}" for i in range(2000)]
    d = detail(event("opened", inc, finding))
    assert d["truncated"] == ["incident.principals.listed"]
    assert len(d["incident"]["principals"]["listed"]) == 20 and d["incident"]["principals"]["count"] == incident["principals"]["count"]
    # a finding of many modest joined records: summarised
    fnd = dict(finding, joined=[{"event_id": str(i), "note": "j" * 900} for i in range(19)] , evidence=["e" * 900] * 19)
    fnd["policy"] = {"Statement": ["p" * 900]}
    d = detail(event("opened", incident, dict(fnd, user_agent="u" * 900, error_message="m" * 900,
                                                      extra=["z" * 999] * 70)))
    assert d["truncated"] == ["finding"] and d["finding"]["summarized"] is True
    assert d["finding"]["event_id"] == finding["event_id"] and d["finding"]["cause"] == finding["cause"]


def test_values_that_are_not_json_become_json():
    incident, finding = scenario_notices()["key-policy"]
    inc = dict(incident, odd=(1, 2), when=float("nan"), tags={"b", "a"}, raw=b"\xff\xfe", lone="\udc80x", keyed={3: "x"})
    d = detail(event("opened", inc, finding))
    assert d["incident"]["odd"] == [1, 2] and d["incident"]["when"] is None and d["incident"]["tags"] == ["a", "b"]
    assert d["incident"]["lone"].endswith("x") and d["incident"]["keyed"] == {"3": "x"}


# ---- console links --------------------------------------------------------------------------------
ACCT, REGION = "111122223333", "eu-west-1"


@pytest.mark.parametrize("root_id, expected", [
    (f"key:{s.KEY_ARN}", f"https://eu-west-1.console.aws.amazon.com/kms/home?region=eu-west-1#/kms/keys/{s.KEY_ID}"),
    (f"key:arn:aws:kms:us-east-2:{ACCT}:key/mrk-1234abcd12ab34cd56ef1234567890ab",
     "https://us-east-2.console.aws.amazon.com/kms/home?region=us-east-2#/kms/keys/mrk-1234abcd12ab34cd56ef1234567890ab"),
    (f"key-of:secret:{ACCT}:{REGION}:prod/db", "https://eu-west-1.console.aws.amazon.com/secretsmanager/secret?region=eu-west-1&name=prod%2Fdb"),
    (f"key-named:{ACCT}:{REGION}:my-key", "https://eu-west-1.console.aws.amazon.com/kms/home?region=eu-west-1#/kms/keys"),
    (f"alias:{ACCT}:{REGION}:alias/app", "https://eu-west-1.console.aws.amazon.com/kms/home?region=eu-west-1#/kms/keys"),
    (f"secret:{ACCT}:{REGION}:prod/orders/db", "https://eu-west-1.console.aws.amazon.com/secretsmanager/secret?region=eu-west-1&name=prod%2Forders%2Fdb"),
    (f"role:{ACCT}:checkout", "https://console.aws.amazon.com/iam/home#/roles/details/checkout"),
    (f"user:{ACCT}:deploy@ci", "https://console.aws.amazon.com/iam/home#/users/details/deploy%40ci"),
    (f"policy:arn:aws:iam::{ACCT}:policy/team/p", "https://console.aws.amazon.com/iam/home#/policies/details/arn%3Aaws%3Aiam%3A%3A111122223333%3Apolicy%2Fteam%2Fp"),
    (f"iam-policies:{ACCT}", "https://console.aws.amazon.com/iam/home#/policies"),
    ("org-policy:p-12345678", "https://console.aws.amazon.com/organizations/v2/home/policies"),
    (f"org-policies:{ACCT}", "https://console.aws.amazon.com/organizations/v2/home/policies"),
    ("vpce:vpce-0a1b2c3d4e5f67890", "https://eu-west-1.console.aws.amazon.com/vpcconsole/home?region=eu-west-1#EndpointDetails:vpcEndpointId=vpce-0a1b2c3d4e5f67890"),
    (f"vpce-in:{ACCT}:{REGION}", "https://eu-west-1.console.aws.amazon.com/vpcconsole/home?region=eu-west-1#Endpoints:"),
    (f"rate:{ACCT}:{REGION}:kms:Decrypt", "https://eu-west-1.console.aws.amazon.com/servicequotas/home/services/kms/quotas?region=eu-west-1"),
    (f"role:{ACCT}:ci|kms:Decrypt", "https://eu-west-1.console.aws.amazon.com/cloudtrailv2/home?region=eu-west-1#/events?EventName=Decrypt"),
    (f"role:{ACCT}:ci|kms:Decrypt|WeirdError", "https://eu-west-1.console.aws.amazon.com/cloudtrailv2/home?region=eu-west-1#/events?EventName=Decrypt"),
    ("access-key:AKIAEXAMPLE", "https://eu-west-1.console.aws.amazon.com/cloudtrailv2/home?region=eu-west-1#/events"),
    ("", "https://eu-west-1.console.aws.amazon.com/cloudtrailv2/home?region=eu-west-1#/events"),
])
def test_console_link_per_root_kind(root_id, expected):
    assert console_link({"kind": "k", "id": root_id, "label": ""}, ACCT, REGION) == expected


@pytest.mark.parametrize("root_id, region, expected", [
    (f"key:arn:aws-cn:kms:cn-north-1:{ACCT}:key/{s.KEY_ID}", "cn-north-1",
     f"https://console.amazonaws.cn/kms/home?region=cn-north-1#/kms/keys/{s.KEY_ID}"),
    (f"secret:{ACCT}:us-gov-west-1:prod/db", "us-gov-west-1",
     "https://console.amazonaws-us-gov.com/secretsmanager/secret?region=us-gov-west-1&name=prod%2Fdb"),
    (f"role:{ACCT}:checkout", "cn-northwest-1", "https://console.amazonaws.cn/iam/home#/roles/details/checkout"),
    (f"policy:arn:aws-us-gov:iam::{ACCT}:policy/p", "us-gov-east-1",
     "https://console.amazonaws-us-gov.com/iam/home#/policies/details/arn%3Aaws-us-gov%3Aiam%3A%3A111122223333%3Apolicy%2Fp"),
    (f"secret:{ACCT}:us-iso-east-1:prod/db", "us-iso-east-1", ""),  # no public console
    (f"key:arn:aws-iso:kms:us-iso-east-1:{ACCT}:key/{s.KEY_ID}", "us-iso-east-1", ""),
    (f"role:{ACCT}:checkout", "", "https://console.aws.amazon.com/iam/home#/roles/details/checkout"),
    (f"secret:{ACCT}::prod/db", "", "https://console.aws.amazon.com/secretsmanager/secret?name=prod%2Fdb"),
])
def test_console_link_follows_the_partition(root_id, region, expected):
    assert console_link({"id": root_id}, ACCT, region) == expected


@pytest.mark.parametrize("name", [
    'a"b', "x#/evil", "x?y=1&z", "../../../../", "@evil.example", "https://evil.example/", "\n\r\t", "名前/鍵", "%2e%2e",
    "a b", "<script>", "\u202eevil", "x" * 3000,
])
def test_names_from_the_event_never_leave_the_consoles_host(name):
    for root_id in (f"secret:{ACCT}:{REGION}:{name}", f"role:{ACCT}:{name}", f"user:{ACCT}:{name}", f"policy:arn:aws:iam::{ACCT}:policy/{name}",
                    f"key:arn:aws:kms:{REGION}:{ACCT}:key/{name}", f"vpce:{name}", f"rate:{ACCT}:{name}:kms:x", f"x|kms:{name}",
                    f"secret:{ACCT}:{name}:n", f"alias:{ACCT}:{REGION}:alias/{name}"):
        for region in (REGION, name, "cn-north-1"):
            link = console_link({"id": root_id}, ACCT, region)
            if not link:
                continue
            parts = urlsplit(link)
            assert parts.scheme == "https" and parts.hostname.endswith(CONSOLE_HOSTS), (root_id, link)
            assert all(33 <= ord(c) < 127 for c in link), (root_id, link)  # percent-encoded: no space, quote, control


def test_console_link_of_a_root_that_is_not_a_dict():
    assert console_link(None, ACCT, REGION).endswith("#/events")  # type: ignore[arg-type]
    assert console_link({"id": 42}, ACCT, "not a region") == "https://console.aws.amazon.com/cloudtrailv2/home#/events"


def test_cloudtrail_link_to_one_event():
    assert cloudtrail_link(REGION, event_id="68420fbe-72c5-5edc-b934-a8d006677693") == (
        "https://eu-west-1.console.aws.amazon.com/cloudtrailv2/home?region=eu-west-1#/events/68420fbe-72c5-5edc-b934-a8d006677693")
    assert cloudtrail_link(REGION, event_id="../x").endswith("#/events")


# ---- what on-call tools receive ---------------------------------------------------------------------
def _valid_oncall(status: str, oncall: dict) -> None:
    shapes.pagerduty_alert(oncall["pagerduty"])
    assert "routing_key" not in oncall["pagerduty"]
    if status == "resolved":
        shapes.opsgenie_close(oncall["opsgenie"])
    else:
        shapes.opsgenie_create(oncall["opsgenie"])


@pytest.mark.parametrize("status", STATUSES)
def test_pagerduty_triggers_on_opened_and_updated_and_resolves_on_resolved_by_the_incident_id(status):
    for kind, (incident, finding) in scenario_notices(status).items():
        d = detail(event(status, incident, finding))
        pd = d["oncall"]["pagerduty"]
        _valid_oncall(status, d["oncall"])
        assert pd["dedup_key"] == incident["id"], kind
        if status == "resolved":
            assert pd == {"event_action": "resolve", "dedup_key": incident["id"]}
            continue
        assert pd["event_action"] == "trigger"
        payload = pd["payload"]
        assert payload["severity"] == {"critical": "critical", "high": "error", "medium": "warning", "low": "info"}[incident["severity"]]
        assert payload["class"] == incident["cause"] and payload["group"] == incident["root"]["kind"]
        assert payload["summary"].startswith(f"[{status.upper()}] ") and payload["timestamp"] == incident["last_failure"]
        assert [link["href"] for link in pd["links"]] == [d["links"]["console"], d["links"]["troubleshooting"]]
        details = payload["custom_details"]
        assert details["failures"] == incident["failures"] and details["remediation"]
        if incident["change"]:
            assert details["change"].startswith(incident["change"]["action"] + " by "), kind


@pytest.mark.parametrize("status", STATUSES)
def test_opsgenie_creates_by_alias_and_closes_by_alias_with_the_priority_mapped(status):
    incident, finding = scenario_notices(status)["key-policy"]
    og = detail(event(status, incident, finding))["oncall"]["opsgenie"]
    if status == "resolved":
        assert set(og) == {"source", "user", "note"} and "40 min" in og["note"]
        return
    assert og["alias"] == incident["id"] and og["priority"] == "P2" and og["source"] == SOURCE
    assert og["message"].startswith("Access denied to the KMS key")
    assert "Console: https://eu-west-1.console.aws.amazon.com/kms/home" in og["description"]
    assert og["details"]["incident"] == incident["id"] and og["details"]["failures"] == "2"
    assert ("note" in og) == (status == "updated")


def test_people_read_sanitised_one_line_texts_in_the_bodies():
    incident, finding = scenario_notices()["key-policy"]
    inc = copy.deepcopy(incident)
    inc["root"]["label"] = 'secret "prod" https://evil.example/x\n\u202e' + "🔑" * 3
    inc["title"] = "Title with `markdown` and @here"
    d = detail(event("opened", inc, finding))
    pd, og = d["oncall"]["pagerduty"], d["oncall"]["opsgenie"]
    for text in (pd["payload"]["summary"], og["message"], og["entity"]):
        assert "https://evil" not in text and "\n" not in text and "\u202e" not in text
    assert "hxxps[://]evil[.]example/x" in pd["payload"]["summary"]
    _valid_oncall("opened", d["oncall"])


def test_bodies_are_rendered_from_incomplete_incidents_too():
    links = {"console": "", "troubleshooting": ""}
    for status in STATUSES:
        shapes.pagerduty_alert(pagerduty_event(status, {}, {}, links))
        body = opsgenie_request(status, {}, {}, links)
        (shapes.opsgenie_close if status == "resolved" else shapes.opsgenie_create)(body)


def test_pagerduty_change_events_from_the_changes_the_auditor_watches():
    for record in (s.put_key_policy(-900), s.disable_key(-300), s.detach_role_policy(-60, "checkout", "arn:aws:iam::111122223333:policy/p"),
                   s.attach_scp(-60, "p-12345678", "111122223333")):
        body = pagerduty_change_event(record)
        shapes.pagerduty_change(body)
        payload = body["payload"]
        assert record["eventName"] in payload["summary"] and payload["timestamp"] == record["eventTime"]
        assert payload["custom_details"]["event_id"] == record["eventID"]
        assert body["links"][0]["href"].endswith(f"#/events/{record['eventID']}")
        assert "requestParameters" not in json.dumps(body) and "policy\":" not in json.dumps(payload)
    failed = dict(s.put_key_policy(0), errorCode="AccessDenied")
    not_watched = dict(s.put_key_policy(0), eventName="ListKeys")
    assert pagerduty_change_event(failed) is None and pagerduty_change_event(not_watched) is None
    assert pagerduty_change_event({"eventSource": 1}) is None and pagerduty_change_event("x") is None  # type: ignore[arg-type]


def test_the_module_is_cheap_to_import():
    """It is on the function's cold start path: json and the contract, nothing heavy, no I/O."""
    code = ("import sys; before = set(sys.modules); import auditor.incident_event; "
            "print(sorted(m for m in set(sys.modules) - before))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = set(eval(done.stdout))  # noqa: S307 - our own subprocess's printed list
    assert {m for m in loaded if m.startswith("auditor")} == {"auditor", "auditor.contract", "auditor.incident_event"}
    heavy = ("boto3", "botocore", "urllib", "http", "ssl", "socket", "email", "aws_lambda_powertools", "dataclasses")
    assert not [m for m in loaded if m.split(".")[0] in heavy], sorted(loaded)


# ---- the documented schema ---------------------------------------------------------------------------
def test_every_event_validates_against_the_documented_schema_even_when_cut():
    import jsonschema

    from .conftest import FIXTURES
    from .eventbridge_input import envelope

    schema = json.loads((FIXTURES.parents[1] / "docs" / "incident-event.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    checked = 0
    for status in STATUSES:
        notices = [(n, i, f) for n, i, f in fixture_notices(status)]
        notices += [(f"hostile {k}", *hostile(i, f)) for k, (i, f) in scenario_notices(status).items()]
        for name, incident, finding in notices:
            errors = sorted(validator.iter_errors(envelope(event(status, incident, finding))), key=str)
            assert not errors, (name, [e.message for e in errors[:3]])
            checked += 1
    assert checked > 300
    # and the schema is not vacuous: a routing key in the PagerDuty body, a foreign link, a wrong source fail it
    bad = envelope(event("opened", *scenario_notices()["key-policy"]))
    bad["detail"]["oncall"]["pagerduty"]["routing_key"] = "x"
    bad["detail"]["links"]["console"] = "https://evil.example/"
    bad["source"] = "aws.kms"
    assert len(list(validator.iter_errors(bad))) == 3
