"""``riskmon replay``: play event files onto the Kafka event topics, as fast as possible or paced.

Each line of the files (in arrival order) is decoded and validated against the event contract,
routed to ``wire.EVENT_TOPICS[type]`` and to the partition of its firm (``wire.partition_for``).
Per topic-partition the file's order is kept.

* **Batch mode** (the default, ``batch_size`` > 1): consecutive events of one topic-partition are
  packed into one batch envelope (``wire.pack_batch`` of the original line bytes), flushed when it
  holds ``batch_size`` events, when it is ``linger_ms`` of wall time old, and before every
  watermark. ``batch_size=1`` sends plain one-event records keyed by firm_id instead.
* **Watermarks**: the arrival clock is the running maximum of the events' ``delivered_at`` (or
  ``event_time``). When it crosses a boundary of the watermark interval (epoch-aligned multiples of
  ``WATERMARK_INTERVAL_S``), pending envelopes are flushed and a watermark at the latest boundary
  crossed is broadcast to every partition of every event topic; at the end a final watermark at the
  first boundary after the last arrival. An event whose own arrival time is earlier than the clock
  (a file not perfectly sorted) counts as arriving at the clock. Watermarks depend on the file
  content only, so every partition gets the same event/watermark interleaving at any speed or
  batch size.
* **Bad lines** (not JSON, breaking the contract, over the size limit) are reported on stderr as
  ``file:line: reason`` and sent to ``wire.REPLAY_DLQ_TOPIC`` with headers ``error``, ``file`` and
  ``line``; they never stop the replay.

Validation uses a fast path (:func:`riskmon.fastcheck.fast_line`, shared with the ingest stage and
the backtest: msgspec typed decoding when msgspec is installed, else orjson and hand-written
checks) that accepts only events in the canonical form riskmon's producers write and
that certainly satisfy the contract; every other line goes through the contract's own
:func:`riskmon.events.decode_json` and :func:`riskmon.events.validate_event`, so accept/reject
decisions and messages are exactly the contract's (both fast paths are fuzzed against it).

Big inputs are parsed by worker processes (forked, ``workers``; default one per core but one for
inputs over ``POOL_MIN_BYTES``) a few blocks ahead of the main process, which only routes lines,
keeps the arrival clock and talks to Kafka; results are identical either way.

Kafka: an idempotent aiokafka producer (``acks=all``) fed with one record batch per
topic-partition, each handed over when the partition has no batch outstanding, so batches grow
while a request is in flight instead of queueing small ones.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import math
import os
import queue
import sys
import threading
import time
from array import array
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import (
    Any,
    AsyncIterator,
    Awaitable,
    Callable,
    Protocol,
    Sequence,
)

from producers.eventfile import EventFile, EventFileError, split_block
from riskmon import wire
from riskmon.events import (
    MAX_EVENT_BYTES,
    EventError,
)

#: Watermark interval in seconds of arrival time; boundaries are multiples of it since the epoch.
#: The shared default of riskmon's producers (``wire.WATERMARK_INTERVAL_S``).
WATERMARK_INTERVAL_S = wire.WATERMARK_INTERVAL_S
DEFAULT_BATCH_SIZE = 200
DEFAULT_LINGER_MS = 20.0
#: ``producer`` field of the watermarks replay broadcasts.
PRODUCER_NAME = "replay"
#: An envelope larger than this is split (the broker takes records up to about 1 MiB).
MAX_ENVELOPE_BYTES = 512 * 1024
#: Size of the Kafka record batches replay builds per partition.
KAFKA_BATCH_BYTES = 768 * 1024
#: Lines longer than this are cut (they are bad anyway: events are at most MAX_EVENT_BYTES).
MAX_LINE_BYTES = 64 * 1024
#: How many bad lines are printed on stderr (all are counted and sent to the DLQ).
SHOW_BAD_LINES = 20
#: Lines processed between looks at the wall clock (linger, progress, letting the sender run).
CHECK_EVERY = 512
#: Inputs smaller than this are parsed in-process by default (no worker processes).
POOL_MIN_BYTES = 32 * 1024 * 1024

_UTC = timezone.utc


class ReplayError(RuntimeError):
    """Replay cannot start or the broker refused records; the message says why."""


from riskmon.fastcheck import (  # noqa: E402  (replay validates with them)
    _FIRM_OK,
    FAST_PATH,
    _fast_line_msgspec,
    _fast_line_orjson,
    check_line,
    fast_check,
    fast_line,
    slow_line,
    timestamp_of,
)

if _fast_line_msgspec is not None:
    from riskmon.fastcheck import _m_decode


# --------------------------------------------------------------------------------------------
# Parsing blocks of lines (in this process or in worker processes)
# --------------------------------------------------------------------------------------------

#: Codes of lines that are not events in :func:`parse_block` results.
BLANK = -1
BAD = -2
_TYPE_INDEX = {t: i for i, t in enumerate(wire.EVENT_TOPICS)}
_PARTS: dict[int, dict[str, int]] = {}

#: ``(lines, codes, arrival stamps, {line index: reason}, firm ids of events or None)``; a code is
#: ``type index * partitions + partition`` for an event, else :data:`BLANK` or :data:`BAD`.
ParsedBlock = tuple[list[bytes], Sequence[int], Sequence[float], dict[int, str], "list[str] | None"]


def parse_block(block: bytes, partitions: int, with_firms: bool = False) -> ParsedBlock:
    """Split a block of an event file into lines and decode and validate each one."""
    if _fast_line_msgspec is not None:
        return _parse_block_msgspec(block, partitions, with_firms)
    return _parse_block_generic(block, partitions, with_firms)


def _parse_block_generic(block: bytes, partitions: int, with_firms: bool = False) -> ParsedBlock:
    """:func:`parse_block` with any ``fast_line``."""
    lines = split_block(block, MAX_LINE_BYTES)
    codes: list[int] = []
    stamps: list[float] = []
    bad: dict[int, str] = {}
    firms: list[str] | None = [] if with_firms else None
    code_append = codes.append
    stamp_append = stamps.append
    fast = fast_line
    max_bytes = MAX_EVENT_BYTES
    part_of = _PARTS.setdefault(partitions, {})
    type_base = {t: i * partitions for t, i in _TYPE_INDEX.items()}
    for k, raw in enumerate(lines):
        info = fast(raw) if len(raw) <= max_bytes else None
        if info is None:
            if not raw or raw.isspace():
                code_append(BLANK)
                stamp_append(0.0)
                continue
            try:
                info = slow_line(raw)
            except EventError as exc:
                code_append(BAD)
                stamp_append(0.0)
                bad[k] = str(exc)
                continue
        etype, firm, ts = info
        part = part_of.get(firm)
        if part is None:
            if len(part_of) >= 1_000_000:
                part_of.clear()
            part = part_of[firm] = wire.partition_for(firm, partitions)
        code_append(type_base[etype] + part)
        stamp_append(ts)
        if firms is not None:
            firms.append(firm)
    return lines, codes, stamps, bad, firms


def _parse_block_msgspec(block: bytes, partitions: int, with_firms: bool = False) -> ParsedBlock:
    """:func:`parse_block` with the msgspec fast path inlined (the hottest loop of a replay):
    the same decisions as :func:`_fast_line_msgspec` followed by the generic loop."""
    lines = split_block(block, MAX_LINE_BYTES)
    codes: list[int] = []
    stamps: list[float] = []
    bad: dict[int, str] = {}
    firms: list[str] | None = [] if with_firms else None
    code_append = codes.append
    stamp_append = stamps.append
    decode = _m_decode
    firm_ok = _FIRM_OK
    max_bytes = MAX_EVENT_BYTES
    part_of = _PARTS.setdefault(partitions, {})  # only firm ids that passed the contract
    type_base = {t: i * partitions for t, i in _TYPE_INDEX.items()}
    for k, raw in enumerate(lines):
        if len(raw) <= max_bytes:
            try:
                ev = decode(raw)
            except Exception:
                ev = None
            if ev is not None:
                ts = ev.check()
                if ts is not None:
                    firm = ev.firm_id  # 1..64 characters: checked by msgspec
                    part = part_of.get(firm)
                    if part is None and firm_ok(firm) is not None:
                        if len(part_of) >= 1_000_000:
                            part_of.clear()
                        part = part_of[firm] = wire.partition_for(firm, partitions)
                    if part is not None:
                        code_append(type_base[ev.etype] + part)
                        stamp_append(ts)
                        if firms is not None:
                            firms.append(firm)
                        continue
        if not raw or raw.isspace():
            code_append(BLANK)
            stamp_append(0.0)
            continue
        try:
            etype, firm, ts = slow_line(raw)
        except EventError as exc:
            code_append(BAD)
            stamp_append(0.0)
            bad[k] = str(exc)
            continue
        part = part_of.get(firm)
        if part is None:
            part = part_of[firm] = wire.partition_for(firm, partitions)
        code_append(type_base[etype] + part)
        stamp_append(ts)
        if firms is not None:
            firms.append(firm)
    return lines, codes, stamps, bad, firms


def _parse_block_packed(block: bytes, partitions: int, with_firms: bool) -> tuple[Any, ...]:
    """:func:`parse_block` in a worker process; the result packed for a cheap trip back (the
    parent splits the block itself)."""
    _, codes, stamps, bad, firms = parse_block(block, partitions, with_firms)
    return array("h", codes).tobytes(), array("d", stamps).tobytes(), bad, firms


def _unpack(block: bytes, packed: tuple[Any, ...]) -> ParsedBlock:
    codes_b, stamps_b, bad, firms = packed
    codes = array("h")
    codes.frombytes(codes_b)
    stamps = array("d")
    stamps.frombytes(stamps_b)
    return split_block(block, MAX_LINE_BYTES), codes, stamps, bad, firms


def _noop() -> int:
    return os.getpid()


def _start_worker_pool(workers: int) -> Any:
    """A pool of ``workers`` forked processes, started at once (before any Kafka connection
    exists). Fork, not spawn: workers need no re-import of the ``__main__`` script."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("fork"))
    for fut in [pool.submit(_noop) for _ in range(workers)]:
        fut.result()
    return pool


