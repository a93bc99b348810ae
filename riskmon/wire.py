"""Topics, partitioning and the record formats on riskmon's event topics.

An event topic carries three kinds of record, told apart by the decoded JSON object:

* a **single event** — one event object (see :mod:`riskmon.events`), key = firm_id; this is what
  any external producer (kcat, a source connector) sends;
* a **batch envelope** — ``{"riskmon_batch": 1, "events": [event, ...]}``, key ``null``: consecutive
  events of one topic *and partition*, in arrival order, packed by riskmon's own producers because
  stream processors pay per Kafka record, not per byte;
* a **watermark** — ``{"riskmon_watermark": 1, "time": ISO-8601, "producer": str}``: the producer
  promises it has delivered every event whose delivery time is before ``time``. Producers broadcast
  each watermark to every partition of every event topic, after everything delivered before it, so
  that firms that fall silent still have their days closed, identically whatever the partition
  count or replay speed.

>>> partition_for("F00001", 8) == partition_for("F00001", 8)
True
>>> env = pack_batch([b'{"a":1}', b'{"b":2}'])
>>> env
b'{"riskmon_batch":1,"events":[{"a":1},{"b":2}]}'
>>> classify(orjson.loads(env))
'batch'
>>> classify(orjson.loads(watermark_record(datetime(2026, 1, 1, tzinfo=timezone.utc), "replay")))
'watermark'
"""

from __future__ import annotations

from datetime import datetime, timezone
from functools import lru_cache
from typing import Any, Iterable, Literal

import orjson
from aiokafka.partitioner import murmur2

EVENT_TOPICS: dict[str, str] = {
    "electricity": "riskmon.events.electricity",
    "invoice": "riskmon.events.invoice",
    "logistics": "riskmon.events.logistics",
    "payment": "riskmon.events.payment",
}
#: Lines of an event file that cannot be parsed or validated, with the reason in headers.
REPLAY_DLQ_TOPIC = "riskmon.events.dlq"
LATE_TOPIC = "riskmon.events.late"
VITALITY_TOPIC = "riskmon.vitality"
DETECTIONS_TOPIC = "riskmon.detections"
ALERTS_TOPIC = "riskmon.alerts"
CREDIT_TOPIC = "riskmon.actions.credit"
RISKSHARE_TOPIC = "riskmon.actions.riskshare"
WATCHLIST_TOPIC = "riskmon.watchlist"
#: The alert policy's outputs (:mod:`alerts.policy`), by kind.
ACTION_TOPICS: dict[str, str] = {
    "alerts": ALERTS_TOPIC,
    "credit": CREDIT_TOPIC,
    "riskshare": RISKSHARE_TOPIC,
    "watchlist": WATCHLIST_TOPIC,
}

BATCH_MARKER = "riskmon_batch"
WATERMARK_MARKER = "riskmon_watermark"
_BATCH_HEAD = b'{"riskmon_batch":1,"events":['


def dlq_topic(topic: str) -> str:
    """Dead-letter topic of an input topic: ``<topic>.dlq``."""
    return f"{topic}.dlq"


@lru_cache(maxsize=1_000_000)
def partition_for(firm_id: str, partitions: int) -> int:
    """The partition a firm's events live in: Kafka's default (murmur2) partitioner on the
    UTF-8 firm id, so records keyed by firm_id from any Kafka client land in the same place."""
    return (murmur2(firm_id.encode("utf-8")) & 0x7FFFFFFF) % partitions


def pack_batch(serialized_events: Iterable[bytes]) -> bytes:
    """Build a batch envelope from already-serialized events, without re-encoding them."""
    return _BATCH_HEAD + b",".join(serialized_events) + b"]}"


def watermark_record(time: datetime, producer: str) -> bytes:
    """Serialize a watermark: every event delivered before ``time`` has been sent."""
    if time.tzinfo is None:
        raise ValueError("watermark time must be timezone-aware")
    return orjson.dumps({WATERMARK_MARKER: 1, "time": time.isoformat(), "producer": producer})


def classify(obj: Any) -> Literal["batch", "watermark", "event"]:
    """What a decoded record is. Anything that is not an envelope or a watermark is treated as a
    single event (and validated as one)."""
    if isinstance(obj, dict):
        if BATCH_MARKER in obj:
            return "batch"
        if WATERMARK_MARKER in obj:
            return "watermark"
    return "event"


#: Default spacing of watermarks, seconds of arrival time. Days close one lateness after their
#: end anyway (36 h for invoices), so an hour costs little delay and few records.
WATERMARK_INTERVAL_S = 3600.0


class WatermarkSchedule:
    """When a producer replaying a file in arrival order must broadcast watermarks.

    The arrival clock is the running maximum of the events' delivery times. Each time it passes a
    multiple of ``interval_s`` (aligned to the Unix epoch), the boundary is due: every event seen
    so far arrived before it. Depends only on the file's content, never on wall time, so every
    replay of a file — at any speed, by replay or by the in-process backtest — puts the same
    watermarks between the same events.

    >>> ws = WatermarkSchedule(600)
    >>> ws.observe(1000.0), ws.observe(1150.0), ws.observe(1300.0), ws.observe(2500.0)
    (None, None, 1200.0, 2400.0)
    >>> ws.final()
    3000.0
    """

    def __init__(self, interval_s: float = WATERMARK_INTERVAL_S) -> None:
        if interval_s <= 0:
            raise ValueError("watermark interval must be positive")
        self.interval_s = interval_s
        self.clock: float | None = None
        self._next: float | None = None

    def observe(self, arrival_s: float) -> float | None:
        """Register one event's arrival time (epoch seconds), *before* sending the event.
        Returns the watermark to broadcast first, or None."""
        if self.clock is None:
            self.clock = arrival_s
            self._next = (arrival_s // self.interval_s + 1) * self.interval_s
            return None
        if arrival_s <= self.clock:
            return None
        self.clock = arrival_s
        assert self._next is not None
        if arrival_s < self._next:
            return None
        boundary = (arrival_s // self.interval_s) * self.interval_s
        self._next = boundary + self.interval_s
        return boundary

    def final(self) -> float | None:
        """The closing watermark after the last event: the boundary after the clock."""
        return None if self._next is None else self._next
