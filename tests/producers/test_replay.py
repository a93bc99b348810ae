"""Replay: validation fast path, watermarks, pacing (no broker) and end-to-end on the real broker.

The synthetic event-file generator here (:func:`synthetic_lines`) is also what the replay
benchmark uses until the simulator exists; the expected results are always computed from the
lines with the contract's own validator (:func:`riskmon.events.validate_event`), never from
replay's code.
"""

from __future__ import annotations

import asyncio
import gzip
import io
import json
import random
from collections import defaultdict
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import orjson
import pytest

from producers import replay
from producers.replay import MemorySink, ReplayError, fast_check, replay_files
from riskmon import wire
from riskmon.events import EventError, parse_event, validate_event
from riskmon.settings import Settings

CST = timezone(timedelta(hours=8))
FAST_LINES = [f for f in (replay._fast_line_orjson, replay._fast_line_msgspec) if f is not None]
START = datetime(2026, 1, 5, 0, 0, tzinfo=CST)

# --------------------------------------------------------------------------------------------
# synthetic event files
# --------------------------------------------------------------------------------------------

_BAD_LINES = [
    b"this is not json",
    b'{"event_id": "x", "firm_id": "F1", "type": "payment"',  # truncated JSON
    b"[1, 2, 3]",
    b"{}",
    b'{"event_id":"b1","firm_id":"F00001","type":"telepathy","event_time":"2026-01-05T10:00:00+08:00","source":"x"}',
    b'{"event_id":"b2","firm_id":"F00001","type":"electricity","event_time":"2026-01-05T10:00:00+08:00","source":"grid","meter_id":"m1","interval_minutes":60,"kwh":-3.0}',
    b'{"event_id":"b3","firm_id":"F00001","type":"invoice","event_time":"2026-01-05T10:00:00+08:00","source":"tax","invoice_id":"i1","kind":"issued","counterparty_id":"c1","amount":10,"tax":20}',
    b'{"event_id":"b4","firm_id":"F00001","type":"payment","event_time":"2026-01-05T10:00:00+08:00","delivered_at":"2026-01-05T09:00:00+08:00","source":"pos","txn_id":"t1","amount":5,"direction":"in","channel":"pos"}',
    b'{"event_id":"b5","firm_id":"F 1","type":"payment","event_time":"2026-01-05T10:00:00+08:00","source":"pos","txn_id":"t1","amount":5,"direction":"in","channel":"pos"}',
    b'{"event_id":"b6","firm_id":"F00001","type":"payment","event_time":"2026-01-05T10:00:00","source":"pos","txn_id":"t1","amount":5,"direction":"in","channel":"pos"}',
    b'{"event_id":"b7","firm_id":"F00001","type":"logistics","event_time":"2026-01-05T10:00:00+08:00","source":"sf","order_id":"o1","status":"lost","value":1,"weight_kg":1}',
]


