"""Dead-letter handling of the ingest stage under garbage input (issue #7, part 1).

In process (fast): every entry of the fuzz corpus (``fuzz_corpus.py``) and thousands of random
mutations go through :class:`streams.ingest.IngestRouter` without an exception, each bad record or
envelope member produces exactly one dead letter with the documented headers, and the valid events
interleaved with the garbage are routed exactly as without it. Plus the limits that keep the stage
alive: internal records under the broker's size limit, dead letters truncated, absurd timestamps
rejected by the contract (and by the fast path, identically).

On a real broker (``integration``): a small simulated population is written onto the event topics
as batch envelopes and single-event records, with the corpus interleaved — garbage records written
straight onto the topics as kcat would, bad members inside valid envelopes, broken envelopes and
watermarks. The ingest stage and a Faust worker run as processes; neither may crash, every bad
record must land on ``<topic>.dlq`` with its headers, the dead-letter counts (topics, log, metrics)
must be exact, and the vitality output must equal the in-process backtest of the valid events
alone.
"""

from __future__ import annotations

import asyncio
import random
import re
import time
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

import orjson
import pytest

from producers.replay import MemorySink, replay_files
from producers.simulator import simulate
from riskmon.events import (
    MAX_EVENT_TIME,
    MIN_EVENT_TIME,
    EventError,
    validate_event,
)
from riskmon.fastcheck import fast_check
from riskmon.services import ServiceGroup, ingest_service, read_topic, worker_service
from riskmon.settings import Settings
from riskmon.wire import EVENT_TOPICS, VITALITY_TOPIC, dlq_topic
from kafka_population import backtest_vitality  # tests/streams/kafka_population.py
from streams.ingest import (
    DLQ_MAX_KEY_BYTES,
    DLQ_MAX_VALUE_BYTES,
    ENVELOPE_MAX_BYTES,
    IngestRouter,
)
from streams.pipeline import collect_vitality

from fuzz_corpus import (  # tests/streams/fuzz_corpus.py
    STREAMS,
    Bad,
    bad_envelopes,
    bad_members,
    bad_single_records,
    encode,
    mutate_record,
    valid_event,
)

REQUIRED_HEADERS = ("error", "source_topic", "source_partition", "source_offset", "time")
NOW = 1_796_000_000.0  # the routers' clock in the in-process tests (2026-11-30)


def _headers(dead) -> dict[str, bytes]:
    return dict(dead.headers)


def _check_headers(dead, topic: str, partition: int, offset: int, clock: float | None = None) -> dict:
    h = _headers(dead)
    for name in REQUIRED_HEADERS:
        assert name in h, f"dead letter without header {name!r}: {h}"
    assert h["source_topic"] == topic.encode()
    assert h["source_partition"] == str(partition).encode()
    assert h["source_offset"] == str(offset).encode()
    t = float(h["time"])
    if clock is not None:
        assert t == clock
    assert dead.topic == dlq_topic(topic)
    return h


# ---------------------------------------------------------------------------------------------
# in process
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", bad_single_records() + bad_envelopes(), ids=lambda b: b.name)
def test_every_bad_record_is_dead_lettered_whole_with_its_reason(bad: Bad) -> None:
    router = IngestRouter(partitions=4, clock=lambda: NOW)
    topic = EVENT_TOPICS[bad.stream]
    router.on_record(topic, 2, 17, bad.value, bad.key)
    out, dead = router.drain()
    assert out == [] and len(dead) == 1
    h = _check_headers(dead[0], topic, 2, 17, clock=NOW)
    assert bad.error.encode() in h["error"], h["error"]
    assert b"internal error" not in h["error"]
    assert "envelope_index" not in h
    if len(bad.value) <= DLQ_MAX_VALUE_BYTES:
        assert dead[0].value == bad.value  # the record as it came
    else:
        assert dead[0].value == bad.value[:DLQ_MAX_VALUE_BYTES]
        assert h["value_truncated"] == str(len(bad.value)).encode()
    if bad.key is not None and len(bad.key) > DLQ_MAX_KEY_BYTES:
        assert dead[0].key == bad.key[:DLQ_MAX_KEY_BYTES]
        assert h["key_truncated"] == str(len(bad.key)).encode()
    else:
        assert dead[0].key == bad.key
    assert router.counts.dead_letters == 1 and router.counts.records == 1
    assert router.counts.dead_letters_by_topic == {dlq_topic(topic): 1}
    assert sum(router.counts.events.values()) == 0 and router.counts.watermarks == 0


