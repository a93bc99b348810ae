"""A broker restart mid-stream (issue #7, part 2b).

The embedded broker (noida-db) is restarted on the same port and data dir while replay, the ingest
stage and a Faust worker are running; all three must reconnect by themselves and the vitality
output must equal a clean run's (the in-process backtest, which ``test_stream_kafka.py`` shows a
clean Kafka run equals).

What a restart does to the clients, and what riskmon does about it (see docs/reliability.md):

* connections drop; aiokafka reconnects and retries produce requests;
* noida forgets consumer-group generations: the worker's next offset commit fails with
  IllegalGeneration, Faust rejoins and rebuilds its partitions from the changelog tables (the
  same path as a rebalance);
* a transactional send that fails (OutOfOrderSequenceNumber after batches the broker dropped)
  fails the transaction: the ingest stage reconnects with new clients from the committed offsets
  (before this fix it committed the transaction anyway and silently dropped those events);
* noida may record the first transaction of a producer session that began before the restart
  as aborted although it acknowledged its commit: the ingest stage ends its session when a broker
  connection drops and redoes the last seconds, in order, before anything newer (duplicates are
  dropped by the worker);
* replay's idempotent producer reconnects and retries (it failed with OutOfOrderSequenceNumber
  only while the broker was stopped with a signal and dropped acknowledged batches);
* stopping noida with SIGTERM, SIGINT or a bare ``noida-db down`` loses records it acknowledged
  during its final save, and SIGKILL everything since its last save, so
  :meth:`EmbeddedBroker.stop` runs ``noida-db stop kafka`` (closes client connections, then
  saves) and then ``noida-db down`` (the first test below is the regression test).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import orjson
import pytest

from producers.replay import replay_files
from producers.simulator import simulate
from riskmon.broker import EmbeddedBroker, ensure_topics
from riskmon.services import ServiceGroup, ingest_service, read_topic, worker_service
from riskmon.settings import Settings
from riskmon.wire import VITALITY_TOPIC
from kafka_population import backtest_vitality  # tests/streams/kafka_population.py
from streams.pipeline import collect_vitality

pytestmark = [pytest.mark.integration, pytest.mark.slow]

FIRMS, DAYS = 16, 12
#: Replay pacing: the simulated days in about this many seconds of wall time.
REPLAY_SECONDS = 12


@pytest.fixture
def kept_broker(tmp_path: Path):
    """A broker of this test with a data dir that survives restarts (removed with tmp_path).

    ``kept_broker.restart_in_thread()`` restarts it from a thread that lives as long as the
    fixture: the broker dies with the thread that started it (PR_SET_PDEATHSIG), so a restart
    from asyncio's default executor would end when the event loop closes."""
    from concurrent.futures import ThreadPoolExecutor

    broker = EmbeddedBroker(data_dir=tmp_path / "broker-data")
    keeper = ThreadPoolExecutor(max_workers=1, thread_name_prefix="broker-keeper")
    keeper.submit(broker.start).result()

    async def restart_in_thread() -> None:
        await asyncio.wrap_future(keeper.submit(broker.restart))

    broker.restart_in_thread = restart_in_thread  # type: ignore[attr-defined]
    try:
        yield broker
    finally:
        keeper.submit(broker.close).result()
        keeper.shutdown()