def _iso(dt: datetime, rng: random.Random, canonical: bool = True) -> str:
    """An ISO-8601 string in one of the forms producers write (or, rarely, a valid but unusual
    one that the fast path leaves to pydantic)."""
    r = rng.random()
    if not canonical:
        # valid for pydantic, not canonical: lower-case separator, space, offset without colon
        forms = [
            dt.isoformat().replace("T", "t"),
            dt.isoformat().replace("T", " "),
            dt.strftime("%Y-%m-%dT%H:%M:%S%z"),
        ]
        return rng.choice(forms)
    if r < 0.6:
        return dt.replace(microsecond=0).isoformat()
    if r < 0.8:
        return dt.astimezone(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    if r < 0.9:
        return dt.isoformat(timespec="milliseconds")
    return dt.astimezone(timezone.utc).isoformat(timespec="microseconds")


def synthetic_lines(
    n_events: int,
    *,
    seed: int = 7,
    firms: int = 300,
    events_per_hour: float = 600.0,
    bad_every: int = 400,
    dup_rate: float = 0.01,
    disorder_rate: float = 0.02,
    odd_rate: float = 0.01,
    blank_rate: float = 0.002,
    start: datetime = START,
) -> list[bytes]:
    """Lines of an event file in arrival order: ``n_events`` valid events of the four types
    (late invoices, electricity up to 2 h late, some without delivered_at, some duplicates, some
    slightly out of arrival order, some in valid but non-canonical forms), plus a bad line every
    ``bad_every`` events (0: none) and a few blank lines."""
    rng = random.Random(seed)
    firm_ids = [f"F{i:05d}" for i in range(1, firms + 1)]
    arrival = start
    mean_gap = 3600.0 / events_per_hour
    lines: list[bytes] = []
    recent: list[bytes] = []
    n = 0
    bad_i = 0
    while n < n_events:
        arrival = arrival + timedelta(seconds=rng.expovariate(1.0 / mean_gap))
        delivered = arrival
        if rng.random() < disorder_rate:
            delivered = arrival - timedelta(seconds=rng.uniform(1, 1800))  # stamped earlier
        firm = rng.choice(firm_ids)
        kind = rng.choices(["payment", "electricity", "logistics", "invoice"], [50, 30, 12, 8])[0]
        if kind == "electricity":
            delay = timedelta(minutes=rng.uniform(0, 120))
        elif kind == "invoice":
            delay = timedelta(hours=rng.uniform(12, 36))  # T+1
        elif kind == "logistics":
            delay = timedelta(minutes=rng.uniform(0, 30))
        else:
            delay = timedelta(seconds=rng.uniform(0, 30))
        event_time = delivered - delay
        odd = rng.random() < odd_rate
        ev: dict[str, Any] = {
            "event_id": f"{kind[0]}-{seed}-{n}",
            "firm_id": firm,
            "type": kind,
            "event_time": _iso(event_time, rng),
            "source": {"payment": "pos-gw", "electricity": "grid", "logistics": "sf", "invoice": "tax"}[kind],
        }
        omit_delivery = rng.random() < 0.1
        if omit_delivery:
            ev["event_time"] = _iso(delivered, rng)  # arrival = event_time
        else:
            ev["delivered_at"] = _iso(delivered, rng, canonical=not odd)
        if rng.random() < 0.3:
            ev["schema_version"] = 1
        if kind == "payment":
            ev.update(
                txn_id=f"t{n}",
                amount=round(rng.uniform(1, 5000), 2),
                direction=rng.choice(["in", "out"]),
                channel=rng.choice(["pos", "transfer", "online", "qr"]),
            )
            if rng.random() < 0.2:
                ev["refund"] = rng.random() < 0.1
        elif kind == "electricity":
            ev.update(meter_id=f"m-{firm}", interval_minutes=rng.choice([15, 30, 60]), kwh=round(rng.uniform(0, 80), 3))
            if rng.random() < 0.05:
                ev["kwh"] = rng.randint(0, 50)  # an int is valid for a float field
        elif kind == "logistics":
            ev.update(
                order_id=f"o{n}", status=rng.choice(["created", "picked_up", "delivered"]),
                value=round(rng.uniform(10, 20000), 2), weight_kg=round(rng.uniform(0.1, 500), 2),
            )
        else:
            amount = round(rng.uniform(100, 100000), 2)
            ev.update(
                invoice_id=f"i{n}", kind=rng.choice(["issued", "received", "cancelled"]),
                counterparty_id=f"9134{rng.randint(10**9, 10**10)}", amount=amount,
                tax=round(amount * 0.13, 2),
            )
        if odd and rng.random() < 0.3:
            ev["schema_version"] = 1.0  # pydantic accepts 1.0 for Literal[1]
        line = orjson.dumps(ev)
        lines.append(line)
        n += 1
        recent.append(line)
        if len(recent) > 50:
            recent.pop(0)
        if n < n_events and rng.random() < dup_rate:
            lines.append(rng.choice(recent))  # a re-delivery: the same bytes again
            n += 1
        if bad_every and n // bad_every > bad_i:
            bad_i += 1
            lines.append(_BAD_LINES[bad_i % len(_BAD_LINES)] if bad_i % 13 else b"{" + b" " * 20000 + b"}")
        if rng.random() < blank_rate:
            lines.append(b"   " if rng.random() < 0.5 else b"")
    return lines


def write_event_file(path: Path, lines: list[bytes]) -> Path:
    data = b"\n".join(lines) + b"\n"
    if str(path).endswith(".gz"):
        with gzip.open(path, "wb", compresslevel=1) as fh:
            fh.write(data)
    else:
        path.write_bytes(data)
    return path


def expected_events(lines: list[bytes], partitions: int) -> dict[str, Any]:
    """What a correct replay sends, computed with the contract's validator."""
    good: list[tuple[int, bytes, str, str, float]] = []  # (lineno, raw, topic, firm, arrival)
    bad: list[int] = []
    clock = float("-inf")
    for lineno, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        try:
            ev = parse_event(raw)
        except EventError:
            bad.append(lineno)
            continue
        clock = max(clock, ev.delivery_time.timestamp())
        good.append((lineno, raw, wire.EVENT_TOPICS[ev.type], ev.firm_id, clock))
    per_tp: dict[tuple[str, int], list[tuple[int, bytes, float]]] = defaultdict(list)
    for lineno, raw, topic, firm, arrival in good:
        per_tp[(topic, wire.partition_for(firm, partitions))].append((lineno, raw, arrival))
    return {"good": good, "bad": bad, "per_tp": per_tp, "max_arrival": clock}


# --------------------------------------------------------------------------------------------
# reading records back (MemorySink or Kafka) into per-partition streams
# --------------------------------------------------------------------------------------------


def decode_partition(values: list[tuple[bytes | None, bytes]]) -> list[tuple[str, Any]]:
    """A partition's records as ``("event", raw_bytes_of_event)`` / ``("wm", time)`` items,
    envelopes expanded. Raw event bytes are re-serialized from the envelope for comparison."""
    out: list[tuple[str, Any]] = []
    for key, value in values:
        obj = orjson.loads(value)
        kind = wire.classify(obj)
        if kind == "watermark":
            assert key is None
            out.append(("wm", datetime.fromisoformat(obj["time"]).timestamp()))
        elif kind == "batch":
            assert key is None
            assert obj["events"], "empty envelope"
            for ev in obj["events"]:
                out.append(("event", orjson.dumps(ev)))
        else:
            assert key == obj["firm_id"].encode()
            out.append(("event", orjson.dumps(obj)))
    return out


def check_streams(
    streams: dict[tuple[str, int], list[tuple[str, Any]]],
    exp: dict[str, Any],
    partitions: int,
    interval: float = replay.WATERMARK_INTERVAL_S,
) -> list[float]:
    """Assert the replay contract on per-partition record streams; return the watermark times."""
    all_tps = [(t, p) for t in wire.EVENT_TOPICS.values() for p in range(partitions)]
    assert set(streams) <= set(all_tps)
    wm_sequences = []
    for tp in all_tps:
        items = streams.get(tp, [])
        expected = exp["per_tp"].get(tp, [])
        # every valid event exactly once (duplicates as often as in the file), in file order
        got_events = [raw for kind, raw in items if kind == "event"]
        assert got_events == [orjson.dumps(orjson.loads(raw)) for _, raw, _ in expected], tp
        wms = [t for kind, t in items if kind == "wm"]
        assert wms, f"no watermark in {tp}"
        assert wms == sorted(wms), f"watermarks decrease in {tp}"
        assert all(t % interval == 0 for t in wms)
        assert wms[-1] > exp["max_arrival"], "the final watermark must close everything"
        wm_sequences.append(wms)
        # an event (arrival clock t) comes before every watermark later than t, after every
        # watermark at or before t
        # watermark W is preceded by every event with arrival clock < W; and it is emitted as
        # soon as the clock reaches it: the last watermark before an event is the latest
        # watermark at or before its arrival clock
        ei = 0
        seen_wm = float("-inf")
        for kind, value in items:
            if kind == "wm":
                seen_wm = value
            else:
                arrival = expected[ei][2]
                assert seen_wm <= arrival, (tp, expected[ei][0], seen_wm, arrival)
                assert seen_wm == max((w for w in wms if w <= arrival), default=float("-inf"))
                ei += 1
    # the same watermark sequence in every partition of every topic
    assert all(seq == wm_sequences[0] for seq in wm_sequences)
    return wm_sequences[0]


def memory_streams(sink: MemorySink) -> dict[tuple[str, int], list[tuple[str, Any]]]:
    raw: dict[tuple[str, int], list[tuple[bytes | None, bytes]]] = defaultdict(list)
    for rec in sink.records:
        if rec.topic != wire.REPLAY_DLQ_TOPIC:
            raw[(rec.topic, rec.partition)].append((rec.key, rec.value))
    return {tp: decode_partition(vals) for tp, vals in raw.items()}


class FakeTime:
    def __init__(self) -> None:
        self.now = 1000.0
        self.slept = 0.0
        self.sleeps = 0

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.now += seconds
        self.slept += seconds
        self.sleeps += 1


def run(coro: Any) -> Any:
    return asyncio.run(coro)


# --------------------------------------------------------------------------------------------
# validation fast path
# --------------------------------------------------------------------------------------------

_MUTATIONS: list[Any] = [
    None, True, False, 0, 1, -1, 1.0, 0.0, -0.0, 1.5, -1.5, 1e12, 1e12 + 1, 1e13, 1e6, 1e6 + 0.5,
    1440, 1441, 2**63 - 1, "", " ", "x", "abc def", "a" * 64, "a" * 65, "a" * 128, "a" * 129,
    "in", "out", "pos", "qr", "issued", "cancelled", "received", "created", "lost", "payment",
    "2026-01-05T10:00:00+08:00", "2026-01-05T10:00:00Z", "2026-01-05T10:00:00z",
    "2026-01-05T10:00:00", "2026-01-05T10:00:00+08:60", "2026-01-05T10:00:00+24:00",
    "2026-01-05T10:00:00.123+08:00", "2026-01-05T10:00:00.1234567+08:00", "2026-01-05 10:00:00+08:00",
    "2026-02-30T10:00:00+08:00", "2026-01-05T24:00:00+08:00", "2026-01-05T10:00:60+08:00",
    "20260105T100000+0800", "2026-01-05T10:00:00+0800", "2026-01-05T10:00:00-03:30",
    "1969-12-31T23:59:59Z", "0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "2026-01-05",
    "F00001", "F:1", "F.1-_", "é", "F\n", "١٢", [], {}, ["a"], {"a": 1}, "true", "1",
]


def _valid_event(rng: random.Random) -> dict[str, Any]:
    line = synthetic_lines(1, seed=rng.randint(0, 10**6), bad_every=0, dup_rate=0, blank_rate=0, odd_rate=0)[0]
    return orjson.loads(line)


def test_fast_path_agrees_with_the_contract_validator():
    """Fuzz: the fast path never accepts what the contract rejects, and when it accepts, it
    reports the same type, firm and arrival time; the combined decision equals the contract's."""
    rng = random.Random(1234)
    accepted_fast = rejected = 0
    for i in range(6000):
        obj = _valid_event(rng)
        for _ in range(rng.choice([0, 1, 1, 2])):
            r = rng.random()
            keys = list(obj)
            if r < 0.7:
                obj[rng.choice(keys + ["delivered_at", "schema_version", "refund"])] = rng.choice(_MUTATIONS)
            elif r < 0.85:
                obj.pop(rng.choice(keys), None)
            elif r < 0.95:
                obj[rng.choice(["extra", "kwh", "amount", "meter_id", "txn_id"])] = rng.choice(_MUTATIONS)
            else:
                obj["type"] = rng.choice(["payment", "invoice", "logistics", "electricity", "x", None])
        raw = orjson.dumps(obj)
        try:
            ev = validate_event(orjson.loads(raw))
        except EventError:
            ev = None
        except TypeError:  # validate_event on an unhashable "type" (reported upstream)
            assert isinstance(obj.get("type"), (list, dict))
            ev = None
        fast = fast_check(orjson.loads(raw))
        if fast is not None:
            accepted_fast += 1
            assert ev is not None, f"fast path accepted an invalid event: {raw!r}"
            assert fast == (ev.type, ev.firm_id, ev.delivery_time.timestamp()), raw
        for fast_line in FAST_LINES:
            info = fast_line(raw)
            if info is not None:
                assert ev is not None, f"{fast_line.__name__} accepted an invalid event: {raw!r}"
                assert info == (ev.type, ev.firm_id, ev.delivery_time.timestamp()), raw
        # the decision replay uses (fast path, then the validator) equals the contract's
        try:
            info = replay.check_line(raw)
        except EventError:
            info = None
            rejected += 1
        assert (info is None) == (ev is None), raw
        if info is not None:
            assert info[:2] == (ev.type, ev.firm_id)
            assert info[2] == pytest.approx(ev.delivery_time.timestamp(), abs=1e-6)
    # the fuzzing exercised both sides
    assert accepted_fast > 1000 and rejected > 1000


_BYTE_EDITS = [
    (b'"firm_id":"', b'"firm_id":"\\u0046'),  # an escaped letter: still valid
    (b'"firm_id":"', b'"firm_id":"\\ud800'),  # a lone surrogate: not valid JSON
    (b'"firm_id":"', b'"firm_id":"\xff'),  # invalid UTF-8
    (b'"firm_id":"', b'"firm_id":"\xc3\xa9'),  # valid UTF-8, outside the pattern
    (b'"source":"', b'"source":"\\u00e9'),  # any text is a valid source
    (b'"source":"', b'"source":"\\n'),
    (b'{', b'\xef\xbb\xbf{'),  # BOM
    (b'{', b' \t{'),
    (b'{', b'{"firm_id":"x y",'),  # duplicate keys: the last one counts
    (b'{', b'{"firm_id":7,'),
    (b'{', b'{"type":"nope",'),
    (b'"type"', b'"type":"payment","type"'),
    (b':1,', b':1.0,'),
    (b':1,', b':true,'),
    (b':1,', b':01,'),
    (b':1,', b':1e0,'),
    (b':1,', b':1E400,'),
    (b':1,', b':-0,'),
    (b'+08:00"', b'+08:60"'),
    (b'+08:00"', b'+0800"'),
    (b'+08:00"', b'+08"'),
    (b'Z"', b'z"'),
    (b'T', b't'),
    (b'T', b' '),
    (b'.', b','),
    (b'}', b'} '),
    (b'}', b'}x'),
    (b'}', b',}'),
    (b'}', b'}\r'),
    (b'}', b'}\x00'),
    (b'":', b'" :'),
    (b',"', b' , "'),
]


def test_fast_paths_agree_on_odd_json_bytes():
    """Byte-level edits (escapes, encodings, duplicate keys, number and timestamp spellings):
    each fast path accepts only what the contract accepts, with the same result."""
    rng = random.Random(99)
    checked = 0
    for i in range(3000):
        raw = orjson.dumps(_valid_event(rng))
        for _ in range(rng.choice([1, 1, 2])):
            old, new = rng.choice(_BYTE_EDITS)
            positions = [j for j in range(len(raw)) if raw.startswith(old, j)]
            if positions:
                j = rng.choice(positions)
                raw = raw[:j] + new + raw[j + len(old):]
        try:
            ev = parse_event(raw)
        except EventError:
            ev = None
        except TypeError:
            ev = None
        for fast_line in FAST_LINES:
            info = fast_line(raw)
            if info is not None:
                checked += 1
                assert ev is not None, f"{fast_line.__name__} accepted an invalid line: {raw!r}"
                assert info == (ev.type, ev.firm_id, ev.delivery_time.timestamp()), raw
        try:
            info = replay.check_line(raw)
        except EventError:
            info = None
        assert (info is None) == (ev is None), raw
    assert checked > 1000


def test_msgspec_fast_path_is_in_use_when_installed():
    try:
        import msgspec  # noqa: F401
    except ImportError:
        pytest.skip("msgspec not installed: replay uses the orjson fast path")
    assert replay.FAST_PATH == "msgspec"


def test_block_parsers_agree(small_file):
    """The msgspec-inlined block parser and the generic one give identical results."""
    if replay._fast_line_msgspec is None:
        pytest.skip("msgspec not installed")
    path, lines = small_file
    rng = random.Random(3)
    extra = []
    for _ in range(400):  # odd bytes too (see the fuzz test above)
        raw = orjson.dumps(_valid_event(rng))
        old, new = rng.choice(_BYTE_EDITS)
        extra.append(raw.replace(old, new, 1))
    block = b"\n".join(lines + extra) + b"\n"
    for firms in (False, True):
        generic = replay._parse_block_generic(block, 5, firms)
        fast = replay._parse_block_msgspec(block, 5, firms)
        assert fast == generic
    codes = generic[1]
    assert replay.BAD in codes and replay.BLANK in codes and max(codes) == 4 * 5 - 1


def test_check_line_reports_the_contract_messages():
    with pytest.raises(EventError, match="not valid JSON"):
        replay.check_line(b"nope")
    with pytest.raises(EventError, match="exceeds"):
        replay.check_line(b"{" + b" " * 20000 + b"}")
    with pytest.raises(EventError, match="kwh"):
        replay.check_line(_BAD_LINES[5])


# --------------------------------------------------------------------------------------------
# replay into memory: routing, batching, watermarks, pacing
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[bytes]]:
    lines = synthetic_lines(3000, seed=11, firms=120, events_per_hour=400, bad_every=300)
    path = write_event_file(tmp_path_factory.mktemp("replay") / "events.jsonl.gz", lines)
    return path, lines


