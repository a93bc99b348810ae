"""The embedded broker: start/stop, restart keeps data, clear errors; topic creation."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from riskmon.broker import (
    BrokerError,
    EmbeddedBroker,
    broker_for,
    ensure_topics,
    find_binary,
    probe_kafka,
)
from riskmon.settings import Settings

pytestmark = pytest.mark.integration


async def _produce(bootstrap: str, topic: str, values: list[bytes]) -> None:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True, acks="all")
    await producer.start()
    try:
        for v in values:
            await producer.send_and_wait(topic, v, partition=0)
    finally:
        await producer.stop()


async def _consume_all(bootstrap: str, topic: str) -> list[bytes]:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        end = (await consumer.end_offsets([tp]))[tp]
        out: list[bytes] = []
        while len(out) < end:
            batch = await consumer.getmany(tp, timeout_ms=1000)
            out.extend(m.value for m in batch.get(tp, []))
        return out
    finally:
        await consumer.stop()


def test_binary_is_found():
    path = find_binary()
    assert path.is_file() and os.access(path, os.X_OK)


def test_start_stop_with_free_port_and_temp_dir():
    broker = EmbeddedBroker()
    with broker:
        assert broker.running
        host, port = broker.bootstrap.split(":")
        assert host == "127.0.0.1" and int(port) > 0
        probe_kafka(host, int(port))  # answers Kafka requests
        data_dir = broker.data_dir
        assert data_dir.is_dir() and broker.log_path.is_file()
        pid = broker.pid
    assert not broker.running
    assert not data_dir.exists()  # the temporary dir it created is gone
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    with pytest.raises(OSError):
        probe_kafka(host, int(port), timeout=0.5)


def test_restart_keeps_data_and_port(tmp_path):
    data_dir = tmp_path / "broker-data"
    with EmbeddedBroker(data_dir=data_dir) as broker:
        bootstrap = broker.bootstrap
        asyncio.run(ensure_topics(Settings(bootstrap_servers=bootstrap), ["keep"], 2))
        asyncio.run(_produce(bootstrap, "keep", [b"one", b"two", b"three"]))
        old_pid = broker.pid
        broker.restart()
        assert broker.bootstrap == bootstrap and broker.pid != old_pid
        assert asyncio.run(_consume_all(bootstrap, "keep")) == [b"one", b"two", b"three"]
        # stop() + start() keeps it too
        broker.stop()
        assert not broker.running
        broker.start()
        asyncio.run(_produce(bootstrap, "keep", [b"four"]))
        assert asyncio.run(_consume_all(bootstrap, "keep")) == [b"one", b"two", b"three", b"four"]
    assert data_dir.is_dir()  # a given data dir is kept


def test_port_in_use_is_a_clear_error():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        with pytest.raises(BrokerError, match=f"port {port}.*already in use"):
            EmbeddedBroker(port).start()


def test_broker_exiting_at_start_reports_its_log(tmp_path):
    """A broker process that dies during start-up: the error quotes its log."""
    fake = tmp_path / "fake-broker"
    fake.write_text("#!/bin/sh\necho 'fatal: cannot open the data dir' >&2\nexit 3\n")
    fake.chmod(0o755)
    broker = EmbeddedBroker(binary=fake, data_dir=tmp_path / "d")
    with pytest.raises(BrokerError) as info:
        broker.start()
    msg = str(info.value)
    assert "exited with code 3" in msg and "fatal: cannot open the data dir" in msg
    assert not broker.running


def test_broker_that_never_answers_times_out_with_its_log(tmp_path):
    fake = tmp_path / "silent-broker"
    fake.write_text("#!/bin/sh\necho 'starting forever'\nexec sleep 60\n")
    fake.chmod(0o755)
    broker = EmbeddedBroker(binary=fake, data_dir=tmp_path / "d", start_timeout=1.0)
    t0 = time.monotonic()
    with pytest.raises(BrokerError, match="did not answer Kafka requests.*within 1 s") as info:
        broker.start()
    assert time.monotonic() - t0 < 10
    assert "starting forever" in str(info.value)
    assert not broker.running  # the hung process was killed


def test_bad_port_number():
    with pytest.raises(ValueError, match="port"):
        EmbeddedBroker(70000)


def test_stop_kills_a_broker_ignoring_sigterm(tmp_path):
    fake = tmp_path / "stubborn"
    # answers nothing, but we only test stop(): spawn it by hand through the private API
    fake.write_text("#!/bin/sh\ntrap '' TERM\nwhile true; do sleep 1; done\n")
    fake.chmod(0o755)
    broker = EmbeddedBroker(binary=fake, data_dir=tmp_path / "d", stop_timeout=0.5)
    broker._spawn()
    assert broker.running
    t0 = time.monotonic()
    broker.stop()
    assert not broker.running and time.monotonic() - t0 < 5


def test_ensure_topics_is_idempotent_and_checks_partitions(broker, unique_name):
    settings = Settings(bootstrap_servers=broker.bootstrap)
    a, b = unique_name("a"), unique_name("b")
    assert sorted(asyncio.run(ensure_topics(settings, [a, b], 3))) == sorted([a, b])
    assert asyncio.run(ensure_topics(settings, [a, b], 3)) == []  # nothing new
    with pytest.raises(BrokerError, match=f"{a} has 3"):
        asyncio.run(ensure_topics(settings, [a], 5))
    # not co-partitioned (e.g. a DLQ): another count is accepted
    assert asyncio.run(ensure_topics(settings, [a], 5, check_partitions=False)) == []
    # compacted topic configs pass through
    c = unique_name("compacted")
    assert asyncio.run(ensure_topics(settings, [c], 2, configs={"cleanup.policy": "compact"})) == [c]


def test_ensure_topics_does_not_auto_create_with_one_partition(fresh_broker):
    """Asking for metadata of a missing topic must not let the broker create it with one
    partition before we create it with the right count."""
    settings = Settings(bootstrap_servers=fresh_broker.bootstrap, partitions=6)
    assert asyncio.run(ensure_topics(settings, ["riskmon.events.payment"])) == ["riskmon.events.payment"]
    assert asyncio.run(ensure_topics(settings, ["riskmon.events.payment"], 6)) == []


def test_ensure_topics_unreachable_broker_is_clear():
    settings = Settings(bootstrap_servers="127.0.0.1:1")
    with pytest.raises(BrokerError, match="cannot reach the Kafka broker at 127.0.0.1:1"):
        asyncio.run(ensure_topics(settings, ["x"], 1, timeout=2))


def test_broker_for_uses_configured_servers_or_starts_one():
    async def use(settings: Settings) -> str:
        async with broker_for(settings) as bootstrap:
            if not settings.bootstrap_servers:
                host, port = bootstrap.split(":")
                probe_kafka(host, int(port))
            return bootstrap

    assert asyncio.run(use(Settings(bootstrap_servers="kafka:9092"))) == "kafka:9092"
    bootstrap = asyncio.run(use(Settings()))
    host, port = bootstrap.split(":")
    with pytest.raises(OSError):  # stopped after the block
        probe_kafka(host, int(port), timeout=0.5)


def test_riskmon_broker_command_runs_until_sigterm(tmp_path):
    """``riskmon broker --port P --data-dir D`` prints the bootstrap address and stops cleanly."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "riskmon.cli", "broker", "--port", str(port), "--data-dir", str(tmp_path / "d")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline()  # type: ignore[union-attr]
        assert f"127.0.0.1:{port}" in line
        probe_kafka("127.0.0.1", port)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    with pytest.raises(OSError):
        probe_kafka("127.0.0.1", port, timeout=0.5)
    assert (Path(tmp_path / "d") / "riskmon-broker.log").is_file()
