"""A corpus of bad input for the ingest stage, shared by the fuzz tests in ``test_ingest_fuzz.py``.

Every entry is something an external producer (kcat, a connector, a buggy client) could write onto
an event topic, with the reason the ingest stage must give when it dead-letters it. Three kinds:

* :func:`bad_single_records` — whole records written straight onto a topic, as kcat would: bytes
  that are not JSON, JSON that is not an event, events that break the contract;
* :func:`bad_members` — events that break the contract *inside* an otherwise valid batch envelope
  (only the member is dead-lettered; its valid neighbours go through);
* :func:`bad_envelopes` — records that claim to be an envelope or a watermark but are not valid
  ones (dead-lettered whole).

Each is a :class:`Bad` with the stream whose topic it goes to, the raw record value (or the member
object), its key, and a substring of the ``error`` header the ingest stage must write.
"""

from __future__ import annotations

import copy
import json
import random
from dataclasses import dataclass
from typing import Any

import orjson

from riskmon.events import MAX_EVENT_BYTES

STREAMS = ("electricity", "invoice", "logistics", "payment")


@dataclass(frozen=True)
class Bad:
    name: str
    stream: str
    #: the record value (single records, envelopes) or the member object (envelope members)
    value: Any
    error: str
    key: bytes | None = None


def encode(obj: Any) -> bytes:
    """JSON bytes of anything in the corpus (orjson cannot write nesting deeper than 254)."""
    try:
        return orjson.dumps(obj)
    except TypeError:
        return json.dumps(obj, separators=(",", ":")).encode()


def valid_event(stream: str, firm: str = "F900001", n: int = 0, day: str = "2025-11-02") -> dict[str, Any]:
    """A valid event of ``stream`` (for mutating into bad ones)."""
    base: dict[str, Any] = {
        "event_id": f"fz-{stream[:2]}-{n}",
        "firm_id": firm,
        "type": stream,
        "event_time": f"{day}T10:00:00+08:00",
        "source": "fuzz",
    }
    if stream == "electricity":
        base.update(meter_id=f"{firm}-M1", interval_minutes=15, kwh=12.5)
    elif stream == "invoice":
        base.update(invoice_id=f"INV{n}", kind="issued", counterparty_id="C1", amount=1000.0, tax=130.0)
    elif stream == "logistics":
        base.update(order_id=f"O{n}", status="created", value=500.0, weight_kg=3.0)
    else:
        base.update(txn_id=f"T{n}", amount=88.0, direction="in", channel="pos")
    return base


def _with(stream: str, **changes: Any) -> dict[str, Any]:
    ev = valid_event(stream)
    for k, v in changes.items():
        if v is _DROP:
            ev.pop(k, None)
        else:
            ev[k] = v
    return ev


_DROP = object()
_AMOUNT_FIELD = {"electricity": "kwh", "invoice": "amount", "logistics": "value", "payment": "amount"}


