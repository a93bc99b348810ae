"""``riskmon demo``: the whole pipeline on one machine, in a few minutes.

Simulates a population of firms, starts the embedded broker (unless RISKMON_BOOTSTRAP_SERVERS
points at one), the ingest stage and a stream worker, replays the events as fast as possible,
follows the vitality updates with a live progress line, and ends with a summary.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from collections import Counter
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import orjson

from riskmon.settings import Settings


def _status(line: str) -> None:
    if sys.stderr.isatty():
        sys.stderr.write("\r" + line[:150].ljust(150))
        sys.stderr.flush()


def main(args: Any) -> int:
    from producers.replay import replay_files
    from producers.simulator import simulate
    from riskmon.broker import EmbeddedBroker
    from riskmon.services import ServiceGroup, ingest_service, worker_service
    from riskmon.topics import ensure_pipeline_topics
    from streams.registry import FirmRegistry

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    sim_dir = out / "sim"
    print(f"[1/4] simulating {args.firms} firms x {args.days} days (seed {args.seed}) into {sim_dir}")
    sim = simulate(args.firms, args.days, args.seed, sim_dir)
    print("      " + sim.format().replace("\n", "\n      "))
    registry = FirmRegistry.from_file(sim_dir / "truth.jsonl")

    settings = Settings()
    with ExitStack() as stack:
        if not settings.bootstrap_servers:
            data_dir = Path(tempfile.mkdtemp(prefix="riskmon-demo-broker-"))
            broker = stack.enter_context(EmbeddedBroker(data_dir=data_dir))
            settings = settings.model_copy(update={"bootstrap_servers": broker.bootstrap})
            print(f"[2/4] embedded broker on {broker.bootstrap} (data in {data_dir})")
        else:
            print(f"[2/4] using the Kafka cluster at {settings.bootstrap_servers}")
        settings = settings.model_copy(update={"firms_file": sim_dir / "truth.jsonl"})
        asyncio.run(ensure_pipeline_topics(settings))
        group = stack.enter_context(ServiceGroup())
        worker_port = settings.metrics_port
        ingest_port = worker_port + 1 if worker_port else 0
        group.add(ingest_service(settings, out / "logs", metrics_port=ingest_port))
        group.add(worker_service(settings, out / "logs", metrics_port=worker_port))
        print(f"      ingest stage and stream worker started (logs in {out / 'logs'})")
        if worker_port:
            host = settings.metrics_host
            print(f"      metrics: http://{host}:{worker_port}/metrics (worker), http://{host}:{ingest_port}/metrics (ingest)")

        print("[3/4] replaying the event file onto the event topics")
        replay = asyncio.run(
            replay_files([sim_dir / "events.jsonl.gz"], settings, progress=sys.stderr.isatty())
        )
        print("      " + replay.format().replace("\n", "\n      "))

        print("[4/4] waiting for the stream worker to close every firm-day")
        vitality, detections = asyncio.run(_follow_vitality(settings, group, replay.seconds))
    if sys.stderr.isatty():
        sys.stderr.write("\n")
    _summary(vitality, detections, registry, sim, replay, out)
    from riskmon.report import write_report

    report = write_report(out / "vitality.jsonl", out / "report", alerts=list(detections.values()))
    print(f"  report: {report.get('html', out / 'report' / 'index.html')}")
    return 0


async def _follow_vitality(settings: Settings, group: Any, replay_seconds: float) -> tuple[dict, dict]:
    """Read riskmon.vitality and riskmon.detections until both stay idle, showing progress."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    from riskmon.wire import DETECTIONS_TOPIC, VITALITY_TOPIC

    consumer = AIOKafkaConsumer(
        **settings.kafka_client_kwargs(), enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    latest: dict[tuple[str, str], dict] = {}
    detections: dict[tuple[str, str, str], dict] = {}  # deduplicated by (firm, day, name)
    started = time.monotonic()
    try:
        consumer.assign(
            [TopicPartition(t, p) for t in (VITALITY_TOPIC, DETECTIONS_TOPIC) for p in range(settings.partitions)]
        )
        last_data = time.monotonic()
        while time.monotonic() - last_data < 20:
            batch = await consumer.getmany(timeout_ms=500)
            for tp, messages in batch.items():
                for m in messages:
                    rec = orjson.loads(m.value)
                    if tp.topic == VITALITY_TOPIC:
                        latest[(rec["firm_id"], rec["day"])] = rec
                    else:
                        detections[(rec["firm_id"], rec["day"], rec["name"])] = rec
                last_data = time.monotonic()
            bands = Counter(r["band"] for r in latest.values())
            _status(
                f"      firm-days closed {len(latest):,}  "
                + "  ".join(f"{b} {n:,}" for b, n in sorted(bands.items()))
                + f"  detections {len(detections):,}  ({time.monotonic() - started:.0f} s)"
            )
            group.check_alive()
    finally:
        await consumer.stop()
    return latest, detections


def _summary(vitality: dict, detections: dict, registry: Any, sim: Any, replay: Any, out: Path) -> None:
    firms = {firm for firm, _ in vitality}
    days = sorted({day for _, day in vitality})
    last_day = days[-1] if days else None
    final_bands = Counter(rec["band"] for (f, d), rec in vitality.items() if d == last_day)
    ever_distress = sorted({f for (f, d), rec in vitality.items() if rec["band"] == "distress"})
    print()
    print("riskmon demo summary")
    print(f"  events replayed      {replay.events:,} in {replay.seconds:.1f} s ({replay.events_per_second:,.0f} events/s)")
    print(f"  firms scored         {len(firms):,}")
    print(f"  firm-days closed     {len(vitality):,} ({days[0] if days else '-'} .. {last_day or '-'})")
    print(f"  bands on {last_day}: " + ", ".join(f"{b} {n}" for b, n in sorted(final_bands.items())))
    print(f"  firms ever in distress: {len(ever_distress)}")
    new = [d for d in detections.values() if d.get("new", True)]
    by_level = Counter(d["level"] for d in new)
    print("  detections (new episodes) by level: " + (", ".join(f"{lvl} {n}" for lvl, n in sorted(by_level.items())) or "none"))
    freezes = {d["firm_id"] for d in new if d.get("action") == "FREEZE_ADJUSTMENTS"}
    print(f"  firms with a freeze-worthy detection: {len(freezes)}")
    truth = {}
    truth_path = out / "sim" / "truth.jsonl"
    if truth_path.exists():
        for line in truth_path.read_bytes().splitlines():
            row = orjson.loads(line)
            truth[row["firm_id"]] = row["scenario"]
        warned = Counter(truth.get(d["firm_id"], "?") for d in {d["firm_id"]: d for d in new if d["level"] in ("warning", "critical")}.values())
        print("  firms warned by scenario: " + ", ".join(f"{k} {v}" for k, v in sorted(warned.items())))
    path = out / "vitality.jsonl"
    with path.open("wb") as fh:
        for key in sorted(vitality):
            fh.write(orjson.dumps(vitality[key]) + b"\n")
    print(f"  vitality updates written to {path}")
    det_path = out / "detections.jsonl"
    with det_path.open("wb") as fh:
        for key in sorted(detections):
            fh.write(orjson.dumps(detections[key]) + b"\n")
    print(f"  detections written to {det_path}")