@pytest.mark.parametrize("bad", bad_members(), ids=lambda b: b.name)
def test_a_bad_envelope_member_is_dead_lettered_alone(bad: Bad) -> None:
    router = IngestRouter(partitions=4, clock=lambda: NOW)
    topic = EVENT_TOPICS[bad.stream]
    before = valid_event(bad.stream, firm="F000001", n=1)
    after = valid_event(bad.stream, firm="F000002", n=2)
    envelope = encode({"riskmon_batch": 1, "events": [before, bad.value, after]})
    router.on_record(topic, 1, 5, envelope)
    out, dead = router.drain()
    forwarded = [
        ev["event_id"]
        for _, value in out
        for seg in orjson.loads(value)["segments"]
        for ev in seg.get("events", [])
    ]
    assert sorted(forwarded) == sorted([before["event_id"], after["event_id"]])
    assert len(dead) == 1
    h = _check_headers(dead[0], topic, 1, 5, clock=NOW)
    assert h["envelope_index"] == b"1"
    assert bad.error.encode() in h["error"], h["error"]
    assert b"internal error" not in h["error"]
    assert orjson.loads(dead[0].value) == bad.value  # the member itself, re-encoded
    assert router.counts.events[bad.stream] == 2 and router.counts.dead_letters == 1


def test_random_garbage_never_raises_and_leaves_the_valid_stream_unchanged() -> None:
    """Thousands of mutated records interleaved with a valid stream: no exception, no internal
    error, every record accounted for, and the valid events come out exactly as without them."""
    rng = random.Random(20260107)
    valid: list[tuple[str, int, bytes]] = []
    for i in range(1500):
        stream = rng.choice(STREAMS)
        ev = valid_event(stream, firm=f"F{rng.randrange(40):06d}", n=i, day=f"2025-11-{1 + i // 300:02d}")
        ev["event_id"] = f"ok-{i}"
        if rng.random() < 0.3:
            valid.append((stream, rng.randrange(4), orjson.dumps({"riskmon_batch": 1, "events": [ev]})))
        else:
            valid.append((stream, rng.randrange(4), orjson.dumps(ev)))
        if i % 200 == 199:  # a watermark broadcast, as riskmon's producers send them
            wm = orjson.dumps({"riskmon_watermark": 1, "time": f"2025-11-{1 + i // 300:02d}T12:00:00+08:00"})
            valid.extend((s, q, wm) for s in STREAMS for q in range(4))

    def run(records: list[tuple[str, int, bytes]]) -> tuple[IngestRouter, dict, list]:
        router = IngestRouter(partitions=4, clock=lambda: NOW, envelope_max_events=50)
        offsets: dict[tuple[str, int], int] = {}
        seqs: dict[tuple[int, str, int], list[str]] = {}
        dead_all = []
        for k, (stream, q, value) in enumerate(records):
            off = offsets.get((stream, q), 0)
            offsets[(stream, q)] = off + 1
            router.on_record(EVENT_TOPICS[stream], q, off, value, None)
            if k % 97 == 0:  # a poll ends
                out, dead = router.drain()
                _collect(out, seqs)
                dead_all.extend(dead)
        out, dead = router.drain()
        _collect(out, seqs)
        dead_all.extend(dead)
        return router, seqs, dead_all

    clean_router, clean, clean_dead = run(valid)
    assert clean_dead == [] and sum(clean_router.counts.events.values()) == 1500

    mixed = list(valid)
    n_garbage = 4000
    for n in range(n_garbage):
        stream = rng.choice(STREAMS)
        mixed.insert(rng.randrange(len(mixed) + 1), (stream, rng.randrange(4), mutate_record(rng, stream, n)))
    router, got, dead = run(mixed)
    assert router.counts.records == len(mixed)
    for d in dead:
        h = _headers(d)
        assert all(name in h for name in REQUIRED_HEADERS)
        assert not h["error"].startswith(b"internal error"), h["error"]
    # Events of the valid stream: the same ones, in the same order per (target, stream, source).
    ok_only = {k: [e for e in v if e.startswith("ok-")] for k, v in got.items()}
    assert {k: v for k, v in ok_only.items() if v} == clean
    # Accounting: a garbage record is a dead letter, a watermark, valid event(s) (a mutation can
    # produce a valid event), or an envelope whose members are each forwarded or dead-lettered.
    forwarded_garbage = sum(len(v) for v in got.values()) - 1500
    assert router.counts.dead_letters == len(dead) > n_garbage // 2
    assert sum(router.counts.events.values()) == 1500 + forwarded_garbage


