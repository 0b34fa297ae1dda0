"""What each kind of subscriber reads, and that hostile strings come out inert and bounded."""

from __future__ import annotations

import copy
import json
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from auditor.classify import classify
from auditor.publish import Repeats, clean, email_text, message, subject_for
from auditor.records import parse_record

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
    "x" * 100_000,
]


def finding_with(message_text: str, resource: str = "prod/db"):
    record = copy.deepcopy(DENIED)
    record["errorMessage"] = message_text
    record["requestParameters"] = {"secretId": resource}
    record["userAgent"] = message_text
    return classify(parse_record(record))


def test_sns_message_has_a_body_per_protocol_and_filterable_attributes():
    finding = finding_with(DENIED["errorMessage"])
    msg = message(finding, Repeats(3, 1_800_000_000))
    assert msg["MessageStructure"] == "json"
    bodies = json.loads(msg["Message"])
    assert set(bodies) == {"default", "email", "https", "http"}
    machine = json.loads(bodies["default"])  # what SQS, Lambda, Firehose and e-mail-json subscribers get
    assert machine["cause"] == finding.cause and machine["suppressed_repeats"]["count"] == 3
    assert {k: v["StringValue"] for k, v in msg["MessageAttributes"].items()} == {
        "cause": "access-denied.organizations-policy", "severity": "high", "service": "secretsmanager",
        "account": "111122223333", "region": "eu-west-1", "confidence": "high"}


def test_chatbot_payload_is_valid_for_its_schema():
    jsonschema = pytest.importorskip("jsonschema")
    for text in [DENIED["errorMessage"], *HOSTILE]:
        payload = json.loads(json.loads(message(finding_with(text))["Message"])["https"])
        jsonschema.validate(payload, CHATBOT_SCHEMA)
        assert json.loads(payload["metadata"]["additionalContext"]["finding"])["cause"]


def test_email_text_reads_as_a_report():
    finding = finding_with(DENIED["errorMessage"])
    text = email_text(finding, Repeats(7, 1_800_000_000))
    for expected in ("Cause:      access-denied.organizations-policy", "Caller:", "Evidence:", "Fix:",
                     "Documentation: https://", "7 repeat(s) of this failure were suppressed since 2027-01-15"):
        assert expected in text
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
    items = [(finding_with(huge + str(i), resource="prod/db-" + huge[:400]), None) for i in range(23)]
    client = Recorder()
    assert Publisher("arn:aws:sns:us-east-1:111122223333:findings", client=client).publish_many(items) == [None] * 23
    assert sorted(int(i) for call in client.calls for i in call) == list(range(23))  # each once
    assert len(client.calls) > 3  # more calls than 10-at-a-time would make
    assert BATCH_BYTES < 256 * 1024


@given(st.text(max_size=400))
@settings(max_examples=400, deadline=None)
def test_clean_drops_the_same_characters_whatever_the_text(text):
    """``clean`` skips its per-character scan for printable ASCII: the result must be the one
    the scan gives (no control, format or separator character; whitespace collapsed; bounded)."""
    scanned = "".join(ch if unicodedata.category(ch)[0] not in "CZ" or ch == " " else " " for ch in text[:200])
    expected = " ".join(scanned.split())
    expected = expected if len(expected) <= 100 else expected[:99] + "…"
    assert clean(text, 100) == expected
    assert clean(text + "\u202e\x1b[31m\n", 100) == clean(text + "   [31m", 100)
