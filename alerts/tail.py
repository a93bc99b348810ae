"""``riskmon tail alerts|credit|riskshare|watchlist``: print an output topic readably.

Reads the topic from the beginning (no consumer group, nothing committed), keeps the first
message per id as a deduplicating subscriber does, filters by firm and level, and stops at the
end of the topic unless ``--follow``.

>>> line = format_message("credit", {"day": "2026-01-05", "firm_id": "F1", "action": "RELEASE",
...     "before": "frozen", "after": "normal", "alert_id": "a1", "action_id": "b2",
...     "reasons": [{"text": "no freeze-worthy detection for 7 days with data"}]})
>>> print(line)
2026-01-05  F1  RELEASE  frozen -> normal  (alert a1)  no freeze-worthy detection for 7 days with data
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import orjson

from alerts.schema import ID_FIELDS
from riskmon.settings import Settings
from riskmon.wire import ACTION_TOPICS

_LEVELS = ("info", "watch", "warning", "critical")


def _split(s: dict[str, float]) -> str:
    return f"{s['fiscal']:g}:{s['bank']:g}:{s['guarantor']:g}"


def format_message(kind: str, m: dict[str, Any]) -> str:
    """One line per message: day, firm, what happened, the first reason."""
    first = (m.get("reasons") or [{}])[0].get("text", "") if kind != "riskshare" else m["reason"]["text"]
    if kind == "alerts":
        return (f"{m['day']}  {m['firm_id']}  {m['event']:<9} {m['level']:<8} {m['cause']:<19} "
                f"by {m['name']}  action {m['action']}  [{m['alert_id']}]  {first}")
    if kind == "credit":
        return (f"{m['day']}  {m['firm_id']}  {m['action']}  {m['before']} -> {m['after']}  "
                f"(alert {m['alert_id']})  {first}")
    if kind == "riskshare":
        return (f"{m['day']}  {m['firm_id']}  fiscal:bank:guarantor {_split(m['before'])} -> "
                f"{_split(m['after'])}  {m['reason']['code']}: {first}")
    return f"{m['day']}  {m['firm_id']}  {m['event']:<7}  {m.get('level') or '-':<8} {','.join(m['causes']) or '-'}"


def keep(kind: str, m: dict[str, Any], firm: str | None, level: str | None) -> bool:
    if firm is not None and m.get("firm_id") != firm:
        return False
    if level is not None:
        lvl = m.get("level")
        if lvl is None or _LEVELS.index(lvl) < _LEVELS.index(level):
            return False
    return True


class Deduplicator:
    """First message per id wins; counts the re-deliveries (replays, restarts)."""

    def __init__(self, kind: str) -> None:
        self.field = ID_FIELDS[kind]
        self.seen: set[str] = set()
        self.duplicates = 0

    def new(self, m: dict[str, Any]) -> bool:
        key = m[self.field]
        if key in self.seen:
            self.duplicates += 1
            return False
        self.seen.add(key)
        return True


async def tail(settings: Settings, kind: str, firm: str | None = None, level: str | None = None,
               follow: bool = False, as_json: bool = False, out: Any = None) -> tuple[int, int]:
    """Print the topic; returns (messages printed, duplicates skipped)."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    out = out or sys.stdout
    topic = ACTION_TOPICS[kind]
    consumer = AIOKafkaConsumer(**settings.kafka_client_kwargs(), enable_auto_commit=False,
                                auto_offset_reset="earliest", isolation_level="read_committed")
    await consumer.start()
    dedup = Deduplicator(kind)
    printed = 0
    try:
        partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            raise SystemExit(f"riskmon tail: topic {topic} does not exist (has a worker run?)")
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        while True:
            batch = await consumer.getmany(timeout_ms=500, max_records=5000)
            for records in batch.values():
                for r in records:
                    m = orjson.loads(r.value)
                    if dedup.new(m) and keep(kind, m, firm, level):
                        out.write((orjson.dumps(m).decode() if as_json else format_message(kind, m)) + "\n")
                        printed += 1
            if not follow:
                positions = {tp: await consumer.position(tp) for tp in tps}
                if all(positions[tp] >= ends[tp] for tp in tps):
                    break
    finally:
        await consumer.stop()
    return printed, dedup.duplicates


def main(args: Any) -> int:
    settings = Settings()
    if args.bootstrap:
        settings = settings.model_copy(update={"bootstrap_servers": args.bootstrap})
    if not settings.bootstrap_servers:
        print("riskmon tail: pass --bootstrap or set RISKMON_BOOTSTRAP_SERVERS", file=sys.stderr)
        return 2
    try:
        printed, dups = asyncio.run(tail(settings, args.kind, args.firm, args.level, args.follow, args.json))
    except KeyboardInterrupt:
        return 130
    print(f"-- {printed} message(s); {dups} re-delivered duplicate(s) skipped", file=sys.stderr)
    return 0


def add_arguments(p: Any) -> None:
    p.add_argument("kind", choices=sorted(ACTION_TOPICS), help="which output topic")
    p.add_argument("--firm", help="only this firm")
    p.add_argument("--level", choices=_LEVELS, help="only messages at this level or above")
    p.add_argument("--follow", action="store_true", help="keep printing new messages")
    p.add_argument("--json", action="store_true", help="print the messages as JSON lines")
    p.add_argument("--bootstrap", help="Kafka bootstrap servers (default: RISKMON_BOOTSTRAP_SERVERS)")