@pytest.mark.parametrize("batch_size", [1, 7, 200])
def test_memory_replay_is_correct(small_file, batch_size):
    path, lines = small_file
    exp = expected_events(lines, 4)
    sink = MemorySink(batch_records=50)
    err = io.StringIO()
    summary = run(replay_files([path], Settings(), partitions=4, batch_size=batch_size, sink=sink,
                               err=err, watermark_interval=600))
    wms = check_streams(memory_streams(sink), exp, 4, interval=600)
    assert len(wms) > 20
    assert summary.events == len(exp["good"])
    assert summary.bad_lines == len(exp["bad"]) > 5
    assert summary.watermarks == len(wms)
    assert summary.watermark_records == len(wms) * 4 * 4
    assert sum(summary.events_by_topic.values()) == summary.events
    dlq = [r for r in sink.records if r.topic == wire.REPLAY_DLQ_TOPIC]
    assert [int(dict(r.headers)["line"]) for r in dlq] == exp["bad"]
    # stderr shows at most SHOW_BAD_LINES of them as file:line: reason
    shown = [ln for ln in err.getvalue().splitlines() if ln.startswith(f"{path}:")]
    assert len(shown) == min(len(exp["bad"]), replay.SHOW_BAD_LINES)
    first_bad = exp["bad"][0]
    assert shown[0].startswith(f"{path}:{first_bad}: ")
    if batch_size > 1:
        assert summary.envelopes < summary.events
        for rec in sink.records:
            if rec.topic in wire.EVENT_TOPICS.values():
                obj = orjson.loads(rec.value)
                if wire.classify(obj) == "batch":
                    assert len(obj["events"]) <= batch_size
    else:
        assert summary.envelopes == 0


