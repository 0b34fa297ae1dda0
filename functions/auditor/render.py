"""Finding (+ the incident it announces) -> one SNS message every kind of subscriber can read.

``MessageStructure="json"`` gives each protocol its own body:

* ``default`` — the exact finding JSON, for machines: SQS, Lambda and Firehose subscribers
  (and any protocol without a body of its own);
* ``email`` — a readable report under a short subject;
* ``email-json`` — the finding JSON *as people read it in a mail client*: every string passed
  through the sanitiser (``text.clean``), so no link, control character or unbounded field;
* ``https`` / ``http`` — the Amazon Q Developer in chat applications (AWS Chatbot) custom
  notification, sanitised text only; its ``metadata.additionalContext.finding`` is the same
  sanitised JSON as ``email-json`` (a chat client may show it; machines that need the exact
  finding subscribe over SQS, Lambda or Firehose).

Message attributes let subscribers filter.

Every string from the event is untrusted. Whatever reaches a person goes through one
sanitiser, ``text.clean`` (compatibility forms folded, one printable line, bounded, links
defanged), field by field and once more over each composed line (two fields side by side
must not make a link either: a service ``https`` and an action ``//evil``); the chat's
markdown escaping goes on top. Each medium has one small function that takes the finding and
the extra lines to show (``email_body``, ``chat_body``, ``people_json``), so further lines
(an incident's status, say) can be added without touching the rendering.
"""

from __future__ import annotations

import json
import re
import dataclasses
from typing import Any, Optional, Sequence

from .contract import Attribute
from .finding import Finding
from .text import bound, clean, defang, doc_link

SUBJECT_LIMIT = 100
_MENTION = re.compile(r"@(here|channel|everyone|all)\b", re.IGNORECASE)
# Slack's mrkdwn has no escape character (a backslash shows up and formats anyway), so the
# formatting characters become look-alikes that no chat client formats: backtick, asterisk, tilde.
_INERT = str.maketrans({"`": "\u02cb", "*": "\u2217", "~": "\u223c"})
_INERT_CODE = str.maketrans({"`": "\u02cb", "\n": " ", "\r": " "})
# Underscores only emphasise at a word's edge: intra-word ones (role_name, AWSReservedSSO_x) stay.
_EDGE_UNDERSCORE = re.compile(r"(?<![0-9A-Za-z])_|_(?![0-9A-Za-z])")

#: How much of each field a person is shown (the sanitised JSON; the e-mail and chat lines show
#: less of some). Fields not named here get DEFAULT_LIMIT.
FIELD_LIMITS = {
    "event_id": 128, "event_time": 64, "account": 64, "region": 64, "service": 64, "action": 128,
    "error_code": 128, "error_message": 1024, "source_ip": 256, "user_agent": 512, "resource": 512,
    "cause": 64, "title": 200, "severity": 16, "confidence": 16, "remediation": 1500, "doc_url": 300,
    "topic": 300, "fingerprint": 64, "schema_version": 8,
    "arn": 512, "type": 64, "identity_arn": 512, "invoked_by": 256,
}
DEFAULT_LIMIT = 512
EVIDENCE_LINES = 20
POLICY_LIMIT = 1500


def _markdown(text: str) -> str:
    """Sanitised text made inert for chat markdown (Slack mrkdwn, Teams markdown): no
    formatting, links, mentions or HTML, still readable (look-alike characters, no backslashes).
    Defanged once more: a look-alike is a letter to a linkifier ("x.`ab`" -> "x.ˋabˋ")."""
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    text = _MENTION.sub(lambda m: "@\u2060" + m.group(1), text)
    text = _EDGE_UNDERSCORE.sub("\uff3f", text.translate(_INERT))
    return defang(text.replace("](", "]\u2060("))  # no [text](url) links (Teams); Slack's <url|text> died with < >


def chat(text: Any, limit: int = 300) -> str:
    """Untrusted text for chat markdown: the sanitiser, then the markdown escaping on top."""
    return _markdown(clean(text, limit))


def _line(*parts: str) -> str:
    """A line composed of sanitised fields and our own words, defanged once more as a whole:
    fields side by side must not make a link ("https" + ":" + "//evil")."""
    return defang("".join(parts))


def subject_for(finding: Finding) -> str:
    """ASCII, one line, under SNS's 100-character limit, starting with a letter or bracket."""
    raw = _line(f"[{clean(finding.severity, 16).upper()}] {clean(finding.cause, 64)}: ",
                f"{clean(finding.service, 40)}:{clean(finding.action, 80)} in {clean(finding.account, 20)}/{clean(finding.region, 30)}")
    ascii_only = "".join(c if 32 <= ord(c) < 127 else "?" for c in raw)
    return bound(ascii_only, SUBJECT_LIMIT - 1, "~")


