"""Event-time rules of one partition: firm-days, lateness per stream, duplicates, silence."""

from __future__ import annotations

from datetime import date

import pytest

from streams.daily import KWH, LOG_CREATED_N, N_EVENTS, PAY_IN_AMT
from streams.eventtime import STREAMS, FirmState, PartitionCore, fixed_utc_offset_s, parse_time


def record_score(state, industry, day, agg):
    n = (state or {}).get("n", 0) + 1
    return {"n": n, "kwh": agg[KWH], "events": agg[N_EVENTS], "industry": industry}, {"n": n}


def elec(event_id: str, when: str, kwh: float = 1.0, firm: str = "F1") -> dict:
    return {"type": "electricity", "event_id": event_id, "firm_id": firm, "event_time": when, "kwh": kwh}


def advance(core: PartitionCore, when: str, streams=STREAMS, source: int = 0):
    closed = []
    for s in streams:
        closed += core.on_watermark(s, source, parse_time(when))
    return closed


def test_local_day_boundaries_use_the_firm_time_zone() -> None:
    core = PartitionCore(record_score)
    # 23:30 local on Jan 5 is 15:30 UTC; 00:30 local on Jan 6 is 16:30 UTC on Jan 5.
    assert core.day_of(parse_time("2026-01-05T23:30:00+08:00")) == date(2026, 1, 5).toordinal()
    assert core.day_of(parse_time("2026-01-05T16:30:00+00:00")) == date(2026, 1, 6).toordinal()


def test_daylight_saving_zones_are_refused() -> None:
    assert fixed_utc_offset_s("Asia/Shanghai") == 8 * 3600
    with pytest.raises(ValueError, match="daylight saving"):
        fixed_utc_offset_s("Europe/Berlin")


def test_day_closes_only_when_every_stream_passed_end_plus_its_lateness() -> None:
    core = PartitionCore(record_score)
    core.on_event(elec("a", "2026-01-05T10:00:00+08:00", 3.0))
    # Electricity is 2 h late at most, invoices 36 h: Jan 6 14:00 passes the first, not the second.
    assert advance(core, "2026-01-06T14:00:00+08:00") == []
    closed = advance(core, "2026-01-07T12:00:00+08:00")
    assert [(c.firm_id, c.day, c.vitality["kwh"]) for c in closed] == [
        ("F1", date(2026, 1, 5).toordinal(), 3.0)
    ]


def test_late_is_per_stream_and_decided_by_that_streams_watermark() -> None:
    core = PartitionCore(record_score)
    core.on_event(elec("a", "2026-01-05T10:00:00+08:00"))
    core.on_watermark("electricity", 0, parse_time("2026-01-06T02:00:00+08:00"))
    # Electricity for Jan 5 is now late even though the day is still open for invoices.
    assert core.on_event(elec("b", "2026-01-05T23:00:00+08:00")) == "late"
    invoice = {"type": "invoice", "event_id": "i", "firm_id": "F1", "event_time": "2026-01-05T18:00:00+08:00",
               "kind": "issued", "amount": 10.0, "tax": 1.0}
    assert core.on_event(invoice) == "accepted"
    assert core.on_event(elec("c", "2026-01-06T00:10:00+08:00")) == "accepted"


def test_duplicates_count_once() -> None:
    core = PartitionCore(record_score)
    for _ in range(3):
        core.on_event(elec("same", "2026-01-05T10:00:00+08:00", 5.0))
    closed = advance(core, "2026-01-08T00:00:00+08:00")
    assert closed[0].vitality["kwh"] == 5.0
    assert closed[0].aggregate[N_EVENTS] == 1


def test_silent_firm_still_gets_its_days_closed_and_scored() -> None:
    core = PartitionCore(record_score)
    core.on_event(elec("a", "2026-01-05T10:00:00+08:00", 7.0, firm="QUIET"))
    core.on_event(elec("b", "2026-01-05T10:00:00+08:00", 1.0, firm="BUSY"))
    core.on_event(elec("c", "2026-01-09T10:00:00+08:00", 1.0, firm="BUSY"))
    closed = advance(core, "2026-01-11T12:00:00+08:00")
    quiet = [(date.fromordinal(c.day).isoformat(), c.vitality["kwh"]) for c in closed if c.firm_id == "QUIET"]
    assert quiet == [
        ("2026-01-05", 7.0), ("2026-01-06", 0.0), ("2026-01-07", 0.0), ("2026-01-08", 0.0), ("2026-01-09", 0.0)
    ]
    assert [c.vitality["n"] for c in closed if c.firm_id == "QUIET"] == [1, 2, 3, 4, 5]


def test_every_source_partition_must_pass_before_a_day_closes() -> None:
    core = PartitionCore(record_score, n_sources=2)
    core.on_event(elec("a", "2026-01-05T10:00:00+08:00"), source=1)
    assert advance(core, "2026-01-08T00:00:00+08:00", source=0) == []
    # An event arriving from source 1 is judged by source 1's watermark, which has not moved.
    assert core.on_event(elec("b", "2026-01-05T11:00:00+08:00"), source=1) == "accepted"
    assert core.on_event(elec("c", "2026-01-05T11:00:00+08:00"), source=0) == "late"
    closed = advance(core, "2026-01-08T00:00:00+08:00", source=1)
    assert closed[0].aggregate[N_EVENTS] == 2


def test_stale_watermarks_are_ignored() -> None:
    core = PartitionCore(record_score)
    core.on_event(elec("a", "2026-01-05T10:00:00+08:00"))
    advance(core, "2026-01-08T00:00:00+08:00")
    assert advance(core, "2026-01-07T00:00:00+08:00") == []


def test_firm_state_round_trips_through_json() -> None:
    core = PartitionCore(record_score)
    core.on_event(elec("a", "2026-01-05T10:00:00+08:00", 2.0))
    pay = {"type": "payment", "event_id": "p", "firm_id": "F1", "event_time": "2026-01-06T10:00:00+08:00",
           "amount": 9.0, "direction": "in"}
    core.on_event(pay)
    advance(core, "2026-01-07T00:00:00+08:00", streams=["electricity"])
    state = core.firms["F1"]
    import orjson

    copy = FirmState.from_json("F1", orjson.loads(orjson.dumps(state.to_json())))
    assert copy == state
    restored = PartitionCore(record_score)
    restored.restore(orjson.loads(orjson.dumps(core.meta_json())), [copy])
    a = advance(core, "2026-01-09T00:00:00+08:00")
    b = advance(restored, "2026-01-09T00:00:00+08:00")
    assert a == b and a[1].aggregate[PAY_IN_AMT] == 9.0 and a[0].aggregate[LOG_CREATED_N] == 0


@pytest.mark.parametrize(
    "stamp",
    [
        "2026-01-05T23:59:59+08:00",
        "2026-01-05T00:00:00+08:00",
        "2026-01-05T23:59:59.999999+08:00",
        "2026-01-05T16:00:00+00:00",
        "2026-01-05T15:59:59Z",
        "2026-01-05T10:00:00-05:00",
        "20260105T235959+08:00",
    ],
)
def test_fast_local_day_agrees_with_full_parsing(stamp: str) -> None:
    core = PartitionCore(record_score)
    assert core.local_day(stamp) == core.day_of(parse_time(stamp))
    assert core.local_day(stamp) == core.local_day(stamp)  # cached path too
