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
