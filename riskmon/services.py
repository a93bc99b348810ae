"""Start and stop riskmon's long-running processes (ingest stage, stream workers) as child
processes, and read output topics back. Used by the demo, the benchmarks and the tests."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from riskmon.settings import Settings


@dataclass
class Service:
    name: str
    argv: list[str]
    env: dict[str, str]
    log_path: Path
    proc: subprocess.Popen | None = None
    killed: bool = False

    def start(self) -> "Service":
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            self.argv, env=self.env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
        log.close()
        return self

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL: no chance to commit or flush (crash tests)."""
        if self.alive():
            assert self.proc is not None
            self.proc.kill()
            self.proc.wait(10)
            self.killed = True

    def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM, then SIGKILL after ``timeout`` seconds."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""


def service_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment a child needs to see the same settings (as RISKMON_* variables)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RISKMON_")}
    for name, value in settings.model_dump().items():
        if value is None:
            continue
        if hasattr(value, "get_secret_value"):
            value = value.get_secret_value()
        env[f"RISKMON_{name.upper()}"] = str(value)
    env.update(extra)
    return env


def riskmon_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "riskmon.cli", *args]


def ingest_service(
    settings: Settings, log_dir: Path, instance_id: str = "0", metrics_port: int | None = None
) -> Service:
    """``metrics_port``: where this process serves its metrics (default: the settings'; 0 picks
    a free port, so several processes on one host do not collide)."""
    port = settings.metrics_port if metrics_port is None else metrics_port
    return Service(
        f"ingest-{instance_id}",
        riskmon_argv("ingest", "--instance-id", instance_id),
        service_env(settings, RISKMON_METRICS_PORT=str(port)),
        log_dir / f"ingest-{instance_id}.log",
    )


def worker_service(
    settings: Settings, log_dir: Path, worker_id: str = "0", metrics_port: int | None = None, **env: str
) -> Service:
    port = settings.metrics_port if metrics_port is None else metrics_port
    return Service(
        f"worker-{worker_id}",
        riskmon_argv("worker"),
        service_env(settings, RISKMON_WORKER_ID=worker_id, RISKMON_METRICS_PORT=str(port), **env),
        log_dir / f"worker-{worker_id}.log",
    )


async def read_topic(
    settings: Settings,
    topic: str,
    until: Callable[[list[Any]], bool],
    timeout: float = 120.0,
    idle_exit: float | None = None,
) -> list[Any]:
    """Read a topic from the beginning (no consumer group) until ``until(records)`` holds, the
    topic stays idle for ``idle_exit`` seconds after its first record, or ``timeout`` passes.
    Returns aiokafka records."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(
        **settings.kafka_client_kwargs(),
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
        fetch_max_wait_ms=200,
    )
    await consumer.start()
    records: list[Any] = []
    try:
        partitions = consumer.partitions_for_topic(topic)
        deadline = time.monotonic() + timeout
        while not partitions and time.monotonic() < deadline:
            await consumer._client.force_metadata_update()
            partitions = consumer.partitions_for_topic(topic)
            await asyncio.sleep(0.2)
        consumer.assign([TopicPartition(topic, p) for p in sorted(partitions or [])])
        last_data: float | None = None
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for messages in batch.values():
                records.extend(messages)
            if batch:
                last_data = time.monotonic()
            if until(records):
                break
            if idle_exit is not None and last_data is not None and time.monotonic() - last_data > idle_exit:
                break
    finally:
        await consumer.stop()
    return records


@dataclass
class ServiceGroup:
    """Several services stopped together, newest first."""

    services: list[Service] = field(default_factory=list)

    def add(self, service: Service) -> Service:
        self.services.append(service.start())
        return service

    def stop(self) -> None:
        for s in reversed(self.services):
            s.stop()

    def __enter__(self) -> "ServiceGroup":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def check_alive(self, names: Iterable[str] | None = None) -> None:
        for s in self.services:
            if s.killed or (names is not None and s.name not in names):
                continue
            if s.proc is not None and s.proc.poll() is not None:
                raise RuntimeError(f"{s.name} exited with {s.proc.returncode}:\n{s.log_tail()}")
