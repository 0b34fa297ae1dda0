"""No storms, no duplicates: one notification per fingerprint per window, and never two for
one CloudTrail event. DynamoDB conditional writes; items expire by TTL.

Items (partition key ``pk``):
* ``fp#<fingerprint>``: ``window_start`` (epoch s) of the notified window, ``suppressed``
  repeats counted since, ``expires_at`` (TTL).
* ``ev#<eventID>``: written after a notification was published, so a redelivered event is
  recognised; a publish that failed leaves none, so the retry notifies.

When the table cannot be used the caller fails open (notifies): ``DedupUnavailable``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class DedupUnavailable(Exception):
    """The table could not be read or written (missing, throttled, unreachable)."""


@dataclass(frozen=True)
class Claim:
    notify: bool
    window_start: int
    suppressed_before: int = 0  # repeats suppressed in the previous window (for the next notification)
    previous_window_start: int = 0
    added: int = 0  # repeats this claim itself wrote as suppressed (the rest of its batch group)


def _code(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    return response.get("Error", {}).get("Code", "") if isinstance(response, dict) else ""


class Dedup:
    def __init__(self, table_name: str, window_seconds: int = 900, client=None, event_ttl_seconds: int = 86_400):
        self.table = table_name
        self.window = window_seconds
        self.event_ttl = event_ttl_seconds
        self._client = client

    @property
    def client(self):
        if self._client is None:
            import boto3
            from botocore.config import Config

            self._client = boto3.client("dynamodb", config=Config(connect_timeout=2, read_timeout=2,
                                                                   retries={"max_attempts": 3, "mode": "standard"}))
        return self._client

    def _call(self, method: str, **kwargs) -> Any:
        try:
            return getattr(self.client, method)(**kwargs)
        except Exception as exc:  # noqa: BLE001
            if _code(exc) == "ConditionalCheckFailedException":
                raise
            raise DedupUnavailable(f"{method} on {self.table}: {_code(exc) or type(exc).__name__}") from exc

    def seen_events(self, event_ids: list[str]) -> set[str]:
        """Which of these events were already notified (BatchGetItem, 100 keys a call)."""
        wanted = list(dict.fromkeys(e for e in event_ids if e))
        seen: set[str] = set()
        for start in range(0, len(wanted), 100):
            keys = [{"pk": {"S": f"ev#{e}"}} for e in wanted[start:start + 100]]
            request = {self.table: {"Keys": keys, "ConsistentRead": True, "ProjectionExpression": "pk"}}
            for _ in range(3):
                response = self._call("batch_get_item", RequestItems=request)
                seen.update(item["pk"]["S"][3:] for item in response.get("Responses", {}).get(self.table, []))
                request = response.get("UnprocessedKeys") or {}
                if not request:
                    break
        return seen

    def mark_events(self, event_ids: list[str], now: float) -> None:
        """Record notified events (BatchWriteItem, 25 a call)."""
        items = [{"PutRequest": {"Item": {"pk": {"S": f"ev#{e}"}, "expires_at": {"N": str(int(now) + self.event_ttl)}}}}
                 for e in dict.fromkeys(e for e in event_ids if e)]
        for start in range(0, len(items), 25):
            request = {self.table: items[start:start + 25]}
            for _ in range(3):
                request = self._call("batch_write_item", RequestItems=request).get("UnprocessedItems") or {}
                if not request:
                    break

    def claim(self, fingerprint: str, now: float, count: int = 1) -> Claim:
        """Claim the window for ``fingerprint`` (notify), or count ``count`` suppressed repeats."""
        start = int(now)
        try:
            old = self._call(
                "update_item", TableName=self.table, Key={"pk": {"S": f"fp#{fingerprint}"}},
                UpdateExpression="SET window_start = :now, suppressed = :extra, expires_at = :exp",
                ConditionExpression="attribute_not_exists(pk) OR window_start <= :cutoff",
                ExpressionAttributeValues={":now": {"N": str(start)}, ":cutoff": {"N": str(start - self.window)},
                                           ":extra": {"N": str(count - 1)}, ":exp": {"N": str(start + 2 * self.window)}},
                ReturnValues="ALL_OLD",
            ).get("Attributes", {})
        except Exception as exc:  # noqa: BLE001
            if _code(exc) != "ConditionalCheckFailedException":
                raise
            self._call("update_item", TableName=self.table, Key={"pk": {"S": f"fp#{fingerprint}"}},
                       UpdateExpression="ADD suppressed :n", ExpressionAttributeValues={":n": {"N": str(count)}})
            return Claim(notify=False, window_start=start)
        return Claim(notify=True, window_start=start, suppressed_before=int(old.get("suppressed", {}).get("N", 0)),
                     previous_window_start=int(old.get("window_start", {}).get("N", 0)), added=count - 1)

    def release(self, fingerprint: str, claim: Claim) -> None:
        """Undo a claim whose notification could not be published, so the retry notifies.

        UpdateItem, not DeleteItem: the previous window's start and its suppressed count are put
        back (repeats counted by others meanwhile are kept), so the retry's notification still
        says how many were suppressed. Conditional on the claim still being ours. Best effort:
        if it fails the window simply runs out (at worst one alert is delayed, never lost twice).
        """
        try:
            self._call("update_item", TableName=self.table, Key={"pk": {"S": f"fp#{fingerprint}"}},
                       UpdateExpression="SET window_start = :previous ADD suppressed :delta",
                       ConditionExpression="window_start = :start",
                       ExpressionAttributeValues={":previous": {"N": str(claim.previous_window_start)},
                                                  ":delta": {"N": str(claim.suppressed_before - claim.added)},
                                                  ":start": {"N": str(claim.window_start)}})
        except Exception:  # noqa: BLE001 - best effort; the window expires anyway
            pass
