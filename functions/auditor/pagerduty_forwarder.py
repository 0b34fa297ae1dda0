"""PagerDuty's Events API v2, with the routing key read from Secrets Manager at run time.

Why a function here, when Opsgenie is reached by an EventBridge API destination: PagerDuty
takes its routing key only inside the JSON body (``routing_key``), and EventBridge documents no
way to put a secret there. A connection's ``InvocationHttpParameters.BodyParameters`` (the
only secret body values it keeps, in Secrets Manager) are documented as "additional body
string parameters for the connection" with no word on how, or whether, they are merged into a
JSON event payload; the merge of a target's parameters with a connection's is documented for
headers, path and query strings only (API_HttpParameters.html). Putting the key in the rule's
input or the destination's URL would put it in the template and in the rule's configuration.
So the least exposure is this small function: the key stays in the secret the user names, is
read here (cached for five minutes), sent to PagerDuty and nowhere else (never logged, never in
the event, never in what is kept of a failure). docs/incidents.md and the README say the same.

What reaches it (the rules' ``InputPath``, infra/oncall.py):

* an alert event rendered by ``auditor.incident_event.pagerduty_event`` (``detail.oncall.pagerduty``
  of an incident event): sent to ``/v2/enqueue``;
* a CloudTrail record of a change (``detail`` of the change rule's events): rendered as a change
  event (``pagerduty_change_event``) and sent to ``/v2/change/enqueue``.

Delivery is bounded: at most ``MAX_ATTEMPTS`` requests of ``TIMEOUT_SECONDS`` each, retried only
on 429, 5xx, a timeout or a broken connection, with exponential backoff (``Retry-After``
honoured up to ``RETRY_AFTER_CAP``) and never past the invocation's remaining time. A request
PagerDuty refuses (any other 4xx: a bad routing key, an invalid event) is not retried. What could
not be delivered is sent to the dead-letter queue with the reason and the request (without the
routing key); the alarm on that queue tells on-call. A failure of the function itself (a timeout,
the queue not answering) goes to the same queue as Lambda's on-failure destination.

Standard library and boto3 (the Lambda runtime's) only; nothing of the auditor's function is
imported but the pure renderer.
"""

from __future__ import annotations

import json
import os
import random
import socket
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional

from .contract import ForwarderEnv

#: PagerDuty's endpoints, by service region (accounts in PagerDuty's EU service region use the EU ones).
EVENTS_URLS = {"us": "https://events.pagerduty.com/v2/enqueue", "eu": "https://events.eu.pagerduty.com/v2/enqueue"}
CHANGE_EVENTS_URLS = {"us": "https://events.pagerduty.com/v2/change/enqueue",
                      "eu": "https://events.eu.pagerduty.com/v2/change/enqueue"}

MAX_ATTEMPTS = 4
TIMEOUT_SECONDS = 5.0  # as EventBridge's own API destinations wait
BACKOFF_SECONDS = 1.0  # 1, 2, 4 s (with jitter) between attempts
RETRY_AFTER_CAP = 15.0
SECRET_TTL_SECONDS = 300.0
#: Kept in reserve of the invocation's time: sending to the dead-letter queue must still fit.
RESERVE_SECONDS = 3.0
RESPONSE_EXCERPT = 300

_secret: dict[str, Any] = {"value": None, "at": 0.0, "id": None}


class KeyUnavailable(Exception):
    """The routing key could not be read (the message names why, never a value)."""


@dataclass(frozen=True)
class Settings:
    secret_id: str
    secret_field: str
    dead_letter_url: str
    events_url: str
    change_events_url: str

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> "Settings":
        return cls(secret_id=env.get(ForwarderEnv.SECRET_ID, ""), secret_field=env.get(ForwarderEnv.SECRET_FIELD, ""),
                   dead_letter_url=env.get(ForwarderEnv.DEAD_LETTER_URL, ""),
                   events_url=env.get(ForwarderEnv.EVENTS_URL, EVENTS_URLS["us"]),
                   change_events_url=env.get(ForwarderEnv.CHANGE_EVENTS_URL, CHANGE_EVENTS_URLS["us"]))


@dataclass(frozen=True)
class Outcome:
    delivered: bool
    attempts: int
    status: int  # the last HTTP status; 0 when no answer came (timeout, connection)
    reason: str