@pytest.mark.parametrize("batch_size", [1, 200])
def test_worker_processes_send_the_same_records(small_file, batch_size):
    """Parsing in a worker process changes nothing in what is sent, record for record (with
    the wall-clock linger out of the way: it may cut envelopes at other places)."""
    path, _ = small_file

    def records(workers: int) -> list[tuple[Any, ...]]:
        sink = MemorySink()
        summary = run(replay_files([path], Settings(), partitions=3, batch_size=batch_size,
                                   sink=sink, err=io.StringIO(), workers=workers,
                                   watermark_interval=600, linger_ms=1e9))
        assert summary.events > 2500
        return [(r.topic, r.partition, r.key, r.value, r.headers) for r in sink.records]

    assert records(1) == records(0)


def test_watermarks_identical_for_any_batch_size_and_speed(small_file):
    path, lines = small_file

    def wm_stream(batch_size: int, speed: float | None) -> dict[tuple[str, int], list[Any]]:
        sink = MemorySink()
        fake = FakeTime()
        run(replay_files([path], Settings(), partitions=3, batch_size=batch_size, speed=speed,
                         sink=sink, clock=fake.clock, sleep=fake.sleep, err=io.StringIO(),
                         watermark_interval=600))
        streams = memory_streams(sink)
        # the event/watermark interleaving: per partition, events between watermarks
        return {tp: [v if k == "wm" else k for k, v in items] for tp, items in streams.items()}

    base = wm_stream(200, None)
    assert base == wm_stream(1, None)
    assert base == wm_stream(13, 50000.0)


