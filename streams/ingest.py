"""Ingest stage: validate whatever arrives on the event topics and repack it for the Faust app.

External producers send one event per record (kcat, connectors); riskmon's own producers send
batch envelopes. Faust pays per record, so every record — single event, envelope or watermark — is
read here by a plain aiokafka consumer, validated in bulk, and forwarded to the co-partitioned
internal topic ``riskmon.internal.events`` as envelopes tagged with their stream and source
partition:

* internal record: ``{"riskmon_batch": 1, "segments": [segment, ...]}``, the segments in order,
  each either ``{"stream": s, "src": q, "events": [...]}`` or
  ``{"stream": s, "src": q, "watermark": ISO}``.

Events go to the partition of their firm (``partition_for``) whichever partition they came in
on; watermarks of source partition *q* go to every internal partition, after every event that
preceded them in *q*. One poll becomes about one record per internal partition. Bad input goes to ``<topic>.dlq`` with the reason in headers and is counted:
a bad member of an envelope alone, a record that is no valid envelope whole.

Each poll is forwarded in one Kafka transaction together with the consumed offsets, so the
internal topic holds every valid event exactly once (read with ``read_committed``).

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
import logging
import signal
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import orjson

from riskmon.events import EVENT_TYPES, MAX_EVENT_BYTES, EventError, validate_event
from riskmon.fastcheck import fast_check
from riskmon.metrics import RiskmonMetrics
from riskmon.settings import Settings
from riskmon.wire import EVENT_TOPICS, classify, dlq_topic, partition_for

log = logging.getLogger("riskmon.ingest")

from riskmon.topics import INTERNAL_TOPIC
INGEST_GROUP = "riskmon-ingest"
STREAM_OF_TOPIC: dict[str, str] = {topic: stream for stream, topic in EVENT_TOPICS.items()}
#: Events per internal record; big enough to amortise Faust's per-record cost, small enough to
#: keep records a few hundred kB.
ENVELOPE_MAX_EVENTS = 1000


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


class IngestRouter:
    """Pure routing and validation; the Kafka adapter feeds it records and drains its output."""

    def __init__(
        self,
        partitions: int,
        envelope_max_events: int = ENVELOPE_MAX_EVENTS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.partitions = partitions
        self.envelope_max_events = envelope_max_events
        self.clock = clock
        self.counts = IngestCounts()
        self._buffers: dict[tuple[str, int, int], list[dict]] = {}
        # Per internal partition: encoded segments in order, and how many events they hold.
        self._segments: dict[int, list[bytes]] = {}
        self._segment_events: dict[int, int] = {}
        self._out: list[tuple[int, bytes]] = []
        self._dead: list[DeadLetter] = []

    # -- input ----------------------------------------------------------------------------------
    def on_record(
        self, topic: str, partition: int, offset: int, value: bytes | None, key: bytes | None = None
    ) -> None:
        self.counts.records += 1
        stream = STREAM_OF_TOPIC.get(topic)
        if stream is None:
            self._dead_letter(topic, partition, offset, value, key, f"not an event topic: {topic}")
            return
        if value is None or not value:
            self._dead_letter(topic, partition, offset, value, key, "record: empty value")
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
                self._on_event(stream, topic, partition, offset, member, None, index)
        else:
            if len(value) > MAX_EVENT_BYTES:
                self._dead_letter(
                    topic, partition, offset, value, key,
                    f"event: {len(value)} bytes exceeds the {MAX_EVENT_BYTES}-byte limit",
                )
                return
            self._on_event(stream, topic, partition, offset, obj, value, None)

    def _on_event(
        self, stream: str, topic: str, partition: int, offset: int, obj: Any,
        raw: bytes | None, index: int | None,
    ) -> None:
        # A validated event is small by construction (every string field has a maximum length
        # and extra fields are forbidden), so envelope members need no separate size check.
        checked = fast_check(obj)
        if checked is not None:
            etype, firm_id, _ = checked
        else:
            try:
                event = validate_event(obj)
            except EventError as exc:
                self._dead_letter(topic, partition, offset, raw or orjson.dumps(obj), None, str(exc), index)
                return
            etype, firm_id = event.type, event.firm_id
        if etype != stream:
            self._dead_letter(
                topic, partition, offset, raw or orjson.dumps(obj), None,
                f"type: a {etype} event on the {stream} topic", index,
            )
            return
        target = partition_for(firm_id, self.partitions)
        buf_key = (stream, partition, target)
        buf = self._buffers.get(buf_key)
        if buf is None:
            buf = self._buffers[buf_key] = []
        buf.append(obj)
        self.counts.events[stream] += 1

    def _on_watermark(
        self, stream: str, topic: str, partition: int, offset: int, obj: dict, value: bytes,
        key: bytes | None,
    ) -> None:
        raw_time = obj.get("time")
        try:
            if obj.get("riskmon_watermark") != 1 or not isinstance(raw_time, str):
                raise ValueError("expected {\"riskmon_watermark\": 1, \"time\": ISO-8601}")
            from datetime import datetime

            moment = datetime.fromisoformat(raw_time)
            if moment.tzinfo is None:
                raise ValueError("time has no UTC offset")
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
        segment = orjson.dumps({"stream": stream, "src": source, "events": events})
        self._add_segment(target, segment, len(events))

    def _add_segment(self, target: int, segment: bytes, n_events: int) -> None:
        segments = self._segments.setdefault(target, [])
        segments.append(segment)
        self._segment_events[target] = self._segment_events.get(target, 0) + n_events
        if self._segment_events[target] >= self.envelope_max_events:
            self._emit(target)

    def _emit(self, target: int) -> None:
        segments = self._segments.pop(target, None)
        self._segment_events.pop(target, None)
        if segments:
            self._out.append((target, b'{"riskmon_batch":1,"segments":[' + b",".join(segments) + b"]}"))
            self.counts.envelopes_out += 1

    def _dead_letter(
        self, topic: str, partition: int, offset: int, value: bytes | None, key: bytes | None,
        error: str, index: int | None = None,
    ) -> None:
        headers = [
            ("error", error.encode("utf-8", "replace")[:2000]),
            ("source_topic", topic.encode()),
            ("source_partition", str(partition).encode()),
            ("source_offset", str(offset).encode()),
            ("time", repr(self.clock()).encode()),
        ]
        if index is not None:
            headers.append(("envelope_index", str(index).encode()))
        self._dead.append(DeadLetter(dlq_topic(topic), value or b"", headers, key))
        self.counts.dead_letters += 1

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


# ---------------------------------------------------------------------------------------------
# Kafka adapter
# ---------------------------------------------------------------------------------------------


async def run_ingest(
    settings: Settings,
    instance_id: str = "0",
    stop: asyncio.Event | None = None,
    poll_max_records: int = 20_000,
    on_progress: Callable[[IngestCounts], None] | None = None,
    metrics: RiskmonMetrics | None = None,
) -> IngestCounts:
    """Consume the event topics and forward them transactionally until ``stop`` is set."""
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

    from riskmon.metrics import update_aiokafka_lag
    from riskmon.topics import ensure_pipeline_topics

    await ensure_pipeline_topics(settings)
    stop = stop or asyncio.Event()
    kwargs = settings.kafka_client_kwargs()
    consumer = AIOKafkaConsumer(
        *EVENT_TOPICS.values(),
        group_id=INGEST_GROUP,
        group_instance_id=f"{INGEST_GROUP}-{instance_id}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
        max_partition_fetch_bytes=8 * 1024 * 1024,
        fetch_max_bytes=64 * 1024 * 1024,
        session_timeout_ms=30_000,
        **kwargs,
    )
    producer = AIOKafkaProducer(
        transactional_id=f"{INGEST_GROUP}-{instance_id}",
        enable_idempotence=True,
        acks="all",
        linger_ms=5,
        max_request_size=16 * 1024 * 1024,
        max_batch_size=1024 * 1024,
        **kwargs,
    )
    router = IngestRouter(settings.partitions)
    await producer.start()
    await consumer.start()
    first_seen = False
    try:
        while not stop.is_set():
            polled = await consumer.getmany(timeout_ms=200, max_records=poll_max_records)
            if metrics is not None:
                await update_aiokafka_lag(metrics, consumer, stage="ingest")
            if not polled:
                continue
            if not first_seen:
                first_seen = True
                # The epoch time lets `riskmon bench stream` tell start-up from processing.
                log.info("first records polled (t=%.3f)", time.time())
            offsets: dict[TopicPartition, int] = {}
            for tp, messages in polled.items():
                for m in messages:
                    router.on_record(m.topic, m.partition, m.offset, m.value, m.key)
                offsets[tp] = messages[-1].offset + 1
            out, dead = router.drain()
            async with producer.transaction():
                futures = [
                    await producer.send(INTERNAL_TOPIC, value, partition=p) for p, value in out
                ]
                for d in dead:
                    futures.append(
                        await producer.send(d.topic, d.value, key=d.key, headers=d.headers)
                    )
                await producer.send_offsets_to_transaction(offsets, INGEST_GROUP)
            if metrics is not None:
                metrics.dead_lettered(dead)
                metrics.ingest_progress(router.counts)
            if dead:
                for d in dead[:3]:
                    log.warning("dead-lettered to %s: %s", d.topic, dict(d.headers)["error"][:200])
            if on_progress is not None:
                on_progress(router.counts)
    finally:
        await consumer.stop()
        await producer.stop()
    return router.counts


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
    print(
        f"ingest stopped: {counts.records} records, {sum(counts.events.values())} events, "
        f"{counts.watermarks} watermarks, {counts.dead_letters} dead letters"
    )
    return 0
