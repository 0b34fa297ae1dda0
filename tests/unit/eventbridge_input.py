"""What an EventBridge rule target sends, computed locally from the target's definition, following
EventBridge's documented rules (no AWS needed; moto does not deliver to API destinations):

* ``Input``: the text as it is;
* ``InputPath``: the JSON value at the path (eb-targets.html; the path syntax of
  eb-transform-target-input.html: dot notation, dashes, underscores, alphanumerics, array indices);
* ``InputTransformer`` (eb-transform-target-input.html and API_InputTransformer.html): each
  ``<name>`` of ``InputTemplate`` replaced by the value ``InputPathsMap`` gives it, or by a reserved
  variable (``aws.events.rule-arn``, ``aws.events.rule-name``, ``aws.events.event.ingestion-time``,
  ``aws.events.event``, ``aws.events.event.json``). Documented: a string variable outside quotes
  becomes a JSON string ("Simple JSON": ``"instance" : <instance>`` gives ``"instance" :
  "i-0123456789"``), inside quotes its text goes in as it is; an object or array goes in as JSON;
  "EventBridge doesn't escape values extracted by Input Path, when populating the Input Template";
  a variable whose path is not in the event "isn't created and won't appear in the output"; a
  placeholder cannot be an object key; the template is at most 8,192 characters;
* ``HttpParameters`` (eb-targets.html, "Dynamic path parameters"): a value that is a JSON path
  (the whole value, starting ``$.``) is read from the original event, never the transformed one;
  each ``*`` of an API destination's endpoint takes the next ``PathParameterValues`` entry.

An API destination's request then carries the connection's authorization header and EventBridge's
own headers (``Content-Type: application/json; charset=utf-8``, eb-api-destinations.html).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

RESERVED = ("aws.events.rule-arn", "aws.events.rule-name", "aws.events.event.ingestion-time", "aws.events.event",
            "aws.events.event.json")
_PATH_PART = re.compile(r"\.([A-Za-z0-9_-]+)|\[(\d+)\]")
_PLACEHOLDER = re.compile(r"<([A-Za-z0-9_.-]+)>")
MISSING = object()


def at_path(event: Any, path: str) -> Any:
    """The value at a JSON path of the supported syntax; MISSING when the event has none there."""
    if path == "$":
        return event
    if not path.startswith("$"):
        raise ValueError(f"not a JSON path: {path!r}")
    rest, value = path[1:], event
    while rest:
        match = _PATH_PART.match(rest)
        if match is None:
            raise ValueError(f"unsupported JSON path syntax: {path!r}")
        name, index = match.groups()
        if name is not None:
            if not isinstance(value, dict) or name not in value:
                return MISSING
            value = value[name]
        else:
            if not isinstance(value, list) or int(index) >= len(value):
                return MISSING
            value = value[int(index)]
        rest = rest[match.end():]
    return value


def _in_string_at(template: str) -> dict[int, bool]:
    """For each placeholder's start: whether it sits inside a JSON string literal of the template."""
    inside, escaped, out = False, False, {}
    for i, c in enumerate(template):
        if inside and escaped:
            escaped = False
            continue
        if c == "\\" and inside:
            escaped = True
        elif c == '"':
            inside = not inside
        elif c == "<":
            out[i] = inside
    return out


def transform(transformer: dict, event: dict, *, rule_name: str = "rule", rule_arn: str = "arn:aws:events:us-east-1:111122223333:rule/rule",
              ingestion_time: str = "2026-11-30T09:00:00Z") -> str:
    """The text an InputTransformer makes of ``event``."""
    template = transformer["InputTemplate"]
    paths = transformer.get("InputPathsMap", {})
    assert len(template) <= 8192 and len(paths) <= 100
    assert not set(paths) & set(RESERVED), "reserved variable names cannot be defined"
    values: dict[str, Any] = {}
    for name, path in paths.items():
        value = at_path(event, path)
        if value is not MISSING:
            values[name] = value
    reserved = {"aws.events.rule-arn": rule_arn, "aws.events.rule-name": rule_name,
                "aws.events.event.ingestion-time": ingestion_time}
    whole = {"aws.events.event": {k: v for k, v in event.items() if k != "detail"}, "aws.events.event.json": event}
    if template.lstrip().startswith("{"):
        for m in _PLACEHOLDER.finditer(template):
            after = template[m.end():].lstrip()
            assert not after.startswith(":"), f"a placeholder cannot be an object key: {m.group(0)}"
    inside = _in_string_at(template)

    def value_of(m: re.Match) -> str:
        name = m.group(1)
        quoted = inside.get(m.start(), False)
        if name in whole:
            assert not quoted, f"<{name}> can only be the value of a JSON field"
            return json.dumps(whole[name], separators=(",", ":"))
        value = reserved.get(name, values.get(name, MISSING))
        if value is MISSING:
            if name not in paths and name not in reserved:
                return m.group(0)  # not a variable: the text stays
            return ""  # "that variable isn't created and won't appear in the output"
        if isinstance(value, str):
            return value if quoted else f'"{value}"'  # not escaped (documented)
        if isinstance(value, (dict, list)):
            return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
        return json.dumps(value)

    return _PLACEHOLDER.sub(value_of, template)


