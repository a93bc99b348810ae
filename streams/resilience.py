"""Resilience benchmarks: ``riskmon bench crash`` and ``riskmon bench soak``.

* **crash** — replays a simulated file through the broker, ingest stage and one worker, SIGKILLs
  the worker ``--kills`` times during the replay (restarting it with the same id: static
  membership), then reads every output topic back and compares, with what the same file gives
  in process (:func:`streams.backtest.run_backtest`): the vitality updates by (firm, day) and the
  alerts and actions deduplicated by id. Prints how many messages were re-emitted and whether
  the final result equals the clean one. Exit status 1 when it does not.
* **soak** — replays a large file (≥ 5M events with ``--firms 2000 --days 50``), paced with
  ``--speed`` (or at full speed), and prints,
  every ``--sample`` seconds, the events ingested and processed so far, the rates, and the
  resident memory of the worker, the ingest stage and the broker, so that one can see memory
  level off once every firm has been seen (per-firm state is bounded). Pace it below what the
  worker sustains: a backlog is held in memory by the clients, and the embedded noida-db
  broker ignores ``max_partition_fetch_bytes`` (a fetch returns everything behind the
  consumer's position), so a lagging worker's memory grows with its backlog there.

Both start a fresh embedded broker unless RISKMON_BOOTSTRAP_SERVERS is set.
"""

from __future__ import annotations

import asyncio
import re
import sys
import tempfile
import threading
import time
import urllib.request
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import orjson

from alerts.schema import ID_FIELDS
from riskmon.settings import Settings



def rss_mb(pid: int | None) -> float | None:
    """Resident set size of a process in MB (Linux /proc), None when it is gone."""
    if pid is None:
        return None
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None


def scrape(port: int, names: tuple[str, ...]) -> dict[str, float]:
    """Sum of each named metric's samples on a local Prometheus endpoint (0 when absent)."""
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    except OSError:
        return {}
    out = {n: 0.0 for n in names}
    for line in text.splitlines():
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? ([0-9.eE+-]+)$", line)
        if m and m.group(1) in out:
            out[m.group(1)] += float(m.group(3))
    return out


def _population(args: Any, workdir: Path) -> Path:
    if getattr(args, "path", None):
        return Path(args.path)
    from producers.simulator import simulate

    sim = workdir / "sim"
    print(f"simulating {args.firms} firms x {args.days} days (seed {args.seed}) into {sim}", flush=True)
    simulate(args.firms, args.days, args.seed, sim)
    return sim


def _broker_settings(stack: ExitStack, **update: Any) -> tuple[Settings, int | None]:
    """Settings pointing at RISKMON_BOOTSTRAP_SERVERS or at a fresh embedded broker (and its PID)."""
    settings = Settings()
    pid = None
    if not settings.bootstrap_servers:
        from riskmon.broker import EmbeddedBroker

        # the broker's own temporary data dir, removed when it closes (a soak leaves gigabytes)
        broker = stack.enter_context(EmbeddedBroker())
        settings = settings.model_copy(update={"bootstrap_servers": broker.bootstrap})
        pid = broker.pid
    return settings.model_copy(update=update), pid


