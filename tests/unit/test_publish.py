"""What each kind of subscriber reads, and that hostile strings come out inert and bounded:
no link, no control character, no extra line, every field bounded, whatever the event holds."""

from __future__ import annotations

import copy
import json
import unicodedata

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from auditor.causes import CATALOG
from auditor.classify import classify
from auditor.facts import Facts
from auditor.finding import Finding
from auditor.incidents import Attribution, Incident, epoch
from auditor.publish import _size
from auditor.render import email_text, message, subject_for
from auditor.roots import Root
from auditor.lifecycle import Notice
from auditor.records import FailedCall, Principal, parse_record

from .conftest import fixture_records
from .linkify import live_links
from .test_records import DENIED

# The custom-notification schema of Amazon Q Developer in chat applications (version 1.0), as
# documented: version and source are fixed, content.description is required, everything else optional.
CHATBOT_SCHEMA = {
    "type": "object",
    "required": ["version", "source", "content"],
    "properties": {
        "version": {"const": "1.0"},
        "source": {"const": "custom"},
        "id": {"type": "string"},
        "content": {
            "type": "object",
            "required": ["description"],
            "properties": {
                "textType": {"enum": ["client-markdown"]},
                "title": {"type": "string", "maxLength": 250},
                "description": {"type": "string", "maxLength": 8000},
                "nextSteps": {"type": "array", "items": {"type": "string"}},
                "keywords": {"type": "array", "items": {"type": "string"}},
            },
            "additionalProperties": False,
        },
        "metadata": {
            "type": "object",
            "properties": {
                "threadId": {"type": "string"},
                "summary": {"type": "string"},
                "eventType": {"type": "string"},
                "relatedResources": {"type": "array", "items": {"type": "string"}},
                "additionalContext": {"type": "object", "additionalProperties": {"type": "string"}},
            },
            "additionalProperties": False,
        },
    },
    "additionalProperties": False,
}

HOSTILE = [
    "<!channel> @here @everyone <https://evil.example|click> [click](https://evil.example) **bold** `code` ~x~ _y_",
    "line one\r\nBcc: victim@example.com\r\nSubject: spoofed",
    "<script>alert(1)</script><img src=x onerror=alert(1)>",
    "\u202etxt.exe\u200b\x00\x07\x1b[31mred",
    '"}, "cause": "spoofed", "x": {"',
    "https://evil.example/reset-password www.evil.example victim@evil.example ｅｖｉｌ．ｅｘａｍｐｌｅ javascript:alert(1)",
    "x" * 100_000,
]


def notice_for(finding, status: str = "opened", **overrides) -> Notice:
    """An incident state change as the state module builds it (plain, or with hostile fields)."""
    fields = dict(id="principal-permissions-0123456789abcdef", status="resolved" if status == "resolved" else "open",
                  occurrence=1, finding=finding, cause=finding.cause, title=finding.title,
                  severity=finding.severity, first_failure=epoch("2027-01-15T08:00:00Z"), last_failure=epoch("2027-01-15T08:05:00Z"),
                  failures=7, principals=("arn:aws:iam::111122223333:role/ci-deployer",), resources=("prod/db",),
                  principal_keys=frozenset({"a"}), resource_keys=frozenset({"b"}),
                  remediation="Put the policy back.", evidence=tuple(finding.evidence),
                  attribution=Attribution({"event_id": "e-1", "event_time": "2027-01-15T07:50:00Z", "action": "DetachRolePolicy",
                                           "actor": "arn:aws:sts::111122223333:assumed-role/admin/alice", "lead": "10 min",
                                           "lead_seconds": 600, "tier": 0, "summary": "DetachRolePolicy on role x"},
                                          "policy changes to role:111122223333:ci-deployer"),
                  root=Root("principal-permissions", "role:111122223333:ci-deployer",
                            "the permissions of arn:aws:iam::111122223333:role/ci/ci-deployer"),
                  opened_at=1_800_000_000, resolved_at=1_800_001_800 if status == "resolved" else 0)
    fields.update(overrides)
    return Notice(status, Incident(**fields), finding, "", ("sns",))


def finding_with(message_text: str, resource: str = "prod/db"):
    record = copy.deepcopy(DENIED)
    record["errorMessage"] = message_text
    record["requestParameters"] = {"secretId": resource}
    record["userAgent"] = message_text
    return classify(parse_record(record))


