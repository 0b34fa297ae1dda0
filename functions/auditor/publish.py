"""Sending, one channel each: the findings topic (SNS: one message per incident state change,
``PublishBatch``, as ``auditor.render`` writes it) and the incidents bus (EventBridge, as
``auditor.incident_event`` builds it). Each channel's ``send`` returns, per message, the error that
stopped it or None: what a failed message means is the caller's decision (auditor.pipeline)."""

from __future__ import annotations

from typing import Optional

from .aws import client as aws_client
from .aws import fan_out
from .render import message

__all__ = ["BATCH_BYTES", "BATCH_ENTRIES", "EventBus", "Publisher"]


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


class _Channel:
    """A channel's AWS client, made on first use (3 s to connect, 5 s to answer, 3 attempts)."""

    name = ""
    service = ""

    def __init__(self, client=None, region: Optional[str] = None):
        self._client = client
        self.region = region

    @property
    def client(self):
        if self._client is None:
            self._client = aws_client(self.service, self.region, connect_timeout=3, read_timeout=5,
                                      retries={"max_attempts": 3, "mode": "standard"})
        return self._client


class Publisher(_Channel):
    """The findings topic: one SNS message per incident state change (channel ``sns``)."""

    name, service = "sns", "sns"

    def __init__(self, topic_arn: str, client=None, region: Optional[str] = None):
        super().__init__(client, region)
        self.topic_arn = topic_arn

    def publish(self, finding, notice=None) -> str:
        """Publish one message; raises on failure (the caller lets AWS retry)."""
        return self.client.publish(TopicArn=self.topic_arn, **message(finding, notice))["MessageId"]

    def send(self, notices: list) -> list[Optional[Exception]]:
        """One message per incident state change; per notice, None or the error that stopped it."""
        return self._send([message(n.finding, n) for n in notices])

    publish_notices = send

    def _send(self, messages: list[dict]) -> list[Optional[Exception]]:
        """PublishBatch (up to 10 and 256 KiB a call); per message, None or the error that stopped it."""
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


class EventBus(_Channel):
    """The incidents as EventBridge events (``PutEvents``: up to 10 entries and 256 KiB a call),
    each built by ``auditor.incident_event`` (documented in docs/events.md)."""

    name, service = "events", "events"

    def __init__(self, bus_name: str, client=None, region: Optional[str] = None, account: str = ""):
        super().__init__(client, region)
        self.bus_name = bus_name
        self.account = account

    def send(self, notices: list) -> list[Optional[Exception]]:
        """One event per incident state change (PutEvents, as many a call as fit); per notice,
        None or the error that stopped it (a failed call, or the entry's own ErrorCode)."""
        from .contract import IncidentEvent
        from .incident_event import batches, incident_event

        entries = [incident_event(n.status, n.incident_dict(), n.finding.to_dict(), source=IncidentEvent.SOURCE,
                                  bus_name=self.bus_name, account=n.finding.account or self.account,
                                  region=n.finding.region or (self.region or "")) for n in notices]
        position = {id(e): i for i, e in enumerate(entries)}
        results: list[Optional[Exception]] = [None] * len(entries)
        client = self.client

        def send(chunk: list[dict]) -> None:
            try:
                response = client.put_events(Entries=chunk)
            except Exception as exc:  # noqa: BLE001 - reported per item
                for entry in chunk:
                    results[position[id(entry)]] = exc
                return
            for entry, answer in zip(chunk, response.get("Entries", [])):
                if answer.get("ErrorCode"):
                    results[position[id(entry)]] = RuntimeError(f"{answer.get('ErrorCode')}: {answer.get('ErrorMessage', '')}"[:300])

        fan_out(send, batches(entries), workers=4)
        return results