def target_input(target: dict, event: dict) -> str:
    """The text a target receives for ``event``."""
    if "Input" in target:
        return target["Input"]
    if "InputPath" in target:
        value = at_path(event, target["InputPath"])
        assert value is not MISSING, f"the event has nothing at {target['InputPath']}"
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    if "InputTransformer" in target:
        return transform(target["InputTransformer"], event)
    return json.dumps(event, ensure_ascii=False, separators=(",", ":"))


def _dynamic(value: str, event: dict) -> str:
    if value.startswith("$."):
        found = at_path(event, value)
        assert isinstance(found, str), f"{value} is not a string in the event"
        return found
    return value


@dataclass
class Request:
    method: str
    url: str
    headers: dict = field(default_factory=dict)
    body: str = ""

    def json(self) -> Any:
        return json.loads(self.body)


def api_destination_request(destination: dict, connection: dict, target: dict, event: dict) -> Request:
    """The HTTP request EventBridge makes to an API destination for ``event`` (properties of the
    AWS::Events::ApiDestination, the AWS::Events::Connection and the rule's target)."""
    http = target.get("HttpParameters", {})
    url = destination["InvocationEndpoint"]
    for value in http.get("PathParameterValues", []):
        assert "*" in url, "more path parameters than wildcards"
        url = url.replace("*", _dynamic(value, event), 1)
    assert "*" not in url, "a wildcard of the endpoint has no value"
    query = {k: _dynamic(v, event) for k, v in http.get("QueryStringParameters", {}).items()}
    if query:
        url += ("&" if "?" in url else "?") + urlencode(query)
    headers = {"Content-Type": "application/json; charset=utf-8", "User-Agent": "Amazon/EventBridge/ApiDestinations"}
    headers.update({k: _dynamic(v, event) for k, v in http.get("HeaderParameters", {}).items()})
    auth = connection.get("AuthParameters", {})
    if "ApiKeyAuthParameters" in auth:  # the connection's values take precedence (API_HttpParameters.html)
        headers[auth["ApiKeyAuthParameters"]["ApiKeyName"]] = auth["ApiKeyAuthParameters"]["ApiKeyValue"]
    return Request(destination.get("HttpMethod", "POST"), url, headers, target_input(target, event))


def matches(pattern: Any, value: Any) -> bool:
    """The subset of event patterns the stack writes: lists of exact values, nested objects,
    ``{"exists": bool}``, and ``$or`` of those."""
    if isinstance(pattern, dict):
        if "$or" in pattern:
            rest = {k: v for k, v in pattern.items() if k != "$or"}
            return matches(rest, value) and any(matches(branch, value) for branch in pattern["$or"])
        if not isinstance(value, dict):
            return False
        for key, sub in pattern.items():
            if isinstance(sub, list) and sub and isinstance(sub[0], dict) and "exists" in sub[0]:
                if (key in value) != sub[0]["exists"]:
                    return False
                continue
            if key not in value or not matches(sub, value[key]):
                return False
        return True
    if isinstance(pattern, list):
        candidates = value if isinstance(value, list) else [value]
        return any(c in pattern for c in candidates)
    return pattern == value


def envelope(entry: dict, *, account: str = "111122223333", region: str = "eu-west-1") -> dict:
    """The event EventBridge makes of a PutEvents entry (eb-events.html)."""
    return {"version": "0", "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718", "detail-type": entry["DetailType"],
            "source": entry["Source"], "account": account, "time": "2026-11-30T09:00:05Z", "region": region,
            "resources": entry.get("Resources", []), "detail": json.loads(entry["Detail"])}


def cloudtrail_event(record: dict) -> dict:
    """The EventBridge event CloudTrail makes of a record (eb-service-event-cloudtrail.html)."""
    return {"version": "0", "id": "9b7d3c1e-0000-4000-8000-00000000c0de", "detail-type": "AWS API Call via CloudTrail",
            "source": "aws." + record["eventSource"].split(".")[0], "account": record["recipientAccountId"],
            "time": record["eventTime"], "region": record["awsRegion"], "resources": [], "detail": record}