def _collect(out: list[tuple[int, bytes]], seqs: dict[tuple[int, str, int], list[str]]) -> None:
    for target, value in out:
        for seg in orjson.loads(value)["segments"]:
            if "events" in seg:
                seqs.setdefault((target, seg["stream"], seg["src"]), []).extend(e["event_id"] for e in seg["events"])


def test_single_events_are_forwarded_as_they_came_and_read_like_envelope_members() -> None:
    """A valid single-event record goes into the internal envelope byte for byte (not decoded and
    encoded again); the worker's decoding of it equals that of the same event sent in an
    envelope, whether the record took the fast path (canonical) or the contract's validator."""
    from riskmon.fastcheck import fast_line

    canonical = orjson.dumps(valid_event("payment", n=1))
    spaced = b'{ "event_id": "fz-pa-2", "firm_id": "F900001", "type": "payment",\n "event_time": ' \
             b'"2025-11-02 10:00:00+08:00", "source": "fu\\u007az", "txn_id": "T2", "amount": 88, ' \
             b'"direction": "in", "channel": "pos" }'
    assert fast_line(canonical) is not None and fast_check(orjson.loads(spaced)) is None
    singles = IngestRouter(partitions=1, clock=lambda: NOW)
    members = IngestRouter(partitions=1, clock=lambda: NOW)
    topic = EVENT_TOPICS["payment"]
    for offset, value in enumerate((canonical, spaced)):
        singles.on_record(topic, 0, offset, value)
    members.on_record(topic, 0, 0, b'{"riskmon_batch":1,"events":[' + canonical + b"," + spaced + b"]}")
    (out_single, dead_single), (out_member, dead_member) = singles.drain(), members.drain()
    assert dead_single == dead_member == []
    assert canonical in out_single[0][1] and spaced in out_single[0][1]
    assert spaced not in out_member[0][1]
    assert orjson.loads(out_single[0][1]) == orjson.loads(out_member[0][1])
    assert orjson.loads(out_single[0][1])["segments"][0]["events"][1]["source"] == "fuzz"


def test_internal_records_stay_under_the_broker_limit() -> None:
    """A burst of large single-event records into one partition, no watermark: the ingest stage
    must not build an internal record the broker refuses (about 1 MiB), which would stop it."""
    router = IngestRouter(partitions=1, clock=lambda: NOW)
    for i in range(20_000):
        ev = valid_event("invoice", firm="F" + "9" * 63, n=i)
        ev.update(event_id=f"{i:08d}" + "e" * 120, invoice_id="I" * 128, counterparty_id="C" * 128, source="s" * 64)
        router.on_record(EVENT_TOPICS["invoice"], 0, i, orjson.dumps(ev))
    out, dead = router.drain()
    assert not dead
    assert max(len(v) for _, v in out) <= ENVELOPE_MAX_BYTES
    ids = [e["event_id"] for _, v in out for s in orjson.loads(v)["segments"] for e in s["events"]]
    assert ids == [f"{i:08d}" + "e" * 120 for i in range(20_000)]  # all of them, in order


def test_absurd_timestamps_are_outside_the_contract_and_the_fast_path_agrees() -> None:
    def verdicts(**fields: str) -> tuple[bool, bool]:
        ev = {**valid_event("payment"), **fields}
        try:
            validate_event(ev)
            contract = True
        except EventError:
            contract = False
        return contract, fast_check(ev) is not None

    for stamp in ("0001-01-01T00:00:00+14:00", "1970-01-01T00:00:00Z", "1999-12-31T23:59:59.999999Z",
                  "2100-01-01T00:00:00.000001Z", "2150-01-01T00:00:00+08:00", "9999-12-31T23:59:59-12:00"):
        assert verdicts(event_time=stamp) == (False, False), stamp
        assert verdicts(event_time="2025-11-01T00:00:00Z", delivered_at=stamp)[0] is False, stamp
    for stamp in ("2000-01-01T00:00:00Z", "2100-01-01T00:00:00Z", "2100-01-01T08:00:00+08:00"):
        assert verdicts(event_time=stamp) == (True, True), stamp
    assert MIN_EVENT_TIME.year == 2000 and MAX_EVENT_TIME.year == 2100


