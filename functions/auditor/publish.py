"""Finding -> one SNS message every kind of subscriber can read.

``MessageStructure="json"`` gives each protocol its own body: e-mail gets readable text under a
short subject, SQS / Lambda / Firehose / e-mail-json get the finding JSON (the default body), HTTPS gets the Amazon Q
Developer in chat applications (AWS Chatbot) custom notification — what a chat channel
subscribed through Chatbot receives — with the finding JSON in ``metadata.additionalContext``
for other HTTPS subscribers. Message attributes let subscribers filter.

Every string from the event is untrusted: bounded, stripped of control and bidi characters,
and escaped for the medium, so it can neither break nor spoof the message.
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Optional

from .aws import fan_out
from .finding import Finding

SUBJECT_LIMIT = 100
_MENTION = re.compile(r"@(here|channel|everyone|all)\b", re.IGNORECASE)
# Slack's mrkdwn has no escape character (a backslash shows up and formats anyway), so the
# formatting characters become look-alikes that no chat client formats: backtick, asterisk, tilde.
_INERT = str.maketrans({"`": "\u02cb", "*": "\u2217", "~": "\u223c"})
_INERT_CODE = str.maketrans({"`": "\u02cb", "\n": " ", "\r": " "})
# Underscores only emphasise at a word's edge: intra-word ones (role_name, AWSReservedSSO_x) stay.
_EDGE_UNDERSCORE = re.compile(r"(?<![0-9A-Za-z])_|_(?![0-9A-Za-z])")


def clean(text: Any, limit: int = 300) -> str:
    """One line of printable text: control/format characters dropped, whitespace collapsed, bounded."""
    if not isinstance(text, str):
        text = "" if text is None else str(text)
    text = text[: limit * 2]
    if not (text.isascii() and text.isprintable()):  # printable ASCII (most text) has nothing to drop
        text = "".join(ch if unicodedata.category(ch)[0] not in "CZ" or ch == " " else " " for ch in text)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def chat(text: Any, limit: int = 300) -> str:
    """Untrusted text for chat markdown (Slack mrkdwn, Teams markdown): inert (no formatting,
    links, mentions or HTML), still readable (look-alike characters, no visible backslashes)."""
    text = clean(text, limit).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    text = _MENTION.sub(lambda m: "@\u2060" + m.group(1), text)
    text = _EDGE_UNDERSCORE.sub("\uff3f", text.translate(_INERT))
    return text.replace("](", "]\u2060(")  # no [text](url) links (Teams); Slack's <url|text> died with < >


def subject_for(finding: Finding) -> str:
    """ASCII, one line, under SNS's 100-character limit, starting with a letter or bracket."""
    raw = f"[{finding.severity.upper()}] {finding.cause}: {finding.service}:{finding.action} in {finding.account}/{finding.region}"
    ascii_only = raw.encode("ascii", "replace").decode("ascii")
    ascii_only = "".join(c if 32 <= ord(c) < 127 else "?" for c in ascii_only)
    return ascii_only if len(ascii_only) < SUBJECT_LIMIT else ascii_only[: SUBJECT_LIMIT - 2] + "~"


