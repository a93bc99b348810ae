"""Ingest stage: validate whatever arrives on the event topics and repack it for the Faust app.

External producers send one event per record (kcat, connectors); riskmon's own producers send
batch envelopes. Faust pays per record, so every record — single event, envelope or watermark — is
read here by a plain aiokafka consumer, validated in bulk, and forwarded to the co-partitioned
internal topic ``riskmon.internal.events`` as envelopes tagged with their stream and source
partition:

* internal record: ``{"riskmon_batch": 1, "segments": [segment, ...]}``, the segments in order,
  each either ``{"stream": s, "src": q, "events": [...]}`` or
  ``{"stream": s, "src": q, "watermark": ISO}``; at most ``ENVELOPE_MAX_EVENTS`` events and
  about ``ENVELOPE_MAX_BYTES`` bytes per record (brokers refuse records above about 1 MiB).

Events go to the partition of their firm (``partition_for``) whichever partition they came in
on; watermarks of source partition *q* go to every internal partition, after every event that
preceded them in *q*. One poll becomes about one record per internal partition.

Bad input goes to ``<topic>.dlq`` and is counted: a bad member of an envelope alone (header
``envelope_index``), a record that is no valid envelope whole. Headers of every dead letter:
``error`` (the reason, at most 2000 bytes), ``source_topic``, ``source_partition``,
``source_offset``, ``time`` (epoch seconds when ingest rejected it), and ``value_truncated`` /
``key_truncated`` (the original size) when a value above ``DLQ_MAX_VALUE_BYTES`` or a key above
``DLQ_MAX_KEY_BYTES`` was cut. No input, however malformed, stops the stage: a record that
would raise is dead-lettered with an ``internal error`` reason instead. Watermarks outside the
contract's time range (``riskmon.events.MIN_EVENT_TIME`` .. ``MAX_EVENT_TIME``) are dead-lettered
too, and with ``max_future_s`` (``RISKMON_INGEST_MAX_FUTURE_S``) so are events and watermarks
from further in the future than that, by this stage's clock.

Each poll is forwarded in one Kafka transaction together with the consumed offsets, so the
internal topic holds every valid event exactly once (read with ``read_committed``). Every record
of the transaction must be acknowledged before it commits; when the broker fails (a restart, a
lost connection, a fenced or out-of-sequence producer), the transaction is abandoned, the router
is rolled back to the last commit and the stage reconnects with new clients and resumes from the
committed offsets.

>>> r = IngestRouter(partitions=2, clock=lambda: 0.0)
>>> ev = b'{"event_id":"e1","firm_id":"F1","type":"payment","event_time":"2026-01-05T10:00:00+08:00","source":"pos","txn_id":"t","amount":5.0,"direction":"in","channel":"pos"}'
>>> r.on_record("riskmon.events.payment", 0, 0, ev)
>>> r.on_record("riskmon.events.payment", 0, 1, b'{"firm_id": 42}')
>>> out, dead = r.drain()
>>> [(p, orjson.loads(v)["segments"][0]["events"][0]["event_id"]) for p, v in out]
[(0, 'e1')]
>>> dead[0].topic, dead[0].headers[0]
('riskmon.events.payment.dlq', ('error', b'type: must be one of electricity, invoice, logistics, payment, got None'))
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import signal
import time
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Callable

import orjson

from riskmon.events import (
    EVENT_TYPES,
    MAX_EVENT_BYTES,
    MAX_EVENT_TIME,
    MIN_EVENT_TIME,
    EventError,
    validate_event,
)
from riskmon.fastcheck import fast_check, fast_line
from riskmon.metrics import RiskmonMetrics
from riskmon.settings import Settings
from riskmon.topics import INTERNAL_TOPIC
from riskmon.wire import EVENT_TOPICS, classify, dlq_topic, partition_for

log = logging.getLogger("riskmon.ingest")

INGEST_GROUP = "riskmon-ingest"
STREAM_OF_TOPIC: dict[str, str] = {topic: stream for stream, topic in EVENT_TOPICS.items()}
#: Events per internal record; big enough to amortise Faust's per-record cost, small enough to
#: keep records a few hundred kB.
ENVELOPE_MAX_EVENTS = 1000
#: An internal record is closed once it reaches this many bytes (the broker's default limit on
#: a record is 1 MiB; a valid event is at most about 1.3 kB once re-encoded).
ENVELOPE_MAX_BYTES = 512 * 1024
#: Dead letters keep at most this much of the rejected value (and say how long it was), so that
#: a record near the broker's size limit does not become too large to dead-letter with headers.
DLQ_MAX_VALUE_BYTES = 512 * 1024
#: ... and at most this much of its key.
DLQ_MAX_KEY_BYTES = 1024
#: Longest ``error`` header, bytes.
DLQ_MAX_ERROR_BYTES = 2000


@dataclass
class DeadLetter:
    topic: str
    value: bytes
    headers: list[tuple[str, bytes]]
    key: bytes | None = None


@dataclass
class IngestCounts:
    events: dict[str, int] = field(default_factory=lambda: {s: 0 for s in EVENT_TYPES})
    records: int = 0
    watermarks: int = 0
    dead_letters: int = 0
    envelopes_out: int = 0
    #: Dead letters per DLQ topic.
    dead_letters_by_topic: dict[str, int] = field(default_factory=dict)
    #: Times the Kafka clients were replaced after a broker failure.
    reconnects: int = 0

    def copy(self) -> "IngestCounts":
        return replace(
            self, events=dict(self.events), dead_letters_by_topic=dict(self.dead_letters_by_topic)
        )


def _encode_member(obj: Any) -> bytes | None:
    """A decoded envelope member as JSON again, for its dead letter (None if it cannot be:
    orjson refuses nesting deeper than 254 levels, which its decoder accepts up to 1024)."""
    try:
        return orjson.dumps(obj)
    except (TypeError, orjson.JSONEncodeError):
        try:
            return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "replace")
        except (RecursionError, ValueError, TypeError):
            return None


class IngestRouter:
    """Pure routing and validation; the Kafka adapter feeds it records and drains its output.

    ``max_future_s``: events delivered, and watermarks dated, more than this many seconds after
    ``clock()`` are dead-lettered (None: no such check)."""

    def __init__(
        self,
        partitions: int,
        envelope_max_events: int = ENVELOPE_MAX_EVENTS,
        clock: Callable[[], float] = time.time,
        envelope_max_bytes: int = ENVELOPE_MAX_BYTES,
        max_future_s: float | None = None,
    ) -> None:
        self.partitions = partitions
        self.envelope_max_events = envelope_max_events
        self.envelope_max_bytes = envelope_max_bytes
        self.max_future_s = max_future_s
        self.clock = clock
        self.counts = IngestCounts()
        # Per (stream, source partition, internal partition): events encoded as JSON, in order.
        self._buffers: dict[tuple[str, int, int], list[bytes]] = {}
        # Per internal partition: encoded segments in order, how many events and bytes they hold.
        self._segments: dict[int, list[bytes]] = {}
        self._segment_events: dict[int, int] = {}
        self._segment_bytes: dict[int, int] = {}
        self._out: list[tuple[int, bytes]] = []
        self._dead: list[DeadLetter] = []

    # -- input ----------------------------------------------------------------------------------
    def on_record(
        self, topic: str, partition: int, offset: int, value: bytes | None, key: bytes | None = None
    ) -> None:
        self.counts.records += 1
        try:
            self._on_record(topic, partition, offset, value, key)
        except Exception as exc:  # a bug must not turn one record into a poison pill
            log.exception("ingest failed on %s[%d]@%d; dead-lettering it", topic, partition, offset)
            self._dead_letter(
                topic, partition, offset, value, key, f"internal error: {type(exc).__name__}: {exc}"
            )

    def _on_record(
        self, topic: str, partition: int, offset: int, value: bytes | None, key: bytes | None
    ) -> None:
        stream = STREAM_OF_TOPIC.get(topic)
        if stream is None:
            self._dead_letter(topic, partition, offset, value, key, f"not an event topic: {topic}")
            return
        if value is None or not value:
            self._dead_letter(topic, partition, offset, value, key, "record: empty value")
            return
        if len(value) <= MAX_EVENT_BYTES:
            # The common case, a valid single event, is decoded and checked in one step and
            # forwarded as it came (the worker reads it exactly as it would read it re-encoded).
            checked = fast_line(value)
            if checked is not None:
                self._route(stream, topic, partition, offset, None, value, None, key, checked)
                return
        try:
            obj = orjson.loads(value)
        except orjson.JSONDecodeError as exc:
            self._dead_letter(topic, partition, offset, value, key, f"record: not valid JSON ({exc})")
            return
        kind = classify(obj)
        if kind == "watermark":
            self._on_watermark(stream, topic, partition, offset, obj, value, key)
        elif kind == "batch":
            events = obj.get("events")
            if obj.get("riskmon_batch") != 1 or not isinstance(events, list):
                self._dead_letter(
                    topic, partition, offset, value, key,
                    "envelope: expected {\"riskmon_batch\": 1, \"events\": [...]}",
                )
                return
            for index, member in enumerate(events):
                try:
                    self._on_event(stream, topic, partition, offset, member, None, index)
                except Exception as exc:
                    log.exception(
                        "ingest failed on member %d of %s[%d]@%d; dead-lettering it",
                        index, topic, partition, offset,
                    )
                    self._dead_letter_member(
                        topic, partition, offset, member, f"internal error: {type(exc).__name__}: {exc}",
                        index,
                    )
        else:
            if len(value) > MAX_EVENT_BYTES:
                self._dead_letter(
                    topic, partition, offset, value, key,
                    f"event: {len(value)} bytes exceeds the {MAX_EVENT_BYTES}-byte limit",
                )
                return
            self._on_event(stream, topic, partition, offset, obj, value, None, key)

    def _on_event(
        self, stream: str, topic: str, partition: int, offset: int, obj: Any,
        raw: bytes | None, index: int | None, key: bytes | None = None,
    ) -> None:
        # A validated event is small by construction (every string field has a maximum length
        # and extra fields are forbidden), so envelope members need no separate size check.
        checked = fast_check(obj)
        if checked is None:
            try:
                event = validate_event(obj)
            except EventError as exc:
                self._reject(topic, partition, offset, obj, raw, key, str(exc), index)
                return
            checked = event.type, event.firm_id, event.delivery_time.timestamp()
        self._route(stream, topic, partition, offset, obj, raw, index, key, checked)

    def _route(
        self, stream: str, topic: str, partition: int, offset: int, obj: Any, raw: bytes | None,
        index: int | None, key: bytes | None, checked: tuple[str, str, float],
    ) -> None:
        """Buffer one valid event for its internal partition: ``raw``, the value of a single-event
        record, is forwarded as it came; ``obj``, an envelope member, is encoded again."""
        etype, firm_id, arrival = checked
        if etype != stream:
            self._reject(
                topic, partition, offset, obj, raw, key,
                f"type: a {etype} event on the {stream} topic", index,
            )
            return
        if self.max_future_s is not None and arrival > self.clock() + self.max_future_s:
            self._reject(
                topic, partition, offset, obj, raw, key,
                f"event: delivered {arrival - self.clock():.0f} s in the future (more than "
                f"the {self.max_future_s:.0f} s allowed by RISKMON_INGEST_MAX_FUTURE_S)", index,
            )
            return
        target = partition_for(firm_id, self.partitions)
        buf_key = (stream, partition, target)
        buf = self._buffers.get(buf_key)
        if buf is None:
            buf = self._buffers[buf_key] = []
        buf.append(raw if raw is not None else orjson.dumps(obj))
        self.counts.events[stream] += 1
        if len(buf) >= self.envelope_max_events:
            self._flush_buffer(buf_key)

    def _reject(
        self, topic: str, partition: int, offset: int, obj: Any, raw: bytes | None,
        key: bytes | None, error: str, index: int | None,
    ) -> None:
        if index is None:  # a single-event record: dead-letter it as it came
            self._dead_letter(topic, partition, offset, raw, key, error)
        else:
            self._dead_letter_member(topic, partition, offset, obj, error, index)

    def _dead_letter_member(
        self, topic: str, partition: int, offset: int, member: Any, error: str, index: int
    ) -> None:
        value = _encode_member(member)
        if value is None:
            error += " (the member is nested too deeply to be re-encoded; value left empty)"
        self._dead_letter(topic, partition, offset, value, None, error, index)

    def _on_watermark(
        self, stream: str, topic: str, partition: int, offset: int, obj: dict, value: bytes,
        key: bytes | None,
    ) -> None:
        raw_time = obj.get("time")
        try:
            if obj.get("riskmon_watermark") != 1 or not isinstance(raw_time, str):
                raise ValueError("expected {\"riskmon_watermark\": 1, \"time\": ISO-8601}")
            moment = datetime.fromisoformat(raw_time)
            if moment.tzinfo is None:
                raise ValueError("time has no UTC offset")
            # A watermark from the far future would make every later event of its source late.
            if not MIN_EVENT_TIME <= moment <= MAX_EVENT_TIME:
                raise ValueError(
                    f"time outside {MIN_EVENT_TIME.isoformat()} .. {MAX_EVENT_TIME.isoformat()}"
                )
            if self.max_future_s is not None:
                ahead = moment.timestamp() - self.clock()
                if ahead > self.max_future_s:
                    raise ValueError(
                        f"time is {ahead:.0f} s in the future (more than the "
                        f"{self.max_future_s:.0f} s allowed by RISKMON_INGEST_MAX_FUTURE_S)"
                    )
        except ValueError as exc:
            self._dead_letter(topic, partition, offset, value, key, f"watermark: {exc}")
            return
        # Everything that preceded the watermark in this source partition goes out first.
        for buf_key in [k for k in self._buffers if k[0] == stream and k[1] == partition]:
            self._flush_buffer(buf_key)
        segment = orjson.dumps({"stream": stream, "src": partition, "watermark": raw_time})
        for p in range(self.partitions):
            self._add_segment(p, segment, 0)
        self.counts.watermarks += 1

    def _flush_buffer(self, buf_key: tuple[str, int, int]) -> None:
        events = self._buffers.pop(buf_key, None)
        if not events:
            return
        stream, source, target = buf_key
        self._add_events(stream, source, target, events)

    def _add_events(self, stream: str, source: int, target: int, events: list[bytes]) -> None:
        segment = b'{"stream":"%s","src":%d,"events":[%s]}' % (stream.encode(), source, b",".join(events))
        if len(segment) > self.envelope_max_bytes and len(events) > 1:
            half = len(events) // 2
            self._add_events(stream, source, target, events[:half])
            self._add_events(stream, source, target, events[half:])
            return
        self._add_segment(target, segment, len(events))

    def _add_segment(self, target: int, segment: bytes, n_events: int) -> None:
        if self._segment_bytes.get(target, 0) + len(segment) > self.envelope_max_bytes:
            self._emit(target)  # close the record before it grows too large
        segments = self._segments.setdefault(target, [])
        segments.append(segment)
        self._segment_events[target] = self._segment_events.get(target, 0) + n_events
        self._segment_bytes[target] = self._segment_bytes.get(target, 0) + len(segment) + 1
        if (
            self._segment_events[target] >= self.envelope_max_events
            or self._segment_bytes[target] >= self.envelope_max_bytes
        ):
            self._emit(target)

    def _emit(self, target: int) -> None:
        segments = self._segments.pop(target, None)
        self._segment_events.pop(target, None)
        self._segment_bytes.pop(target, None)
        if segments:
            self._out.append((target, b'{"riskmon_batch":1,"segments":[' + b",".join(segments) + b"]}"))
            self.counts.envelopes_out += 1

    def _dead_letter(
        self, topic: str, partition: int, offset: int, value: bytes | None, key: bytes | None,
        error: str, index: int | None = None,
    ) -> None:
        headers = [
            ("error", error.encode("utf-8", "replace")[:DLQ_MAX_ERROR_BYTES]),
            ("source_topic", topic.encode("utf-8", "replace")),
            ("source_partition", str(partition).encode()),
            ("source_offset", str(offset).encode()),
            ("time", repr(self.clock()).encode()),
        ]
        if index is not None:
            headers.append(("envelope_index", str(index).encode()))
        value = value or b""
        if len(value) > DLQ_MAX_VALUE_BYTES:
            headers.append(("value_truncated", str(len(value)).encode()))
            value = value[:DLQ_MAX_VALUE_BYTES]
        if key is not None and len(key) > DLQ_MAX_KEY_BYTES:
            headers.append(("key_truncated", str(len(key)).encode()))
            key = key[:DLQ_MAX_KEY_BYTES]
        dlq = dlq_topic(topic)
        self._dead.append(DeadLetter(dlq, value, headers, key))
        self.counts.dead_letters += 1
        self.counts.dead_letters_by_topic[dlq] = self.counts.dead_letters_by_topic.get(dlq, 0) + 1

    # -- output ---------------------------------------------------------------------------------
    def drain(self) -> tuple[list[tuple[int, bytes]], list[DeadLetter]]:
        """Flush partial envelopes and hand over everything routed so far, in order."""
        for buf_key in list(self._buffers):
            self._flush_buffer(buf_key)
        for target in sorted(self._segments):
            self._emit(target)
        out, dead = self._out, self._dead
        self._out, self._dead = [], []
        return out, dead

    def rollback(self, counts: IngestCounts) -> None:
        """Forget everything routed since ``counts`` was copied (a transaction that failed: its
        records will be consumed again)."""
        self._buffers.clear()
        self._segments.clear()
        self._segment_events.clear()
        self._segment_bytes.clear()
        self._out, self._dead = [], []
        self.counts = counts.copy()


# ---------------------------------------------------------------------------------------------
# Kafka adapter
# ---------------------------------------------------------------------------------------------


#: Seconds between reconnection attempts after a broker failure (doubling up to the maximum).
RECONNECT_BACKOFF_S = 0.5
RECONNECT_BACKOFF_MAX_S = 10.0
#: How long stopping a client may take when the broker is gone.
CLIENT_STOP_TIMEOUT_S = 10.0


class _Fatal(Exception):
    """A failure that reconnecting cannot cure (configuration, another instance took over)."""


class _Rejoined(Exception):
    """The consumer lost its group membership and joined again (a broker restart forgets group
    generations; scaling the ingest stage moves partitions)."""


class _Disconnected(Exception):
    """A connection to a broker dropped since the last transaction: the broker may have
    restarted, and may mishandle a transaction of a producer session that began before."""


class _ConnectionWatch:
    """Notices a broker connection of the consumer or the producer that dropped since the last
    :meth:`snapshot` (aiokafka reconnects silently). Reads aiokafka's private connection table;
    a no-op if that changes."""

    def __init__(self, *clients: Any) -> None:
        self.clients = clients
        # the connection objects themselves, so that their ids are not reused
        self.known: dict[int, Any] = {}

    def _live(self) -> dict[int, Any]:
        live: dict[int, Any] = {}
        for client in self.clients:
            conns = getattr(client, "_conns", None)
            if not isinstance(conns, dict):
                continue
            for key, conn in list(conns.items()):
                node = key[0] if isinstance(key, tuple) and key else None
                if isinstance(node, int) and getattr(conn, "connected", lambda: False)():
                    live[id(conn)] = conn
        return live

    def snapshot(self) -> None:
        self.known = self._live()

    def lost(self) -> bool:
        live = self._live()
        return any(key not in live for key in self.known)


async def run_ingest(
    settings: Settings,
    instance_id: str = "0",
    stop: asyncio.Event | None = None,
    poll_max_records: int = 20_000,
    on_progress: Callable[[IngestCounts], None] | None = None,
    metrics: RiskmonMetrics | None = None,
) -> IngestCounts:
    """Consume the event topics and forward them transactionally until ``stop`` is set.

    A broker failure while running (a restart, lost connections, a transaction the broker
    forgot, a group rejoin) abandons the open transaction and reconnects with new clients, with
    backoff, until ``stop``. The new session first redoes every transaction committed in the
    ``settings.ingest_redo_after_failure_s`` seconds before the failure was noticed: a broker
    that loses transactions it acknowledged around a restart (noida-db does; see
    docs/reliability.md) loses no input that way, and the worker drops the duplicates that a
    broker which lost nothing now gets. A failure before the first successful start, a fenced
    producer (another instance with the same ``instance_id``) and authentication errors are
    raised."""
    from aiokafka.errors import KafkaError

    from riskmon.topics import ensure_pipeline_topics

    await ensure_pipeline_topics(settings)
    stop = stop or asyncio.Event()
    router = IngestRouter(settings.partitions, max_future_s=settings.ingest_max_future_s)
    started = False
    backoff = RECONNECT_BACKOFF_S
    redo: dict[Any, int] = {}
    while not stop.is_set():
        session = _IngestSession(
            settings, instance_id, router, stop, poll_max_records, on_progress, metrics, redo
        )
        try:
            await session.run()
            return router.counts
        except _Fatal as exc:
            raise exc.__cause__ or exc from None
        except (KafkaError, OSError, asyncio.TimeoutError, _Rejoined, _Disconnected) as exc:
            if not (started or session.started):
                raise
            started = True
            router.counts.reconnects += 1
            redo = session.redo_offsets(time.monotonic() - settings.ingest_redo_after_failure_s)
            wait = 0.0 if isinstance(exc, (_Rejoined, _Disconnected)) else backoff
            log.warning(
                "Kafka failure (%s: %s); abandoned the open transaction, reconnecting in %.1f s "
                "and redoing %d partition(s) from %.0f s before", type(exc).__name__, exc, wait,
                len(redo), settings.ingest_redo_after_failure_s,
            )
            if wait:
                try:
                    await asyncio.wait_for(stop.wait(), wait)
                except asyncio.TimeoutError:
                    pass
            backoff = RECONNECT_BACKOFF_S if session.committed else min(backoff * 2, RECONNECT_BACKOFF_MAX_S)
    return router.counts


class _IngestSession:
    """One consumer and one transactional producer, from start to the first failure."""

    def __init__(
        self, settings: Settings, instance_id: str, router: IngestRouter, stop: asyncio.Event,
        poll_max_records: int, on_progress: Callable[[IngestCounts], None] | None,
        metrics: RiskmonMetrics | None, redo: dict[Any, int] | None = None,
    ) -> None:
        self.settings = settings
        self.instance_id = instance_id
        self.router = router
        self.stop = stop
        self.poll_max_records = poll_max_records
        self.on_progress = on_progress
        self.metrics = metrics
        self.started = False
        self.committed = 0
        #: offsets to rewind to when partitions are assigned (the previous session's failure)
        self.redo = dict(redo or {})
        #: (monotonic time of the commit, first offset of each partition in the transaction)
        self.history: collections.deque[tuple[float, dict[Any, int]]] = collections.deque()
        self.assignments = 0
        self.abandoned = False

    def redo_offsets(self, since: float) -> dict[Any, int]:
        """Per partition, the first offset of the oldest transaction committed at or after
        ``since`` (monotonic), merged with a redo this session did not get to apply."""
        redo = dict(self.redo)
        for t, firsts in self.history:
            if t >= since:
                for tp, offset in firsts.items():
                    if offset < redo.get(tp, offset + 1):
                        redo[tp] = offset
        return redo

    def _count_commit(self, dead: list[DeadLetter]) -> None:
        """Metrics, logs and progress of a committed transaction."""
        if self.metrics is not None:
            self.metrics.dead_lettered(dead)
            self.metrics.ingest_progress(self.router.counts)
        for d in dead[:3]:
            log.warning("dead-lettered to %s: %s", d.topic, dict(d.headers)["error"][:200])
        if self.on_progress is not None:
            self.on_progress(self.router.counts)

    async def _on_assigned(self, consumer: Any, assigned: Any) -> None:
        self.assignments += 1
        if self.assignments > 1:
            return  # noticed by the poll loop: the session restarts
        for tp in assigned:
            offset = self.redo.pop(tp, None)
            if offset is None:
                continue
            committed = await consumer.committed(tp)
            if committed is None or offset < committed:
                log.warning(
                    "redoing %s[%d] from offset %d (committed %s): the broker may have lost "
                    "transactions around its failure", tp.topic, tp.partition, offset, committed,
                )
                consumer.seek(tp, offset)

    async def run(self) -> None:
        from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
        from aiokafka.abc import ConsumerRebalanceListener
        from aiokafka.errors import AuthenticationFailedError, ProducerFenced, SaslAuthenticationFailed

        from riskmon.metrics import update_aiokafka_lag

        session = self

        class _Listener(ConsumerRebalanceListener):
            async def on_partitions_revoked(self, revoked: Any) -> None:
                pass

            async def on_partitions_assigned(self, assigned: Any) -> None:
                await session._on_assigned(consumer, assigned)

        kwargs = self.settings.kafka_client_kwargs()
        consumer = AIOKafkaConsumer(
            group_id=INGEST_GROUP,
            group_instance_id=f"{INGEST_GROUP}-{self.instance_id}",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
            max_partition_fetch_bytes=8 * 1024 * 1024,
            fetch_max_bytes=64 * 1024 * 1024,
            session_timeout_ms=30_000,
            **kwargs,
        )
        producer = AIOKafkaProducer(
            transactional_id=f"{INGEST_GROUP}-{self.instance_id}",
            enable_idempotence=True,
            acks="all",
            linger_ms=5,
            max_request_size=16 * 1024 * 1024,
            max_batch_size=1024 * 1024,
            **kwargs,
        )
        router, metrics = self.router, self.metrics
        first_seen = False
        try:
            try:
                await producer.start()
                await consumer.start()
            except (AuthenticationFailedError, SaslAuthenticationFailed) as exc:
                raise _Fatal() from exc
            consumer.subscribe(list(EVENT_TOPICS.values()), listener=_Listener())
            self.started = True
            # A transaction must not begin on a producer session that outlived a broker restart:
            # noida-db acknowledges the first one and then treats it as aborted (its records
            # vanish for read_committed readers, and later transactions move the offsets past
            # them). After a dropped connection the session ends instead, and the next one
            # redoes the last transactions in order, before anything newer.
            watch = _ConnectionWatch(consumer._client, producer.client)
            watch.snapshot()
            while not self.stop.is_set():
                polled = await consumer.getmany(timeout_ms=200, max_records=self.poll_max_records)
                if self.assignments > 1:
                    raise _Rejoined("the consumer group was joined again")
                if watch.lost():
                    raise _Disconnected("a connection to the broker dropped")
                if metrics is not None:
                    await update_aiokafka_lag(metrics, consumer, stage="ingest")
                if not polled:
                    continue
                if not first_seen:
                    first_seen = True
                    # The epoch time lets `riskmon bench stream` tell start-up from processing.
                    log.info("first records polled (t=%.3f)", time.time())
                saved = router.counts.copy()
                try:
                    offsets: dict[TopicPartition, int] = {}
                    firsts: dict[TopicPartition, int] = {}
                    for tp, messages in polled.items():
                        for m in messages:
                            router.on_record(m.topic, m.partition, m.offset, m.value, m.key)
                        firsts[tp] = messages[0].offset
                        offsets[tp] = messages[-1].offset + 1
                    out, dead = router.drain()
                    await self._transaction(producer, watch, out, dead, offsets)
                except ProducerFenced as exc:
                    router.rollback(saved)
                    raise _Fatal() from exc
                except BaseException:
                    router.rollback(saved)  # nothing of this poll was committed
                    raise
                self.committed += 1
                now = time.monotonic()
                self.history.append((now, firsts))
                horizon = now - max(self.settings.ingest_redo_after_failure_s, 0.0)
                while self.history and self.history[0][0] < horizon:
                    self.history.popleft()
                if watch.lost():
                    # the broker went away during this transaction: its commit may be lost, so
                    # nothing more on this session (the next one redoes it, before anything newer)
                    self._count_commit(dead)
                    self.abandoned = True
                    raise _Disconnected("a connection to the broker dropped during a transaction")
                watch.snapshot()
                self._count_commit(dead)
        finally:
            await _stop_client(consumer)
            if self.abandoned:
                await _abandon_producer(producer)
            else:
                await _stop_client(producer)

    async def _transaction(
        self, producer: Any, watch: _ConnectionWatch, out: list[tuple[int, bytes]],
        dead: list[DeadLetter], offsets: dict[Any, int],
    ) -> None:
        """Forward one poll and its offsets in one transaction.

        Every record must be acknowledged before the commit: a record that failed (e.g. an
        out-of-sequence batch after a broker restart) fails the transaction. If a broker
        connection drops meanwhile, the producer is abandoned on the spot, without another word
        to the broker (no retry, no abort): a producer session that talks to a restarted noida-db
        can leave its transaction open for good, which blocks every ``read_committed`` reader of
        the partitions, while a transaction merely left open is aborted by the next session's
        InitProducerId."""

        async def sends() -> None:
            futures = [await producer.send(INTERNAL_TOPIC, value, partition=p) for p, value in out]
            for d in dead:
                futures.append(await producer.send(d.topic, d.value, key=d.key, headers=d.headers))
            await asyncio.gather(*futures)

        await producer.begin_transaction()
        try:
            await self._guard(sends(), watch)
            await self._guard(producer.send_offsets_to_transaction(offsets, INGEST_GROUP), watch)
            await self._guard(producer.commit_transaction(), watch)
        except _Disconnected:
            self.abandoned = True
            raise
        except BaseException:
            txn_manager = getattr(producer, "_txn_manager", None)
            if txn_manager is None or not txn_manager.is_fatal_error():
                try:
                    await asyncio.wait_for(producer.abort_transaction(), CLIENT_STOP_TIMEOUT_S)
                except Exception as exc:  # the session ends anyway
                    log.debug("aborting the transaction: %r", exc)
            raise

    async def _guard(self, aw: Any, watch: _ConnectionWatch) -> Any:
        """Await ``aw``, but raise :class:`_Disconnected` as soon as a broker connection of the
        session drops (aiokafka would wait and retry on the restarted broker)."""
        task = asyncio.ensure_future(aw)
        try:
            while True:
                done, _ = await asyncio.wait({task}, timeout=0.05)
                if done:
                    return task.result()
                if watch.lost():
                    raise _Disconnected("a connection to the broker dropped during a transaction")
        finally:
            if not task.done():
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task


async def _abandon_producer(producer: Any) -> None:
    """Drop a producer without another request to the broker (no flush, no abort): cancel its
    sender and close its connections. Reads aiokafka internals; falls back to ``stop()``."""
    try:
        producer._closed = True  # stop() becomes a no-op
        task = getattr(getattr(producer, "_sender", None), "sender_task", None)
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(task, CLIENT_STOP_TIMEOUT_S)
        await asyncio.wait_for(producer.client.close(), CLIENT_STOP_TIMEOUT_S)
    except Exception as exc:
        log.debug("abandoning the producer: %r", exc)
        producer._closed = False
        await _stop_client(producer)


async def _stop_client(client: Any) -> None:
    try:
        await asyncio.wait_for(client.stop(), CLIENT_STOP_TIMEOUT_S)
    except asyncio.CancelledError:
        # aiokafka's consumer.stop() re-raises the cancellation of its own fetch tasks after a
        # lost connection; only a cancellation of this task must go on
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise
        log.debug("stopping %s: its tasks were cancelled", type(client).__name__)
    except Exception as exc:  # a dead broker: nothing left to flush that matters
        log.debug("stopping %s: %r", type(client).__name__, exc)


def main(args: Any) -> int:
    """``riskmon ingest``: run the ingest stage until SIGINT/SIGTERM."""
    settings = Settings()
    if args.bootstrap:
        settings = settings.model_copy(update={"bootstrap_servers": args.bootstrap})
    if getattr(args, "metrics_port", None) is not None:
        settings = settings.model_copy(update={"metrics_port": args.metrics_port})
    if getattr(args, "metrics_host", None):
        settings = settings.model_copy(update={"metrics_host": args.metrics_host})
    if not settings.bootstrap_servers:
        raise SystemExit("riskmon ingest: pass --bootstrap or set RISKMON_BOOTSTRAP_SERVERS")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    from riskmon.metrics import serve_from_settings

    metrics = RiskmonMetrics(component="ingest", tz=settings.timezone)
    serve_from_settings(metrics, settings)  # logs "metrics on http://HOST:PORT/metrics"

    async def _run() -> IngestCounts:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        return await run_ingest(settings, instance_id=args.instance_id, stop=stop, metrics=metrics)

    counts = asyncio.run(_run())
    per_topic = ", ".join(f"{t}: {n}" for t, n in sorted(counts.dead_letters_by_topic.items()))
    print(
        f"ingest stopped: {counts.records} records, {sum(counts.events.values())} events, "
        f"{counts.watermarks} watermarks, {counts.dead_letters} dead letters"
        + (f" ({per_topic})" if per_topic else "")
        + f", {counts.reconnects} reconnects"
    )
    return 0