def test_watermarks_follow_the_arrival_clock(tmp_path):
    """Hand-made file: boundaries crossed, a gap of several intervals, an out-of-order line."""
    def pay(i: int, delivered: str) -> bytes:
        # json.dumps with spaces: envelopes must carry the original bytes, not a re-encoding
        return json.dumps({
            "event_id": f"p{i}", "firm_id": "F00001", "type": "payment",
            "event_time": "2026-01-05T00:00:00Z", "delivered_at": delivered, "source": "pos",
            "txn_id": f"t{i}", "amount": 1, "direction": "in", "channel": "pos",
        }).encode()
    lines = [
        pay(1, "2026-01-05T00:01:00Z"),
        pay(2, "2026-01-05T00:09:59Z"),
        pay(3, "2026-01-05T00:10:00Z"),  # crosses 00:10
        pay(4, "2026-01-05T00:05:00Z"),  # stamped earlier than the clock: no watermark
        pay(5, "2026-01-05T00:45:30Z"),  # gap: one watermark at 00:40
        pay(6, "2026-01-05T00:50:00Z"),  # exactly on a boundary
    ]
    path = write_event_file(tmp_path / "wm.jsonl", lines)
    sink = MemorySink()
    summary = run(replay_files([path], Settings(), partitions=2, batch_size=200, sink=sink,
                               watermark_interval=600))
    tp = (wire.EVENT_TOPICS["payment"], wire.partition_for("F00001", 2))
    values = [r.value for r in sink.records if (r.topic, r.partition) == tp]
    wm = lambda s: wire.watermark_record(datetime.fromisoformat(s), "replay")  # noqa: E731
    assert values == [
        wire.pack_batch(lines[0:2]),
        wm("2026-01-05T00:10:00+00:00"),
        wire.pack_batch(lines[2:4]),
        wm("2026-01-05T00:40:00+00:00"),
        wire.pack_batch(lines[4:5]),
        wm("2026-01-05T00:50:00+00:00"),
        wire.pack_batch(lines[5:6]),
        wm("2026-01-05T01:00:00+00:00"),
    ]
    assert summary.watermarks == 4
    assert summary.final_watermark == datetime(2026, 1, 5, 1, 0, tzinfo=timezone.utc)
    # the other partition (no events) still gets every watermark
    other = memory_streams(sink)[(tp[0], 1 - tp[1])]
    assert [k for k, _ in other] == ["wm"] * 4


