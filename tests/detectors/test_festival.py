"""The frozen festival profile and how the engine's features use it."""

from __future__ import annotations

import math
from datetime import date

from detectors.engine import Engine, EngineConfig, _festival_table, features
from detectors.festival import DEFAULT_PROFILE, WINDOW, festival_offset
from detectors.rules import Day


def _day(iso: str, ratio: float, industry: str = "manufacturing", holiday: bool = True) -> Day:
    return Day.from_record({
        "firm_id": "F1", "day": iso, "industry": industry, "band": "healthy", "holiday": holiday,
        "flags": [], "components": {"elec": {"value": ratio * 100.0, "baseline": 100.0, "ratio": ratio}},
        "baselines": {"kwh": 100.0}, "aggregate": {},
    })


def test_offsets_and_profile_shape():
    assert festival_offset(date(2026, 2, 17).toordinal()) == 0
    assert festival_offset(date(2026, 2, 10).toordinal()) == WINDOW[0]
    assert festival_offset(date(2026, 2, 27).toordinal()) == WINDOW[1]
    assert festival_offset(date(2026, 2, 9).toordinal()) is None
    for ind, row in DEFAULT_PROFILE.items():
        assert len(row) == WINDOW[1] - WINDOW[0] + 1
        assert all(0.5 < v < 3.0 for v in row), ind


def test_table_uses_only_the_shallow_festival_days_for_the_level():
    table = _festival_table(DEFAULT_PROFILE, 0.2, 0.3)
    row = table["manufacturing"]
    assert row[0] is not None and row[0][2]  # the first day of the window: little activity off
    core = row[0 - WINDOW[0]]  # the festival day itself
    assert core is None or not core[2]
    assert _festival_table(None, 0.2, 0.3) is None


def test_features_on_festival_days():
    table = _festival_table(DEFAULT_PROFILE, 0.2, 0.3)
    fstate = {"t": [0.0, 0.0], "lvl": 100.0}
    # a typical firm on the first festival day: level = its normal level (within the tolerance)
    p0 = DEFAULT_PROFILE["manufacturing"][0]
    f, _ = features(_day("2026-02-10", p0), fstate, 2.0, table)
    assert f["level"] == math.log(100.0)
    # the festival's core: no level (the slide detector holds), elec not above the typical day
    pc = DEFAULT_PROFILE["manufacturing"][-WINDOW[0]]
    f, _ = features(_day("2026-02-17", 0.1), fstate, 2.0, table)
    assert f["level"] is None and f["elec"] == math.log(0.1) - math.log(pc)
    # a healthy firm above the low-end expectation keeps its (raw) elec
    f, _ = features(_day("2026-02-17", 1.9), fstate, 2.0, table)
    assert f["elec"] == min(math.log(1.9), math.log(1.9) - math.log(pc))
    # without a profile: the previous behaviour (no level on holidays, raw elec)
    f, _ = features(_day("2026-02-10", 0.5), fstate, 2.0, None)
    assert f["level"] is None and f["elec"] == math.log(0.5)
    # an industry the profile does not know: as without a profile
    f, _ = features(_day("2026-02-10", 0.5, industry="services"), fstate, 2.0, table)
    assert f["level"] is None and f["elec"] == math.log(0.5)


def test_profile_is_configurable_and_round_trips():
    cfg = EngineConfig.from_dict({"festival_profile": None})
    assert Engine(cfg)._festival is None
    d = EngineConfig().to_dict()
    assert d["festival_profile"] == DEFAULT_PROFILE and d["festival_max_tolerance"] == 0.3
    assert EngineConfig.from_dict(d).to_dict() == d


def _through_festival(depth: float, daily_factor: float) -> list[tuple[int, float | None]]:
    """A manufacturing firm that closes ``depth`` times as deeply as its industry's typical
    festival, its activity multiplied by ``daily_factor`` every day; (offset, level) per day."""
    table = _festival_table(DEFAULT_PROFILE, 0.2, 0.3)
    row = table["manufacturing"]
    fstate: dict = {"t": [0.0, 0.0], "lvl": 100.0}
    out = []
    scale = 1.0
    start = date(2026, 2, 10).toordinal()
    for k in range(WINDOW[1] - WINDOW[0] + 1):
        scale *= daily_factor
        cell = row[k]
        if cell is None:
            continue
        share, hol = cell[3], math.exp(cell[4])
        ratio = scale * (1.0 - depth * share) / hol  # kWh / (level x weekday x holiday factor)
        f, fstate = features(_day(date.fromordinal(start + k).isoformat(), ratio), fstate, 2.0, table,
                             anchor_days=3)
        out.append((k + WINDOW[0], f["level"]))
    return out


def test_festival_level_is_relative_to_the_firms_own_depth():
    # a healthy firm closing 15% deeper than its industry: flat through the deep days
    deep = _through_festival(1.15, 1.0)
    anchoring = [off for off, lv in deep if lv is None]
    assert len(anchoring) == 3  # its first three deep days estimate its depth
    after = [lv for off, lv in deep if off > max(anchoring)]
    assert len(after) >= 5 and all(abs(lv - math.log(100.0)) < 1e-9 for lv in after)
    # without the anchor the deep days give no level at all (the slide detector only holds)
    table = _festival_table(DEFAULT_PROFILE, 0.2, 0.3)
    f, _ = features(_day("2026-02-17", 0.3), {"t": [0.0, 0.0], "lvl": 100.0}, 2.0, table, anchor_days=0)
    assert f["level"] is None
    # a firm sliding 3% a day: its level keeps falling through the festival
    sliding = [lv for off, lv in _through_festival(1.0, 0.97) if lv is not None and off >= 0]
    assert sliding[-1] < math.log(100.0) - 0.15
    assert sliding == sorted(sliding, reverse=True)