def _event_mutations(stream: str) -> list[tuple[str, dict[str, Any], str]]:
    """(name, bad event object, expected error substring) for one stream."""
    amount = _AMOUNT_FIELD[stream]
    out: list[tuple[str, dict[str, Any], str]] = [
        # wrong types
        ("amount as string", _with(stream, **{amount: "12.5"}), f"{amount}:"),
        ("amount as bool", _with(stream, **{amount: True}), f"{amount}:"),
        ("amount as object", _with(stream, **{amount: {"v": 1}}), f"{amount}:"),
        ("event_time as epoch number", _with(stream, event_time=1762048800), "event_time:"),
        ("firm_id as number", _with(stream, firm_id=42), "firm_id:"),
        ("event_id as list", _with(stream, event_id=["a"]), "event_id:"),
        # missing fields
        ("no firm_id", _with(stream, firm_id=_DROP), "firm_id:"),
        ("no event_time", _with(stream, event_time=_DROP), "event_time:"),
        ("no event_id", _with(stream, event_id=_DROP), "event_id:"),
        ("no type", _with(stream, type=_DROP), "type:"),
        ("no amount", _with(stream, **{amount: _DROP}), f"{amount}:"),
        # null or empty firm_id
        ("null firm_id", _with(stream, firm_id=None), "firm_id:"),
        ("empty firm_id", _with(stream, firm_id=""), "firm_id:"),
        ("blank firm_id", _with(stream, firm_id="  "), "firm_id:"),
        ("firm_id with a newline", _with(stream, firm_id="F1\nF2"), "firm_id:"),
        # absurd values
        ("negative amount", _with(stream, **{amount: -5.0}), f"{amount}:"),
        ("amount above 1e12", _with(stream, **{amount: 1e13}), f"{amount}:"),
        ("amount 1e300", _with(stream, **{amount: 1e300}), f"{amount}:"),
        # timestamps far in the past or future, or not timestamps
        ("event_time in year 1", _with(stream, event_time="0001-01-01T00:00:00+14:00"), "event_time:"),
        ("event_time in 1970", _with(stream, event_time="1970-01-01T00:00:00Z"), "event_time:"),
        ("event_time in 1999", _with(stream, event_time="1999-12-31T23:59:59+00:00"), "event_time:"),
        ("event_time in 2150", _with(stream, event_time="2150-06-01T00:00:00+08:00"), "event_time:"),
        ("event_time in 9999", _with(stream, event_time="9999-12-31T23:59:59-12:00"), "event_time:"),
        ("delivered_at in 9999", _with(stream, delivered_at="9999-12-31T23:59:59Z"), "delivered_at:"),
        ("naive event_time", _with(stream, event_time="2025-11-02T10:00:00"), "event_time:"),
        ("date-only event_time", _with(stream, event_time="2025-11-02"), "event_time:"),
        ("garbage event_time", _with(stream, event_time="yesterday"), "event_time:"),
        ("delivered before event", _with(stream, delivered_at="2025-11-01T10:00:00+08:00"), "delivered_at:"),
        # unknown event types, extra fields
        ("unknown type", _with(stream, type="weather"), "type: must be one of"),
        ("type null", _with(stream, type=None), "type: must be one of"),
        ("type as list", _with(stream, type=["payment"]), "type: must be one of"),
        ("extra field", _with(stream, extra_field=1), "extra_field:"),
        ("schema version 2", _with(stream, schema_version=2), "schema_version:"),
        ("oversized source string", _with(stream, source="s" * 5000), "source:"),
    ]
    if stream == "electricity":
        out.append(("negative kWh", _with(stream, kwh=-1.0), "kwh:"))
        out.append(("kWh above 1e6 per interval", _with(stream, kwh=2e6), "kwh:"))
        out.append(("zero-minute interval", _with(stream, interval_minutes=0), "interval_minutes:"))
    if stream == "invoice":
        out.append(("tax above amount", _with(stream, tax=2000.0), "tax:"))
    if stream == "payment":
        out.append(("zero payment", _with(stream, amount=0.0), "amount:"))
        out.append(("unknown direction", _with(stream, direction="sideways"), "direction:"))
    other = STREAMS[(STREAMS.index(stream) + 1) % len(STREAMS)]
    out.append(("event of another stream", valid_event(other), f"a {other} event on the {stream} topic"))
    return out


