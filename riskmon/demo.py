"""``riskmon demo``: the whole pipeline on one machine, in a few minutes.

Simulates a population of firms, starts the embedded broker (unless RISKMON_BOOTSTRAP_SERVERS
points at one), the ingest stage and a stream worker, replays the events as fast as possible,
follows the vitality updates with a live progress line, and ends with a summary.
"""

from __future__ import annotations

import asyncio
import sys
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

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    sim_dir = out / "sim"
    print(f"[1/4] simulating {args.firms} firms x {args.days} days (seed {args.seed}) into {sim_dir}")
    sim = simulate(args.firms, args.days, args.seed, sim_dir)
    print("      " + sim.format().replace("\n", "\n      "))

    settings = Settings()
    with ExitStack() as stack:
        if not settings.bootstrap_servers:
            # The broker owns a fresh data directory and removes it when it stops: a full demo
            # leaves several GB there (noida-db keeps every record).
            broker = stack.enter_context(EmbeddedBroker())
            settings = settings.model_copy(update={"bootstrap_servers": broker.bootstrap})
            print(f"[2/4] embedded broker on {broker.bootstrap} (data in {broker.data_dir}, removed at the end)")
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
        followed = asyncio.run(_follow_outputs(settings, group))
    if sys.stderr.isatty():
        sys.stderr.write("\n")
    _summary(followed, replay, out)
    from riskmon.report import write_report

    alerts = [a for a in followed.actions["alerts"].values() if a["event"] != "resolved"]
    report = write_report(out / "vitality.jsonl", out / "report", alerts=alerts)
    print(f"  report: {report.get('html', out / 'report' / 'index.html')}")
    return 0


class Followed:
    """What the demo read back: vitality by (firm, day), alerts and actions by id (deduplicated
    as a subscriber would), and the wall time the stream took."""

    def __init__(self) -> None:
        from riskmon.wire import ACTION_TOPICS

        self.vitality: dict[tuple[str, str], dict] = {}
        self.actions: dict[str, dict[str, dict]] = {kind: {} for kind in ACTION_TOPICS}
        self.seconds = 0.0


async def _follow_outputs(settings: Settings, group: Any, idle_s: float = 20.0) -> Followed:
    """Read riskmon.vitality and the alert and action topics until they stay idle, showing a
    progress line (every 10 s when stderr is not a terminal)."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    from alerts.schema import ID_FIELDS
    from riskmon.wire import ACTION_TOPICS, VITALITY_TOPIC

    kind_of = {topic: kind for kind, topic in ACTION_TOPICS.items()}
    consumer = AIOKafkaConsumer(
        **settings.kafka_client_kwargs(), enable_auto_commit=False, auto_offset_reset="earliest",
        isolation_level="read_committed",
    )
    await consumer.start()
    got = Followed()
    started = time.monotonic()
    printed = started
    try:
        topics = (VITALITY_TOPIC, *ACTION_TOPICS.values())
        consumer.assign([TopicPartition(t, p) for t in topics for p in range(settings.partitions)])
        last_data = time.monotonic()
        while time.monotonic() - last_data < idle_s:
            batch = await consumer.getmany(timeout_ms=500)
            for tp, messages in batch.items():
                for m in messages:
                    rec = orjson.loads(m.value)
                    if tp.topic == VITALITY_TOPIC:
                        got.vitality[(rec["firm_id"], rec["day"])] = rec
                    else:
                        kind = kind_of[tp.topic]
                        got.actions[kind].setdefault(rec[ID_FIELDS[kind]], rec)
                last_data = time.monotonic()
            bands = Counter(r["band"] for r in got.vitality.values())
            credit = Counter(c["action"] for c in got.actions["credit"].values())
            line = (
                f"      firm-days closed {len(got.vitality):,}  "
                + "  ".join(f"{b} {n:,}" for b, n in sorted(bands.items()))
                + f"  alerts {len({a['alert_id'] for a in got.actions['alerts'].values()}):,}"
                + f"  freezes {credit.get('FREEZE_ADJUSTMENTS', 0):,}"
                + f"  ({time.monotonic() - started:.0f} s)"
            )
            if sys.stderr.isatty():
                _status(line)
            elif time.monotonic() - printed >= 10:
                print(line, flush=True)
                printed = time.monotonic()
            group.check_alive()
    finally:
        await consumer.stop()
    got.seconds = last_data - started
    return got


def _summary(got: Followed, replay: Any, out: Path) -> None:
    from alerts.tail import format_message
    from streams.backtest import ACTION_FILES, format_actions_summary

    vitality = got.vitality
    firms = {firm for firm, _ in vitality}
    days = sorted({day for _, day in vitality})
    last_day = days[-1] if days else None
    final_bands = Counter(rec["band"] for (f, d), rec in vitality.items() if d == last_day)
    ever_distress = sorted({f for (f, d), rec in vitality.items() if rec["band"] == "distress"})
    actions = {kind: sorted(msgs.values(), key=lambda m: (m["day"], m["firm_id"])) for kind, msgs in got.actions.items()}
    print()
    print("riskmon demo summary")
    print(f"  events replayed      {replay.events:,} in {replay.seconds:.1f} s ({replay.events_per_second:,.0f} events/s)")
    print(f"  stream caught up     {got.seconds:.1f} s after the replay ended")
    print(f"  firms scored         {len(firms):,}")
    print(f"  firm-days closed     {len(vitality):,} ({days[0] if days else '-'} .. {last_day or '-'})")
    print(f"  bands on {last_day}: " + ", ".join(f"{b} {n}" for b, n in sorted(final_bands.items())))
    print(f"  firms ever in distress: {len(ever_distress)}")
    print("  " + format_actions_summary(actions).replace("\n", "\n  "))
    truth: dict[str, str] = {}
    truth_path = out / "sim" / "truth.jsonl"
    if truth_path.exists():
        for line in truth_path.read_bytes().splitlines():
            row = orjson.loads(line)
            truth[row["firm_id"]] = row["scenario"]
        frozen = Counter(truth.get(c["firm_id"], "?") for c in actions["credit"] if c["action"] == "FREEZE_ADJUSTMENTS")
        print("  freezes by scenario: " + (", ".join(f"{k} {v}" for k, v in sorted(frozen.items())) or "none"))
    freezes = [c for c in actions["credit"] if c["action"] == "FREEZE_ADJUSTMENTS"]
    if freezes:
        firm = freezes[0]["firm_id"]
        print(f"  one firm's story ({firm}, scenario {truth.get(firm, '?')}):")
        for kind in ("alerts", "credit", "riskshare"):
            for m in actions[kind]:
                if m["firm_id"] == firm:
                    print("    " + format_message(kind, m)[:160])
    path = out / "vitality.jsonl"
    with path.open("wb") as fh:
        for key in sorted(vitality):
            fh.write(orjson.dumps(vitality[key]) + b"\n")
    print(f"  vitality updates written to {path}")
    for kind, name in ACTION_FILES.items():
        with (out / name).open("wb") as fh:
            for m in actions[kind]:
                fh.write(orjson.dumps(m) + b"\n")
    print(f"  alerts and actions written to {out}/{{" + ",".join(ACTION_FILES.values()) + "}")