def test_sns_message_has_a_body_per_protocol_and_filterable_attributes():
    finding = finding_with(DENIED["errorMessage"])
    notice = notice_for(finding)
    msg = message(finding, notice)
    assert msg["MessageStructure"] == "json"
    bodies = json.loads(msg["Message"])
    assert set(bodies) == {"default", "email", "email-json", "https", "http"}
    machine = json.loads(bodies["default"])  # what SQS, Lambda and Firehose subscribers get: the exact finding
    assert machine == {**finding.to_dict(), "incident": notice.incident_dict()}
    people = json.loads(bodies["email-json"])  # what an e-mail-json subscriber reads in a mail client
    assert people["cause"] == finding.cause and people["incident"]["id"] == notice.incident.id
    assert people["remediation"] == "Put the policy back."  # the incident's one remediation for its root
    assert set(people) == set(machine)
    assert {k: v["StringValue"] for k, v in msg["MessageAttributes"].items()} == {
        "cause": "access-denied.organizations-policy", "severity": "high", "service": "secretsmanager",
        "account": "111122223333", "region": "eu-west-1", "confidence": "high", "status": "opened",
        "incident_id": "principal-permissions-0123456789abcdef"}
    assert msg["Subject"].startswith("[OPENED][HIGH] access-denied.organizations-policy")


def test_chatbot_payload_is_valid_for_its_schema():
    jsonschema = pytest.importorskip("jsonschema")
    for text in [DENIED["errorMessage"], *HOSTILE]:
        payload = json.loads(json.loads(message(finding_with(text))["Message"])["https"])
        jsonschema.validate(payload, CHATBOT_SCHEMA)
        context = json.loads(payload["metadata"]["additionalContext"]["finding"])  # the sanitised finding
        assert context["cause"] and live_links(payload["metadata"]["additionalContext"]["finding"], allow_docs=True) == []


def test_email_text_reads_as_a_report():
    finding = finding_with(DENIED["errorMessage"])
    text = email_text(finding, notice_for(finding, "resolved"))
    for expected in ("Cause:      access-denied.organizations-policy", "Caller:", "Evidence:", "Fix:",
                     "Documentation: https://", "Incident:   RESOLVED principal-permissions-0123456789abcdef (occurrence 1), "
                     "7 failure(s) since 2027-01-15T08:00:00Z; no failure since 2027-01-15T08:05:00Z, open 1800 s",
                     "Changed:    Most likely started by DetachRolePolicy by arn:aws:sts::111122223333:assumed-role/admin/alice"):
        assert expected in text, expected
    assert text.split("\n")[2].startswith("Incident:   RESOLVED")  # on-call reads the status first
    assert subject_for(finding) == "[HIGH] access-denied.organizations-policy: secretsmanager:GetSecretValue in 111122223333/eu-west-1"


@pytest.mark.parametrize("hostile", HOSTILE)
def test_hostile_strings_are_inert_and_bounded_everywhere(hostile):
    finding = finding_with(hostile, resource=hostile[:500])
    msg = message(finding)
    subject = msg["Subject"]
    assert len(subject) < 100 and subject.isascii() and "\n" not in subject and "\r" not in subject
    bodies = json.loads(msg["Message"])
    email = bodies["email"]
    assert "\r" not in email and "\nBcc:" not in email and "\nSubject:" not in email
    assert len(email) < 20_000
    chat = json.loads(bodies["https"])
    shown = chat["content"]["description"] + "".join(chat["content"]["nextSteps"]) + chat["content"]["title"]
    assert "<!channel>" not in shown and "@here" not in shown and "@everyone" not in shown
    assert "<script>" not in shown and "<https://evil" not in shown and "](https://evil" not in shown
    assert "\u202e" not in shown and "\x1b" not in shown and "\x00" not in shown
    assert len(json.dumps(chat)) < 60_000
    machine = json.loads(bodies["default"])
    assert machine["cause"] == finding.cause  # a crafted message cannot spoof fields
    assert len(bodies["default"]) < 40_000
    for body in (email, bodies["email-json"], bodies["https"], subject):
        assert live_links(body, allow_docs=True) == [], live_links(body, allow_docs=True)