def default_workers(total_bytes: int) -> int:
    """Worker processes for parsing: none for small inputs (starting them costs more than it
    saves), where fork is unavailable, or on fewer than 4 cores (measured on 2 cores with the
    broker on the same box: in-process parsing was faster, 123k vs 100k events/s, as the
    worker, the main process and the broker compete for the cores); else half the cores, at
    most 4."""
    cpus = os.cpu_count() or 1
    if total_bytes < POOL_MIN_BYTES or cpus < 4 or not sys.platform.startswith("linux"):
        return 0
    return min(4, cpus // 2)


# --------------------------------------------------------------------------------------------
# Record sinks: where records go (Kafka, or memory for tests)
# --------------------------------------------------------------------------------------------

Headers = list[tuple[str, bytes]]
_NO_HEADERS: Headers = []


class RecordSink(Protocol):
    """Ordered per topic-partition record output. ``append`` buffers a record and returns False
    when the partition's buffer is full (the record was NOT added): ``await submit(...)`` then
    append again."""

    def append(
        self, topic: str, partition: int, key: bytes | None, value: bytes, headers: Headers = ...
    ) -> bool: ...

    async def submit(self, topic: str, partition: int) -> None: ...

    async def submit_ready(self) -> None: ...

    async def submit_all(self) -> None: ...

    def has_pending(self) -> bool: ...

    async def drain(self) -> None: ...


class KafkaSink:
    """Builds one aiokafka record batch per topic-partition and hands it to the producer when
    that partition has no batch outstanding (or when it is full, after waiting for the previous
    one). With one produce request in flight per broker, everything that accumulates meanwhile
    goes into the next request in large batches: the pipeline clocks itself."""

    def __init__(self, producer: Any, stall_timeout: float = 30.0) -> None:
        self._producer = producer
        self.stall_timeout = stall_timeout
        self._builders: dict[tuple[str, int], Any] = {}
        self._last: dict[tuple[str, int], asyncio.Future[Any]] = {}
        self._outstanding: list[asyncio.Future[Any]] = []
        self.batches_sent = 0

    def append(
        self,
        topic: str,
        partition: int,
        key: bytes | None,
        value: bytes,
        headers: Headers = _NO_HEADERS,
    ) -> bool:
        tp = (topic, partition)
        builder = self._builders.get(tp)
        if builder is None:
            builder = self._builders[tp] = self._producer.create_batch()
        if builder.append(timestamp=None, key=key, value=value, headers=headers) is None:
            if builder.record_count() == 0:  # pragma: no cover - a record over the batch size
                raise ReplayError(f"a record of {len(value)} bytes does not fit in a Kafka batch")
            return False
        return True

    async def _send(self, tp: tuple[str, int], builder: Any) -> None:
        builder.close()
        fut = await self._producer.send_batch(builder, tp[0], partition=tp[1])
        self._last[tp] = fut
        self._outstanding.append(fut)
        self.batches_sent += 1
        if len(self._outstanding) >= 1024:
            self._check_done()

    def _check_done(self) -> None:
        keep = []
        for fut in self._outstanding:
            if fut.done():
                fut.result()  # raises a delivery error
            else:
                keep.append(fut)
        self._outstanding = keep

    async def submit(self, topic: str, partition: int) -> None:
        """Send the partition's batch now, after its previous batch is acknowledged."""
        tp = (topic, partition)
        builder = self._builders.pop(tp, None)
        if builder is None or builder.record_count() == 0:
            return
        last = self._last.get(tp)
        if last is not None and not last.done():
            await self._wait([last])
        await self._send(tp, builder)

    async def _wait(self, futures: list[asyncio.Future[Any]]) -> None:
        """Wait for acknowledgements; a broker that acknowledges nothing for ``stall_timeout``
        seconds is an error (the idempotent producer would otherwise retry for ever)."""
        try:
            await asyncio.wait_for(asyncio.gather(*futures), self.stall_timeout)
        except asyncio.TimeoutError:
            raise ReplayError(
                f"the Kafka broker acknowledged nothing for {self.stall_timeout:.0f} s "
                "(is it still running?)"
            ) from None

    async def submit_ready(self) -> None:
        """Send the batches of partitions that have nothing outstanding."""
        for tp in list(self._builders):
            last = self._last.get(tp)
            if last is None or last.done():
                builder = self._builders.pop(tp)
                if builder.record_count():
                    await self._send(tp, builder)

    async def submit_all(self) -> None:
        for topic, partition in list(self._builders):
            await self.submit(topic, partition)

    def has_pending(self) -> bool:
        return bool(self._builders)

    async def drain(self) -> None:
        await self.submit_all()
        if self._outstanding:
            await self._wait(self._outstanding)
        self._check_done()


@dataclass
class SentRecord:
    topic: str
    partition: int
    key: bytes | None
    value: bytes
    headers: Headers


class MemorySink:
    """Keeps records in a list, in send order (tests, dry runs). ``batch_records`` limits how many
    records one partition buffer takes, to exercise the full-buffer path."""

    def __init__(self, batch_records: int = 1000) -> None:
        self.records: list[SentRecord] = []
        self._buffers: dict[tuple[str, int], list[SentRecord]] = {}
        self._batch_records = batch_records
        self.submits = 0

    def append(
        self,
        topic: str,
        partition: int,
        key: bytes | None,
        value: bytes,
        headers: Headers = _NO_HEADERS,
    ) -> bool:
        buf = self._buffers.setdefault((topic, partition), [])
        if len(buf) >= self._batch_records:
            return False
        buf.append(SentRecord(topic, partition, key, value, list(headers)))
        return True

    async def submit(self, topic: str, partition: int) -> None:
        buf = self._buffers.pop((topic, partition), None)
        if buf:
            self.records.extend(buf)
            self.submits += 1

    async def submit_all(self) -> None:
        for tp in list(self._buffers):
            await self.submit(*tp)

    async def submit_ready(self) -> None:
        await self.submit_all()

    def has_pending(self) -> bool:
        return any(self._buffers.values())

    async def drain(self) -> None:
        await self.submit_all()


# --------------------------------------------------------------------------------------------
# Summary and progress
# --------------------------------------------------------------------------------------------


@dataclass
class ReplaySummary:
    files: list[str]
    partitions: int
    batch_size: int
    events: int = 0
    events_by_topic: dict[str, int] = field(default_factory=dict)
    bad_lines: int = 0
    blank_lines: int = 0
    records: int = 0  # Kafka records: envelopes or plain events, watermarks, DLQ records
    envelopes: int = 0
    watermarks: int = 0  # distinct watermark times broadcast
    watermark_records: int = 0
    dlq_records: int = 0
    first_arrival: datetime | None = None
    last_arrival: datetime | None = None
    final_watermark: datetime | None = None
    seconds: float = 0.0

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0

    def format(self) -> str:
        lines = [
            f"replayed {self.events:,} events from {len(self.files)} file(s) in {self.seconds:.2f} s "
            f"({self.events_per_second:,.0f} events/s)",
        ]
        for topic, n in sorted(self.events_by_topic.items()):
            lines.append(f"  {topic:<32} {n:>12,} events")
        lines.append(
            f"  records sent: {self.records:,} ({self.envelopes:,} envelopes, "
            f"{self.watermark_records:,} watermark records for {self.watermarks:,} watermarks, "
            f"{self.dlq_records:,} to {wire.REPLAY_DLQ_TOPIC})"
            if self.batch_size > 1
            else f"  records sent: {self.records:,} ({self.events:,} plain events, "
            f"{self.watermark_records:,} watermark records for {self.watermarks:,} watermarks, "
            f"{self.dlq_records:,} to {wire.REPLAY_DLQ_TOPIC})"
        )
        lines.append(f"  bad lines: {self.bad_lines:,}")
        if self.first_arrival is not None:
            lines.append(
                f"  arrival time {self.first_arrival.isoformat()} .. {self.last_arrival.isoformat()}"  # type: ignore[union-attr]
                f"; final watermark {self.final_watermark.isoformat() if self.final_watermark else '-'}"
            )
        return "\n".join(lines)


class _Progress:
    """A one-line progress bar on stderr."""

    def __init__(self, total_bytes: int, stream: Any = None, interval: float = 0.25) -> None:
        self.total = total_bytes
        self.stream = stream or sys.stderr
        self.interval = interval
        self.start = time.monotonic()
        self.last = 0.0
        self.shown = False

    def update(self, events: int, bad: int, done_bytes: int, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self.last < self.interval:
            return
        self.last = now
        elapsed = max(now - self.start, 1e-9)
        rate = events / elapsed
        text = f"\rreplay {events:>12,} events {rate:>10,.0f} ev/s"
        if self.total > 0:
            frac = min(max(done_bytes / self.total, 0.0), 1.0)
            width = 24
            filled = int(frac * width)
            text += f" [{'#' * filled}{'.' * (width - filled)}] {frac * 100:5.1f}%"
            if 0 < frac < 1:
                eta = elapsed * (1 - frac) / frac
                text += f" ETA {int(eta) // 60:d}:{int(eta) % 60:02d}"
        if bad:
            text += f" bad {bad:,}"
        self.stream.write(text + "\x1b[K")
        self.stream.flush()
        self.shown = True

    def close(self) -> None:
        if self.shown:
            self.stream.write("\n")
            self.stream.flush()


# --------------------------------------------------------------------------------------------
# The replay itself
# --------------------------------------------------------------------------------------------


def _watermark_value(boundary: float) -> bytes:
    return wire.watermark_record(datetime.fromtimestamp(boundary, _UTC), PRODUCER_NAME)


def _split_envelopes(lines: list[bytes], max_bytes: int) -> list[bytes]:
    envelope = wire.pack_batch(lines)
    if len(envelope) <= max_bytes or len(lines) == 1:
        return [envelope]
    half = len(lines) // 2
    return _split_envelopes(lines[:half], max_bytes) + _split_envelopes(lines[half:], max_bytes)


async def replay_files(
    paths: Sequence[str | os.PathLike[str]],
    settings: Any = None,
    *,
    speed: float | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    linger_ms: float = DEFAULT_LINGER_MS,
    partitions: int | None = None,
    progress: bool = False,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    bootstrap: str | None = None,
    sink: RecordSink | None = None,
    watermark_interval: float = WATERMARK_INTERVAL_S,
    show_bad: int = SHOW_BAD_LINES,
    err: Any = None,
    workers: int | None = None,
) -> ReplaySummary:
    """Replay event files onto the event topics; return what was sent.

    Bootstrap servers come from ``bootstrap`` or ``settings.bootstrap_servers``; without either
    it is a :class:`ReplayError`. ``partitions`` defaults to ``settings.partitions``. With a
    ``sink`` (e.g. :class:`MemorySink`) nothing is sent to Kafka and no topics are created.
    ``clock``/``sleep`` drive pacing and linger (inject fakes in tests).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    if speed is not None and not (speed > 0 and math.isfinite(speed)):
        raise ValueError(f"speed must be a positive number, got {speed}")
    if watermark_interval <= 0:
        raise ValueError("watermark_interval must be positive")
    if settings is None:
        from riskmon.settings import Settings

        settings = Settings()
    n_parts = int(partitions if partitions is not None else settings.partitions)
    if n_parts < 1:
        raise ValueError(f"partitions must be at least 1, got {n_parts}")
    if err is None:
        err = sys.stderr

    # Open every file first: a missing or broken file is an error before anything is sent.
    files: list[EventFile] = []
    pool = None
    try:
        for p in paths:
            files.append(EventFile(p, max_line_bytes=MAX_LINE_BYTES))
        if not files:
            raise ReplayError("no event files given")
        if sink is None:
            bootstrap = bootstrap or settings.bootstrap_servers
            if not bootstrap:
                raise ReplayError(
                    "no Kafka broker given: pass --bootstrap HOST:PORT or set "
                    "RISKMON_BOOTSTRAP_SERVERS (riskmon broker runs a local one)"
                )
            settings = settings.model_copy(update={"bootstrap_servers": bootstrap})
        if workers is None:
            workers = default_workers(sum(f.size for f in files))
        if workers > 0:
            pool = _start_worker_pool(workers)  # forked before any Kafka connection exists
        producer = None
        if sink is None:
            producer = await _start_producer(settings, n_parts)
            sink = KafkaSink(producer)
        try:
            runner = _Replay(
                files,
                sink,
                partitions=n_parts,
                speed=speed,
                batch_size=batch_size,
                linger=linger_ms / 1000.0,
                clock=clock,
                sleep=sleep,
                interval=watermark_interval,
                progress=_Progress(sum(f.size for f in files), err) if progress else None,
                show_bad=show_bad,
                err=err,
                pool=pool,
                workers=workers,
            )
            try:
                summary = await runner.run()
            except Exception as exc:
                from aiokafka.errors import KafkaError

                if isinstance(exc, KafkaError):
                    raise ReplayError(f"the Kafka broker did not take the records: {exc!r}") from exc
                raise
        finally:
            if producer is not None:
                try:
                    await asyncio.wait_for(producer.stop(), 15)
                except asyncio.TimeoutError:  # a dead broker: give up on what is unsent
                    pass
        return summary
    finally:
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
        for f in files:
            f.close()


async def _start_producer(settings: Any, partitions: int) -> Any:
    from aiokafka import AIOKafkaProducer
    from aiokafka.errors import KafkaError

    from riskmon.broker import BrokerError, ensure_topics

    try:
        # The DLQ too has the pipeline's partition count (riskmon.topics creates them all alike);
        # replay writes bad lines to its partition 0, in file order.
        await ensure_topics(settings, [*wire.EVENT_TOPICS.values(), wire.REPLAY_DLQ_TOPIC], partitions)
    except BrokerError as exc:
        raise ReplayError(str(exc)) from None
    except (KafkaError, OSError) as exc:
        raise ReplayError(f"cannot set up topics on {settings.bootstrap_servers}: {exc!r}") from None
    producer = AIOKafkaProducer(
        **settings.kafka_client_kwargs(),
        enable_idempotence=True,
        acks="all",
        linger_ms=5,
        max_batch_size=KAFKA_BATCH_BYTES,
        max_request_size=4 * 1024 * 1024,
        compression_type=settings.producer_compression(),
        request_timeout_ms=30_000,
    )
    try:
        await producer.start()
    except (KafkaError, OSError) as exc:
        await producer.stop()
        raise ReplayError(f"cannot connect a producer to {settings.bootstrap_servers}: {exc!r}") from None
    return producer


class _BlockReader:
    """Reads the files' blocks in a thread, a few ahead: reading and gzip decompression (which
    release the GIL) overlap with parsing and sending. Items: ``("file", ef, None, None)``,
    ``("block", ef, first_lineno, block)``..., ``("done", ef, None, None)`` per file."""

    AHEAD = 4

    def __init__(self, files: list[EventFile]) -> None:
        self.files = files
        self.queue: queue.Queue[tuple[str, Any, Any, Any]] = queue.Queue(maxsize=self.AHEAD)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="riskmon-replay-reader", daemon=True)
        self.thread.start()

    def _put(self, item: tuple[str, Any, Any, Any]) -> bool:
        while not self.stop.is_set():
            try:
                self.queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        try:
            for ef in self.files:
                if not self._put(("file", ef, None, None)):
                    return
                for first, block in ef.blocks():
                    if not self._put(("block", ef, first, block)):
                        return
                if not self._put(("done", ef, None, None)):
                    return
            self._put(("end", None, None, None))
        except BaseException as exc:  # handed to the consumer, raised there
            self._put(("error", exc, None, None))

    def _get(self) -> tuple[str, Any, Any, Any] | None:
        try:
            return self.queue.get(timeout=0.2)
        except queue.Empty:
            return None

    async def items(self) -> AsyncIterator[tuple[str, Any, Any, Any]]:
        loop = asyncio.get_running_loop()
        while True:
            try:
                item = self.queue.get_nowait()
            except queue.Empty:
                item = await loop.run_in_executor(None, self._get)
                if item is None:
                    if not self.thread.is_alive() and self.queue.empty():
                        raise ReplayError("the file reader thread stopped unexpectedly")
                    continue
            kind = item[0]
            if kind == "end":
                return
            if kind == "error":
                raise item[1]
            yield item

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=5)


class _Replay:
    def __init__(
        self,
        files: list[EventFile],
        sink: RecordSink,
        *,
        partitions: int,
        speed: float | None,
        batch_size: int,
        linger: float,
        clock: Callable[[], float],
        sleep: Callable[[float], Awaitable[Any]],
        interval: float,
        progress: _Progress | None,
        show_bad: int,
        err: Any,
        pool: Any = None,
        workers: int = 0,
    ) -> None:
        self.pool = pool
        self.workers = workers if pool is not None else 0
        self.files = files
        self.sink = sink
        self.partitions = partitions
        self.speed = speed
        self.batch_size = batch_size
        self.linger = linger
        self.clock = clock
        self.sleep = sleep
        self.interval = interval
        self.progress = progress
        self.show_bad = show_bad
        self.err = err
        self.types = list(wire.EVENT_TOPICS)
        self.topics = [wire.EVENT_TOPICS[t] for t in self.types]
        # Pending envelope contents per (type index * partitions + partition).
        self.pending: list[list[bytes]] = [[] for _ in range(len(self.topics) * partitions)]
        self.pending_since: float | None = None
        self.summary = ReplaySummary(
            files=[str(f.path) for f in files], partitions=partitions, batch_size=batch_size
        )
        self.sent_by_type = [0] * len(self.types)
        self.done_bytes = 0
        self.current: EventFile | None = None
        self.pace_wall0: float | None = None
        self.pace_arrival0 = 0.0

    # ---- flushing ----------------------------------------------------------------------------
    async def _append(self, topic: str, part: int, key: bytes | None, value: bytes, headers: Headers = _NO_HEADERS) -> None:
        sink = self.sink
        if not sink.append(topic, part, key, value, headers):
            await sink.submit(topic, part)
            if not sink.append(topic, part, key, value, headers):
                raise ReplayError(f"a record of {len(value)} bytes does not fit in an empty batch")

    async def _close_envelope(self, idx: int) -> None:
        lines = self.pending[idx]
        if not lines:
            return
        self.pending[idx] = []
        type_idx, part = divmod(idx, self.partitions)
        topic = self.topics[type_idx]
        self.sent_by_type[type_idx] += len(lines)
        for envelope in _split_envelopes(lines, MAX_ENVELOPE_BYTES):
            await self._append(topic, part, None, envelope)
            self.summary.envelopes += 1

    async def _close_all_envelopes(self) -> None:
        for idx, lines in enumerate(self.pending):
            if lines:
                await self._close_envelope(idx)

    async def _watermark(self, boundary: float) -> None:
        await self._close_all_envelopes()
        value = _watermark_value(boundary)
        for topic in self.topics:
            for part in range(self.partitions):
                await self._append(topic, part, None, value)
        self.summary.watermarks += 1
        self.summary.watermark_records += len(self.topics) * self.partitions

    async def _checkpoint(self) -> None:
        """Linger flush, progress, and a chance for the producer's sender to run."""
        now = self.clock()
        if self.pending_since is None:
            if any(self.pending):
                self.pending_since = now
        elif now - self.pending_since >= self.linger:
            await self._close_all_envelopes()
            self.pending_since = None
        await self.sink.submit_ready()
        if self.progress is not None:
            pos = self.current.position if self.current is not None else 0
            self.progress.update(self.summary.events, self.summary.bad_lines, self.done_bytes + pos)
        await asyncio.sleep(0)

    async def _pace(self, arrival: float) -> None:
        """Wait until ``arrival`` is due at the configured speed (linger flushes meanwhile)."""
        speed = self.speed
        assert speed is not None
        if self.pace_wall0 is None:
            self.pace_wall0 = self.clock()
            self.pace_arrival0 = arrival
            return
        target = self.pace_wall0 + (arrival - self.pace_arrival0) / speed
        while True:
            now = self.clock()
            ahead = target - now
            if ahead <= 0.0005:
                return
            await self._checkpoint()
            wait = ahead
            if self.pending_since is not None:
                wait = min(wait, max(self.pending_since + self.linger - now, 0.0005))
            if self.sink.has_pending():  # a batch waits for its partition's previous one
                wait = min(wait, 0.005)
            await self.sleep(wait)

    # ---- bad lines ---------------------------------------------------------------------------
    async def _bad(self, path: Path, lineno: int, raw: bytes, reason: str) -> None:
        s = self.summary
        s.bad_lines += 1
        if s.bad_lines <= self.show_bad:
            self.err.write(f"{path}:{lineno}: {reason}\n")
        elif s.bad_lines == self.show_bad + 1:
            self.err.write("(more bad lines are not shown; all are counted and sent to the DLQ)\n")
        headers = [
            ("error", reason.encode("utf-8", "replace")),
            ("file", str(path).encode("utf-8", "replace")),
            ("line", str(lineno).encode()),
        ]
        if len(raw) > MAX_LINE_BYTES:
            headers.append(("truncated", str(MAX_LINE_BYTES).encode()))
            raw = raw[:MAX_LINE_BYTES]
        await self._append(wire.REPLAY_DLQ_TOPIC, 0, None, raw, headers)
        s.dlq_records += 1

    # ---- main loop ---------------------------------------------------------------------------
    async def _blocks(self) -> AsyncIterator[tuple[EventFile, int, bytes]]:
        """The files' blocks in order, read (and decompressed) ahead by a reader thread."""
        reader = _BlockReader(self.files)
        try:
            async for kind, ef, first, block in reader.items():
                if kind == "file":
                    self.current = ef
                elif kind == "done":
                    self.done_bytes += ef.size
                    self.current = None
                else:
                    yield ef, first, block  # type: ignore[misc]
        finally:
            reader.close()

    async def _parse_results(self) -> AsyncIterator[tuple[EventFile, int, ParsedBlock]]:
        """Parsed blocks in file order: in this process, or ``workers`` processes ahead."""
        n_parts = self.partitions
        keys = self.batch_size == 1
        if not self.workers:
            async for ef, first, block in self._blocks():
                yield ef, first, parse_block(block, n_parts, keys)
            return
        loop = asyncio.get_running_loop()
        pool = self.pool
        assert pool is not None
        inflight: collections.deque[tuple[EventFile, int, bytes, asyncio.Future[Any]]] = collections.deque()
        blocks = self._blocks().__aiter__()
        try:
            ahead = 2 * self.workers + 1
            exhausted = False
            while True:
                while not exhausted and len(inflight) < ahead:
                    try:
                        ef, first, block = await blocks.__anext__()
                    except StopAsyncIteration:
                        exhausted = True
                        break
                    fut = loop.run_in_executor(pool, _parse_block_packed, block, n_parts, keys)
                    inflight.append((ef, first, block, fut))
                if not inflight:
                    return
                ef, first, block, fut = inflight.popleft()
                yield ef, first, _unpack(block, await fut)
        finally:
            for _, _, _, fut in inflight:
                fut.cancel()
            await blocks.aclose()  # type: ignore[attr-defined]

    async def run(self) -> ReplaySummary:
        self.t0 = time.perf_counter()
        self.schedule = wire.WatermarkSchedule(self.interval)
        self.plain_by_code = [0] * (len(self.topics) * self.partitions)
        self.first_arrival: float | None = None
        self.clock_value = -math.inf
        results = self._parse_results()
        try:
            await self._route(results)  # type: ignore[arg-type]
        finally:
            await results.aclose()  # type: ignore[attr-defined]  # stops the reader thread
        return await self._finish()

    async def _route(self, results: AsyncIterator[tuple[EventFile, int, ParsedBlock]]) -> None:
        """Route every parsed line: the arrival clock, watermarks, envelopes or plain records."""
        s = self.summary
        batch_mode = self.batch_size > 1
        batch_size = self.batch_size
        n_parts = self.partitions
        pending = self.pending
        topic_of_code = [t for t in self.topics for _ in range(n_parts)]
        part_of_code = [p for _ in self.topics for p in range(n_parts)]
        sink_append = self.sink.append
        firm_key: dict[str, bytes] = {}
        schedule = self.schedule
        observe = schedule.observe
        paced = self.speed is not None
        clock = -math.inf
        first_arrival: float | None = None
        events = 0
        plain_by_code = self.plain_by_code
        check_every = 64 if paced else CHECK_EVERY  # paced: keep the linger close to its value

        async for ef, first, parsed in results:
            lines, codes, stamps, bad, firms = parsed
            n = len(lines)
            fi = 0
            start = 0
            while start < n:
                stop = min(start + check_every, n)
                s.events = events
                await self._checkpoint()
                for k in range(start, stop):
                    code = codes[k]
                    if code < 0:
                        if code == BAD:
                            await self._bad(ef.path, first + k, lines[k], bad[k])
                        else:
                            s.blank_lines += 1
                        continue
                    ts = stamps[k]
                    if ts > clock:
                        # the arrival clock moves: pace, then a watermark if one is due
                        if paced:
                            await self._pace(ts)
                        boundary = observe(ts)
                        if boundary is not None:
                            await self._watermark(boundary)
                        elif first_arrival is None:
                            first_arrival = ts
                        clock = ts
                    events += 1
                    if batch_mode:
                        lst = pending[code]
                        lst.append(lines[k])
                        if len(lst) >= batch_size:
                            await self._close_envelope(code)
                    else:
                        firm = firms[fi]  # type: ignore[index]
                        fi += 1
                        key = firm_key.get(firm)
                        if key is None:
                            key = firm_key[firm] = firm.encode("utf-8")
                        plain_by_code[code] += 1
                        topic = topic_of_code[code]
                        part = part_of_code[code]
                        if not sink_append(topic, part, key, lines[k]):
                            await self._append(topic, part, key, lines[k])
                start = stop
        s.events = events
        self.first_arrival = first_arrival
        self.clock_value = clock

    async def _finish(self) -> ReplaySummary:
        """End of the files: flush, then the final watermark so that every day can close."""
        s = self.summary
        schedule = self.schedule
        first_arrival, clock = self.first_arrival, self.clock_value
        batch_mode = self.batch_size > 1
        n_parts = self.partitions
        plain_by_code = self.plain_by_code
        await self._close_all_envelopes()
        final = schedule.final()
        if final is not None:
            await self._watermark(final)
            s.first_arrival = datetime.fromtimestamp(first_arrival, _UTC)  # type: ignore[arg-type]
            s.last_arrival = datetime.fromtimestamp(clock, _UTC)
            s.final_watermark = datetime.fromtimestamp(final, _UTC)
        await self.sink.drain()
        s.seconds = time.perf_counter() - self.t0
        if batch_mode:
            by_type = self.sent_by_type
        else:
            by_type = [sum(plain_by_code[i * n_parts : (i + 1) * n_parts]) for i in range(len(self.types))]
        s.events_by_topic = dict(zip(self.topics, by_type))
        s.records = (
            (s.envelopes if batch_mode else s.events) + s.watermark_records + s.dlq_records
        )
        if self.progress is not None:
            self.progress.update(s.events, s.bad_lines, self.done_bytes, force=True)
            self.progress.close()
        return s


# --------------------------------------------------------------------------------------------
# riskmon replay
# --------------------------------------------------------------------------------------------


def main(args: argparse.Namespace) -> int:
    """``riskmon replay FILE... [--bootstrap H:P] [--speed X | --max] [--batch-size N] ...``"""
    from riskmon.broker import BrokerError
    from riskmon.settings import Settings

    settings = Settings()
    bootstrap = getattr(args, "bootstrap", None) or settings.bootstrap_servers
    if not bootstrap:
        print(
            "riskmon replay: no Kafka broker given: pass --bootstrap HOST:PORT or set "
            "RISKMON_BOOTSTRAP_SERVERS (`riskmon broker` runs a local one)",
            file=sys.stderr,
        )
        return 2
    speed = getattr(args, "speed", None)
    if getattr(args, "max", False):
        speed = None
    batch_size = int(getattr(args, "batch_size", DEFAULT_BATCH_SIZE) or DEFAULT_BATCH_SIZE)
    if batch_size < 1:
        print("riskmon replay: --batch-size must be at least 1", file=sys.stderr)
        return 2
    if speed is not None and not (speed > 0 and math.isfinite(speed)):
        print("riskmon replay: --speed must be a positive number", file=sys.stderr)
        return 2
    partitions = getattr(args, "partitions", None)
    if partitions is not None and partitions < 1:
        print("riskmon replay: --partitions must be at least 1", file=sys.stderr)
        return 2
    linger_ms = getattr(args, "linger_ms", DEFAULT_LINGER_MS)
    linger_ms = DEFAULT_LINGER_MS if linger_ms is None else float(linger_ms)
    if not linger_ms >= 0:
        print("riskmon replay: --linger-ms must not be negative", file=sys.stderr)
        return 2
    workers = getattr(args, "workers", None)  # --workers, if the command line offers it
    progress = not getattr(args, "no_progress", False) and sys.stderr.isatty()
    try:
        summary = asyncio.run(
            replay_files(
                list(args.files),
                settings,
                bootstrap=bootstrap,
                speed=speed,
                batch_size=batch_size,
                linger_ms=linger_ms,
                partitions=partitions,
                progress=progress,
                workers=workers,
            )
        )
    except (ReplayError, EventFileError, BrokerError) as exc:
        print(f"riskmon replay: {exc}", file=sys.stderr)
        return 1
    print(summary.format())
    return 0


__all__ = [
    "BAD",
    "BLANK",
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_LINGER_MS",
    "KafkaSink",
    "MemorySink",
    "ReplayError",
    "ReplaySummary",
    "WATERMARK_INTERVAL_S",
    "check_line",
    "default_workers",
    "fast_check",
    "fast_line",
    "main",
    "parse_block",
    "replay_files",
    "slow_line",
    "timestamp_of",
]

