"""``riskmon bench stream``: throughput of each pipeline stage and event-to-vitality latency.

One run, on a fresh embedded broker (or RISKMON_BOOTSTRAP_SERVERS), for each input path
(envelopes as replay sends them, and ``--batch-size 1`` single-event records as external producers
send them):

1. **replay** the file onto the event topics with no consumer running (producer rate);
2. **raw aiokafka** consume-and-decode of the same topics: every record and envelope member
   decoded with orjson, nothing else — the ceiling for any consumer here;
3. **ingest** stage alone catching up on the loaded topics (validation, dead-lettering, repacking);
4. **worker** (one Faust worker) alone catching up on the internal topic: the full vitality
   computation with checkpointed changelog tables;
5. **end to end on a backlog**: ingest and worker together on the loaded event topics (the worker
   started first); events per second from the first event ingest polls to the last vitality
   update -- riskmon's own end-to-end rate, with the external producer's work done beforehand;
6. **live**: ingest and worker running while the file is replayed at full speed; latency is the
   time from the watermark record that allowed a firm-day to close (its Kafka timestamp on the
   event topic) to the vitality update (its Kafka timestamp), p50 and p99.

Rates are events per second of wall time, measured from Kafka record timestamps where a stage's
output is a topic.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from riskmon.settings import Settings
from riskmon.topics import INTERNAL_TOPIC
from riskmon.wire import EVENT_TOPICS, VITALITY_TOPIC


@dataclass
class PathResult:
    path: str
    events: int
    replay_eps: float = 0.0
    raw_eps: float = 0.0
    ingest_eps: float = 0.0
    worker_eps: float = 0.0
    pipeline_eps: float = 0.0
    live_eps: float = 0.0
    latency_p50_s: float = 0.0
    latency_p99_s: float = 0.0
    firm_days: int = 0


async def _raw_consume(settings: Settings, expected_events: int, timeout: float) -> float:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(
        **settings.kafka_client_kwargs(),
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=8 * 1024 * 1024,
        fetch_max_bytes=64 * 1024 * 1024,
    )
    await consumer.start()
    try:
        consumer.assign(
            [TopicPartition(t, p) for t in EVENT_TOPICS.values() for p in range(settings.partitions)]
        )
        events = 0
        started = time.perf_counter()
        deadline = time.monotonic() + timeout
        while events < expected_events and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500, max_records=20_000)
            for messages in batch.values():
                for m in messages:
                    obj = orjson.loads(m.value)
                    if "riskmon_batch" in obj:
                        events += len(obj["events"])
                    elif "riskmon_watermark" not in obj:
                        events += 1
        return events / (time.perf_counter() - started)
    finally:
        await consumer.stop()


async def _group_caught_up(settings: Settings, group: str, topics: list[str], timeout: float) -> float:
    """Wait until ``group`` has committed the end of ``topics``; returns the wall time (epoch s)
    when that is seen (polled every 0.2 s)."""
    from aiokafka import AIOKafkaConsumer, TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient

    kwargs = settings.kafka_client_kwargs()
    consumer = AIOKafkaConsumer(**kwargs)
    admin = AIOKafkaAdminClient(**kwargs)
    await consumer.start()
    await admin.start()
    try:
        tps = [TopicPartition(t, p) for t in topics for p in range(settings.partitions)]
        ends = await consumer.end_offsets(tps)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            committed = await admin.list_consumer_group_offsets(group)
            if all(tp in committed and committed[tp].offset >= ends[tp] for tp in tps if ends[tp] > 0):
                return time.time()
            await asyncio.sleep(0.2)
        raise TimeoutError(f"group {group} did not catch up within {timeout:.0f} s")
    finally:
        await admin.close()
        await consumer.stop()


async def _vitality_times(settings: Settings, idle_s: float, timeout: float) -> list[Any]:
    """Wait until the worker group's committed offsets on the internal topic have stopped moving
    for ``idle_s`` (polled through the admin API: an idle consumer would cost the embedded
    broker CPU), then read every vitality update once."""
    from aiokafka.admin import AIOKafkaAdminClient

    from riskmon.services import read_topic

    admin = AIOKafkaAdminClient(**settings.kafka_client_kwargs())
    await admin.start()
    try:
        last: dict | None = None
        changed = time.monotonic()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                committed = await admin.list_consumer_group_offsets(settings.app_id)
            except Exception:
                committed = {}
            now = {str(tp): o.offset for tp, o in committed.items() if tp.topic == INTERNAL_TOPIC}
            if now != last:
                last, changed = now, time.monotonic()
            elif now and time.monotonic() - changed > idle_s:
                break
            await asyncio.sleep(1.0)
    finally:
        await admin.close()
    return await read_topic(settings, VITALITY_TOPIC, lambda r: False, timeout=120, idle_exit=5)


def _latencies(settings: Settings, vit_records: list[Any], wm_times: dict[float, int]) -> list[float]:
    """Seconds from the closing watermark's append to the vitality update's append."""
    from datetime import date, datetime, timedelta
    from zoneinfo import ZoneInfo

    tz = ZoneInfo(settings.timezone)
    lateness = max(settings.lateness_s().values())
    boundaries = sorted(wm_times)
    import bisect

    out = []
    for r in vit_records:
        day = date.fromisoformat(orjson.loads(r.value)["day"])
        end = datetime(day.year, day.month, day.day, tzinfo=tz) + timedelta(days=1)
        threshold = end.timestamp() + lateness
        i = bisect.bisect_left(boundaries, threshold)
        if i < len(boundaries):
            out.append((r.timestamp - wm_times[boundaries[i]]) / 1000.0)
    return out


async def _watermark_append_times(settings: Settings) -> dict[float, int]:
    """Kafka timestamp (ms) of each watermark's first appearance on partition 0 of the
    electricity topic, by watermark time."""
    from datetime import datetime

    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(**settings.kafka_client_kwargs(), auto_offset_reset="earliest")
    await consumer.start()
    times: dict[float, int] = {}
    try:
        tp = TopicPartition(EVENT_TOPICS["electricity"], 0)
        consumer.assign([tp])
        end = (await consumer.end_offsets([tp]))[tp]
        while await consumer.position(tp) < end:
            batch = await consumer.getmany(timeout_ms=1000)
            for messages in batch.values():
                for m in messages:
                    if m.value.startswith(b'{"riskmon_watermark"'):
                        t = datetime.fromisoformat(orjson.loads(m.value)["time"]).timestamp()
                        times.setdefault(t, m.timestamp)
    finally:
        await consumer.stop()
    return times


def _first_record_time(log_path: Path) -> float | None:
    """When the worker took its first record (it logs the epoch time on each partition's first)."""
    import re

    pattern = r"(?:restored \d+ firms at offset -?\d+|first records polled) \(t=([0-9.]+)\)"
    times = [float(t) for t in re.findall(pattern, log_path.read_text(errors="replace"))]
    return min(times) if times else None


def median_result(results: list[PathResult]) -> PathResult:
    """Each figure's median over several runs of one input path.

    >>> median_result([PathResult("x", 10, worker_eps=w) for w in (3.0, 1.0, 2.0)]).worker_eps
    2.0
    """
    first = results[0]
    out = PathResult(first.path, first.events, firm_days=first.firm_days)
    for name in ("replay_eps", "raw_eps", "ingest_eps", "worker_eps", "pipeline_eps", "live_eps",
                 "latency_p50_s", "latency_p99_s"):
        setattr(out, name, statistics.median(getattr(r, name) for r in results))
    return out


def _bench_path(events_file: Path, firms_file: Path, batch_size: int, base: Settings, workdir: Path) -> PathResult:
    from producers.replay import replay_files
    from riskmon.broker import EmbeddedBroker
    from riskmon.services import ServiceGroup, ingest_service, worker_service
    from riskmon.topics import ensure_pipeline_topics

    label = "envelopes" if batch_size > 1 else "single-event records"
    result = PathResult(label, 0)
    timeout = 3600.0

    def fresh(stack: ExitStack) -> Settings:
        if base.bootstrap_servers:
            raise SystemExit("bench stream needs an empty broker: leave RISKMON_BOOTSTRAP_SERVERS unset")
        # the broker's own temporary data dir, removed when it closes (GBs per stage otherwise)
        broker = stack.enter_context(EmbeddedBroker())
        s = base.model_copy(update={"bootstrap_servers": broker.bootstrap, "firms_file": firms_file})
        asyncio.run(ensure_pipeline_topics(s))
        return s

    # Stages 1-4: one stage at a time on a loaded topic.
    with ExitStack() as stack:
        settings = fresh(stack)
        summary = asyncio.run(replay_files([events_file], settings, batch_size=batch_size))
        result.events = summary.events
        result.replay_eps = summary.events_per_second
        print(f"  {label}: replay {summary.events:,} events at {result.replay_eps:,.0f} events/s", flush=True)
        result.raw_eps = asyncio.run(_raw_consume(settings, summary.events, timeout))
        print(f"  {label}: raw aiokafka consume+decode {result.raw_eps:,.0f} events/s", flush=True)
        group = stack.enter_context(ServiceGroup())
        ingest = group.add(ingest_service(settings, workdir / f"logs-{batch_size}"))
        done = asyncio.run(_group_caught_up(settings, "riskmon-ingest", list(EVENT_TOPICS.values()), timeout))
        first = _first_record_time(ingest.log_path)
        if first is not None:
            result.ingest_eps = summary.events / (done - first)
        ingest.stop()  # an idle consumer costs the embedded broker CPU the worker needs
        print(f"  {label}: ingest stage {result.ingest_eps:,.0f} events/s (from its first poll)", flush=True)
        worker = group.add(worker_service(settings, workdir / f"logs-{batch_size}"))
        vit = asyncio.run(_vitality_times(settings, idle_s=30, timeout=timeout))
        first = _first_record_time(worker.log_path)
        if vit and first is not None:
            secs = max(r.timestamp for r in vit) / 1000.0 - first
            result.worker_eps = summary.events / secs
            result.firm_days = len({(r.key, orjson.loads(r.value)["day"]) for r in vit})
        print(f"  {label}: one Faust worker {result.worker_eps:,.0f} events/s ({result.firm_days:,} firm-days, from its first record)", flush=True)

    # Stage 5: the pipeline on a backlog -- ingest and worker together, started on a loaded topic:
    # riskmon's own end-to-end rate (the external producers run elsewhere).
    with ExitStack() as stack:
        settings = fresh(stack)
        asyncio.run(replay_files([events_file], settings, batch_size=batch_size))
        group = stack.enter_context(ServiceGroup())
        group.add(worker_service(settings, workdir / f"logs-e2e-{batch_size}"))
        time.sleep(8)  # the worker joins its group first, so its start-up is not counted
        ingest = group.add(ingest_service(settings, workdir / f"logs-e2e-{batch_size}"))
        vit = asyncio.run(_vitality_times(settings, idle_s=30, timeout=timeout))
        first = _first_record_time(ingest.log_path)
        if vit and first is not None:
            result.pipeline_eps = result.events / (max(r.timestamp for r in vit) / 1000.0 - first)
        print(f"  {label}: ingest + worker end to end on the backlog {result.pipeline_eps:,.0f} events/s "
              "(first event polled by ingest -> last vitality update)", flush=True)

    # Stage 6: everything live.
    with ExitStack() as stack:
        settings = fresh(stack)
        group = stack.enter_context(ServiceGroup())
        group.add(ingest_service(settings, workdir / f"logs-live-{batch_size}"))
        group.add(worker_service(settings, workdir / f"logs-live-{batch_size}"))
        time.sleep(8)  # let both join their groups before the first record
        t0 = time.time() * 1000
        asyncio.run(replay_files([events_file], settings, batch_size=batch_size))
        vit = asyncio.run(_vitality_times(settings, idle_s=30, timeout=timeout))
        wm_times = asyncio.run(_watermark_append_times(settings))
        if vit:
            result.live_eps = result.events / ((max(r.timestamp for r in vit) - t0) / 1000.0)
            lat = sorted(_latencies(settings, vit, wm_times))
            if lat:
                result.latency_p50_s = statistics.median(lat)
                result.latency_p99_s = lat[min(len(lat) - 1, int(0.99 * len(lat)))]
        print(
            f"  {label}: live end-to-end {result.live_eps:,.0f} events/s, watermark-to-vitality "
            f"p50 {result.latency_p50_s:.2f} s p99 {result.latency_p99_s:.2f} s",
            flush=True,
        )
    return result


def main(args: Any) -> int:
    from producers.simulator import simulate

    base = Settings()
    if args.path:
        sim_dir = Path(args.path)
    else:
        sim_dir = Path(tempfile.mkdtemp(prefix="riskmon-bench-sim-"))
        print(f"simulating {args.firms} firms x {args.days} days (seed {args.seed})", flush=True)
        simulate(args.firms, args.days, args.seed, sim_dir)
    events_file = sim_dir / "events.jsonl.gz"
    firms_file = sim_dir / "truth.jsonl"
    workdir = Path(tempfile.mkdtemp(prefix="riskmon-bench-"))
    print(f"bench stream: {events_file}, {base.partitions} partitions, logs in {workdir}", flush=True)
    runs = max(1, getattr(args, "runs", 1) or 1)
    # Paths alternate within each run, so a noisy neighbour hits both alike.
    by_path: dict[int, list[PathResult]] = {b: [] for b in args.batch_sizes}
    for run in range(runs):
        if runs > 1:
            print(f"run {run + 1} of {runs}", flush=True)
        for batch_size in args.batch_sizes:
            # one log directory per run: stages are timed from the first record their log shows
            by_path[batch_size].append(
                _bench_path(events_file, firms_file, batch_size, base, workdir / f"run{run + 1}")
            )
    print()
    if runs > 1:
        print(f"medians of {runs} runs")
    print(f"{'input path':<22}{'events':>11}{'replay':>11}{'raw read':>11}{'ingest':>11}{'worker':>11}"
          f"{'e2e':>11}{'live e2e':>11}{'p50 s':>8}{'p99 s':>8}")
    for batch_size, rs in by_path.items():
        r = median_result(rs)
        print(
            f"{r.path:<22}{r.events:>11,}{r.replay_eps:>11,.0f}{r.raw_eps:>11,.0f}{r.ingest_eps:>11,.0f}"
            f"{r.worker_eps:>11,.0f}{r.pipeline_eps:>11,.0f}{r.live_eps:>11,.0f}{r.latency_p50_s:>8.2f}"
            f"{r.latency_p99_s:>8.2f}"
        )
    print("(events/s of wall time; ingest and worker alone from their first record on loaded topics, without "
          "start-up; e2e = ingest + worker together on the loaded topics, first event polled -> last vitality "
          "update; live e2e = replay, ingest and worker at once, including start-ups; latency = closing "
          "watermark appended -> vitality update appended)")
    return 0