def test_pacing_with_a_fake_clock(tmp_path):
    """At speed 3600 one hour of arrival time takes one (fake) second; --max does not sleep."""
    lines = synthetic_lines(500, seed=3, events_per_hour=500, bad_every=0, disorder_rate=0, dup_rate=0)
    exp = expected_events(lines, 2)
    span = exp["max_arrival"] - exp["good"][0][4]
    assert 0.8 * 3600 < span < 1.2 * 3600
    path = write_event_file(tmp_path / "hour.jsonl", lines)
    fake = FakeTime()
    run(replay_files([path], Settings(), partitions=2, speed=3600.0, sink=MemorySink(),
                     clock=fake.clock, sleep=fake.sleep))
    assert fake.slept == pytest.approx(span / 3600.0, abs=0.02)
    assert fake.sleeps > 10  # spread out, not one sleep at the end
    fast = FakeTime()
    run(replay_files([path], Settings(), partitions=2, sink=MemorySink(), clock=fast.clock, sleep=fast.sleep))
    assert fast.slept == 0


def test_linger_flushes_partial_envelopes_while_pacing(tmp_path):
    """Slow paced replay: envelopes are cut by the linger, not held until full."""
    lines = synthetic_lines(200, seed=5, events_per_hour=200, bad_every=0, dup_rate=0, disorder_rate=0)
    path = write_event_file(tmp_path / "slow.jsonl", lines)
    fake = FakeTime()
    sink = MemorySink()
    summary = run(replay_files([path], Settings(), partitions=1, speed=60.0, batch_size=200,
                               linger_ms=20, sink=sink, clock=fake.clock, sleep=fake.sleep))
    # ~18 s of arrival time between events at speed 60 = 0.3 s of wall time > 20 ms linger
    assert summary.envelopes > 100
    assert sink.submits > 100


