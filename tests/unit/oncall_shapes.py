"""The request shapes of the on-call tools, as their documentation states them, to validate what
the auditor sends (raising AssertionError with the field at fault).

* PagerDuty Events API v2, alert events: https://developer.pagerduty.com/docs/events-api-v2/trigger-events/
  (``routing_key``, ``event_action`` trigger|acknowledge|resolve, ``dedup_key`` up to 255
  characters; a trigger's ``payload`` with ``summary`` up to 1,024 characters, ``source``,
  ``severity`` critical|error|warning|info, optional ``timestamp``, ``component``, ``group``,
  ``class``, ``custom_details``; ``links`` of ``href``/``text``, ``images``, ``client``,
  ``client_url``; 512 KB at most);
* PagerDuty change events: https://developer.pagerduty.com/docs/events-api-v2/send-change-events/
  (``routing_key``, ``payload`` with ``summary`` up to 1,024 characters, optional ``timestamp``,
  ``source``, ``custom_details``; ``links``);
* Opsgenie Alert API: https://docs.opsgenie.com/docs/alert-api (create: ``message`` up to 130
  characters, ``alias`` 512, ``description`` 15,000, ``tags`` up to 20 of 50 characters,
  ``details`` string to string, 8,000 characters in all, ``entity`` 512, ``source`` 100,
  ``priority`` P1-P5, ``user`` 100, ``note`` 25,000; close: ``user``, ``source``, ``note``).
"""

from __future__ import annotations

import json
import re

ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d)$")
PD_SEVERITIES = {"critical", "error", "warning", "info"}


def _text(body: dict, name: str, most: int, *, required: bool = False, one_line: bool = False) -> None:
    if name not in body:
        assert not required, f"{name} is required"
        return
    value = body[name]
    assert isinstance(value, str), f"{name} must be a string, is {type(value).__name__}"
    assert not required or value.strip(), f"{name} must not be empty"
    assert len(value) <= most, f"{name} has {len(value)} characters, at most {most}"
    if one_line:
        assert "\n" not in value and "\r" not in value, f"{name} must be one line"


def _keys(body: dict, allowed: set[str], what: str) -> None:
    assert isinstance(body, dict), f"{what} must be a JSON object"
    unknown = set(body) - allowed
    assert not unknown, f"{what} has fields its API does not take: {sorted(unknown)}"


def _links(body: dict) -> None:
    links = body.get("links", [])
    assert isinstance(links, list)
    for link in links:
        _keys(link, {"href", "text"}, "a link")
        assert isinstance(link["href"], str) and link["href"].startswith("https://"), link
        _text(link, "text", 1024)


def pagerduty_alert(body: dict, *, key: str | None = None) -> None:
    """An Events API v2 alert event (with its routing key when ``key`` is given)."""
    _keys(body, {"routing_key", "event_action", "dedup_key", "payload", "links", "images", "client", "client_url"}, "an alert event")
    if key is not None:
        assert body.get("routing_key") == key, "routing_key"
    assert body.get("event_action") in ("trigger", "acknowledge", "resolve"), body.get("event_action")
    _text(body, "dedup_key", 255, required=body["event_action"] != "trigger")
    if body["event_action"] == "trigger":
        payload = body.get("payload")
        _keys(payload, {"summary", "source", "severity", "timestamp", "component", "group", "class", "custom_details"}, "payload")
        _text(payload, "summary", 1024, required=True, one_line=True)
        _text(payload, "source", 1024, required=True, one_line=True)
        assert payload.get("severity") in PD_SEVERITIES, payload.get("severity")
        if "timestamp" in payload:
            assert ISO.match(payload["timestamp"]), payload["timestamp"]
        for name in ("component", "group", "class"):
            _text(payload, name, 1024, one_line=True)
        assert isinstance(payload.get("custom_details", {}), dict)
    _links(body)
    assert len(json.dumps(body).encode()) <= 512 * 1024


def pagerduty_change(body: dict, *, key: str | None = None) -> None:
    """An Events API v2 change event (with its routing key when ``key`` is given)."""
    _keys(body, {"routing_key", "payload", "links"}, "a change event")
    if key is not None:
        assert body.get("routing_key") == key, "routing_key"
    payload = body.get("payload")
    _keys(payload, {"summary", "timestamp", "source", "custom_details"}, "payload")
    _text(payload, "summary", 1024, required=True, one_line=True)
    _text(payload, "source", 1024, one_line=True)
    if "timestamp" in payload:
        assert ISO.match(payload["timestamp"]), payload["timestamp"]
    assert isinstance(payload.get("custom_details", {}), dict)
    _links(body)


def opsgenie_create(body: dict) -> None:
    """Opsgenie's create alert request."""
    _keys(body, {"message", "alias", "description", "responders", "visibleTo", "actions", "tags", "details", "entity",
                 "source", "priority", "user", "note"}, "a create alert request")
    _text(body, "message", 130, required=True, one_line=True)
    _text(body, "alias", 512, required=True, one_line=True)
    _text(body, "description", 15000)
    _text(body, "entity", 512)
    _text(body, "source", 100)
    _text(body, "user", 100)
    _text(body, "note", 25000)
    assert body.get("priority", "P3") in {"P1", "P2", "P3", "P4", "P5"}
    tags = body.get("tags", [])
    assert isinstance(tags, list) and len(tags) <= 20
    for tag in tags:
        assert isinstance(tag, str) and 0 < len(tag) <= 50, tag
    details = body.get("details", {})
    assert isinstance(details, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in details.items())
    assert sum(len(k) + len(v) for k, v in details.items()) <= 8000


def opsgenie_close(body: dict) -> None:
    """Opsgenie's close alert request (the alias is in the path)."""
    _keys(body, {"user", "source", "note"}, "a close alert request")
    _text(body, "user", 100)
    _text(body, "source", 100)
    _text(body, "note", 25000)
