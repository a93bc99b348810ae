"""``riskmon governance``: read the governance decisions, re-enable a paused model.

A re-enable is a request on ``riskmon.governance.input``; the governance stage applies it at the
next decision (the next period boundary of event time), records a ``breaker_reset`` event in that
decision, and every partition applies the decision from that period on. Like any operator act it
is not part of the event file: replaying the file alone reproduces the decisions without it.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import orjson

from riskmon.settings import Settings
from riskmon.topics import GOVERNANCE_INPUT_TOPIC, GOVERNANCE_TOPIC


async def request_reenable(settings: Settings, model: str) -> None:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(
        **settings.kafka_client_kwargs(), acks="all", compression_type=settings.producer_compression()
    )
    await producer.start()
    try:
        await producer.send_and_wait(GOVERNANCE_INPUT_TOPIC, orjson.dumps({"reenable": model}),
                                     key=b"operator", partition=0)
    finally:
        await producer.stop()


def format_decision(d: dict[str, Any]) -> str:
    opened = [e["model"] for e in d["events"] if e.get("event") == "breaker_open"]
    reset = [e["model"] for e in d["events"] if e.get("event") == "breaker_reset"]
    drift = sum(1 for e in d["events"] if e.get("type") == "drift")
    parts = [f"{d['from']}..{d['to']}", f"paused: {', '.join(d['paused']) or '-'}",
             f"resets: {', '.join(f'{s}/{m}' for s, m in d['resets']) or '-'}"]
    if opened:
        parts.append(f"breaker opened: {', '.join(opened)}")
    if reset:
        parts.append(f"re-enabled: {', '.join(reset)}")
    parts.append(f"drift events: {drift}")
    return "  ".join(parts)


def main(args: Any) -> int:
    overrides = {"bootstrap_servers": args.bootstrap} if args.bootstrap else {}
    settings = Settings().model_copy(update=overrides)
    if not settings.bootstrap_servers:
        print("riskmon governance: pass --bootstrap or set RISKMON_BOOTSTRAP_SERVERS", file=sys.stderr)
        return 2
    if args.action == "reenable":
        asyncio.run(request_reenable(settings, args.model))
        print(f"re-enable of {args.model} requested; it applies from the next governance decision")
        return 0
    from riskmon.services import read_topic

    records = asyncio.run(read_topic(settings, GOVERNANCE_TOPIC, lambda r: False, timeout=args.timeout,
                                     idle_exit=min(2.0, args.timeout)))
    seen: dict[int, dict] = {}
    for r in records:
        d = orjson.loads(r.value)
        seen.setdefault(int(d["period"]), d)
    for period in sorted(seen):
        print(format_decision(seen[period]))
    if not seen:
        print("no governance decision published yet")
    return 0