@dataclass(frozen=True)
class Repeats:
    """What dedup knows: how many repeats were suppressed in the previous window, since when."""

    count: int = 0
    since: int = 0  # epoch seconds

    def sentence(self) -> str:
        if not self.count:
            return ""
        if not self.since:  # no notification went out before them (e.g. it failed and was retried)
            return f"{self.count} repeat(s) of this failure were suppressed before this notification."
        when = datetime.fromtimestamp(self.since, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        return f"{self.count} repeat(s) of this failure were suppressed since {when}."


def incident_lines(notice) -> list[str]:
    """What the incident adds to a message: its status, counts, root, the change found."""
    if notice is None:
        return []
    i = notice.incident
    status = notice.status.upper()
    head = f"Incident:   {status} {i.id} (occurrence {i.occurrence}), {i.failures} failure(s) since {clean(i.first_failure, 40)}"
    if notice.status == "resolved" and i.resolved_at and i.opened_at:
        head += f", quiet since {clean(i.last_failure, 40)}; open {int(i.resolved_at - i.opened_at)} s"
    lines = [
        head,
        f"Root:       {clean(i.root.label, 400)}",
        f"Affected:   {i.principal_count} principal(s): {clean(', '.join(i.principals[:5]), 600)}"
        + (" ..." if i.principal_count > 5 else ""),
        f"            {i.resource_count} resource(s): {clean(', '.join(i.resources[:5]), 600)}"
        + (" ..." if i.resource_count > 5 else ""),
        f"Changed:    {clean(i.attribution.sentence(), 900)}",
    ]
    if notice.reason:
        lines.append(f"Update:     {clean(notice.reason, 100)}")
    if i.later_changes and notice.status == "resolved":
        lines.append("Since then: " + clean("; ".join(f"{c.get('action')} by {c.get('actor')} at {c.get('event_time')}"
                                                     for c in i.later_changes[:3]), 600))
    return lines + [""]


def email_text(finding: Finding, repeats: Repeats = Repeats(), notice=None) -> str:
    p = finding.principal
    lines = [
        f"{finding.title}",
        "",
        *incident_lines(notice),
        f"Cause:      {finding.cause} (confidence {finding.confidence}, severity {finding.severity})",
        f"Call:       {finding.service}:{clean(finding.action, 80)} failed with {clean(finding.error_code, 80)}",
        f"Message:    {clean(finding.error_message, 500)}",
        f"Caller:     {clean(p.arn, 200)} ({p.type}{', temporary credentials' if p.temporary else ''})",
        f"Resource:   {clean(finding.resource, 300) or '-'}",
        f"Where:      account {clean(finding.account, 20)}, {clean(finding.region, 30)}, from {clean(finding.source_ip, 60)}",
        f"When:       {clean(finding.event_time, 40)} (CloudTrail event {clean(finding.event_id, 80)})",
        "",
        "Evidence:",
        *[f"  - {clean(e, 400)}" for e in finding.evidence],
        "",
        "Fix:",
        f"  {clean(notice.incident.remediation if notice is not None else finding.remediation, 2000)}",
    ]
    if finding.policy:
        lines += ["", "Policy statement:", "  " + json.dumps(finding.policy)]
    lines += ["", f"Documentation: {finding.doc_url}"]
    if repeats.count:
        lines += ["", repeats.sentence()]
    return "\n".join(lines) + "\n"


def _policy_block(finding: Finding) -> list[str]:
    """The policy statement as a code block, exact enough to paste ("*" stays "*": code is not
    formatted); only what could end the block or form a mention or link is neutralised."""
    if not finding.policy:
        return []
    text = json.dumps(finding.policy)[:1500].translate(_INERT_CODE)
    text = _MENTION.sub(lambda m: "@\u2060" + m.group(1), text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;"))
    return ["Policy statement to add:\n```" + text.replace("](", "]\u2060(") + "```"]


def chatbot_payload(finding: Finding, repeats: Repeats = Repeats(), notice=None) -> dict:
    """Amazon Q Developer in chat applications custom notification (schema version 1.0)."""
    p = finding.principal
    incident = notice.incident if notice is not None else None
    description = "\n".join([
        *([f"*{notice.status.upper()}* incident `{chat(incident.id, 80)}`: {incident.failures} failure(s) since "
           f"{chat(incident.first_failure, 40)}, {incident.principal_count} principal(s), {incident.resource_count} resource(s)",
           f"*Root:* {chat(incident.root.label, 300)}",
           f"*Changed:* {chat(incident.attribution.sentence(), 600)}"] if incident is not None else []),
        f"*{chat(finding.service)}:{chat(finding.action, 80)}* failed with `{chat(finding.error_code, 80)}`",
        f"*Caller:* {chat(p.arn, 200)}{' (temporary credentials)' if p.temporary else ''}",
        f"*Resource:* {chat(finding.resource, 200) or '-'}",
        f"*Where:* {chat(finding.account, 20)} / {chat(finding.region, 30)}, confidence {finding.confidence}",
        "*Evidence:*",
        *[f"• {chat(e, 300)}" for e in finding.evidence[:6]],
        *([f"_{repeats.sentence()}_"] if repeats.count else []),
    ])
    return {
        "version": "1.0",
        "source": "custom",
        "id": finding.event_id[:128] or finding.fingerprint,
        "content": {
            "textType": "client-markdown",
            "title": (f"{':white_check_mark:' if notice is not None and notice.status == 'resolved' else ':rotating_light:'} "
                      f"{'[' + notice.status.upper() + '] ' if notice is not None else ''}{finding.title} ({finding.severity})")[:250],
            "description": description[:8000],
            "nextSteps": [chat(incident.remediation if incident is not None else finding.remediation, 900),
                          *_policy_block(finding), f"<{finding.doc_url}|Troubleshooting guide>"],
            "keywords": [finding.cause, finding.severity, finding.service, clean(finding.account, 20), clean(finding.region, 30)],
        },
        "metadata": {
            "threadId": incident.id if incident is not None else finding.fingerprint,
            "summary": clean(f"{finding.cause}: {finding.service}:{finding.action} by {p.arn}", 250),
            "eventType": finding.cause,
            "relatedResources": [r for r in (clean(finding.resource, 500),) if r],
            "additionalContext": {"finding": finding.to_json()},
        },
    }


def attributes(finding: Finding, notice=None) -> dict:
    values = {"cause": finding.cause, "severity": finding.severity, "service": finding.service,
              "account": finding.account, "region": finding.region, "confidence": finding.confidence}
    if notice is not None:
        values.update(status=notice.status, incident_id=notice.incident.id)
    return {k: {"DataType": "String", "StringValue": clean(v, 256) or "-"} for k, v in values.items()}


def message(finding: Finding, repeats: Repeats = Repeats(), notice=None) -> dict:
    """The complete SNS Publish arguments (without TopicArn). ``notice``: the incident state
    change this message announces (status, incident); the finding JSON gains ``incident``."""
    body = finding.to_dict()
    if repeats.count:
        body["suppressed_repeats"] = {"count": repeats.count, "since": repeats.since}
    if notice is not None:
        body["incident"] = notice.incident.to_dict(notice.status)
    as_json = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
    text = email_text(finding, repeats, notice)
    chat_json = json.dumps(chatbot_payload(finding, repeats, notice), ensure_ascii=False)
    subject = subject_for(finding)
    if notice is not None:
        subject = f"[{notice.status.upper()}]{subject}"[:SUBJECT_LIMIT - 1]
    return {
        "Subject": subject,
        "MessageStructure": "json",
        # Protocols without a body of their own (sqs, lambda, firehose, email-json) get "default":
        # the finding once, not a copy per protocol (a batch of 10 stays far below SNS's 256 KB).
        "Message": json.dumps({"default": as_json, "email": text, "https": chat_json, "http": chat_json}),
        "MessageAttributes": attributes(finding, notice),
    }


#: PublishBatch: at most 10 entries, and 256 KiB for all of them together (bodies, subjects and
#: attributes); a margin for what SNS adds to its count.
BATCH_ENTRIES = 10
BATCH_BYTES = 240 * 1024


def _size(msg: dict) -> int:
    attrs = sum(len(k) + len(v["DataType"]) + len(v["StringValue"].encode()) for k, v in msg["MessageAttributes"].items())
    return len(msg["Message"].encode()) + len(msg["Subject"]) + attrs


def _batches(sizes: list[int]) -> list[range]:
    """Consecutive index ranges of at most BATCH_ENTRIES entries and BATCH_BYTES bytes each."""
    out, start, total = [], 0, 0
    for i, size in enumerate(sizes):
        if i > start and (i - start == BATCH_ENTRIES or total + size > BATCH_BYTES):
            out.append(range(start, i))
            start, total = i, 0
        total += size
    if sizes:
        out.append(range(start, len(sizes)))
    return out


class Publisher:
    def __init__(self, topic_arn: str, client=None, region: Optional[str] = None):
        self.topic_arn = topic_arn
        self._client = client
        self.region = region

    @property
    def client(self):
        if self._client is None:
            import boto3
            from botocore.config import Config

            self._client = boto3.client("sns", region_name=self.region, config=Config(connect_timeout=3, read_timeout=5,
                                                              retries={"max_attempts": 3, "mode": "standard"}))
        return self._client

    def publish(self, finding: Finding, repeats: Optional[Repeats] = None, notice=None) -> str:
        """Publish one finding; raises on failure (the caller lets AWS retry)."""
        return self.client.publish(TopicArn=self.topic_arn, **message(finding, repeats or Repeats(), notice))["MessageId"]

    def publish_notices(self, notices: list) -> list[Optional[Exception]]:
        """One message per incident state change; per notice, None or the error that stopped it."""
        return self._send([message(n.finding, Repeats(), n) for n in notices])

    def publish_many(self, items: list[tuple[Finding, Optional[Repeats]]]) -> list[Optional[Exception]]:
        """Publish findings with PublishBatch (up to 10 and 256 KiB a call); per item, None or the error that stopped it."""
        return self._send([message(finding, repeats or Repeats()) for finding, repeats in items])

    def _send(self, messages: list[dict]) -> list[Optional[Exception]]:
        if len(messages) == 1:
            try:
                self.client.publish(TopicArn=self.topic_arn, **messages[0])
                return [None]
            except Exception as exc:  # noqa: BLE001 - reported per item
                return [exc]
        results: list[Optional[Exception]] = [None] * len(messages)
        client = self.client  # built once, before any thread asks for it

        def send(chunk: range) -> None:
            entries = [{"Id": str(i), **messages[i]} for i in chunk]
            try:
                response = client.publish_batch(TopicArn=self.topic_arn, PublishBatchRequestEntries=entries)
            except Exception as exc:  # noqa: BLE001
                for i in chunk:
                    results[i] = exc
                return
            for failed in response.get("Failed", []):
                results[int(failed["Id"])] = RuntimeError(f"{failed.get('Code')}: {failed.get('Message', '')}"[:300])

        # a batch of 100 distinct findings is 10 calls: a few in flight at once (boto3 clients are thread-safe)
        fan_out(send, _batches([_size(m) for m in messages]), workers=4)
        return results