async def _read_outputs(settings: Settings, want_vitality: int, want_ids: dict[str, set[str]],
                        timeout: float) -> tuple[dict, dict[str, dict[str, dict]], dict[str, int]]:
    """Read vitality and the action topics until everything expected is there (or timeout)."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    from riskmon.wire import ACTION_TOPICS, VITALITY_TOPIC

    kind_of = {t: k for k, t in ACTION_TOPICS.items()}
    consumer = AIOKafkaConsumer(**settings.kafka_client_kwargs(), enable_auto_commit=False,
                                auto_offset_reset="earliest", isolation_level="read_committed",
                                max_partition_fetch_bytes=8 * 1024 * 1024)
    await consumer.start()
    vitality: dict[tuple[str, str], dict] = {}
    actions: dict[str, dict[str, dict]] = {k: {} for k in ACTION_TOPICS}
    raw: dict[str, int] = {"vitality": 0, **{k: 0 for k in ACTION_TOPICS}}
    conflicts = 0
    try:
        topics = (VITALITY_TOPIC, *ACTION_TOPICS.values())
        consumer.assign([TopicPartition(t, p) for t in topics for p in range(settings.partitions)])
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500, max_records=20_000)
            for tp, records in batch.items():
                for r in records:
                    msg = orjson.loads(r.value)
                    if tp.topic == VITALITY_TOPIC:
                        raw["vitality"] += 1
                        key = (msg["firm_id"], msg["day"])
                        if vitality.setdefault(key, msg) != msg:
                            conflicts += 1
                    else:
                        kind = kind_of[tp.topic]
                        raw[kind] += 1
                        if actions[kind].setdefault(msg[ID_FIELDS[kind]], msg) != msg:
                            conflicts += 1
            if len(vitality) >= want_vitality and all(want_ids[k] <= set(actions[k]) for k in want_ids):
                break
    finally:
        await consumer.stop()
    raw["conflicts"] = conflicts
    return vitality, actions, raw


def crash_main(args: Any) -> int:
    from detectors.engine import Engine
    from producers.replay import replay_files
    from riskmon.services import ServiceGroup, ingest_service, worker_service
    from riskmon.topics import ensure_pipeline_topics
    from streams.backtest import run_backtest
    from streams.pipeline import default_governance, default_policy
    from streams.registry import FirmRegistry

    workdir = Path(tempfile.mkdtemp(prefix="riskmon-bench-crash-"))
    sim = _population(args, workdir)
    events = sim / "events.jsonl.gz"
    registry = FirmRegistry.from_file(sim / "truth.jsonl")
    started = time.perf_counter()
    clean = run_backtest([events], registry=registry, detector=Engine(), policy=default_policy(Settings()),
                         governance=default_governance(Settings()))
    want_ids = {k: {m[ID_FIELDS[k]] for m in msgs} for k, msgs in clean.actions.items()}
    print(f"clean run in process: {clean.events_read:,} events, {len(clean.vitality):,} firm-days, "
          + ", ".join(f"{k} {len(v):,}" for k, v in want_ids.items())
          + f" ({time.perf_counter() - started:.0f} s)", flush=True)

    with ExitStack() as stack:
        settings, _ = _broker_settings(stack, firms_file=sim / "truth.jsonl", metrics_port=0)
        asyncio.run(ensure_pipeline_topics(settings))
        group = stack.enter_context(ServiceGroup())
        group.add(ingest_service(settings, workdir))
        worker = group.add(worker_service(settings, workdir, "k"))
        done = threading.Event()
        result: dict[str, Any] = {}

        def replay() -> None:
            try:
                result["summary"] = asyncio.run(replay_files([events], settings, speed=args.speed))
            except BaseException as exc:  # surfaced below
                result["error"] = exc
            finally:
                done.set()

        t0 = time.monotonic()
        thread = threading.Thread(target=replay, daemon=True)
        thread.start()
        kills = 0
        while kills < args.kills and not done.wait(args.interval):
            worker.kill()
            kills += 1
            print(f"  {time.monotonic() - t0:6.1f} s  SIGKILL worker ({kills}/{args.kills}); restarting", flush=True)
            worker = group.add(worker_service(settings, workdir, "k"))
        thread.join()
        if "error" in result:
            raise result["error"]
        print(f"  replay done in {time.monotonic() - t0:.1f} s after {kills} kill(s); reading the outputs back", flush=True)
        vitality, actions, raw = asyncio.run(_read_outputs(settings, len(clean.vitality), want_ids, args.timeout))
        group.check_alive()
    print()
    ok = True
    same_vitality = vitality == clean.vitality
    ok &= same_vitality
    print(f"{'topic':<22}{'records':>10}{'unique':>10}{'clean':>10}  result")
    print(f"{'riskmon.vitality':<22}{raw['vitality']:>10,}{len(vitality):>10,}{len(clean.vitality):>10,}  "
          + ("equal" if same_vitality else "DIFFERENT"))
    for kind, ids in want_ids.items():
        clean_msgs = {m[ID_FIELDS[kind]]: m for m in clean.actions[kind]}
        same = actions[kind] == clean_msgs
        ok &= same
        print(f"{kind:<22}{raw[kind]:>10,}{len(actions[kind]):>10,}{len(ids):>10,}  " + ("equal" if same else
              f"DIFFERENT (missing {len(set(clean_msgs) - set(actions[kind]))}, extra {len(set(actions[kind]) - set(clean_msgs))})"))
    ok &= raw["conflicts"] == 0
    print(f"re-emitted ids with different content: {raw['conflicts']}")
    print(f"kills: {kills}; logs in {workdir}")
    print("RESULT: " + ("the final state equals the clean run" if ok else "MISMATCH"))
    return 0 if ok else 1


def soak_main(args: Any) -> int:
    from producers.replay import replay_files
    from riskmon.broker import free_port
    from riskmon.services import ServiceGroup, ingest_service, worker_service
    from riskmon.topics import ensure_pipeline_topics

    workdir = Path(tempfile.mkdtemp(prefix="riskmon-bench-soak-"))
    sim = _population(args, workdir)
    events = sim / "events.jsonl.gz"
    with ExitStack() as stack:
        settings, broker_pid = _broker_settings(stack, firms_file=sim / "truth.jsonl")
        asyncio.run(ensure_pipeline_topics(settings))
        group = stack.enter_context(ServiceGroup())
        ingest_port, worker_port = free_port(), free_port()
        ingest = group.add(ingest_service(settings, workdir, metrics_port=ingest_port))
        worker = group.add(worker_service(settings, workdir, metrics_port=worker_port))
        done = threading.Event()
        result: dict[str, Any] = {}

        def replay() -> None:
            try:
                result["summary"] = asyncio.run(replay_files([events], settings, speed=args.speed))
            except BaseException as exc:
                result["error"] = exc
            finally:
                done.set()

        t0 = time.monotonic()
        threading.Thread(target=replay, daemon=True).start()
        print(f"{'t s':>7}{'ingested':>13}{'processed':>13}{'backlog':>10}{'firm-days':>11}{'proc ev/s':>11}"
              f"{'worker MB':>11}{'ingest MB':>11}{'broker MB':>11}", flush=True)
        last_t, last_n, idle = t0, 0.0, 0
        total = None
        samples: list[tuple[float, float, float | None]] = []
        while True:
            time.sleep(args.sample)
            group.check_alive()
            ing = scrape(ingest_port, ("riskmon_ingest_events_total",)).get("riskmon_ingest_events_total", 0.0)
            wk = scrape(worker_port, ("riskmon_events_total", "riskmon_duplicate_events_total",
                                      "riskmon_late_events_total", "riskmon_firm_days_closed_total"))
            # processed = accepted + duplicates + late: every event the worker has handled
            n = sum(wk.get(k, 0.0) for k in (
                "riskmon_events_total", "riskmon_duplicate_events_total", "riskmon_late_events_total"))
            now = time.monotonic()
            rate = (n - last_n) / (now - last_t)
            w_mb = rss_mb(worker.pid)
            samples.append((now - t0, n, w_mb))
            print(f"{now - t0:7.0f}{ing:13,.0f}{n:13,.0f}{max(ing - n, 0):10,.0f}"
                  f"{wk.get('riskmon_firm_days_closed_total', 0):11,.0f}"
                  f"{rate:11,.0f}{w_mb or 0:11.0f}{rss_mb(ingest.pid) or 0:11.0f}{rss_mb(broker_pid) or 0:11.0f}",
                  flush=True)
            if done.is_set() and total is None:
                if "error" in result:
                    raise result["error"]
                total = result["summary"].events
            idle = idle + 1 if n == last_n and n > 0 else 0
            last_t, last_n = now, n
            if total is not None and (n >= total * 0.99 and idle >= 2 or idle >= 6):
                break
    elapsed = samples[-1][0] if samples else 0.0
    processed = samples[-1][1] if samples else 0.0
    print()
    print(f"events replayed {total or 0:,}; processed by the worker {processed:,.0f} in {elapsed:.0f} s "
          f"({processed / elapsed if elapsed else 0:,.0f} events/s end to end, sampling granularity {args.sample} s)")
    rss = [s[2] for s in samples if s[2] is not None]
    if rss:
        half = rss[len(rss) // 2:]
        print(f"worker RSS: max {max(rss):.0f} MB; second half of the run {min(half):.0f}..{max(half):.0f} MB")
    print(f"logs in {workdir}")
    return 0


def add_arguments(p: Any) -> None:
    """Options of ``riskmon bench crash|soak`` (the shared bench parser carries --firms, --days,
    --seed and --path)."""
    p.add_argument("--kills", type=int, default=3, help="crash: SIGKILLs during the replay")
    p.add_argument("--interval", type=float, default=20.0, help="crash: seconds between kills")
    p.add_argument("--speed", type=float, default=None,
                   help="crash, soak: replay speed (event-time seconds per second; default: as fast as "
                   "possible; a sustained-load run should stay below what the worker sustains)")
    p.add_argument("--timeout", type=float, default=900.0, help="crash: seconds to wait for the outputs")
    p.add_argument("--sample", type=float, default=10.0, help="soak: seconds between samples")


if __name__ == "__main__":  # pragma: no cover
    sys.exit("use: riskmon bench crash|soak")