# --------------------------------------------------------------------------------------------
# What to send
# --------------------------------------------------------------------------------------------
def request_for(event: Any) -> tuple[str, Optional[dict], str]:
    """(kind, body without routing key, reason when there is none) for what a rule delivered:
    ``("alert", ...)`` for an alert event, ``("change", ...)`` for a change's CloudTrail record."""
    if not isinstance(event, dict):
        return "unknown", None, "the input is not a JSON object"
    if event.get("event_action") in ("trigger", "acknowledge", "resolve"):
        body = {k: v for k, v in event.items() if k != "routing_key"}
        if not isinstance(body.get("dedup_key"), str) or not body["dedup_key"]:
            return "alert", None, "the alert event has no dedup_key"
        return "alert", body, ""
    if isinstance(event.get("eventSource"), str) and isinstance(event.get("eventName"), str):
        from .incident_event import pagerduty_change_event

        body = pagerduty_change_event(event)
        return ("change", body, "") if body is not None else ("change", None, "not a change the auditor watches")
    return "unknown", None, "neither an alert event nor a CloudTrail record"


# --------------------------------------------------------------------------------------------
# The routing key
# --------------------------------------------------------------------------------------------
def _region_of(secret_id: str) -> Optional[str]:
    parts = secret_id.split(":")
    return parts[3] if secret_id.startswith("arn:") and len(parts) > 6 and parts[3] else None


def routing_key(settings: Settings, *, now: Callable[[], float] = time.monotonic, client=None) -> str:
    """The routing key from the secret (its whole string, or ``secret_field`` of its JSON),
    cached for SECRET_TTL_SECONDS. Raises KeyUnavailable with the error code only."""
    if (_secret["value"] is not None and _secret["id"] == (settings.secret_id, settings.secret_field)
            and now() - _secret["at"] < SECRET_TTL_SECONDS):
        return _secret["value"]
    if not settings.secret_id:
        raise KeyUnavailable(f"{ForwarderEnv.SECRET_ID} is not set")
    if client is None:
        import boto3
        from botocore.config import Config

        client = boto3.client("secretsmanager", region_name=_region_of(settings.secret_id),
                              config=Config(connect_timeout=2, read_timeout=3, retries={"max_attempts": 3, "mode": "standard"}))
    try:
        found = client.get_secret_value(SecretId=settings.secret_id)
    except Exception as exc:  # noqa: BLE001 - the reason is what matters, never the value
        response = getattr(exc, "response", None)
        code = response.get("Error", {}).get("Code") if isinstance(response, dict) else None
        raise KeyUnavailable(f"cannot read the secret: {code or type(exc).__name__}") from None
    text = found.get("SecretString")
    if not isinstance(text, str):
        raise KeyUnavailable("the secret has no string value (a binary secret is not supported)")
    if settings.secret_field:
        try:
            value = json.loads(text).get(settings.secret_field)
        except (ValueError, AttributeError):
            raise KeyUnavailable(f"the secret is not a JSON object, but {ForwarderEnv.SECRET_FIELD} names a field") from None
        if not isinstance(value, str):
            raise KeyUnavailable(f"the secret's JSON has no string field {settings.secret_field!r}")
        text = value
    text = text.strip()
    if not text:
        raise KeyUnavailable("the routing key in the secret is empty")
    _secret.update(value=text, at=now(), id=(settings.secret_id, settings.secret_field))
    return text


def forget_key() -> None:
    """Read the secret again next time (after PagerDuty refused the key: it may have been rotated)."""
    _secret.update(value=None, at=0.0, id=None)


