"""No storms, no duplicates: one notification per fingerprint per window, and never two for
one CloudTrail event. DynamoDB conditional writes; items expire by TTL.

Items (partition key ``pk``):
* ``fp#<fingerprint>``: ``window_start`` (epoch s) of the notified window, ``suppressed``
  repeats counted since, ``expires_at`` (TTL).
* ``ev#<eventID>``: written after a notification was published, so a redelivered event is
  recognised; a publish that failed leaves none, so the retry notifies.

A batch reads every key it needs in one BatchGetItem (its events and its fingerprints), then
claims all its fingerprints in one TransactWriteItems whose conditions are the state it read
(optimistic concurrency: a condition that no longer holds cancels the transaction, and only
those fingerprints fall back to one atomic UpdateItem each). One event alone uses UpdateItem.

When the table cannot be used the caller fails open (notifies): ``DedupUnavailable``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional


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

    def read(self, event_ids: list[str], fingerprints: list[str]) -> tuple[set[str], "dict[str, Optional[dict]]"]:
        """One strongly consistent read of a batch's keys (BatchGetItem, 100 keys a call): the events
        already notified, and the stored item of each fingerprint (None: no item). A fingerprint
        whose key could not be read (unprocessed after retries) is left out of the answer."""
        pks = [f"ev#{e}" for e in dict.fromkeys(e for e in event_ids if e)]
        pks += [f"fp#{f}" for f in dict.fromkeys(fingerprints)]
        found: dict[str, dict] = {}
        unread: set[str] = set()

        def get(chunk: list[str]) -> None:
            request = {self.table: {"Keys": [{"pk": {"S": pk}} for pk in chunk], "ConsistentRead": True,
                                    "ProjectionExpression": "pk, window_start, suppressed"}}
            for _ in range(3):
                response = self._call("batch_get_item", RequestItems=request)
                found.update((item["pk"]["S"], item) for item in response.get("Responses", {}).get(self.table, []))
                request = response.get("UnprocessedKeys") or {}
                if not request:
                    break
            unread.update(key["pk"]["S"] for key in request.get(self.table, {}).get("Keys", []))

        self._each([pks[start:start + 100] for start in range(0, len(pks), 100)], get)
        seen = {pk[3:] for pk in found if pk.startswith("ev#")}
        states = {f: found.get(f"fp#{f}") for f in fingerprints if f"fp#{f}" not in unread}
        return seen, states

    def claim_many(self, counts: dict[str, int], states: "dict[str, Optional[dict]]",
                   now: float) -> tuple[dict[str, Claim], list[str]]:
        """Claim (or count as suppressed) every fingerprint of a batch in one TransactWriteItems per
        100, each write conditional on the state ``read`` returned. Returns the claims made, and
        the fingerprints left to ``claim`` one by one: their state was not read, or changed since."""
        start = int(now)
        cutoff = start - self.window
        planned: list[tuple[str, dict, Claim]] = []
        left: list[str] = []
        for fingerprint, count in counts.items():
            if fingerprint not in states:
                left.append(fingerprint)
                continue
            item = states[fingerprint]
            update = {"TableName": self.table, "Key": {"pk": {"S": f"fp#{fingerprint}"}}}
            fresh = {":now": {"N": str(start)}, ":extra": {"N": str(count - 1)}, ":exp": {"N": str(start + 2 * self.window)}}
            claim_expr = "SET window_start = :now, suppressed = :extra, expires_at = :exp"
            if item is None:
                update.update(UpdateExpression=claim_expr, ConditionExpression="attribute_not_exists(pk)",
                              ExpressionAttributeValues=fresh)
                planned.append((fingerprint, update, Claim(True, start, added=count - 1)))
                continue
            try:
                window_start = int(item["window_start"]["N"])
                suppressed = int(item.get("suppressed", {"N": "0"})["N"])
            except (KeyError, TypeError, ValueError):
                left.append(fingerprint)  # not an item this code wrote: the atomic path decides
                continue
            if window_start <= cutoff:  # the window ran out: notify, carrying the count suppressed in it
                update.update(UpdateExpression=claim_expr,
                              ConditionExpression="window_start = :read AND suppressed = :suppressed",
                              ExpressionAttributeValues={**fresh, ":read": {"N": str(window_start)},
                                                         ":suppressed": {"N": str(suppressed)}})
                planned.append((fingerprint, update, Claim(True, start, suppressed, window_start, count - 1)))
            else:  # notified within the window: count the repeats
                update.update(UpdateExpression="ADD suppressed :n", ConditionExpression="attribute_exists(pk)",
                              ExpressionAttributeValues={":n": {"N": str(count)}})
                planned.append((fingerprint, update, Claim(False, start)))
        claims: dict[str, Claim] = {}
        for first in range(0, len(planned), 100):
            chunk = planned[first:first + 100]
            for _ in range(2):  # once, then once more without the writes whose condition failed
                cancelled = self._transact(chunk)
                if cancelled is None:
                    claims.update((fingerprint, claim) for fingerprint, _, claim in chunk)
                    break
                left.extend(chunk[i][0] for i in cancelled)
                chunk = [planned_item for i, planned_item in enumerate(chunk) if i not in cancelled]
                if not chunk:
                    break
            else:
                left.extend(fingerprint for fingerprint, _, _ in chunk)
        return claims, left

    def _transact(self, chunk: list) -> Optional[set[int]]:
        """None when the transaction was written; else the positions whose condition failed (all of
        them when AWS does not say, e.g. a conflicting transaction)."""
        try:
            self.client.transact_write_items(TransactItems=[{"Update": update} for _, update, _ in chunk])
            return None
        except Exception as exc:  # noqa: BLE001
            if _code(exc) != "TransactionCanceledException":
                raise DedupUnavailable(f"TransactWriteItems on {self.table}: {_code(exc) or type(exc).__name__}") from exc
            reasons = getattr(exc, "response", {}).get("CancellationReasons") or []
            failed = {i for i, r in enumerate(reasons) if (r or {}).get("Code") not in (None, "None")}
            if len(reasons) != len(chunk) or any((r or {}).get("Code") not in (None, "None", "ConditionalCheckFailed")
                                                for r in reasons):
                return set(range(len(chunk)))  # a conflict or throttle: every write goes the atomic way
            return failed

    def mark_events(self, event_ids: list[str], now: float) -> None:
        """Record notified events (BatchWriteItem, 25 a call)."""
        items = [{"PutRequest": {"Item": {"pk": {"S": f"ev#{e}"}, "expires_at": {"N": str(int(now) + self.event_ttl)}}}}
                 for e in dict.fromkeys(e for e in event_ids if e)]

        def put(chunk: list[dict]) -> None:
            request = {self.table: chunk}
            for _ in range(3):
                request = self._call("batch_write_item", RequestItems=request).get("UnprocessedItems") or {}
                if not request:
                    break

        self._each([items[start:start + 25] for start in range(0, len(items), 25)], put)

    def _each(self, chunks: list, fn: Callable[[Any], None]) -> None:
        """``fn`` over each chunk: a few calls in flight at once when there are several (boto3
        clients are thread-safe); the first error is raised once all have finished."""
        if len(chunks) <= 1:
            for chunk in chunks:
                fn(chunk)
            return
        from concurrent.futures import ThreadPoolExecutor

        self.client  # noqa: B018 - built once, before the threads ask for it
        with ThreadPoolExecutor(max_workers=min(4, len(chunks))) as pool:
            for future in [pool.submit(fn, chunk) for chunk in chunks]:
                future.result()

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