def bad_single_records() -> list[Bad]:
    """Records written straight onto the event topics, one per kind of garbage and stream."""
    out: list[Bad] = []
    for stream in STREAMS:
        good = orjson.dumps(valid_event(stream))
        raw_cases: list[tuple[str, bytes, str]] = [
            ("truncated JSON", good[: len(good) // 2], "not valid JSON"),
            ("truncated to one byte", good[:1], "not valid JSON"),
            ("trailing garbage", good + b"}", "not valid JSON"),
            ("non-UTF-8 bytes", b"\xff\xfe\x00garbage\x80", "not valid JSON"),
            ("invalid UTF-8 inside a string", good.replace(b'"fuzz"', b'"fu\xc3\x28zz"'), "not valid JSON"),
            ("lone surrogate escape", good.replace(b'"fuzz"', b'"\\ud800"'), "not valid JSON"),
            ("latin-1 text", "événement".encode("latin-1"), "not valid JSON"),
            ("NaN literal", good.replace(b"}", b',"x":NaN}'), "not valid JSON"),
            ("number overflowing a double", good.replace(b"}", b',"x":1e400}'), "not valid JSON"),
            ("JSON nested 2000 deep", b"[" * 2000 + b"]" * 2000, "not valid JSON"),
            ("plain text", b"hello kafka", "not valid JSON"),
            ("empty value", b"", "empty value"),
            ("JSON null", b"null", "event: expected a JSON object"),
            ("JSON string", b'"payment"', "event: expected a JSON object"),
            ("JSON number", b"42", "event: expected a JSON object"),
            ("JSON array of events", b"[" + good + b"]", "event: expected a JSON object"),
            ("empty object", b"{}", "type: must be one of"),
            (
                "oversized payload (100 kB)",
                good[:-1] + b',"padding":"' + b"x" * 100_000 + b'"}',
                f"exceeds the {MAX_EVENT_BYTES}-byte limit",
            ),
            (
                "oversized payload near the broker limit (900 kB)",
                good[:-1] + b',"padding":"' + b"y" * 900_000 + b'"}',
                f"exceeds the {MAX_EVENT_BYTES}-byte limit",
            ),
            ("whitespace-padded event over the limit", b" " * MAX_EVENT_BYTES + good, "exceeds"),
        ]
        for name, raw, error in raw_cases:
            out.append(Bad(f"{stream}: {name}", stream, raw, error, key=b"F900001"))
        for name, obj, error in _event_mutations(stream):
            out.append(Bad(f"{stream}: {name}", stream, orjson.dumps(obj), error, key=b"F900001"))
    # a key that is garbage too (non-UTF-8, huge) on an otherwise bad record
    out.append(Bad("payment: huge binary key", "payment", b"{", "not valid JSON", key=b"\xff" * 5000))
    return out


def bad_members() -> list[Bad]:
    """Bad events to put inside valid envelopes (members dead-lettered one by one)."""
    out: list[Bad] = []
    for stream in STREAMS:
        for name, obj, error in _event_mutations(stream):
            out.append(Bad(f"{stream} member: {name}", stream, obj, error))
        for name, obj, error in [
            ("null member", None, "event: expected a JSON object"),
            ("string member", "payment", "event: expected a JSON object"),
            ("number member", 7, "event: expected a JSON object"),
            ("empty object member", {}, "type: must be one of"),
            ("nested envelope member", {"riskmon_batch": 1, "events": []}, "type: must be one of"),
            ("watermark as member", {"riskmon_watermark": 1, "time": "2025-11-02T00:00:00Z"}, "type: must be one of"),
            # orjson reads nesting up to 1024 levels but writes only 254: re-encoding this member
            # for its dead letter used to crash the ingest stage (a poison pill)
            ("member nested 300 deep", _nested(300), "event: expected a JSON object"),
            ("event with a deeply nested extra field", {**valid_event(stream), "x": _nested(300)}, "x:"),
        ]:
            out.append(Bad(f"{stream} member: {name}", stream, obj, error))
    return out


def bad_envelopes() -> list[Bad]:
    """Records that are not valid envelopes or watermarks (dead-lettered whole)."""
    out: list[Bad] = []
    for stream in STREAMS:
        ev = valid_event(stream)
        cases: list[tuple[str, Any, str]] = [
            ("envelope version 2", {"riskmon_batch": 2, "events": [ev]}, "envelope: expected"),
            ("envelope without events", {"riskmon_batch": 1}, "envelope: expected"),
            ("envelope events not a list", {"riskmon_batch": 1, "events": {"0": ev}}, "envelope: expected"),
            ("envelope events null", {"riskmon_batch": 1, "events": None}, "envelope: expected"),
            ("envelope marker a string", {"riskmon_batch": "1", "events": [ev]}, "envelope: expected"),
            ("watermark without time", {"riskmon_watermark": 1}, "watermark: expected"),
            ("watermark time a number", {"riskmon_watermark": 1, "time": 1762048800}, "watermark: expected"),
            ("watermark time naive", {"riskmon_watermark": 1, "time": "2025-11-03T00:00:00"}, "no UTC offset"),
            ("watermark time garbage", {"riskmon_watermark": 1, "time": "soon"}, "watermark:"),
            ("watermark version 2", {"riskmon_watermark": 2, "time": "2025-11-03T00:00:00Z"}, "watermark: expected"),
            # a watermark from the far future would make every later event of its source late
            ("watermark in 2150", {"riskmon_watermark": 1, "time": "2150-01-01T00:00:00Z"}, "time outside"),
            ("watermark in 9999", {"riskmon_watermark": 1, "time": "9999-12-31T23:59:59+00:00"}, "time outside"),
            ("watermark in year 1", {"riskmon_watermark": 1, "time": "0001-01-01T00:00:00+00:00"}, "time outside"),
        ]
        for name, obj, error in cases:
            out.append(Bad(f"{stream}: {name}", stream, orjson.dumps(obj), error))
    return out


def _nested(depth: int) -> Any:
    obj: Any = []
    for _ in range(depth - 1):
        obj = [obj]
    return obj


# --------------------------------------------------------------------------------------------
# random mutations, for the in-process fuzz test
# --------------------------------------------------------------------------------------------

_VALUES: list[Any] = [
    None, True, False, 0, -1, 1.5, -0.0, 1e12, 1e12 + 1, 1e300, 2**63 - 1, -(2**63), "", " ", "x",
    "a" * 129, "F\n", "é", "١٢", "2025-11-02T10:00:00+08:00", "2025-11-02T10:00:00", "0001-01-01T00:00:00Z",
    "9999-12-31T23:59:59Z", "2150-01-01T00:00:00Z", "1999-12-31T23:59:59Z", [], {}, [1], {"a": {}},
    "payment", "invoice", "electricity", "logistics", "weather",
]


def mutate_record(rng: random.Random, stream: str, n: int) -> bytes:
    """A random, usually bad, record for ``stream``'s topic: a mutated event, a mutated envelope
    or watermark, or mangled bytes."""
    r = rng.random()
    if r < 0.45:
        ev = valid_event(rng.choice(STREAMS) if rng.random() < 0.1 else stream, n=n)
        for _ in range(rng.randint(1, 3)):
            k = rng.choice(list(ev) + ["extra", "delivered_at", "schema_version", "riskmon_batch"])
            if rng.random() < 0.2:
                ev.pop(k, None)
            else:
                ev[k] = copy.deepcopy(rng.choice(_VALUES))
        return orjson.dumps(ev)
    if r < 0.65:
        members: list[Any] = []
        for i in range(rng.randint(0, 5)):
            m: Any = valid_event(stream, n=n * 10 + i)
            if rng.random() < 0.5:
                m[rng.choice(list(m))] = copy.deepcopy(rng.choice(_VALUES))
            members.append(m if rng.random() < 0.9 else copy.deepcopy(rng.choice(_VALUES)))
        env: dict[str, Any] = {"riskmon_batch": 1, "events": members}
        if rng.random() < 0.2:
            env[rng.choice(["riskmon_batch", "events"])] = copy.deepcopy(rng.choice(_VALUES))
        return orjson.dumps(env)
    if r < 0.75:
        wm: dict[str, Any] = {"riskmon_watermark": 1, "time": rng.choice(_VALUES)}
        return orjson.dumps(wm)
    raw = bytearray(orjson.dumps(valid_event(stream, n=n)))
    for _ in range(rng.randint(1, 4)):
        op = rng.random()
        pos = rng.randrange(len(raw) + 1)
        if op < 0.4 and raw:
            raw[rng.randrange(len(raw))] = rng.randrange(256)
        elif op < 0.7:
            raw[pos:pos] = bytes([rng.randrange(256)])
        elif raw:
            del raw[rng.randrange(len(raw))]
    return bytes(raw)