@pytest.fixture(scope="module")
def population(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("restartsim")
    simulate(FIRMS, DAYS, seed=5, out_dir=out)
    return out


@pytest.fixture(scope="module")
def expected(population: Path) -> dict:
    return backtest_vitality(population, FIRMS, DAYS)


def test_restart_loses_no_acknowledged_record(kept_broker: EmbeddedBroker) -> None:
    """Records acknowledged (acks=all) while the broker is being restarted are all there after
    it. With SIGTERM, noida-db 0.2.3 acknowledged produce requests during its final save and lost
    them: 345 records in this scenario before EmbeddedBroker.stop used ``noida-db stop kafka``
    (and 357 with a bare ``noida-db down``)."""
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

    bootstrap = kept_broker.bootstrap

    async def run() -> tuple[set[int], list[int]]:
        await ensure_topics(Settings(bootstrap_servers=bootstrap), ["acks", "bulk"], 4)
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=2, request_timeout_ms=60_000)
        await producer.start()
        try:
            # some state, so that the broker's save on shutdown takes a while
            for i in range(2000):
                await producer.send("bulk", b"x" * 10_000, partition=i % 4)
            await producer.flush()
            acked: set[int] = set()
            stop = asyncio.Event()

            async def produce() -> None:
                i = 0
                while not stop.is_set():
                    fut = await producer.send("acks", str(i).encode(), partition=i % 4)
                    fut.add_done_callback(lambda f, i=i: f.exception() is None and acked.add(i))
                    i += 1
                    await asyncio.sleep(0.002)

            task = asyncio.create_task(produce())
            await asyncio.sleep(1.0)
            await kept_broker.restart_in_thread()
            await asyncio.sleep(1.0)
            stop.set()
            await task
            await producer.flush()
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False)
        await consumer.start()
        try:
            tps = [TopicPartition("acks", q) for q in range(4)]
            consumer.assign(tps)
            total = sum((await consumer.end_offsets(tps)).values())
            stored: list[int] = []
            deadline = time.monotonic() + 30
            while len(stored) < total and time.monotonic() < deadline:
                for messages in (await consumer.getmany(timeout_ms=500)).values():
                    stored.extend(int(m.value) for m in messages)
        finally:
            await consumer.stop()
        return acked, stored

    acked, stored = asyncio.run(run())
    assert len(acked) > 300
    lost = sorted(acked - set(stored))
    assert not lost, f"{len(lost)} acknowledged records lost by the restart, e.g. {lost[:10]}"


