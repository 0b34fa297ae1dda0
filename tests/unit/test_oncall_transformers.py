"""EventBridge's input transformation, simulated locally by its documented rules
(tests/unit/eventbridge_input.py), and why the on-call targets pass pre-rendered bodies with
InputPath rather than templating incident text: a template cannot carry a quote, a backslash or
a newline safely, an InputPath over an object carries anything.

The targets the synthesized template actually holds are checked the same way, with real
incident events, in tests/infra/test_oncall.py."""

from __future__ import annotations

import copy
import json

import pytest

from auditor.incident_event import incident_event

from . import oncall_shapes as shapes
from .eventbridge_input import MISSING, api_destination_request, at_path, envelope, matches, transform, target_input
from .incident_samples import BUS, SOURCE, scenario_notices

EC2 = {"version": "0", "id": "7bf73129-1428-4cd3-a780-95db273d1602", "detail-type": "EC2 Instance State-change Notification",
       "source": "aws.ec2", "account": "123456789012", "time": "2015-11-11T21:29:54Z", "region": "us-east-1",
       "resources": ["arn:aws:ec2:us-east-1:123456789012:instance/i-abcd1111"],
       "detail": {"instance-id": "i-0123456789", "state": "RUNNING"}}
PATHS = {"timestamp": "$.time", "instance": "$.detail.instance-id", "state": "$.detail.state", "resource": "$.resources[0]"}
#: Texts an incident may carry (the caller chooses much of them: secret names, error messages).
HOSTILE = ['a "quoted" name', "back\\slash", "new\nline", "tab\tand\r", "unicode ключ 鍵 🔑", "</script><", "{\"json\": 1}",
           "\u2028line separator", "<state>"]


# ---- the simulator follows the documented examples ---------------------------------------------------
@pytest.mark.parametrize("template, output", [
    ('"instance <instance> is in <state>"', '"instance i-0123456789 is in RUNNING"'),
    ('"instance \\"<instance>\\" is in <state>"', '"instance \\"i-0123456789\\" is in RUNNING"'),
    ('{"instance" : <instance>, "state": <state>}', '{"instance" : "i-0123456789", "state": "RUNNING"}'),
    ('{"instance" : <instance>, "state": "<state>", "instanceStatus": "instance \\"<instance>\\" is in <state>"}',
     '{"instance" : "i-0123456789", "state": "RUNNING", "instanceStatus": "instance \\"i-0123456789\\" is in RUNNING"}'),
    ('{"instance" : <instance>, "state": [ 9, <state>, true ], "Transformed" : "Yes"}',
     '{"instance" : "i-0123456789", "state": [ 9, "RUNNING", true ], "Transformed" : "Yes"}'),
    ('"<aws.events.rule-name> triggered"', '"example triggered"'),
])
def test_the_documented_examples(template, output):
    assert transform({"InputPathsMap": PATHS, "InputTemplate": template}, EC2, rule_name="example") == output


def test_reserved_variables_and_the_whole_event():
    out = json.loads(transform({"InputPathsMap": PATHS, "InputTemplate": '{"arn": <aws.events.rule-arn>, "e": <aws.events.event>, '
                                                                         '"j": <aws.events.event.json>}'}, EC2))
    assert out["arn"].startswith("arn:aws:events:") and "detail" not in out["e"] and out["j"] == EC2


def test_a_variable_whose_path_is_missing_is_not_created():
    out = transform({"InputPathsMap": {"x": "$.detail.nope"}, "InputTemplate": '"value: <x>."'}, EC2)
    assert out == '"value: ."'
    assert at_path(EC2, "$.detail.nope") is MISSING and at_path(EC2, "$.resources[3]") is MISSING


def test_a_placeholder_cannot_be_an_object_key():
    with pytest.raises(AssertionError, match="object key"):
        transform({"InputPathsMap": PATHS, "InputTemplate": '{<state>: 1}'}, EC2)