def test_progress_bar_and_summary(small_file):
    path, lines = small_file
    err = io.StringIO()
    summary = run(replay_files([path], Settings(), partitions=2, sink=MemorySink(), progress=True,
                               err=err, show_bad=0))
    text = err.getvalue()
    assert text.startswith("\rreplay") and text.endswith("\n")
    final = text.rstrip("\n").split("\r")[-1]
    assert f"{summary.events:,} events" in final and "100.0%" in final and "ev/s" in final
    assert "(more bad lines are not shown" in text
    report = summary.format()
    for topic, n in summary.events_by_topic.items():
        assert topic in report and f"{n:,}" in report
    assert f"bad lines: {summary.bad_lines:,}" in report


def test_missing_file_fails_before_sending(tmp_path, small_file):
    sink = MemorySink()
    with pytest.raises(replay.EventFileError, match="no such event file"):
        run(replay_files([small_file[0], tmp_path / "nope.jsonl"], Settings(), sink=sink))
    assert sink.records == []


def test_no_bootstrap_is_a_clear_error(tmp_path, small_file, monkeypatch, capsys):
    monkeypatch.delenv("RISKMON_BOOTSTRAP_SERVERS", raising=False)
    with pytest.raises(ReplayError, match="--bootstrap"):
        run(replay_files([small_file[0]], Settings()))
    from riskmon.cli import main

    assert main(["replay", str(small_file[0])]) == 2
    assert "RISKMON_BOOTSTRAP_SERVERS" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------
# end to end on the real broker
# --------------------------------------------------------------------------------------------