def test_a_batch_of_large_findings_is_split_to_fit_publish_batch_limits():
    """PublishBatch takes 10 entries and 256 KiB in all: findings carrying long (hostile, non-ASCII)
    texts must not make a whole call fail with BatchRequestTooLong, forever on every retry."""
    from auditor.publish import BATCH_BYTES, BATCH_ENTRIES, Publisher, _size

    class Recorder:
        def __init__(self):
            self.calls = []

        def publish_batch(self, TopicArn, PublishBatchRequestEntries):
            assert len(PublishBatchRequestEntries) <= BATCH_ENTRIES
            assert sum(_size(e) for e in PublishBatchRequestEntries) <= 256 * 1024
            self.calls.append([e["Id"] for e in PublishBatchRequestEntries])
            return {"Successful": [{"Id": e["Id"]} for e in PublishBatchRequestEntries], "Failed": []}

    huge = "\u4e2d\u6587 " * 20_000  # escapes to 6 bytes a character in the outer JSON
    notices = [notice_for(finding_with(huge + str(i), resource="prod/db-" + huge[:400])) for i in range(23)]
    client = Recorder()
    assert Publisher("arn:aws:sns:us-east-1:111122223333:findings", client=client).publish_notices(notices) == [None] * 23
    assert sorted(int(i) for call in client.calls for i in call) == list(range(23))  # each once
    assert len(client.calls) > 3  # more calls than 10-at-a-time would make
    assert BATCH_BYTES < 256 * 1024


# ---------------------------------------------------------------------------------------------
# The two cases, and every field of a finding fed hostile text
# ---------------------------------------------------------------------------------------------
def test_a_secret_id_that_is_a_url_is_no_link_in_the_email_or_the_chat():
    finding = finding_with(DENIED["errorMessage"], resource="https://evil.example/reset-password")
    bodies = json.loads(message(finding)["Message"])
    assert "Resource:   hxxps[://]evil[.]example/reset-password\n" in bodies["email"]
    chat = json.loads(bodies["https"])
    assert "*Resource:* hxxps[://]evil[.]example/reset-password" in chat["content"]["description"]
    assert chat["metadata"]["relatedResources"] == ["hxxps[://]evil[.]example/reset-password"]
    assert json.loads(bodies["email-json"])["resource"] == "hxxps[://]evil[.]example/reset-password"
    for body in (bodies["email"], bodies["https"], bodies["email-json"]):
        assert "evil.example" not in body and live_links(body, allow_docs=True) == []
    assert json.loads(bodies["default"])["resource"] == "https://evil.example/reset-password"  # machines: exact


def test_a_newline_in_the_identity_type_starts_no_line_in_the_email():
    record = copy.deepcopy(DENIED)
    record["userIdentity"]["type"] = "AssumedRole\nBcc: victim@evil.example\r\nX-Spoofed: yes"
    finding = classify(parse_record(record))
    plain = finding_with(DENIED["errorMessage"])
    bodies = json.loads(message(finding)["Message"])
    email = bodies["email"]
    lines = email.split("\n")
    assert len(lines) == len(email_text(plain).split("\n"))  # the same shape as without the newline
    assert not any(line.startswith(("Bcc:", "X-Spoofed:")) for line in lines)
    (caller,) = [line for line in lines if line.startswith("Caller:")]
    assert "(AssumedRole Bcc: victim@evil[.]example X-Spoofed: yes, temporary credentials)" in caller
    assert "\r" not in email and "\n" not in json.loads(bodies["https"])["metadata"]["summary"]
    assert json.loads(bodies["email-json"])["principal"]["type"] == "AssumedRole Bcc: victim@evil[.]example X-Spoofed: yes"


def test_what_is_ours_reads_exactly_for_every_fixture():
    """Cause ids, the kms:ViaService endpoint and the policy statement stay pasteable; the one
    link is the catalog's documentation URL."""
    for cause, path, record, facts in fixture_records():
        call = parse_record(record)
        if not isinstance(call, FailedCall):
            continue
        finding = classify(call, Facts.from_dict(facts) if facts else None)
        msg = message(finding)
        bodies = json.loads(msg["Message"])
        email = bodies["email"]
        assert f"Cause:      {finding.cause} (" in email, path
        assert msg["MessageAttributes"]["cause"]["StringValue"] == finding.cause
        assert f"Documentation: {finding.doc_url}\n" in email, path
        chat = json.loads(bodies["https"])
        assert chat["content"]["nextSteps"][-1] == f"<{finding.doc_url}|Troubleshooting guide>"
        assert chat["metadata"]["eventType"] == finding.cause and chat["content"]["keywords"][0] == finding.cause
        if finding.policy and "." not in json.dumps(finding.policy).replace(".amazonaws.com", ""):
            assert "  " + json.dumps(finding.policy, ensure_ascii=False) + "\n" in email, path
            assert json.loads(bodies["email-json"])["policy"] == finding.policy
        for body in (email, bodies["https"], bodies["email-json"], msg["Subject"]):
            assert live_links(body, allow_docs=True) == [], (path, live_links(body, allow_docs=True))