def _sanitised(value: Any, limit: int = DEFAULT_LIMIT) -> Any:
    """A JSON value with every string (keys included) through the sanitiser; lists bounded."""
    if isinstance(value, str):
        return clean(value, limit)
    if isinstance(value, dict):
        return {clean(k, 64): _sanitised(v, FIELD_LIMITS.get(k, limit) if isinstance(k, str) else limit)
                for k, v in list(value.items())[:50]}
    if isinstance(value, (list, tuple)):
        return [_sanitised(v, limit) for v in list(value)[:EVIDENCE_LINES]]
    if value is None or isinstance(value, (bool, int, float)):
        return value
    return clean(value, limit)


def policy_text(finding: Finding) -> str:
    """The policy statement as one sanitised line of JSON ("" when there is none). Our endpoint
    (kms:ViaService) stays pasteable; a name from the event with a dot in it shows as [.]."""
    if not finding.policy:
        return ""
    try:
        dumped = json.dumps(finding.policy, ensure_ascii=False)
    except (TypeError, ValueError):
        dumped = str(finding.policy)
    return clean(dumped, POLICY_LIMIT)


def people_view(finding: Finding) -> dict:
    """The finding as people may read it: every string sanitised and bounded, the policy a
    sanitised statement, the documentation URL ours or plain text."""
    view = _sanitised(finding.to_dict())
    view["doc_url"] = doc_link(finding.doc_url) or clean(finding.doc_url, FIELD_LIMITS["doc_url"])
    return view


class Shown:
    """A finding as people may read it, sanitised once per message: ``view`` (every field
    through ``clean`` at FIELD_LIMITS), ``policy`` (the statement as one sanitised line),
    ``link`` (our documentation URL, or ""). ``cut`` shows a field shorter."""

    __slots__ = ("finding", "view", "policy", "link")

    def __init__(self, finding: Finding):
        self.finding = finding
        self.view = people_view(finding)
        self.policy = policy_text(finding)
        self.link = doc_link(finding.doc_url)

    def cut(self, name: str, limit: int) -> str:
        value = self.view[name]
        return value if len(value) <= limit else bound(value, limit)

    def who(self, name: str, limit: int) -> str:
        value = self.view["principal"][name]
        return value if len(value) <= limit else bound(value, limit)


def people_json(finding: Finding, lines: Sequence[str] = (), extra: Optional[dict] = None,
                shown: Optional[Shown] = None) -> str:
    """The ``email-json`` body (and the chat's additionalContext): the sanitised finding, the
    extra lines as ``notes``, and any extra fields (sanitised too)."""
    view = dict((shown or Shown(finding)).view)
    if lines:
        view["notes"] = [clean(line, 500) for line in lines if line]
    if extra:
        view.update(_sanitised(extra))
    return json.dumps(view, ensure_ascii=False, separators=(",", ":"))


def email_body(finding: Finding, lines: Sequence[str] = (), shown: Optional[Shown] = None,
               head: Sequence[str] = ()) -> str:
    """The e-mail report: ``head`` lines under the title (an incident's status), each field on
    its own line, then the extra lines."""
    s = shown or Shown(finding)
    temporary = ", temporary credentials" if finding.principal.temporary else ""
    body = [
        _line(s.cut("title", 200)),
        "",
        *[_line(line) for line in head],  # sanitised field by field (incident_lines)
        *([""] if head else []),
        _line("Cause:      ", s.cut("cause", 64), " (confidence ", s.cut("confidence", 16),
              ", severity ", s.cut("severity", 16), ")"),
        _line("Call:       ", s.cut("service", 40), ":", s.cut("action", 80), " failed with ", s.cut("error_code", 80)),
        _line("Message:    ", s.cut("error_message", 500)),
        _line("Caller:     ", s.who("arn", 200), " (", s.who("type", 64), temporary, ")"),
        _line("Resource:   ", s.cut("resource", 300) or "-"),
        _line("Where:      account ", s.cut("account", 20), ", ", s.cut("region", 30), ", from ", s.cut("source_ip", 60)),
        _line("When:       ", s.cut("event_time", 40), " (CloudTrail event ", s.cut("event_id", 80), ")"),
        "",
        "Evidence:",
        *[_line("  - ", e if len(e) <= 400 else bound(e, 400)) for e in s.view["evidence"]],
        "",
        "Fix:",
        _line("  ", s.cut("remediation", 1500)),
    ]
    if s.policy:
        body += ["", "Policy statement:", _line("  ", s.policy)]
    body += ["", f"Documentation: {s.link}" if s.link else _line("Documentation: ", s.cut("doc_url", 300))]
    extra = [_line(clean(line, 500)) for line in lines if line]
    if extra:
        body += ["", *extra]
    return "\n".join(body) + "\n"