def test_events_and_watermarks_from_the_future_by_the_ingest_clock() -> None:
    router = IngestRouter(partitions=2, clock=lambda: NOW, max_future_s=86400)
    iso = lambda t: datetime.fromtimestamp(t, timezone.utc).isoformat()  # noqa: E731
    topic = EVENT_TOPICS["payment"]
    soon, later = iso(NOW + 3600), iso(NOW + 2 * 86400)
    router.on_record(topic, 0, 0, orjson.dumps(valid_event("payment", n=1) | {"event_time": soon}))
    router.on_record(topic, 0, 1, orjson.dumps(valid_event("payment", n=2) | {"event_time": later}))
    router.on_record(topic, 0, 2, orjson.dumps(valid_event("payment", n=3) | {"delivered_at": later}))
    router.on_record(topic, 0, 3, orjson.dumps({"riskmon_watermark": 1, "time": soon}))
    router.on_record(topic, 0, 4, orjson.dumps({"riskmon_watermark": 1, "time": later}))
    out, dead = router.drain()
    assert [int(_headers(d)["source_offset"]) for d in dead] == [1, 2, 4]
    assert all(b"RISKMON_INGEST_MAX_FUTURE_S" in _headers(d)["error"] for d in dead)
    assert router.counts.events["payment"] == 1 and router.counts.watermarks == 1


def test_a_failed_transaction_rolls_the_router_back() -> None:
    router = IngestRouter(partitions=2, clock=lambda: NOW)
    topic = EVENT_TOPICS["payment"]
    router.on_record(topic, 0, 0, orjson.dumps(valid_event("payment", n=1)))
    router.drain()
    saved = router.counts.copy()
    router.on_record(topic, 0, 1, orjson.dumps(valid_event("payment", n=2)))
    router.on_record(topic, 0, 2, b"garbage")
    router.rollback(saved)
    assert router.drain() == ([], [])
    assert router.counts == saved and router.counts.events["payment"] == 1


# ---------------------------------------------------------------------------------------------
# on a real broker
# ---------------------------------------------------------------------------------------------

FIRMS, DAYS, PARTITIONS = 10, 6, 4