def test_extra_lines_are_shown_to_people_sanitised_and_machines_get_the_finding():
    finding = finding_with(DENIED["errorMessage"])
    msg = message(finding, lines=["Incident 42 opened", "see https://evil.example\nBcc: x"])
    bodies = json.loads(msg["Message"])
    email = bodies["email"].split("\n")
    assert email[-3:] == ["Incident 42 opened", "see hxxps[://]evil[.]example Bcc: x", ""]
    chat = json.loads(bodies["https"])["content"]["description"]
    assert chat.endswith("_Incident 42 opened_\n_see hxxps[://]evil[.]example Bcc: x_")
    assert json.loads(bodies["email-json"])["notes"][:2] == ["Incident 42 opened", "see hxxps[://]evil[.]example Bcc: x"]
    assert "notes" not in json.loads(bodies["default"])


HOSTILE_PIECES = [
    "https://evil.example/reset-password", "HTTP://EVIL.EXAMPLE", "ftp://evil.example/x", "hxxp://x", "1x://evil",
    "https:\\\\evil.example", "https:/evil.example", "mailto:victim@evil.example", "JaVaScRiPt:alert(1)",
    "data:text/html;base64,PHNjcmlwdD4=", "www.evil.example", "WWW.evil", "evil.example", "a.b.co/path", "victim@example.com",
    "ｅｖｉｌ．ｅｘａｍｐｌｅ", "evil。example", "evil｡example", "evil․example", "evil﹒example", "evil⒈com", "xn--80ak6aa92e.com",
    "evil-bucket.s3.amazonaws.com", "secretsmanager.evil.example", "secretsmanager.amazonaws.com.evil.example",
    "x@secretsmanager.amazonaws.com", "secretsmanager.us-east-1.amazonaws.com", "/evil", ".evil", ":", "//", ".",
    "kms:ViaService", "access-denied.kms-key", "https", "evil", "example", "co", "www",
    "\n", "\r\n", "\r", "\x00", "\x1b[31m", "\u202e", "\u2066", "\u200b", "\u2028", "\u0085", "\ud800", "\udfff",
    "\u0301", "\ufdfa", "<script>alert(1)</script>", '<a href="https://evil.example">x</a>', "<https://evil.example|click>",
    "[click](https://evil.example)", "@here", "<!channel>", "**bold**", "`code`", "_i_", "~s~", "Bcc: victim@evil.example",
    '"}, "cause": "spoofed", "x": {"', "\\", "x" * 2000,
]
hostile = st.lists(st.one_of(st.sampled_from(HOSTILE_PIECES), st.text(max_size=20)), max_size=10).map("".join)
PRINCIPAL_FIELDS = ("arn", "type", "account", "identity_arn", "access_key_id", "invoked_by", "session_issuer")
FINDING_TEXT_FIELDS = ("event_id", "event_time", "account", "region", "service", "action", "error_code", "error_message",
                       "source_ip", "user_agent", "resource", "cause", "title", "severity", "confidence", "remediation",
                       "topic", "fingerprint")


@st.composite
def hostile_findings(draw):
    principal = Principal(**{f: draw(hostile) for f in PRINCIPAL_FIELDS}, temporary=draw(st.booleans()))
    policy = draw(st.one_of(st.none(), st.dictionaries(hostile, st.one_of(hostile, st.lists(hostile, max_size=3),
                                                                           st.dictionaries(hostile, hostile, max_size=2)),
                                                       min_size=1, max_size=4)))
    doc_url = draw(st.one_of(hostile, st.sampled_from(sorted({c.doc_url for c in CATALOG}))))
    return Finding(**{f: draw(hostile) for f in FINDING_TEXT_FIELDS}, principal=principal,
                   evidence=tuple(draw(st.lists(hostile, max_size=25))), policy=policy, doc_url=doc_url)


