"""No storms, no duplicates: one notification per fingerprint per window, and never two for
one CloudTrail event. DynamoDB conditional writes; items expire by TTL.

Items (partition key ``pk``):
* ``fp#<fingerprint>``: ``window_start`` (epoch s) of the notified window, ``suppressed``
  repeats counted since, ``claimed_by`` (the event whose notification claimed the window),
  ``expires_at`` (TTL).
* ``ev#<eventID>``: written once an event's outcome is settled (notified, or counted as a
  repeat), so a redelivered event is recognised; a publish that failed leaves none, so the
  retry notifies.

A window claimed by one of the events being handled again is theirs: a retry whose release
failed, or botocore resending a claim whose answer was lost, notifies instead of counting
itself as a repeat of its own claim.

A batch reads every key it needs in one BatchGetItem (its events and its fingerprints), then
writes all its fingerprints in one TransactWriteItems whose conditions are the state it read
(optimistic concurrency: a fingerprint another invocation changed or is writing in between
falls back to the atomic ``claim``, and the others are written again without it). One round
trip for up to 100 fingerprints, at two write units each. One event alone uses ``claim``.

When the table cannot be used the caller fails open (notifies): ``DedupUnavailable``. A table
that did not answer is not asked again for ``BREAKER_SECONDS``, so an outage costs one
timeout, not one per call.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

BREAKER_SECONDS = 30.0
_TRANSPORT = ("Timeout", "EndpointConnectionError", "ConnectionError", "ConnectionClosedError", "ProxyConnectionError")


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


def _n(item: Optional[dict], name: str) -> Optional[int]:
    """A number attribute of an item as DynamoDB returns it; None when absent or not a number."""
    try:
        return int(item[name]["N"])  # type: ignore[index]
    except (KeyError, TypeError, ValueError):
        return None


def _s(item: Optional[dict], name: str) -> str:
    value = (item or {}).get(name)
    return value.get("S", "") if isinstance(value, dict) else ""


def _backoff(attempt: int) -> None:
    """Before retrying unprocessed keys or items: 50, 100, 200 ms, with jitter (DynamoDB asks for backoff)."""
    time.sleep(0.05 * (2 ** attempt) * (0.5 + random.random() / 2))


def _owners(event_ids: Sequence[str]) -> tuple[set[str], dict]:
    """The event ids a window may be claimed for, and the one a new claim names (the first)."""
    ids = [e for e in dict.fromkeys(event_ids) if e]
    return set(ids), {"S": ids[0] if ids else "-"}


def _reclaim(held: dict, me: dict, exp: dict) -> dict:
    """UpdateItem arguments: take over a window claimed for one of our events and never settled."""
    return {"UpdateExpression": "SET claimed_by = :me, expires_at = :exp",
            "ConditionExpression": "window_start = :read AND claimed_by = :held",
            "ExpressionAttributeValues": {":me": me, ":exp": exp, ":read": held["window_start"],
                                          ":held": {"S": _s(held, "claimed_by")}}}


def _count_repeats(count: int, exp: dict) -> dict:
    """UpdateItem arguments: count repeats into a live window; never into a deleted item (no resurrection)."""
    return {"UpdateExpression": "SET expires_at = :exp ADD suppressed :n",
            "ConditionExpression": "attribute_exists(window_start)",
            "ExpressionAttributeValues": {":n": {"N": str(count)}, ":exp": exp}}


class Dedup:
    def __init__(self, table_name: str, window_seconds: int = 900, client=None, event_ttl_seconds: int = 86_400,
                 clock: Callable[[], float] = time.monotonic):
        self.table = table_name
        self.window = window_seconds
        self.event_ttl = event_ttl_seconds
        self._client = client
        self._monotonic = clock
        self._down: tuple[float, str] = (0.0, "")  # (until, why): the table did not answer

    @property
    def client(self):
        if self._client is None:
            import boto3
            from botocore.config import Config

            self._client = boto3.client("dynamodb", config=Config(connect_timeout=2, read_timeout=2,
                                                                   retries={"max_attempts": 3, "mode": "standard"}))
        return self._client

    def _call(self, method: str, **kwargs) -> Any:
        """One DynamoDB call. ConditionalCheckFailed and TransactionCanceled are the caller's to
        read; anything else is ``DedupUnavailable``. A transport failure (timeout, connection)
        opens the breaker: calls fail at once until it closes."""
        until, why = self._down
        if until and self._monotonic() < until:
            raise DedupUnavailable(f"{method} on {self.table}: not tried, the table did not answer a moment ago ({why})")
        try:
            return getattr(self.client, method)(**kwargs)
        except Exception as exc:  # noqa: BLE001
            code = _code(exc)
            if code in ("ConditionalCheckFailedException", "TransactionCanceledException"):
                raise
            why = code or type(exc).__name__
            if any(t in why for t in _TRANSPORT):
                self._down = (self._monotonic() + BREAKER_SECONDS, why)
            raise DedupUnavailable(f"{method} on {self.table}: {why}") from exc

    def read(self, event_ids: list[str], fingerprints: list[str]) -> tuple[set[str], "dict[str, Optional[dict]]", int]:
        """One strongly consistent read of a batch's keys (BatchGetItem, 100 keys a call): the events
        already settled, the stored item of each fingerprint (None: no item), and how many event
        keys could not be read (unprocessed after retries: their events are treated as new). A
        fingerprint whose key could not be read is left out of the answer (the atomic path decides)."""
        pks = [f"ev#{e}" for e in dict.fromkeys(e for e in event_ids if e)]
        pks += [f"fp#{f}" for f in dict.fromkeys(fingerprints)]
        found: dict[str, dict] = {}
        unread: set[str] = set()

        def get(chunk: list[str]) -> None:
            request = {self.table: {"Keys": [{"pk": {"S": pk}} for pk in chunk], "ConsistentRead": True,
                                    "ProjectionExpression": "pk, window_start, suppressed, claimed_by"}}
            for attempt in range(4):
                if attempt:
                    _backoff(attempt - 1)
                response = self._call("batch_get_item", RequestItems=request)
                found.update((item["pk"]["S"], item) for item in response.get("Responses", {}).get(self.table, []))
                request = response.get("UnprocessedKeys") or {}
                if not request:
                    break
            unread.update(key["pk"]["S"] for key in request.get(self.table, {}).get("Keys", []))

        self._each([pks[start:start + 100] for start in range(0, len(pks), 100)], get)
        seen = {pk[3:] for pk in found if pk.startswith("ev#")}
        states = {f: found.get(f"fp#{f}") for f in fingerprints if f"fp#{f}" not in unread}
        return seen, states, sum(1 for pk in unread if pk.startswith("ev#"))

    def claim_many(self, groups: "dict[str, tuple[int, Sequence[str]]]", states: "dict[str, Optional[dict]]",
                   now: float) -> tuple[dict[str, Claim], list[str]]:
        """Claim (or count as repeats) every fingerprint of a batch in one TransactWriteItems per
        100, each write conditional on the state ``read`` returned. ``groups`` maps a fingerprint
        to (how many events, their event ids). Returns the claims made, and the fingerprints left
        to ``claim`` one by one: their state was not read, or changed since."""
        start = int(now)
        cutoff = start - self.window
        planned: list[tuple[str, dict, Claim]] = []
        left: list[str] = []
        for fingerprint, (count, event_ids) in groups.items():
            if fingerprint not in states:
                left.append(fingerprint)
                continue
            item = states[fingerprint]
            ids, me = _owners(event_ids)
            exp = {"N": str(start + 2 * self.window)}
            update = {"TableName": self.table, "Key": {"pk": {"S": f"fp#{fingerprint}"}}}
            fresh = {":now": {"N": str(start)}, ":extra": {"N": str(count - 1)}, ":exp": exp, ":me": me}
            claim_expr = "SET window_start = :now, suppressed = :extra, expires_at = :exp, claimed_by = :me"
            window_start, suppressed = _n(item, "window_start"), _n(item, "suppressed")
            if item is None:
                update.update(UpdateExpression=claim_expr, ConditionExpression="attribute_not_exists(pk)",
                              ExpressionAttributeValues=fresh)
                planned.append((fingerprint, update, Claim(True, start, added=count - 1)))
            elif window_start is None or suppressed is None:
                left.append(fingerprint)  # not an item this code wrote: the atomic path decides
            elif window_start <= cutoff:  # the window ran out: notify, carrying the count suppressed in it
                update.update(UpdateExpression=claim_expr,
                              ConditionExpression="window_start = :read AND suppressed = :suppressed",
                              ExpressionAttributeValues={**fresh, ":read": {"N": str(window_start)},
                                                         ":suppressed": {"N": str(suppressed)}})
                planned.append((fingerprint, update, Claim(True, start, suppressed, window_start, count - 1)))
            elif _s(item, "claimed_by") in ids:  # claimed for one of these very events, never settled: theirs
                update.update(_reclaim(item, me, exp))
                planned.append((fingerprint, update, Claim(True, window_start)))
            else:  # notified within the window: count the repeats
                update.update(_count_repeats(count, exp))
                planned.append((fingerprint, update, Claim(False, start)))
        claims: dict[str, Claim] = {}
        for first in range(0, len(planned), 100):
            chunk = planned[first:first + 100]
            for _ in range(2):  # once, then once more without the writes that could not be made
                refused = self._transact(chunk)
                if refused is None:
                    claims.update((fingerprint, claim) for fingerprint, _, claim in chunk)
                    break
                left.extend(chunk[i][0] for i in refused)
                chunk = [plan for i, plan in enumerate(chunk) if i not in refused]
                if not chunk:
                    break
            else:
                left.extend(fingerprint for fingerprint, _, _ in chunk)
        return claims, left

    def _transact(self, chunk: list) -> Optional[set[int]]:
        """Write a chunk's updates in one TransactWriteItems (botocore gives it an idempotency
        token, so its own retries are safe). None when written; else the positions to take the
        atomic path: those whose condition failed or that conflicted with another invocation's
        write (in a storm, concurrent batches all touch its fingerprint: only that one goes the
        atomic way, the rest are written again), or all of them when AWS does not say."""
        try:
            self._call("transact_write_items", TransactItems=[{"Update": update} for _, update, _ in chunk])
            return None
        except DedupUnavailable:
            raise
        except Exception as exc:  # noqa: BLE001 - TransactionCanceledException
            reasons = getattr(exc, "response", {}).get("CancellationReasons") or []
            codes = [(r or {}).get("Code") or "None" for r in reasons]
            if len(codes) != len(chunk) or any(c not in ("None", "ConditionalCheckFailed", "TransactionConflict") for c in codes):
                return set(range(len(chunk)))  # throttled or unexplained: every write goes the atomic way
            return {i for i, c in enumerate(codes) if c != "None"}

    def mark_events(self, event_ids: list[str], now: float) -> None:
        """Record settled events (BatchWriteItem, 25 a call). Raises DedupUnavailable when some
        could not be written (a redelivery of those would not be recognised)."""
        items = [{"PutRequest": {"Item": {"pk": {"S": f"ev#{e}"}, "expires_at": {"N": str(int(now) + self.event_ttl)}}}}
                 for e in dict.fromkeys(e for e in event_ids if e)]
        unwritten: list[int] = []

        def put(chunk: list[dict]) -> None:
            request = {self.table: chunk}
            for attempt in range(4):
                if attempt:
                    _backoff(attempt - 1)
                request = self._call("batch_write_item", RequestItems=request).get("UnprocessedItems") or {}
                if not request:
                    return
            unwritten.append(len(request.get(self.table, [])))

        self._each([items[start:start + 25] for start in range(0, len(items), 25)], put)
        if sum(unwritten):
            raise DedupUnavailable(f"BatchWriteItem on {self.table}: {sum(unwritten)} event marker(s) unprocessed")

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

    def claim(self, fingerprint: str, now: float, count: int = 1, event_ids: Sequence[str] = ()) -> Claim:
        """Claim the window for ``fingerprint`` (notify), or count ``count`` repeats, atomically:
        one conditional UpdateItem, and a second one decided by the item the first one met."""
        start = int(now)
        ids, me = _owners(event_ids)
        key = {"pk": {"S": f"fp#{fingerprint}"}}
        exp = {"N": str(start + 2 * self.window)}
        for _ in range(3):
            try:
                old = self._call(
                    "update_item", TableName=self.table, Key=key,
                    UpdateExpression="SET window_start = :now, suppressed = :extra, expires_at = :exp, claimed_by = :me",
                    # No window (no item, or one this code did not write) or an expired one: ours to claim.
                    ConditionExpression="attribute_not_exists(window_start) OR window_start <= :cutoff",
                    ExpressionAttributeValues={":now": {"N": str(start)}, ":cutoff": {"N": str(start - self.window)},
                                               ":extra": {"N": str(count - 1)}, ":exp": exp, ":me": me},
                    ReturnValues="ALL_OLD", ReturnValuesOnConditionCheckFailure="ALL_OLD",
                ).get("Attributes", {})
                return Claim(True, start, suppressed_before=_n(old, "suppressed") or 0,
                             previous_window_start=_n(old, "window_start") or 0, added=count - 1)
            except Exception as exc:  # noqa: BLE001
                if _code(exc) != "ConditionalCheckFailedException":
                    raise
                held = getattr(exc, "response", {}).get("Item") or {}
            window_start = _n(held, "window_start")
            try:
                if window_start is not None and _s(held, "claimed_by") in ids:
                    # Claimed for one of these very events and never settled (a failed publish whose
                    # release failed too, or botocore resending our claim): still theirs to notify.
                    self._call("update_item", TableName=self.table, Key=key, **_reclaim(held, me, exp))
                    return Claim(True, window_start)
                self._call("update_item", TableName=self.table, Key=key, **_count_repeats(count, exp))
                return Claim(False, start)
            except Exception as exc:  # noqa: BLE001
                if _code(exc) != "ConditionalCheckFailedException":
                    raise
                # the item changed (claimed anew, or deleted by TTL) between the two writes: decide again
        raise DedupUnavailable(f"UpdateItem on {self.table}: fp#{fingerprint} kept changing under contention")

    def release(self, fingerprint: str, claim: Claim) -> None:
        """Undo a claim whose notification could not be published, so the retry notifies.

        UpdateItem, not DeleteItem: the previous window's start and its suppressed count are put
        back (repeats counted by others meanwhile are kept), so the retry's notification still
        says how many were suppressed. Conditional on the claim still being ours. Best effort:
        if it fails, the window still names the claiming event (``claimed_by``), so that event's
        retry notifies; only other events' repeats wait for the window to run out.
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