# ---- why templates are not used for incident text -------------------------------------------------
@pytest.mark.parametrize("text", HOSTILE)
def test_a_template_cannot_carry_incident_text_safely(text):
    """EventBridge does not escape what it substitutes: quoted or bare, a text with a quote, a
    backslash or a control character breaks the JSON, or changes it."""
    event = {"detail": {"summary": text}}
    broken = 0
    for template in ('{"summary": "<s>"}', '{"summary": <s>}'):
        out = transform({"InputPathsMap": {"s": "$.detail.summary"}, "InputTemplate": template}, event)
        try:
            broken += json.loads(out)["summary"] != text
        except ValueError:
            broken += 1
    # only text that needs no escaping survives (a quote, a backslash, a control character all do)
    assert broken == (2 if any(c in text for c in '"\\\n\r\t') else 0), (text, broken)


@pytest.mark.parametrize("text", HOSTILE)
def test_an_input_path_over_an_object_carries_any_text_exactly(text):
    event = {"detail": {"oncall": {"body": {"summary": text, "nested": {"list": [text]}}}}}
    out = target_input({"InputPath": "$.detail.oncall.body"}, event)
    assert json.loads(out) == event["detail"]["oncall"]["body"]


# ---- the bodies the function renders, through InputPath, for every status and hostile text ----------
def notices_with_hostile_text(status: str):
    for kind, (incident, finding) in scenario_notices(status).items():
        yield kind, incident, finding
        for text in HOSTILE:
            inc, fnd = copy.deepcopy(incident), copy.deepcopy(finding)
            inc["root"]["label"] = f"the policy of {text}"
            inc["title"] = text
            inc["remediation"] = text * 50
            inc["principals"]["listed"] = [text, text + "2"]
            if inc.get("change"):
                inc["change"]["actor"] = text
            fnd["error_message"] = text
            yield f"{kind}+{text!r}", inc, fnd


@pytest.mark.parametrize("status", ["opened", "updated", "resolved"])
def test_every_status_and_every_text_makes_a_valid_pagerduty_event_and_opsgenie_request(status):
    opsgenie_close = {"InvocationEndpoint": "https://api.eu.opsgenie.com/v2/alerts/*/close", "HttpMethod": "POST"}
    opsgenie_create = {"InvocationEndpoint": "https://api.eu.opsgenie.com/v2/alerts", "HttpMethod": "POST"}
    connection = {"AuthParameters": {"ApiKeyAuthParameters": {"ApiKeyName": "Authorization", "ApiKeyValue": "GenieKey {{resolve:...}}"}}}
    seen = 0
    for name, incident, finding in notices_with_hostile_text(status):
        event = envelope(incident_event(status, incident, finding, source=SOURCE, bus_name=BUS))
        assert matches({"source": [SOURCE], "detail-type": [event["detail-type"]]}, event)
        pagerduty = json.loads(target_input({"InputPath": "$.detail.oncall.pagerduty"}, event))
        shapes.pagerduty_alert(pagerduty)
        assert pagerduty["dedup_key"] == incident["id"], name
        assert pagerduty["event_action"] == ("resolve" if status == "resolved" else "trigger"), name
        if status == "resolved":
            target = {"InputPath": "$.detail.oncall.opsgenie", "HttpParameters": {
                "PathParameterValues": ["$.detail.incident.id"], "QueryStringParameters": {"identifierType": "alias"}}}
            request = api_destination_request(opsgenie_close, connection, target, event)
            assert request.url == f"https://api.eu.opsgenie.com/v2/alerts/{incident['id']}/close?identifierType=alias", name
            shapes.opsgenie_close(request.json())
        else:
            request = api_destination_request(opsgenie_create, connection, {"InputPath": "$.detail.oncall.opsgenie"}, event)
            body = request.json()
            shapes.opsgenie_create(body)
            assert body["alias"] == incident["id"], name
        assert request.headers["Authorization"].startswith("GenieKey ")
        seen += 1
    assert seen == 5 * (1 + len(HOSTILE))