def _strings(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield k
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


def _printable(text: str, allowed: str = "") -> bool:
    return all(unicodedata.category(ch)[0] not in "CZ" or ch == " " or ch in allowed for ch in text)


@st.composite
def hostile_notices(draw, finding):
    """No incident, or one whose every text (root label and id, principals, resources, the change
    found, what was searched, the remediation, the reason) is hostile: they come from records too."""
    if draw(st.booleans()):
        return None
    change = draw(st.one_of(st.none(), st.fixed_dictionaries({k: hostile for k in (
        "event_id", "event_time", "action", "actor", "lead", "summary")})))
    if change is not None:
        change["tier"] = draw(st.sampled_from([0, 1]))
    status = draw(st.sampled_from(["opened", "updated", "resolved"]))
    principals = draw(st.lists(hostile, max_size=7))
    resources = draw(st.lists(hostile, max_size=7))
    later = draw(st.lists(st.fixed_dictionaries({k: hostile for k in ("action", "actor", "event_time", "event_id")}), max_size=2))
    incident = Incident(
        id=draw(hostile), root=Root(draw(hostile), draw(hostile), draw(hostile)),
        status="resolved" if status == "resolved" else "open", occurrence=draw(st.integers(1, 10**6)), finding=finding,
        cause=draw(hostile), title=draw(hostile), severity=draw(hostile),
        first_failure=draw(st.floats(0, 4e9)), last_failure=draw(st.floats(0, 4e9)),
        failures=draw(st.integers(1, 10**9)), principals=tuple(principals), resources=tuple(resources),
        principal_keys=frozenset(principals), resource_keys=frozenset(resources), remediation=draw(hostile),
        evidence=tuple(draw(st.lists(hostile, max_size=3))), attribution=Attribution(change, draw(hostile)),
        opened_at=1_800_000_000, resolved_at=1_800_000_600 if status == "resolved" else 0,
        later_changes=tuple(later), ended_by=later[0] if later and draw(st.booleans()) else None,
        superseded_by=draw(st.one_of(st.just(""), hostile)), notes=tuple(draw(st.lists(hostile, max_size=2))))
    return Notice(status, incident, finding, draw(st.one_of(st.just(""), hostile)), ("sns",))


@given(st.data(), hostile_findings(), st.lists(hostile, max_size=3))
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
def test_hostile_text_in_every_field_reaches_no_reader_as_a_link_a_line_or_a_control(data, finding, lines):
    notice = data.draw(hostile_notices(finding))
    msg = message(finding, notice, lines=lines)
    bodies = json.loads(msg["Message"])
    ours = finding.doc_url in {c.doc_url for c in CATALOG}

    subject = msg["Subject"]
    assert subject.isascii() and subject.isprintable() and len(subject) < 100 and live_links(subject) == []

    # e-mail: the report's own lines and nothing else; every field on one line, bounded
    email = bodies["email"].split("\n")
    shown = [line for line in lines if line]
    if notice is None:
        head = 0
    else:
        i, resolved = notice.incident, notice.status == "resolved"
        ended = (i.ended_by or {}).get("event_id")
        others = [x for x in i.later_changes if not i.ended_by or x.get("event_id") != ended]
        head = 6 + resolved + bool(i.superseded_by) + bool(notice.reason) + (resolved and bool(others)) + bool(i.notes)
    expected = head + 14 + min(len(finding.evidence), 20) + (3 if finding.policy else 0) + 2 + (1 + len(shown) if shown else 0) + 1
    assert len(email) == expected
    assert email[head + 2].startswith("Cause: ") and email[head + 8].startswith("When: ") and email[head + 10] == "Evidence:"
    if notice is not None:
        assert email[2].startswith(f"Incident:   {notice.status.upper()} ")
    assert all(_printable(line) and len(line) <= 1600 for line in email)
    assert live_links(bodies["email"], allow_docs=ours) == []

    # chat: sanitised text only (newlines are ours, the word joiner is the mention escape)
    chat = json.loads(bodies["https"])
    assert bodies["http"] == bodies["https"]
    for text in _strings(chat):
        assert _printable(text, "\n\u2060") and live_links(text, allow_docs=ours) == [], text
    assert len(chat["content"]["title"]) <= 250 and len(chat["content"]["description"]) <= 8000
    assert chat["content"]["description"].count("\n") == 4 + min(len(finding.evidence), 6) + len(shown) + max(head - 1, 0)

    # e-mail-json and the chat's additionalContext: the sanitised finding, every string one bounded line
    for people in (bodies["email-json"], chat["metadata"]["additionalContext"]["finding"]):
        assert live_links(people, allow_docs=ours) == []
        for text in _strings(json.loads(people)):
            assert _printable(text) and len(text) <= 1500 and live_links(text, allow_docs=ours) == []

    # attributes: bounded, printable, no link
    for attribute in msg["MessageAttributes"].values():
        value = attribute["StringValue"]
        assert 0 < len(value) <= 256 and _printable(value) and live_links(value) == []

    # machines still get the exact finding (as JSON carries it: a surrogate pair is one character); the message fits SNS
    exact = json.loads(json.dumps({**finding.to_dict(), **({"incident": notice.incident_dict()}
                                                         if notice is not None else {})}))
    assert json.loads(bodies["default"]) == exact
    assert _size(msg) <= 256 * 1024
