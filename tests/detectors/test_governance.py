"""The governance stage (detectors.governance): decisions per period from rows and marks."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest

from detectors.drift import BreakerConfig, DriftConfig
from detectors.engine import Engine
from detectors.governance import Governance, GovernanceConfig, govern_day, period_of, row_of

MONDAY = date(2026, 3, 2)  # a period starts on a Monday
CFG = GovernanceConfig(breaker=BreakerConfig(threshold=0.1, min_firms=5),
                       drift=DriftConfig(reference_days=7, window_days=3, min_daily=5, min_count=15))


def iso(offset: int) -> str:
    return (MONDAY + timedelta(days=offset)).isoformat()


def row(firm: str, day: str, score: float = 0.1, warned: tuple[str, ...] = (), segment: str = "retail",
        holiday: bool = False, book: bool = True) -> dict[str, Any]:
    return {"f": firm, "d": day, "i": segment, "h": holiday, "b": book, "s": {"m": score}, "x": {}, "w": list(warned)}


def feed_day(gov: Governance, offset: int, firms: int = 10, warned: int = 0, score: float = 0.1, **kw: Any) -> None:
    gov.add_rows(row(f"F{i:02d}", iso(offset), score, ("m",) if i < warned else (), **kw) for i in range(firms))


def run_days(gov: Governance, days: int, warned_by_week: dict[int, int] | None = None,
             score_by_day: Any = None, partitions: int = 1, **kw: Any) -> list[dict]:
    """Feed ``days`` days from MONDAY; each day complete on every partition. Returns decisions."""
    decisions = []
    for p in range(partitions):
        gov.mark(p, MONDAY.toordinal() - 1)
    decisions += gov.advance()
    for offset in range(days):
        week = offset // 7
        w = (warned_by_week or {}).get(week, 0) if offset % 7 == 0 else 0
        feed_day(gov, offset, warned=w, score=score_by_day(offset) if score_by_day else 0.1, **kw)
        for p in range(partitions):
            gov.mark(p, MONDAY.toordinal() + offset)
        decisions += gov.advance()
    return decisions


def test_no_decision_until_every_partition_has_reported() -> None:
    gov = Governance(CFG, partitions=3)
    gov.mark(0, iso(-1))
    gov.mark(2, iso(-1))
    assert gov.advance() == []
    gov.mark(1, iso(-1))
    (first,) = gov.advance()
    assert first["from"] == iso(0) and first["paused"] == [] and first["resets"] == []
    with pytest.raises(ValueError):
        gov.mark(3, iso(0))


def test_a_decision_needs_the_days_before_its_period_only() -> None:
    gov = Governance(CFG, partitions=2)
    run_days(gov, 6, partitions=2)  # Monday..Saturday complete everywhere
    assert [d["from"] for d in gov.decisions] == [iso(0)]
    gov.mark(0, iso(6))
    assert gov.advance() == []  # partition 1 has not finished Sunday
    gov.mark(1, iso(6))
    (nxt,) = gov.advance()
    assert nxt["from"] == iso(7) and nxt["to"] == iso(13)


def test_breaker_opens_after_two_bad_periods_and_an_operator_reenables_it() -> None:
    gov = Governance(CFG)
    # 3 of 10 firms newly warned in weeks 0 and 1 (alert rate 0.3 > 0.1), none afterwards
    decisions = run_days(gov, 21, warned_by_week={0: 3, 1: 3})
    by_from = {d["from"]: d for d in decisions}
    assert by_from[iso(7)]["paused"] == []  # one bad period is not enough
    assert by_from[iso(14)]["paused"] == ["m"]
    assert [e["event"] for e in by_from[iso(14)]["events"] if e["type"] == "breaker"] == ["breaker_open"]
    # stays paused while nobody re-enables it, even with a clean week
    gov.mark(0, iso(20))
    assert gov.decisions[-1]["from"] == iso(21) and gov.decisions[-1]["paused"] == ["m"]
    gov.request_reenable("m")
    run_more = [row(f"F{i:02d}", iso(21 + k)) for k in range(7) for i in range(10)]
    gov.add_rows(run_more)
    gov.mark(0, iso(27))
    (after,) = gov.advance()
    assert after["paused"] == []
    assert [e["event"] for e in after["events"] if e["type"] == "breaker"] == ["breaker_reset"]


def test_govern_day_downgrades_a_paused_models_warning() -> None:
    class OneWarning:
        def step(self, state: Any, record: Any) -> Any:
            from detectors.engine import DayResult

            det = {"firm_id": record["firm_id"], "day": record["day"], "source": "model", "name": "m",
                   "level": "warning", "action": "FREEZE_ADJUSTMENTS", "score": 0.9, "new": True, "reasons": []}
            return DayResult([det], {"d": date.fromisoformat(record["day"]).toordinal(), "lw": None},
                             {"m": 0.9}, {})

    record = {"firm_id": "F1", "day": iso(0), "industry": "retail", "band": "healthy"}
    res, final, r = govern_day(OneWarning(), None, record, {"paused": ["m"], "resets": []}, CFG)
    assert res.detections[0]["level"] == "warning"  # the engine's own output is untouched
    assert (final[0]["level"], final[0]["action"], final[0]["paused"]) == ("watch", "HUMAN_REVIEW", True)
    assert final[0]["reasons"][-1]["code"] == "breaker_open"
    assert r is not None and r["w"] == ["m"]  # the breaker counts what the model raised
    _, kept, _ = govern_day(OneWarning(), None, record, {"paused": [], "resets": []}, CFG)
    assert kept[0]["level"] == "warning"


def test_a_retrain_event_on_regular_days_resets_the_model_once_per_segment() -> None:
    gov = Governance(CFG)
    # scores jump from 0.1 to 0.95 after the 7-day reference: PSI far above 0.25
    decisions = run_days(gov, 35, score_by_day=lambda d: 0.1 if d < 9 else 0.95)
    resets = [(d["from"], d["resets"]) for d in decisions if d["resets"]]
    # once: the reset model gets a new reference (its scores since the reset), so the same shift
    # does not fire again every week
    assert resets == [(iso(14), [["retail", "m"]])]
    ref = gov.monitor.state[("retail", "psi", "m")]["ref"]
    assert ref[-1] == sum(ref) > 0
    for action, holiday in (("mark", False), ("reset", True)):
        g = Governance(GovernanceConfig(breaker=CFG.breaker, drift=CFG.drift, retrain_action=action))
        ds = run_days(g, 21, score_by_day=lambda d: 0.1 if d < 9 else 0.95, holiday=holiday)
        assert not any(d["resets"] for d in ds), (action, holiday)
        assert any(e.get("event") == "retrain" for d in ds for e in d["events"])


def test_reset_applies_on_the_firms_first_day_of_the_period_and_spares_warned_firms() -> None:
    engine = Engine()
    seen: list[Any] = []

    class Spy:
        def reset_models(self, state: Any, models: Any) -> Any:
            seen.append(list(models))
            return engine.reset_models(state, models)

        def step(self, state: Any, record: Any) -> Any:
            return engine.step(state, record)

    decision = {"paused": [], "resets": [["retail", "firm_profile"]]}
    base = {"v": 1, "r": {}, "m": {"firm_profile": {"x": 1}}, "k": {}, "e": {}, "f": None}
    record = {"firm_id": "F1", "day": iso(7), "industry": "retail", "band": "warming_up"}
    last_week = MONDAY.toordinal() + 6
    govern_day(Spy(), {**base, "d": last_week, "lw": None}, record, decision, CFG)
    assert seen == [["firm_profile"]]
    govern_day(Spy(), {**base, "d": last_week + 1, "lw": None}, dict(record, day=iso(8)), decision, CFG)
    assert len(seen) == 1  # not again on the period's second day
    govern_day(Spy(), {**base, "d": last_week, "lw": last_week - 3}, record, decision, CFG)
    assert len(seen) == 1  # a firm warned within 30 days keeps its model
    govern_day(Spy(), {**base, "d": last_week, "lw": None}, dict(record, industry="agriculture"), decision, CFG)
    assert len(seen) == 1  # another segment


def test_rows_are_deduplicated_and_late_rows_counted() -> None:
    gov = Governance(CFG)
    gov.mark(0, iso(-1))
    gov.advance()
    gov.add_row(row("F1", iso(0)))
    gov.add_row(row("F1", iso(0), score=0.9))
    assert gov.duplicates == 1
    gov.mark(0, iso(0))
    gov.advance()
    gov.add_row(row("F2", iso(0)))
    assert gov.late_rows == 1


def test_a_restored_stage_continues_exactly() -> None:
    def feed(gov: Governance, days: range) -> list[dict]:
        out = []
        for offset in days:
            feed_day(gov, offset, warned=3 if offset in (0, 7) else 0, score=0.1 if offset < 9 else 0.95)
            gov.mark(0, MONDAY.toordinal() + offset)
            out += gov.advance()
        return out

    straight = Governance(CFG)
    straight.mark(0, iso(-1))
    straight.advance()
    feed(straight, range(28))

    crashed = Governance(CFG)
    crashed.mark(0, iso(-1))
    crashed.advance()
    feed(crashed, range(17))  # decided the period from day 14, then processed days 14..16
    snap = crashed.snapshot()
    assert snap is not None and snap["processed_through"] == MONDAY.toordinal() + 13
    restored = Governance(CFG).load_state(snap)
    # the input is read again from the first row after the snapshot's days (and a bit before)
    feed_day(restored, 13)  # already decided: ignored
    assert restored.late_rows == 10
    feed(restored, range(14, 28))
    assert restored.decisions == straight.decisions[len(straight.decisions) - len(restored.decisions):]
    assert restored.breaker.state_dict() == straight.breaker.state_dict()


def test_row_of_keeps_the_performing_book_and_new_model_warnings() -> None:
    rec = {"firm_id": "F1", "day": iso(40), "industry": "retail", "band": "healthy", "holiday": False}
    warning = {"source": "model", "name": "m", "new": True, "level": "warning"}
    r = row_of(rec, {"m": 0.2}, {"elec": 0.0}, [warning], {"lw": MONDAY.toordinal() + 40}, 30)
    assert r is not None and r["b"] is False and r["w"] == ["m"]
    assert row_of(rec, {"m": 0.2}, {}, [], {"lw": None}, 30)["b"] is True
    assert row_of(dict(rec, band="warming_up"), {}, {}, [], None, 30) is None
    assert period_of(MONDAY.toordinal()) == period_of(MONDAY.toordinal() + 6) != period_of(MONDAY.toordinal() + 7)


def test_config_round_trips_through_json() -> None:
    import orjson

    assert GovernanceConfig.from_dict(orjson.loads(orjson.dumps(CFG.to_dict()))) == CFG
    with pytest.raises(ValueError):
        GovernanceConfig(retrain_action="retrain")
