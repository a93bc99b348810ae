"""Model governance in event time: drift and circuit breaker decisions that every partition
applies identically, whatever the partition count, replay speed or number of workers.

Drift (PSI / CSI per industry segment) and the circuit breaker (a model's alert rate per
period) are statistics over *all* firms, while firms live in different partitions and workers.
To act on them deterministically the stream has a barrier per period (``period_days`` = 7, ISO
weeks):

1. A partition runs the detection engine and the alert policy on a closed firm-day of period
   *Q* only once it holds the **decision** for *Q*; until then the firm-day is *held* (in the
   firm's checkpointed state). A released firm-day yields one **row** for governance (its model
   scores, features, new model warnings and whether the firm is in the performing book).
2. Each partition reports how far it is **governed**: the last day through which every one of its
   firm-days is released and reported (a **mark**; it never exceeds the partition's close horizon).
3. :class:`Governance` collects rows and marks from all partitions. A day is complete when every
   partition's mark has reached it; complete days are fed, in day order and firm order, to the
   :class:`~detectors.drift.DriftMonitor` and the :class:`~detectors.drift.CircuitBreaker`. The
   decision for *Q* is emitted as soon as every day before *Q* is complete: it holds the models
   paused during *Q* and the models to reset at *Q*'s start, both computed from days before *Q*
   only -- so the decision, and everything computed with it, depends on the data alone.

A decision for *Q* never waits for *Q* itself, so the barrier cannot deadlock: it costs the
round trip partition -> governance -> partition at each period boundary, not a week.

What a decision does to a firm-day (:func:`govern_day`, shared by the stream, the backtest and
:mod:`detectors.evaluate`):

* **circuit breaker**: warnings of a paused model are downgraded to ``watch`` / ``HUMAN_REVIEW``
  with a ``breaker_open`` reason (:func:`detectors.drift.downgrade`), so the alert policy cannot
  freeze on them. A model stays paused until an operator re-enables it
  (:meth:`Governance.request_reenable`, ``riskmon governance reenable MODEL``), effective from the
  next decision.
* **retrain**: a ``retrain`` event (PSI of a model's score above 0.25) on a regular day (no Spring
  Festival day in its window) makes the next decision list ``(segment, model)`` under
  ``resets`` (with ``retrain_action="reset"``, the default). On its first day in that period,
  every firm of the segment that is in the performing book (no warning in the last
  ``book_exclude_warned_days``) restarts that model from scratch
  (:meth:`detectors.engine.Engine.reset_models`): it warms up again on the firm's recent
  behaviour. Firms under a recent warning keep their model, so a firm's decline never becomes
  its new normal. ``retrain_action="mark"`` only reports the event. CSI events (a feature's
  distribution) are reported for investigation, they reset nothing: a feature shift is a data or
  economy question before it is a model one.

Rows are deduplicated by ``(firm_id, day)`` (a restarted worker re-emits what it emitted after
its last checkpoint); a row for a day already complete is counted in :attr:`Governance.late_rows`
and ignored. :meth:`Governance.snapshot` is the compact state at the last decision (breaker,
drift monitor, marks): with it and the input re-read from the first report that carries a row or
a mark after the decision, a restarted governance stage continues exactly.

>>> gov = Governance(GovernanceConfig(), partitions=2)
>>> gov.mark(0, "2026-01-04"); gov.advance()   # partition 1 has not reported yet
[]
>>> gov.mark(1, "2026-01-04")
>>> [(d["period"], d["from"], d["paused"], d["resets"]) for d in gov.advance()]
[(105660, '2026-01-05', [], [])]
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import date  # the doctests use it
from typing import Any, Callable, Iterable, Mapping

from detectors.drift import BreakerConfig, CircuitBreaker, DriftConfig, DriftMonitor, downgrade
from streams.eventtime import day_iso, day_ordinal

__all__ = [
    "GovernanceConfig",
    "Governance",
    "period_of",
    "period_start",
    "govern_day",
    "row_of",
    "GOVERNANCE_STATE_VERSION",
]

GOVERNANCE_STATE_VERSION = 1


@dataclass(frozen=True)
class GovernanceConfig:
    drift: DriftConfig = field(default_factory=DriftConfig)
    breaker: BreakerConfig = field(default_factory=BreakerConfig)
    retrain_action: str = "reset"  # or "mark"
    book_exclude_warned_days: int = 30

    def __post_init__(self) -> None:
        if self.retrain_action not in ("reset", "mark"):
            raise ValueError("retrain_action must be 'reset' or 'mark'")
        if self.book_exclude_warned_days < 0:
            raise ValueError("book_exclude_warned_days must be >= 0")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> "GovernanceConfig":
        d = dict(d or {})
        if isinstance(d.get("drift"), Mapping):
            drift = dict(d["drift"])
            if "score_bins" in drift:
                drift["score_bins"] = tuple(drift["score_bins"])
            d["drift"] = DriftConfig(**drift)
        if isinstance(d.get("breaker"), Mapping):
            d["breaker"] = BreakerConfig(**d["breaker"])
        return cls(**d)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def period_of(day: int, period_days: int = 7) -> int:
    """Period number of a day ordinal (periods of 7 days start on Mondays).

    >>> period_of(date(2026, 1, 5).toordinal()), period_of(date(2026, 1, 11).toordinal())
    (105660, 105660)
    """
    return (day - 1) // period_days


def period_start(period: int, period_days: int = 7) -> int:
    """First day (ordinal) of a period.

    >>> date.fromordinal(period_start(105660)).isoformat()
    '2026-01-05'
    """
    return period * period_days + 1


def row_of(record: Mapping[str, Any], scores: Mapping[str, float | None], features: Mapping[str, float | None],
           raw_detections: Iterable[Mapping[str, Any]], state: Mapping[str, Any] | None,
           book_exclude_warned_days: int) -> dict[str, Any] | None:
    """Governance row of one released firm-day, or None when it carries nothing governance uses.

    ``b`` (book): past the vitality warm-up, scored or featured, and no warning in the last
    ``book_exclude_warned_days`` days (drift is measured on the performing book, so that firms
    already in distress, whose scores are meant to be high, do not read as model drift); ``w``:
    models that raised a *new* warning today (the breaker's alert rate counts them whatever the
    book)."""
    warned = sorted({d["name"] for d in raw_detections
                     if d.get("source") == "model" and d.get("new") and d.get("level") in ("warning", "critical")})
    lw = state.get("lw") if state else None
    book = bool(record.get("band") != "warming_up" and (scores or features)
                and (lw is None or day_ordinal(record["day"]) - lw > book_exclude_warned_days))
    if not book and not warned:
        return None
    return {"f": record["firm_id"], "d": record["day"], "i": record.get("industry") or "default",
            "h": bool(record.get("holiday")), "b": book, "s": dict(scores), "x": dict(features), "w": warned}


def govern_day(engine: Any, state: dict | None, record: Mapping[str, Any], decision: Mapping[str, Any],
               config: GovernanceConfig) -> tuple[Any, list[dict], dict | None]:
    """Run the engine on one firm-day under a period's decision.

    Returns ``(engine result, governed detections, governance row)``: the decision's resets are
    applied first (on the firm's first day of the period, firms in the performing book only),
    then the engine (:meth:`detectors.engine.Engine.step`: raw detections, new state, scores,
    features), then the breaker's downgrades."""
    resets = decision.get("resets") or ()
    if resets and state is not None:
        industry = record.get("industry") or "default"
        models = [m for seg, m in resets if seg == industry]
        day = day_ordinal(record["day"])
        pd = config.breaker.period_days
        lw = state.get("lw")
        if (models and period_of(state["d"], pd) < period_of(day, pd)
                and (lw is None or day - lw > config.book_exclude_warned_days)):
            state = engine.reset_models(state, models)
    res = engine.step(state, record)
    paused = decision.get("paused") or ()
    final = downgrade(res.detections, paused, config.breaker) if paused else res.detections
    row = row_of(record, res.scores, res.features, res.detections, res.state, config.book_exclude_warned_days)
    return res, final, row


class Governance:
    """The governance stage (see the module doc): rows and marks in, one decision per period out.

    ``partitions`` is the number of partitions that report marks; ``outcome`` (firm id -> bad
    outcome) is needed for the breaker metric ``false_alarm_rate`` (backtests with truth)."""

    def __init__(self, config: GovernanceConfig | None = None, partitions: int = 1,
                 outcome: Callable[[str], bool] | None = None) -> None:
        if partitions < 1:
            raise ValueError("partitions must be at least 1")
        self.config = config or GovernanceConfig()
        self.partitions = partitions
        self.monitor = DriftMonitor(self.config.drift)
        self.breaker = CircuitBreaker(self.config.breaker, outcome=outcome)
        self.marks: dict[int, int] = {}  # partition -> governed through (day ordinal)
        self.pending: dict[int, dict[str, dict]] = {}  # day -> firm -> row
        self.processed_through: int | None = None  # last day fed to the monitor and breaker
        self.next_period: int | None = None  # the next period to decide
        self.events_due: list[dict] = []  # drift and breaker events since the last decision
        self.resets_due: set[tuple[str, str]] = set()
        self.reenable_due: set[str] = set()
        self.decisions: list[dict] = []  # every decision, in order (the caller may trim)
        self.duplicates = 0
        self.late_rows = 0
        self._snapshot: dict[str, Any] | None = None

    @property
    def daily(self) -> dict[tuple[str, str, str, str], tuple[float, int]]:
        """``(day, segment, kind, name) -> (value, n)`` of the days processed since the caller
        last cleared it (for metrics)."""
        return self.monitor.daily

    # -- input ----------------------------------------------------------------------------------
    def add_row(self, row: Mapping[str, Any]) -> None:
        day = day_ordinal(row["d"])
        if self.processed_through is not None and day <= self.processed_through:
            self.late_rows += 1
            return
        rows = self.pending.setdefault(day, {})
        if row["f"] in rows:
            self.duplicates += 1
            return
        rows[row["f"]] = dict(row)

    def add_rows(self, rows: Iterable[Mapping[str, Any]]) -> None:
        for r in rows:
            self.add_row(r)

    def mark(self, partition: int, through: str | int) -> None:
        """Partition ``partition`` has released and reported every firm-day up to ``through``."""
        if not 0 <= partition < self.partitions:
            raise ValueError(f"partition {partition} out of range (partitions={self.partitions})")
        day = through if isinstance(through, int) else day_ordinal(through)
        if day > self.marks.get(partition, -1):
            self.marks[partition] = day

    def request_reenable(self, model: str) -> None:
        """Re-enable a paused model from the next decision on (an operator's call)."""
        self.reenable_due.add(model)

    # -- decisions ------------------------------------------------------------------------------
    def advance(self) -> list[dict]:
        """Process the days every partition has completed; returns the new decisions."""
        if len(self.marks) < self.partitions:
            return []
        complete = min(self.marks.values())
        pd = self.config.breaker.period_days
        if self.next_period is None:
            # Nothing is released before the first decision, so no day before it has rows.
            self.next_period = period_of(complete + 1, pd)
            self.processed_through = period_start(self.next_period, pd) - 1
        assert self.processed_through is not None
        out: list[dict] = []
        for day in range(self.processed_through + 1, complete + 2):
            if day == period_start(self.next_period, pd):
                out.append(self._decide())
            if day <= complete:
                self._process(day)
        return out

    def _process(self, day: int) -> None:
        iso = day_iso(day)
        rows = sorted(self.pending.pop(day, {}).values(), key=lambda r: r["f"])
        book = [(r["f"], r["i"], r["h"], r["s"], r["x"]) for r in rows if r["b"]]
        for ev in self.monitor.on_day(iso, book):
            self.events_due.append({"type": "drift", **ev})
            if (ev["event"] == "retrain" and not ev["holiday"] and ev["kind"] == "psi"
                    and self.config.retrain_action == "reset"):
                self.resets_due.add((ev["segment"], ev["name"]))
        scored: dict[str, list[str]] = {}
        for fid, _, _, scores, _ in book:
            for m, s in scores.items():
                if s is not None:
                    scored.setdefault(m, []).append(fid)
        warnings = [{"source": "model", "new": True, "level": "warning", "name": m, "firm_id": r["f"]}
                    for r in rows for m in r["w"]]
        for ev in self.breaker.observe(iso, scored, warnings):
            self.events_due.append({"type": "breaker", **ev})
        self.processed_through = day

    def _decide(self) -> dict:
        assert self.next_period is not None
        pd = self.config.breaker.period_days
        start = period_start(self.next_period, pd)
        first = day_iso(start)
        # Close the previous period now: the breaker closes a period on its first observation of
        # the next one, and the decision must include that close.
        for ev in self.breaker.observe(first, {}, []):
            self.events_due.append({"type": "breaker", **ev})
        for model in sorted(self.reenable_due):
            if self.breaker.is_paused(model):
                self.events_due.append({"type": "breaker", **self.breaker.reenable(model, first)})
        self.reenable_due.clear()
        decision = {
            "period": self.next_period,
            "from": first,
            "to": day_iso(start + pd - 1),
            "paused": self.breaker.paused(),
            "resets": sorted([list(r) for r in self.resets_due]),
            "events": self.events_due,
        }
        for segment, model in self.resets_due:
            # A reset model gets a new reference: its scores after the reset are compared with
            # its own new normal, not with the distribution of the model it replaced.
            self.monitor.state.pop((segment, "psi", model), None)
        self.events_due = []
        self.resets_due = set()
        self.decisions.append(decision)
        self.next_period += 1
        self._snapshot = self.state_dict()
        return decision

    # -- persistence ----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The compact state now (pending rows are not part of it: they are re-read)."""
        return {
            "v": GOVERNANCE_STATE_VERSION,
            "processed_through": self.processed_through,
            "next_period": self.next_period,
            "breaker": self.breaker.state_dict(),
            "drift": self.monitor.state_dict(),
            "events_due": list(self.events_due),
            "resets_due": sorted([list(r) for r in self.resets_due]),
            "marks": {str(p): d for p, d in sorted(self.marks.items())},
        }

    def snapshot(self) -> dict[str, Any] | None:
        """The state at the last decision (None before the first), with pending re-enable
        requests. Its marks are the decision's own day (every partition had reached it): the
        marks and rows after it come again from the input read after a restart, so that a
        restored stage never takes a day for complete before it has read that day's rows."""
        if self._snapshot is None:
            return None
        through = self._snapshot["processed_through"]
        return {**self._snapshot, "marks": {str(p): through for p in range(self.partitions)},
                "reenable_due": sorted(self.reenable_due)}

    def load_state(self, state: Mapping[str, Any]) -> "Governance":
        if state.get("v") != GOVERNANCE_STATE_VERSION:
            raise ValueError(f"unknown governance state version {state.get('v')!r}")
        self.processed_through = state["processed_through"]
        self.next_period = state["next_period"]
        self.breaker.load_state(state["breaker"])
        self.monitor.load_state(state["drift"])
        self.events_due = list(state["events_due"])
        self.resets_due = {(s, m) for s, m in state["resets_due"]}
        self.marks = {int(p): d for p, d in state["marks"].items()}
        self.reenable_due = set(state.get("reenable_due", ()))
        self.pending = {}
        self._snapshot = dict(state)
        return self
