"""The vitality pipeline on a real broker: same answers as the in-process backtest whatever the
worker count, partition count, replay speed or batch size, and after a SIGKILL.

Each test gets a broker of its own, replays one small simulated population, runs the ingest stage
and Faust worker(s) as separate processes, and reads ``riskmon.vitality`` back.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import orjson
import pytest

from producers.replay import replay_files
from producers.simulator import simulate
from riskmon.services import ServiceGroup, ingest_service, read_topic, worker_service
from riskmon.settings import Settings
from riskmon.wire import VITALITY_TOPIC
from kafka_population import backtest_vitality  # tests/streams/kafka_population.py
from streams.pipeline import collect_vitality

pytestmark = [pytest.mark.integration, pytest.mark.slow]

FIRMS, DAYS = 24, 16


@pytest.fixture(scope="module")
def population(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sim")
    simulate(FIRMS, DAYS, seed=11, out_dir=out, shares={"shutdown": 0.2, "data_outage": 0.1})
    return out


@pytest.fixture(scope="module")
def expected(population: Path) -> dict:
    return backtest_vitality(population, FIRMS, DAYS)


def _settings(fresh_broker, population: Path, partitions: int) -> Settings:
    return Settings(
        bootstrap_servers=fresh_broker.bootstrap,
        partitions=partitions,
        firms_file=population / "truth.jsonl",
        checkpoint_records=50,
        metrics_port=0,
    )


def _collect(settings: Settings, expected: dict, timeout: float = 300.0) -> tuple[dict, int]:
    wanted = len(expected)

    def done(records: list) -> bool:
        return len({(r.key, orjson.loads(r.value)["day"]) for r in records}) >= wanted

    records = asyncio.run(read_topic(settings, VITALITY_TOPIC, done, timeout=timeout))
    return collect_vitality((r.key, r.value) for r in records), len(records)


def _replay(settings: Settings, population: Path, **kw) -> None:
    summary = asyncio.run(replay_files([population / "events.jsonl.gz"], settings, **kw))
    assert summary.bad_lines == 0


def _diff(got: dict, expected: dict) -> str:
    missing = sorted(set(expected) - set(got))[:5]
    extra = sorted(set(got) - set(expected))[:5]
    changed = [k for k in expected if k in got and got[k] != expected[k]][:3]
    return f"missing {missing} extra {extra} changed {changed}"


def test_one_worker_equals_backtest_and_partition_count_does_not_matter(
    fresh_broker, population: Path, expected: dict, tmp_path: Path
) -> None:
    settings = _settings(fresh_broker, population, partitions=3)
    with ServiceGroup() as group:
        group.add(ingest_service(settings, tmp_path))
        group.add(worker_service(settings, tmp_path))
        _replay(settings, population)
        got, _ = _collect(settings, expected)
        group.check_alive()
    assert got == expected, _diff(got, expected)


def test_two_workers_with_a_rebalance_and_paced_single_event_replay(
    fresh_broker, population: Path, expected: dict, tmp_path: Path
) -> None:
    settings = _settings(fresh_broker, population, partitions=4)
    with ServiceGroup() as group:
        group.add(ingest_service(settings, tmp_path))
        group.add(worker_service(settings, tmp_path, "a"))
        # Single-event records (as kcat would send them), paced: 16 days in about 20 s, so that
        # the second worker joins while the replay is still running.
        replay = asyncio.new_event_loop()
        try:
            task = replay.create_task(
                replay_files([population / "events.jsonl.gz"], settings, batch_size=1, speed=DAYS * 86400 / 20)
            )
            replay.run_until_complete(asyncio.sleep(3))
            group.add(worker_service(settings, tmp_path, "b"))  # rebalance mid-replay
            summary = replay.run_until_complete(task)
        finally:
            replay.close()
        assert summary.bad_lines == 0
        got, _ = _collect(settings, expected)
        group.check_alive()
    assert got == expected, _diff(got, expected)
    # The rebalance really moved partitions: the second worker took some over mid-stream.
    assert "restored" in (tmp_path / "worker-b.log").read_text()


def test_sigkilled_worker_recovers_from_changelog_and_ends_in_the_same_state(
    fresh_broker, population: Path, expected: dict, tmp_path: Path
) -> None:
    settings = _settings(fresh_broker, population, partitions=4)
    with ServiceGroup() as group:
        group.add(ingest_service(settings, tmp_path))
        worker = group.add(worker_service(settings, tmp_path, "k"))
        replay = asyncio.new_event_loop()
        try:
            task = replay.create_task(
                replay_files([population / "events.jsonl.gz"], settings, speed=DAYS * 86400 / 30)
            )
            # Kill the worker once it has published part of the days: mid-stream, with state in
            # its tables and records after its last checkpoint.
            before_kill = replay.run_until_complete(
                read_topic(settings, VITALITY_TOPIC, lambda r: len(r) >= len(expected) // 4, timeout=120)
            )
            worker.kill()
            replay.run_until_complete(asyncio.sleep(1))
            group.add(worker_service(settings, tmp_path, "k"))  # same id: static membership
            replay.run_until_complete(task)
        finally:
            replay.close()
        got, n_records = _collect(settings, expected)
        group.check_alive()
    assert got == expected, _diff(got, expected)
    assert 0 < len(before_kill) < len(expected)
    # The restarted worker rebuilt its partitions from the changelog tables (a fresh worker
    # restores 0 firms), then finished the stream exactly like a clean run.
    import re

    restored = [int(n) for n in re.findall(r"restored (\d+) firms", (tmp_path / "worker-k.log").read_text())]
    assert max(restored) > 0