def test_ingest_worker_and_replay_survive_a_broker_restart(
    kept_broker: EmbeddedBroker, population: Path, expected: dict, tmp_path: Path
) -> None:
    settings = Settings(
        bootstrap_servers=kept_broker.bootstrap,
        partitions=4,
        firms_file=population / "truth.jsonl",
        checkpoint_records=50,
        metrics_port=0,
    )
    with ServiceGroup() as group:
        group.add(ingest_service(settings, tmp_path))
        group.add(worker_service(settings, tmp_path, "r"))
        loop = asyncio.new_event_loop()
        try:
            replay = loop.create_task(
                replay_files([population / "events.jsonl.gz"], settings, speed=DAYS * 86400 / REPLAY_SECONDS)
            )
            # Restart once about a third of the firm-days are out: mid-stream for every stage,
            # with the replay producing while the broker goes away (restart in a thread).
            before = loop.run_until_complete(
                read_topic(settings, VITALITY_TOPIC, lambda r: len(r) >= len(expected) // 3, timeout=120)
            )
            assert len(before) < len(expected)
            old_pid = kept_broker.pid
            loop.run_until_complete(kept_broker.restart_in_thread())
            assert kept_broker.pid != old_pid and kept_broker.running
            summary = loop.run_until_complete(replay)
            assert summary.bad_lines == 0

            def done(records: list) -> bool:
                return len({(r.key, orjson.loads(r.value)["day"]) for r in records}) >= len(expected)

            # until complete, or 20 s without a new update (a stalled worker; see below)
            records = loop.run_until_complete(
                read_topic(settings, VITALITY_TOPIC, done, timeout=90, idle_exit=20)
            )
            missing_input = loop.run_until_complete(_input_not_forwarded(settings, population))
        finally:
            loop.close()
        group.check_alive()
    # Replay and the ingest stage lost nothing: every event of the file and every source
    # partition's last watermark reached the internal topic (read_committed).
    assert not missing_input, "; ".join(reversed(missing_input))
    got = collect_vitality((r.key, r.value) for r in records)
    missing = sorted(set(expected) - set(got))
    changed = [k for k in expected if k in got and got[k] != expected[k]]
    assert not changed, f"changed firm-days after the restart: {changed[:5]}"
    if missing:
        stalled = asyncio.run(_end_offsets(settings, "riskmon.internal.events"))
        raise AssertionError(
            f"{len(missing)} of {len(expected)} firm-days missing, e.g. {missing[:3]}, although the "
            f"input is complete; internal topic end offsets: {stalled}"
        )
    assert got == expected
    # The worker really went through the restart: its partitions were rebuilt from the changelog.
    worker_log = (tmp_path / "worker-r.log").read_text(errors="replace")
    assert "IllegalGeneration" in worker_log or worker_log.count("restored") > 4


async def _input_not_forwarded(settings: Settings, population: Path) -> list[str]:
    """What of the file the internal topic lacks: event ids, and (stream, source partition)
    whose last watermark on the event topic did not come through."""
    import gzip

    from riskmon.topics import INTERNAL_TOPIC
    from riskmon.wire import EVENT_TOPICS

    wanted_ids = {
        orjson.loads(line)["event_id"] for line in gzip.open(population / "events.jsonl.gz") if line.strip()
    }
    last_wm: dict[tuple[str, int], str] = {}
    for stream, topic in EVENT_TOPICS.items():
        for r in await _read_all(settings, topic):
            obj = orjson.loads(r.value)
            if "riskmon_watermark" in obj:
                last_wm[(stream, r.partition)] = obj["time"]
    got_ids: set[str] = set()
    got_wm: dict[tuple[str, int], set[str]] = {}
    for r in await _read_all(settings, INTERNAL_TOPIC):
        for seg in orjson.loads(r.value)["segments"]:
            if "events" in seg:
                got_ids.update(e["event_id"] for e in seg["events"])
            else:
                got_wm.setdefault((seg["stream"], seg["src"]), set()).add(seg["watermark"])
    missing = [f"event {i}" for i in sorted(wanted_ids - got_ids)[:10]]
    missing += [f"last watermark of {k}" for k, t in sorted(last_wm.items()) if t not in got_wm.get(k, ())]
    if missing:
        missing.append(f"{len(wanted_ids - got_ids)} events missing; " + await _end_offsets(settings, INTERNAL_TOPIC))
    return missing


async def _end_offsets(settings: Settings, topic: str) -> str:
    """End offsets for read_committed (the last stable offset) and read_uncommitted readers:
    they differ while a transaction is open."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    out = []
    for isolation in ("read_committed", "read_uncommitted"):
        consumer = AIOKafkaConsumer(**settings.kafka_client_kwargs(), isolation_level=isolation)
        await consumer.start()
        try:
            tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
            ends = await consumer.end_offsets(tps)
            out.append(f"{isolation} {[ends[tp] for tp in tps]}")
        finally:
            await consumer.stop()
    return ", ".join(out)


async def _read_all(settings: Settings, topic: str) -> list:
    """Every committed record of a topic, up to its end offsets now."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(
        **settings.kafka_client_kwargs(), enable_auto_commit=False, auto_offset_reset="earliest",
        isolation_level="read_committed",
    )
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        records: list = []
        deadline = time.monotonic() + 30
        stuck, last = 0, None
        # until every position reaches the end offset, or stops moving (a trailing transaction
        # marker is no record); aborted transactions are skipped without records too
        while time.monotonic() < deadline and stuck < 4:
            positions = {tp: await consumer.position(tp) for tp in tps}
            if all(positions[tp] >= ends[tp] for tp in tps):
                break
            stuck = stuck + 1 if positions == last else 0
            last = positions
            for messages in (await consumer.getmany(timeout_ms=500)).values():
                records.extend(messages)
        return records
    finally:
        await consumer.stop()
