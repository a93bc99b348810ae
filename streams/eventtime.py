"""Event time for one partition: firm-days, watermarks, lateness, duplicates — pure, no I/O.

The rules, chosen so that the result depends only on the order of records *within* each stream's
topic-partition (which Kafka preserves), never on how streams interleave, how fast a file is
replayed or how many partitions there are:

* An event belongs to the local calendar day of its ``event_time`` in the firms' time zone.
* Each stream (electricity, invoice, logistics, payment) has its own allowed lateness, and a
  watermark per *source partition* (the partition of the stream's topic the record came from),
  advanced by watermark records that producers broadcast to every partition. Events normally come
  from the source partition of the same number; tracking sources separately keeps the rules exact
  when a producer partitioned differently and the ingest stage moved its events.
* An event of stream *s* from source *q* for day *d* is **late** when the watermark of *(s, q)* has
  already reached ``end(d) + lateness(s)``; late events are reported, never added.
* The partition's close horizon is the last day *d* with ``watermark(s, q) >= end(d) + lateness(s)``
  for every stream and every source partition. When it advances, every firm ever seen in the partition has each of its days up
  to the horizon closed and scored, in day order, including days with no events: silence is a
  signal. Every accepted event precedes the watermark that closes its day in its own topic, so a
  closed day can never gain an event.
* An ``event_id`` already accepted for an open day is a **duplicate** and counts once.

>>> core = PartitionCore(score_fn=lambda s, ind, d, agg: ({"kwh": agg[2]}, s), n_sources=1)
>>> e = {"type": "electricity", "event_id": "a", "firm_id": "F1", "kwh": 5.0,
...      "event_time": "2026-01-05T10:00:00+08:00"}
>>> core.on_event(e), core.on_event(e)
('accepted', 'duplicate')
>>> [core.on_watermark(s, 0, parse_time("2026-01-07T12:00:00+08:00")) for s in STREAMS][-1]
[ClosedDay(firm_id='F1', day=739621, vitality={'kwh': 5.0}, aggregate=[1.0, 1.0, 5.0, ...])]
>>> core.on_event(dict(e, event_id="b"))
'late'
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Callable, Iterable, Mapping
from zoneinfo import ZoneInfo

from streams.daily import add_event, new_day

STREAMS: tuple[str, ...] = ("electricity", "invoice", "logistics", "payment")
DAY_S = 86400
NEVER = -1  # no day is complete yet (day ordinals are positive)
_UNIX_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()

#: Allowed lateness per stream, seconds (domain brief: electricity at most 2 h late, invoices T+1).
DEFAULT_LATENESS_S: dict[str, float] = {
    "electricity": 2 * 3600.0,
    "invoice": 36 * 3600.0,  # one day plus a 12 h margin
    "logistics": 3600.0,
    "payment": 3600.0,
}

#: score_fn(state, industry, day_ordinal, aggregate) -> (vitality payload, new state)
ScoreFn = Callable[[dict | None, str, int, list[float]], tuple[dict, dict]]


def parse_time(value: str) -> float:
    """ISO 8601 with offset → epoch seconds."""
    dt = datetime.fromisoformat(value)
    if dt.tzinfo is None:
        raise ValueError(f"timestamp without a UTC offset: {value!r}")
    return dt.timestamp()


def fixed_utc_offset_s(tz_name: str) -> int:
    """The zone's UTC offset in seconds. Firm-days are computed with one fixed offset for speed,
    so zones that observe daylight saving are refused rather than silently mis-bucketed."""
    tz = ZoneInfo(tz_name)
    offsets = {
        datetime(year, month, 1, 12, tzinfo=tz).utcoffset() for year in (2020, 2025, 2030) for month in (1, 4, 7, 10)
    }
    if len(offsets) != 1:
        raise ValueError(f"time zone {tz_name!r} observes daylight saving; use a fixed-offset zone")
    (offset,) = offsets
    assert offset is not None
    return int(offset.total_seconds())


def day_iso(day: int) -> str:
    return date.fromordinal(day).isoformat()


def day_ordinal(iso: str) -> int:
    """The inverse of :func:`day_iso`."""
    return date.fromisoformat(iso).toordinal()


@dataclass
class FirmState:
    """Everything riskmon keeps about one firm; serialized into the firm-state table."""

    firm_id: str
    closed_through: int | None = None  # last closed day (ordinal)
    open_days: dict[int, list[float]] = field(default_factory=dict)
    seen_ids: dict[int, set[str]] = field(default_factory=dict)  # event ids accepted per open day
    vitality_state: dict | None = None
    detector_state: dict | None = None  # owned by the detection engine run on closed days
    alert_state: dict | None = None  # owned by the alert policy (alerts, credit line, risk share)
    #: closed days' vitality records waiting for their period's governance decision
    held: list[dict] = field(default_factory=list)
    checkpoint_offset: int = -1  # input offset this state reflects (set by the adapter)

    def to_json(self) -> dict[str, Any]:
        return {
            "c": self.closed_through,
            "o": {str(d): agg for d, agg in self.open_days.items()},
            "i": {str(d): sorted(ids) for d, ids in self.seen_ids.items()},
            "v": self.vitality_state,
            "d": self.detector_state,
            "a": self.alert_state,
            "g": self.held,
            "k": self.checkpoint_offset,
        }

    @classmethod
    def from_json(cls, firm_id: str, obj: Mapping[str, Any]) -> "FirmState":
        return cls(
            firm_id=firm_id,
            closed_through=obj["c"],
            open_days={int(d): list(agg) for d, agg in obj["o"].items()},
            seen_ids={int(d): set(ids) for d, ids in obj["i"].items()},
            vitality_state=obj["v"],
            detector_state=obj.get("d"),
            alert_state=obj.get("a"),
            held=list(obj.get("g") or ()),
            checkpoint_offset=obj["k"],
        )


@dataclass(frozen=True)
class ClosedDay:
    firm_id: str
    day: int
    vitality: dict
    aggregate: list[float]


class PartitionCore:
    """Event-time state of one partition: per-stream watermarks and the firms living there."""

    def __init__(
        self,
        score_fn: ScoreFn,
        industry_of: Callable[[str], str] = lambda firm_id: "default",
        lateness_s: Mapping[str, float] | None = None,
        tz: str = "Asia/Shanghai",
        n_sources: int = 1,
    ) -> None:
        if n_sources < 1:
            raise ValueError("n_sources must be at least 1")
        self.n_sources = n_sources
        self.score_fn = score_fn
        self.industry_of = industry_of
        self.lateness_s = dict(DEFAULT_LATENESS_S if lateness_s is None else lateness_s)
        missing = set(STREAMS) - set(self.lateness_s)
        if missing:
            raise ValueError(f"lateness missing for streams: {sorted(missing)}")
        self.tz_offset_s = fixed_utc_offset_s(tz)
        sign = "+" if self.tz_offset_s >= 0 else "-"
        hours, minutes = divmod(abs(self.tz_offset_s) // 60, 60)
        self._local_suffix = "Z" if self.tz_offset_s == 0 else f"{sign}{hours:02d}:{minutes:02d}"
        self._day_cache: dict[str, int] = {}
        self.sources: list[tuple[str, int]] = [(s, q) for s in STREAMS for q in range(n_sources)]
        self.watermarks: dict[tuple[str, int], float] = {src: -math.inf for src in self.sources}
        # Per (stream, source partition): events of days up to this one (ordinal) are late;
        # NEVER until the source's first watermark.
        self.late_through: dict[tuple[str, int], int] = {src: NEVER for src in self.sources}
        self.horizon: int | None = None
        self.firms: dict[str, FirmState] = {}
        self.dirty: set[str] = set()  # firms changed since the last checkpoint

    # -- time helpers ---------------------------------------------------------------------------
    def day_of(self, epoch_s: float) -> int:
        return int((epoch_s + self.tz_offset_s) // DAY_S) + _UNIX_EPOCH_ORDINAL

    def _last_complete_day(self, source: tuple[str, int]) -> int:
        wm = self.watermarks[source]
        if wm == -math.inf:
            return NEVER
        # day d is complete for the source when wm >= end(d) + lateness
        lateness = self.lateness_s[source[0]]
        return int((wm - lateness + self.tz_offset_s) // DAY_S) - 1 + _UNIX_EPOCH_ORDINAL

    # -- input ----------------------------------------------------------------------------------
    def local_day(self, timestamp: str) -> int:
        """Local day (ordinal) of an ISO 8601 timestamp. Timestamps written in the firms' own
        offset — nearly all of them — are read off the date part without parsing."""
        if timestamp.endswith(self._local_suffix):
            day = self._day_cache.get(timestamp[:10])
            if day is not None:
                return day
            try:
                day = date.fromisoformat(timestamp[:10]).toordinal()
            except ValueError:
                return self.day_of(parse_time(timestamp))
            if len(self._day_cache) > 100_000:
                self._day_cache.clear()
            self._day_cache[timestamp[:10]] = day
            return day
        return self.day_of(parse_time(timestamp))

    def on_event(self, ev: Mapping[str, Any], source: int = 0) -> str:
        """Apply one validated event (decoded dict) that came from source partition ``source`` of
        its stream's topic. Returns 'accepted', 'duplicate' or 'late'."""
        day = self.local_day(ev["event_time"])
        if day <= self.late_through[(ev["type"], source)]:
            return "late"
        firm_id = ev["firm_id"]
        firm = self.firms.get(firm_id)
        if firm is None:
            firm = self.firms[firm_id] = FirmState(firm_id)
        if firm.closed_through is not None and day <= firm.closed_through:
            return "late"
        ids = firm.seen_ids.get(day)
        if ids is None:
            ids = firm.seen_ids[day] = set()
            firm.open_days[day] = new_day()
        event_id = ev["event_id"]
        if event_id in ids:
            return "duplicate"
        ids.add(event_id)
        add_event(firm.open_days[day], ev)
        self.dirty.add(firm_id)
        return "accepted"

    def on_watermark(self, stream: str, source: int, epoch_s: float) -> list[ClosedDay]:
        """Advance the watermark of one stream's source partition; returns the firm-days this
        closes, ordered by firm then day."""
        key = (stream, source)
        if key not in self.watermarks:
            raise ValueError(f"unknown stream or source partition {key!r}")
        if epoch_s <= self.watermarks[key]:
            return []
        self.watermarks[key] = epoch_s
        self.late_through[key] = self._last_complete_day(key)
        horizon = min(self.late_through.values())
        if horizon == NEVER or (self.horizon is not None and horizon <= self.horizon):
            return []
        self.horizon = horizon
        return self._close_through(horizon)

    def _close_through(self, horizon: int) -> list[ClosedDay]:
        closed: list[ClosedDay] = []
        for firm_id in sorted(self.firms):
            firm = self.firms[firm_id]
            if firm.closed_through is not None:
                start = firm.closed_through + 1
            elif firm.open_days:
                start = min(firm.open_days)
            else:
                continue
            if start > horizon:
                continue
            industry = self.industry_of(firm_id)
            for day in range(start, horizon + 1):
                agg = firm.open_days.pop(day, None)
                if agg is None:
                    agg = new_day()
                firm.seen_ids.pop(day, None)
                vitality, firm.vitality_state = self.score_fn(firm.vitality_state, industry, day, agg)
                closed.append(ClosedDay(firm_id, day, vitality, agg))
            firm.closed_through = horizon
            self.dirty.add(firm_id)
        return closed

    # -- persistence ----------------------------------------------------------------------------
    def meta_json(self) -> dict[str, Any]:
        return {
            "w": [[s, q, None if w == -math.inf else w] for (s, q), w in self.watermarks.items()],
            "h": self.horizon,
        }

    def restore(self, meta: Mapping[str, Any] | None, firms: Iterable[FirmState]) -> None:
        if meta is not None:
            for s, q, w in meta["w"]:
                self.watermarks[(s, q)] = -math.inf if w is None else w
                self.late_through[(s, q)] = self._last_complete_day((s, q))
            self.horizon = meta["h"]
        for firm in firms:
            self.firms[firm.firm_id] = firm
        self.dirty.clear()