@pytest.fixture(scope="module")
def population(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("fuzzsim")
    simulate(FIRMS, DAYS, seed=23, out_dir=out, shares={"shutdown": 0.2, "data_outage": 0.1})
    return out


@pytest.fixture(scope="module")
def expected(population: Path) -> dict:
    return backtest_vitality(population, FIRMS, DAYS)


def _future_garbage(stream: str) -> list[Bad]:
    """Contract-valid in form but dated 20 years ahead of now: only the ingest clock check
    (RISKMON_INGEST_MAX_FUTURE_S) catches them."""
    ahead = datetime.fromtimestamp(time.time() + 20 * 365 * 86400, timezone.utc).isoformat()
    return [
        Bad(f"{stream}: watermark 20 years ahead", stream,
            orjson.dumps({"riskmon_watermark": 1, "time": ahead}), "RISKMON_INGEST_MAX_FUTURE_S"),
        Bad(f"{stream}: event 20 years ahead", stream,
            orjson.dumps(valid_event(stream, firm="F000001") | {"event_time": ahead}), "RISKMON_INGEST_MAX_FUTURE_S",
            key=b"F000001"),
    ]


def _build_input(population: Path, settings: Settings, rng: random.Random):
    """The replay's records with garbage interleaved, per topic-partition in order. Returns
    ``{(topic, partition): [(key, value, expected)]}`` where ``expected`` is None for a valid
    record, ``("whole", Bad)`` or ``("members", {index: Bad})``."""
    sink = MemorySink()
    summary = asyncio.run(replay_files([population / "events.jsonl.gz"], settings, sink=sink, batch_size=25))
    assert summary.bad_lines == 0
    logs: dict[tuple[str, int], list] = {}
    members = bad_members()
    for rec in sink.records:
        entries = logs.setdefault((rec.topic, rec.partition), [])
        obj = orjson.loads(rec.value)
        if "riskmon_batch" in obj and rng.random() < 0.3:
            # as kcat would send them: one record per event, keyed by firm
            entries.extend((e["firm_id"].encode(), orjson.dumps(e), None) for e in obj["events"])
        elif "riskmon_batch" in obj and rng.random() < 0.3:
            stream = next(s for s, t in EVENT_TOPICS.items() if t == rec.topic)
            events: list = list(obj["events"])
            inserted = {}
            for bad in rng.sample([b for b in members if b.stream == stream], 3):
                events.insert(rng.randrange(len(events) + 1), ("BAD", bad))
            for i, e in enumerate(events):
                if isinstance(e, tuple):
                    inserted[i] = e[1]
                    events[i] = e[1].value
            entries.append((rec.key, encode({"riskmon_batch": 1, "events": events}), ("members", inserted)))
        else:
            entries.append((rec.key, rec.value, None))
    garbage = bad_single_records() + bad_envelopes()
    for stream in STREAMS:
        garbage += _future_garbage(stream)
    for bad in garbage:
        q = rng.randrange(settings.partitions)
        entries = logs[(EVENT_TOPICS[bad.stream], q)]
        # anywhere before the closing watermarks at the end of each partition
        entries.insert(rng.randrange(len(entries) - 8), (bad.key, bad.value, ("whole", bad)))
    return logs


async def _produce(settings: Settings, logs) -> dict[tuple[str, int, int], tuple]:
    from aiokafka import AIOKafkaProducer

    from riskmon.topics import ensure_pipeline_topics

    await ensure_pipeline_topics(settings)
    producer = AIOKafkaProducer(
        **settings.kafka_client_kwargs(), enable_idempotence=True, acks="all", linger_ms=5,
        max_request_size=2 * 1024 * 1024,
    )
    await producer.start()
    try:
        pending = []
        for (topic, partition), entries in logs.items():
            for key, value, expected in entries:
                fut = await producer.send(topic, value, key=key, partition=partition)
                pending.append((fut, expected))
        where: dict[tuple[str, int, int], tuple] = {}
        for fut, expected in pending:
            md = await fut
            if expected is not None:
                where[(md.topic, md.partition, md.offset)] = expected
        return where
    finally:
        await producer.stop()


def _scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        return resp.read().decode()


def _metric(text: str, name: str, **labels: str) -> float:
    sel = ",".join(f'{k}="{v}"' for k, v in labels.items())
    pattern = re.escape(name) + (r"\{" + re.escape(sel) + r"\}" if sel else "") + r" ([0-9.e+]+)"
    m = re.search(pattern, text)
    return float(m.group(1)) if m else 0.0


@pytest.mark.integration
@pytest.mark.slow
def test_garbage_on_the_event_topics_is_dead_lettered_and_changes_nothing(
    fresh_broker, population: Path, expected: dict, tmp_path: Path
) -> None:
    settings = Settings(
        bootstrap_servers=fresh_broker.bootstrap,
        partitions=PARTITIONS,
        firms_file=population / "truth.jsonl",
        checkpoint_records=50,
        metrics_port=0,
        ingest_max_future_s=10 * 365 * 86400.0,
    )
    rng = random.Random(7)
    logs = _build_input(population, settings, rng)
    where = asyncio.run(_produce(settings, logs))
    n_records = sum(len(v) for v in logs.values())
    # expected dead letters: (dlq topic, source partition, source offset, envelope index) -> Bad
    wanted: dict[tuple[str, int, int, int | None], Bad] = {}
    for (topic, partition, offset), (kind, info) in where.items():
        if kind == "whole":
            wanted[(dlq_topic(topic), partition, offset, None)] = info
        else:
            for index, bad in info.items():
                wanted[(dlq_topic(topic), partition, offset, index)] = bad
    per_topic: dict[str, int] = {}
    for dlq, *_ in wanted:
        per_topic[dlq] = per_topic.get(dlq, 0) + 1
    assert len(wanted) > 400 and len(per_topic) == 4

    with ServiceGroup() as group:
        ingest = group.add(ingest_service(settings, tmp_path))
        group.add(worker_service(settings, tmp_path))

        def done(records: list) -> bool:
            return len({(r.key, orjson.loads(r.value)["day"]) for r in records}) >= len(expected)

        vitality = asyncio.run(read_topic(settings, VITALITY_TOPIC, done, timeout=180))
        # Every record has been through the ingest stage once its metrics say so.
        port = int(re.search(r"metrics on http://127\.0\.0\.1:(\d+)/", ingest.log_path.read_text()).group(1))
        deadline = time.monotonic() + 60
        while _metric(_scrape(port), "riskmon_ingest_records_total") < n_records and time.monotonic() < deadline:
            time.sleep(0.5)
        metrics_text = _scrape(port)
        assert _metric(metrics_text, "riskmon_ingest_records_total") == n_records
        for dlq, n in per_topic.items():
            assert _metric(metrics_text, "riskmon_dead_letters_total", topic=dlq) == n, dlq
        dead = {}
        for dlq, n in per_topic.items():
            records = asyncio.run(read_topic(settings, dlq, lambda r, n=n: len(r) >= n, timeout=60, idle_exit=3))
            dead[dlq] = records
        group.check_alive()

    # The vitality output is exactly the backtest of the valid events alone.
    got = collect_vitality((r.key, r.value) for r in vitality)
    assert got == expected, f"missing {sorted(set(expected) - set(got))[:5]} extra {sorted(set(got) - set(expected))[:5]}"

    # Each bad record or member is on its topic's DLQ exactly once, with its headers and reason.
    seen: dict[tuple[str, int, int, int | None], object] = {}
    for dlq, records in dead.items():
        assert len(records) == per_topic[dlq], dlq
        source = dlq[: -len(".dlq")]
        for r in records:
            h = {k: v for k, v in r.headers}
            for name in REQUIRED_HEADERS:
                assert name in h, (dlq, h)
            assert h["source_topic"] == source.encode()
            assert abs(float(h["time"]) - time.time()) < 600
            index = int(h["envelope_index"]) if "envelope_index" in h else None
            key = (dlq, int(h["source_partition"]), int(h["source_offset"]), index)
            assert key in wanted, f"unexpected dead letter {key}: {h['error'][:200]!r}"
            assert key not in seen, f"dead-lettered twice: {key}"
            seen[key] = r
            bad = wanted[key]
            assert bad.error.encode() in h["error"], (bad.name, h["error"][:300])
            if index is None:
                original = bad.value
                assert r.value == original[:DLQ_MAX_VALUE_BYTES] if len(original) > DLQ_MAX_VALUE_BYTES else r.value == original
            else:
                assert orjson.loads(r.value) == bad.value
    assert set(seen) == set(wanted)

    # The ingest stage never crashed or hit an internal error, and counted the same.
    log = (tmp_path / "ingest-0.log").read_text(errors="replace")
    assert "Traceback" not in log and "internal error" not in log
    stopped = re.search(r"ingest stopped: (\d+) records, \d+ events, \d+ watermarks, (\d+) dead letters \(([^)]*)\)", log)
    assert stopped, log[-2000:]
    assert int(stopped.group(1)) == n_records and int(stopped.group(2)) == len(wanted)
    assert dict(
        (t, int(n)) for t, n in (item.split(": ") for item in stopped.group(3).split(", "))
    ) == per_topic
    assert "Traceback" not in (tmp_path / "worker-0.log").read_text(errors="replace")


# ---------------------------------------------------------------------------------------------
# secrets (docs/security.md)
# ---------------------------------------------------------------------------------------------


def test_no_secret_in_settings_or_in_the_logs_of_a_failing_start(caplog: pytest.LogCaptureFixture) -> None:
    """SASL and key passwords appear in no repr, dump or log line, even when the ingest stage
    fails to reach its broker with every logger at DEBUG, nor in Faust's credentials."""
    import logging

    from riskmon.broker import free_port
    from streams.app import _credentials
    from streams.ingest import run_ingest

    password, key_password = "pw-Zq81-never-logged", "key-Zq81-never-logged"
    settings = Settings(
        bootstrap_servers=f"127.0.0.1:{free_port()}",  # nothing listens there
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-256",
        sasl_username="riskmon-ingest",
        sasl_password=password,
        ssl_password=key_password,
    )
    texts = [repr(settings), str(settings), settings.model_dump_json(), str(settings.model_dump())]
    texts.append(repr(_credentials(settings)))
    caplog.set_level(logging.DEBUG)
    with pytest.raises(Exception) as info:
        asyncio.run(asyncio.wait_for(run_ingest(settings), 60))
    texts += [str(info.value), repr(info.value)]
    texts += [r.getMessage() for r in caplog.records]
    texts += [str(r.args) for r in caplog.records]
    assert len(caplog.records) > 0
    for text in texts:
        assert password not in text and key_password not in text, text[:300]