# --------------------------------------------------------------------------------------------
# Delivery
# --------------------------------------------------------------------------------------------
def post(url: str, data: bytes, timeout: float) -> tuple[int, str, float]:
    """(HTTP status, response excerpt, Retry-After seconds) of one POST; status 0 on no answer."""
    request = urllib.request.Request(url, data=data, method="POST", headers={
        "Content-Type": "application/json", "User-Agent": "secrets-kms-failure-auditor/pagerduty-forwarder"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - the configured https endpoint
            return response.status, response.read(RESPONSE_EXCERPT).decode("utf-8", "replace"), 0.0
    except urllib.error.HTTPError as exc:
        body = exc.read(RESPONSE_EXCERPT).decode("utf-8", "replace") if exc.fp is not None else ""
        return exc.code, body, _retry_after(exc.headers.get("Retry-After") if exc.headers else None)
    except (TimeoutError, socket.timeout):
        return 0, "timed out", 0.0
    except (urllib.error.URLError, ConnectionError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        return 0, "timed out" if isinstance(reason, (TimeoutError, socket.timeout)) else f"no answer: {type(reason).__name__}", 0.0


def _retry_after(value: Optional[str]) -> float:
    try:
        return max(0.0, min(float(value), RETRY_AFTER_CAP)) if value is not None else 0.0
    except ValueError:
        return 0.0


def retryable(status: int) -> bool:
    """What PagerDuty asks to retry: 429 (rate limited), 5xx, and no answer at all."""
    return status == 0 or status == 429 or status >= 500


def deliver(url: str, body: dict, key: str, *, remaining: Callable[[], float] = lambda: float("inf"),
            sleep: Callable[[float], None] = time.sleep, send: Callable[[str, bytes, float], tuple[int, str, float]] = post) -> Outcome:
    """POST ``body`` with ``routing_key`` to ``url``, retried as the module's docstring says."""
    data = json.dumps({"routing_key": key, **body}, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    status, text = 0, ""
    for attempt in range(1, MAX_ATTEMPTS + 1):
        status, text, retry_after = send(url, data, TIMEOUT_SECONDS)
        if 200 <= status < 300:
            return Outcome(True, attempt, status, "")
        if not retryable(status):
            return Outcome(False, attempt, status, f"refused: HTTP {status}: {_scrub(text, key)}")
        wait = max(retry_after, BACKOFF_SECONDS * (2 ** (attempt - 1)) * (0.5 + random.random() / 2))
        if attempt == MAX_ATTEMPTS or remaining() < wait + TIMEOUT_SECONDS + RESERVE_SECONDS:
            return Outcome(False, attempt, status, f"gave up after {attempt} attempt(s): "
                                                   f"{'HTTP ' + str(status) if status else _scrub(text, key)}")
        sleep(wait)
    return Outcome(False, MAX_ATTEMPTS, status, "gave up")  # not reached


def _scrub(text: str, key: str) -> str:
    """A response excerpt as it may be kept: one line, bounded, without the key should it echo it."""
    text = " ".join(text.split())[:RESPONSE_EXCERPT]
    return text.replace(key, "[routing key]") if key else text


def dead_letter(settings: Settings, record: dict, client=None) -> None:
    """Keep what could not be delivered (no routing key in it) in the dead-letter queue."""
    if client is None:
        import boto3

        client = boto3.client("sqs")
    client.send_message(QueueUrl=settings.dead_letter_url, MessageBody=json.dumps(record, ensure_ascii=False))


def log(**fields: Any) -> None:
    print(json.dumps({"message": "pagerduty", **fields}, ensure_ascii=False, default=str))


def handler(event: Any, context: Any = None, *, settings: Optional[Settings] = None) -> dict:
    """Deliver one alert or change event; what cannot be delivered goes to the dead-letter queue."""
    settings = settings or Settings.from_env(os.environ)
    started = time.monotonic()

    def remaining() -> float:
        if context is not None and hasattr(context, "get_remaining_time_in_millis"):
            return context.get_remaining_time_in_millis() / 1000.0
        return 60.0 - (time.monotonic() - started)

    kind, body, why = request_for(event)
    if body is None:
        if kind == "change":  # a change no incident can be rooted in: nothing to tell
            log(outcome="skipped", kind=kind, reason=why)
            return {"delivered": False, "skipped": True}
        record = {"reason": why, "kind": kind, "input": event if _small(event) else "(too large to keep)"}
        dead_letter(settings, record)
        log(outcome="dead-lettered", kind=kind, reason=why)
        return {"delivered": False}
    url = settings.events_url if kind == "alert" else settings.change_events_url
    dedup = body.get("dedup_key", "")
    try:
        key = routing_key(settings)
    except KeyUnavailable as exc:
        outcome = Outcome(False, 0, 0, f"routing key unavailable: {exc}")
    else:
        outcome = deliver(url, body, key, remaining=remaining)
        if not outcome.delivered and 400 <= outcome.status < 500 and outcome.status != 429:
            forget_key()  # refused: perhaps a rotated key; read it again next time
    if outcome.delivered:
        log(outcome="delivered", kind=kind, dedup_key=dedup, status=outcome.status, attempts=outcome.attempts)
        return {"delivered": True, "attempts": outcome.attempts}
    dead_letter(settings, {"reason": outcome.reason, "kind": kind, "status": outcome.status, "attempts": outcome.attempts,
                           "url": url, "request": body})
    log(outcome="dead-lettered", kind=kind, dedup_key=dedup, status=outcome.status, attempts=outcome.attempts,
        reason=outcome.reason)
    return {"delivered": False, "attempts": outcome.attempts}


def _small(value: Any) -> bool:
    try:
        return len(json.dumps(value, default=str)) <= 64 * 1024
    except (TypeError, ValueError, RecursionError):
        return False