def email_text(finding: Finding, notice=None) -> str:
    return email_body(*_for_people(finding, notice), head=incident_lines(notice))


def _policy_block(policy: str) -> list[str]:
    """The sanitised policy statement as a code block, exact enough to paste ("*" stays "*":
    code is not formatted); only what could end the block or form a mention or link is neutralised."""
    if not policy:
        return []
    text = policy.translate(_INERT_CODE)
    text = _MENTION.sub(lambda m: "@\u2060" + m.group(1), text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;"))
    return ["Policy statement to add:\n```" + defang(text.replace("](", "]\u2060(")) + "```"]


def chat_body(finding: Finding, lines: Sequence[str] = (), shown: Optional[Shown] = None,
              context: Optional[str] = None, head: Sequence[str] = (), status: str = "", thread: str = "") -> dict:
    """Amazon Q Developer in chat applications custom notification (schema version 1.0): only
    sanitised, markdown-inert text; the one link is our documentation URL, when it is ours.
    ``context``: the sanitised finding JSON for additionalContext, when the caller has it;
    ``head``: lines shown first (an incident's status); ``status``/``thread``: the incident's."""
    s = shown or Shown(finding)
    icon = ":white_check_mark:" if status == "resolved" else ":rotating_light:"
    label = f"[{status.upper()}] " if status else ""
    description = "\n".join([
        *[chat(line, 1000) for line in head],
        f"*{_markdown(_line(s.cut('service', 40), ':', s.cut('action', 80)))}* failed with "
        f"`{_markdown(s.cut('error_code', 80))}`",
        f"*Caller:* {_markdown(s.who('arn', 200))}{' (temporary credentials)' if finding.principal.temporary else ''}",
        f"*Resource:* {_markdown(s.cut('resource', 200)) or '-'}",
        f"*Where:* {_markdown(_line(s.cut('account', 20), ' / ', s.cut('region', 30)))}, "
        f"confidence {_markdown(s.cut('confidence', 16))}",
        "*Evidence:*",
        *[f"• {_markdown(e if len(e) <= 300 else bound(e, 300))}" for e in s.view["evidence"][:6]],
        *[f"_{chat(line, 500)}_" for line in lines if line],
    ])
    return {
        "version": "1.0",
        "source": "custom",
        "id": s.cut("event_id", 128) or s.cut("fingerprint", 64),
        "content": {
            "textType": "client-markdown",
            "title": bound(f"{icon} {label}{_markdown(s.cut('title', 200))} ({_markdown(s.cut('severity', 16))})", 250),
            "description": bound(description, 8000),
            "nextSteps": [_markdown(s.cut("remediation", 900)), *_policy_block(s.policy),
                          *([f"<{s.link}|Troubleshooting guide>"] if s.link else [])],
            "keywords": [_markdown(s.cut(name, limit)) for name, limit in
                         (("cause", 64), ("severity", 16), ("service", 40), ("account", 20), ("region", 30))],
        },
        "metadata": {
            "threadId": clean(thread, 128) if thread else s.cut("fingerprint", 64),
            "summary": _markdown(bound(_line(s.cut("cause", 64), ": ", s.cut("service", 40), ":", s.cut("action", 80),
                                             " by ", s.who("arn", 200)), 250)),
            "eventType": s.cut("cause", 64),
            "relatedResources": [r for r in (s.cut("resource", 500),) if r],
            "additionalContext": {"finding": context if context is not None else people_json(finding, lines, shown=s)},
        },
    }


def chatbot_payload(finding: Finding, notice=None) -> dict:
    return chat_body(*_for_people(finding, notice), head=incident_lines(notice),
                     status=notice.status if notice is not None else "",
                     thread=notice.incident.id if notice is not None else "")


def attributes(finding: Finding, notice=None) -> dict:
    values = {Attribute.CAUSE: finding.cause, Attribute.SEVERITY: finding.severity, Attribute.SERVICE: finding.service,
              Attribute.ACCOUNT: finding.account, Attribute.REGION: finding.region, Attribute.CONFIDENCE: finding.confidence}
    if notice is not None:
        values.update({Attribute.STATUS: notice.status, Attribute.INCIDENT_ID: notice.incident.id})
    return {k: {"DataType": "String", "StringValue": clean(v, 256) or "-"} for k, v in values.items()}


# --------------------------------------------------------------------------------------------
# The incident a message announces
# --------------------------------------------------------------------------------------------
def incident_lines(notice) -> list[str]:
    """What people read first: the incident's status, counts, root, the change found (or what was
    searched), what ended it, and anything the message carries late. Every value from the records
    goes through the sanitiser here; the lines are defanged again as a whole where they are shown."""
    if notice is None:
        return []
    from .incidents import MAX_DISTINCT, epoch, iso, lead

    i = notice.incident
    c = clean
    head = (f"Incident:   {c(notice.status, 16).upper()} {c(i.id, 128)} (occurrence {int(i.occurrence)}), "
            f"{int(i.failures)} failure(s) since {iso(i.first_failure)}")
    resolved = notice.status == "resolved"
    if resolved and i.resolved_at and i.opened_at:
        head += f"; no failure since {iso(i.last_failure)}, open {int(i.resolved_at - i.opened_at)} s"

    def listed(values, count: int) -> str:
        return c(", ".join(list(values)[:5]), 600) + (" ..." if count > 5 else "")

    def counted(count: int, keys) -> str:
        return f"{int(count)}" if len(keys) < MAX_DISTINCT else f"at least {int(count)}"

    lines = [
        head,
        f"Root:       {c(i.root.label, 400)}",
        f"Affected:   {counted(i.principal_count, i.principal_keys)} principal(s): {listed(i.principals, i.principal_count)}",
        f"            {counted(i.resource_count, i.resource_keys)} resource(s): {listed(i.resources, i.resource_count)}",
        f"Changed:    {c(i.attribution.sentence(), 900)}",
    ]
    if resolved:
        ended = i.ended_by
        if ended:
            after = (epoch(ended.get("event_time") or "") or i.last_failure) - i.last_failure
            lines.append(c(f"Ended by:   {ended.get('action')} by {ended.get('actor')} at {ended.get('event_time')}, "
                           f"{lead(after)} after the last failure (CloudTrail event {ended.get('event_id')})", 600))
        else:
            lines.append(f"Ended by:   no change to the root was recorded between the last failure ({iso(i.last_failure)}) "
                         f"and the resolution ({iso(i.resolved_at)})")
    if i.superseded_by:
        lines.append(f"Superseded: by incident {c(i.superseded_by, 128)}, which took its failures over")
    if notice.reason:
        lines.append(f"Update:     {c(notice.reason, 500)}")
    others = [x for x in i.later_changes if not i.ended_by or x.get("event_id") != i.ended_by.get("event_id")]
    if resolved and others:
        lines.append("Since then: " + c("; ".join(f"{x.get('action')} by {x.get('actor')} at {x.get('event_time')}"
                                                  for x in others[:3]), 600))
    if i.notes:
        lines.append("Notes:      " + c("; ".join(i.notes[:3]), 600))
    return lines


def _for_people(finding: Finding, notice) -> tuple[Finding, list[str], "Shown"]:
    """(the finding people read, extra lines, its sanitised view): with an incident, its one
    remediation for the root replaces the failure's own."""
    if notice is not None and notice.incident.remediation:
        finding = dataclasses.replace(finding, remediation=notice.incident.remediation)
    return finding, [], Shown(finding)


def message(finding: Finding, notice=None, *, lines: Sequence[str] = ()) -> dict:
    """The complete SNS Publish arguments (without TopicArn). ``notice``: the incident state
    change it announces (status, incident): the finding JSON gains ``incident``, people read the
    incident first. ``lines`` are shown to people after the report."""
    body = finding.to_dict()
    extra = {}
    if notice is not None:
        body["incident"] = extra["incident"] = notice.incident_dict()
    as_json = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
    readable, _, shown = _for_people(finding, notice)
    head = incident_lines(notice)
    notes = list(lines)
    people = people_json(readable, notes, extra, shown)
    status, thread = (notice.status, notice.incident.id) if notice is not None else ("", "")
    chat_json = json.dumps(chat_body(readable, notes, shown, people, head, status, thread), ensure_ascii=False)
    subject = subject_for(finding)
    if status:
        subject = bound(f"[{status.upper()}]{subject}", SUBJECT_LIMIT - 1, "~")
    return {
        "Subject": subject,
        "MessageStructure": "json",
        # Machines (sqs, lambda, firehose: no body of their own) get "default", the exact finding;
        # people get text that went through the sanitiser: e-mail, e-mail-json, chat (http/https).
        "Message": json.dumps({
            "default": as_json,
            "email": email_body(readable, notes, shown, head),
            "email-json": people,
            "https": chat_json,
            "http": chat_json,
        }),
        "MessageAttributes": attributes(finding, notice),
    }