async def _read_back(bootstrap: str, partitions: int) -> tuple[dict, list]:
    """Every record of the event topics and the DLQ, per partition, from the beginning."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                auto_offset_reset="earliest", max_partition_fetch_bytes=4 << 20,
                                fetch_max_bytes=16 << 20)
    await consumer.start()
    try:
        tps = [TopicPartition(t, p) for t in wire.EVENT_TOPICS.values() for p in range(partitions)]
        tps.append(TopicPartition(wire.REPLAY_DLQ_TOPIC, 0))
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        end = await consumer.end_offsets(tps)
        records: dict[tuple[str, int], list] = defaultdict(list)
        remaining = {tp for tp in tps if end[tp] > 0}
        deadline = asyncio.get_running_loop().time() + 30
        while remaining:
            assert asyncio.get_running_loop().time() < deadline, f"timed out reading {remaining}"
            batch = await consumer.getmany(timeout_ms=500)
            for tp, msgs in batch.items():
                for m in msgs:
                    records[(tp.topic, tp.partition)].append(m)
                if msgs and msgs[-1].offset + 1 >= end[tp]:
                    remaining.discard(tp)
        dlq = records.pop((wire.REPLAY_DLQ_TOPIC, 0), [])
        return records, dlq
    finally:
        await consumer.stop()


@pytest.mark.integration
def test_replay_onto_the_broker(tmp_path, small_file, capsys):
    """Batch mode through the CLI on a fresh broker, then plain records on another: read
    everything back and check the replay contract."""
    from riskmon.broker import EmbeddedBroker
    from riskmon.cli import main

    path, lines = small_file
    exp = expected_events(lines, 5)
    for batch_size in (200, 1):
        with EmbeddedBroker() as broker:
            rc = main(["replay", str(path), "--bootstrap", broker.bootstrap, "--partitions", "5",
                       "--batch-size", str(batch_size), "--no-progress"])
            out = capsys.readouterr()
            assert rc == 0, out.err
            assert f"replayed {len(exp['good']):,} events" in out.out
            assert f"bad lines: {len(exp['bad']):,}" in out.out
            records, dlq = run(_read_back(broker.bootstrap, 5))
        streams = {
            tp: decode_partition([(m.key, m.value) for m in msgs]) for tp, msgs in records.items()
        }
        check_streams(streams, exp, 5)
        if batch_size == 1:
            assert all(m.key is not None or wire.classify(orjson.loads(m.value)) == "watermark"
                       for msgs in records.values() for m in msgs)
        # bad lines on the DLQ with error/file/line headers, raw line as value
        assert [int(dict(m.headers)["line"]) for m in dlq] == exp["bad"]
        for m in dlq:
            h = dict(m.headers)
            assert h["file"].decode() == str(path)
            assert h["error"]
            lineno = int(h["line"])
            assert m.value == lines[lineno - 1][: replay.MAX_LINE_BYTES]


@pytest.mark.integration
@pytest.mark.parametrize("codec", ["none", "gzip", "snappy", "lz4", "zstd"])
def test_replay_with_every_compression_codec(codec, small_file):
    """Every value of RISKMON_COMPRESSION produces batches the broker keeps and consumers read
    back unchanged (snappy, lz4 and zstd need cramjam, installed with aiokafka's lz4 extra)."""
    from riskmon.broker import EmbeddedBroker

    path, lines = small_file
    exp = expected_events(lines, 3)
    with EmbeddedBroker() as broker:
        settings = Settings(bootstrap_servers=broker.bootstrap, partitions=3, compression=codec)
        summary = run(replay_files([path], settings, partitions=3))
        records, dlq = run(_read_back(broker.bootstrap, 3))
    assert summary.events == len(exp["good"])
    streams = {tp: decode_partition([(m.key, m.value) for m in msgs]) for tp, msgs in records.items()}
    check_streams(streams, exp, 3)
    assert [int(dict(m.headers)["line"]) for m in dlq] == exp["bad"]


@pytest.mark.integration
def test_replay_api_two_files(fresh_settings, tmp_path):
    """The async API with two plain .jsonl files; then a replay with another partition count."""
    settings = fresh_settings
    lines_a = synthetic_lines(800, seed=21, firms=50, bad_every=0)
    lines_b = synthetic_lines(400, seed=22, firms=50, bad_every=100, start=START + timedelta(days=1))
    a = write_event_file(tmp_path / "a.jsonl", lines_a)
    b = write_event_file(tmp_path / "b.jsonl", lines_b)
    summary = run(replay_files([a, b], settings, partitions=settings.partitions))
    exp = expected_events(lines_a + lines_b, settings.partitions)
    assert summary.events == len(exp["good"])
    assert summary.bad_lines == len(exp["bad"])
    assert summary.records == summary.envelopes + summary.watermark_records + summary.dlq_records
    # a second replay with another partition count is refused: topics must stay co-partitioned
    with pytest.raises(ReplayError, match="partition"):
        run(replay_files([a], settings, partitions=settings.partitions + 1))
