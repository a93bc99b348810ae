"""A frozen, versioned per-industry Spring Festival profile for the detection engine.

Why
===
The vitality record lowers every expectation on Spring Festival days by the industry's holiday
factor, deliberately kept at the *low end* of what firms do (being above expectation costs
nothing). That is right for the vitality score, but it blinds a slide detector: in the core of
the festival a healthy factory runs at ~1.7x its (low-end) expectation, so a firm whose business
is sliding still looks "above expectation" until it has lost 40% of its activity, and the ramps
in and out of the festival (where the low-end curve and real behaviour differ) look like steps.
A decline that starts within two weeks of the festival was therefore invisible to the engine
until the festival was over -- which is after the end of a 120-day window starting in November.

What
====
``profile[industry][offset]`` is the *typical* ratio of a performing firm's electricity to its
vitality expectation on the day ``offset`` days from the festival (``offset`` in the vitality
holiday window, -7..10 by default). The engine divides a holiday day's electricity ratio by it
(:func:`detectors.engine.features`, feature ``level``), so that the slide detector sees a firm's
level relative to what a typical firm of its industry does on that festival day, and can keep
watching through the festival (``level_slide`` scores and learns on festival days when the
profile covers the day; a day the profile does not cover is skipped as before).

The profile is **not** learned inside the engine (that would make one firm's result depend on
other firms). It is estimated offline, like a model release, from the median over the firms of
a calibration population (:func:`estimate_profile`; CLI ``python -m detectors.festival SIMDIR``),
and frozen into the engine configuration (``EngineConfig.festival_profile``), with its
provenance in :data:`DEFAULT_PROFILE_SOURCE`. A median over all firms needs no labels and is
robust to the few firms in distress. In production it would be re-estimated from the previous
year's festival of the performing book and released with a new engine version.

Limits: the profile describes the industry's typical festival; a firm whose festival pattern is
far from its industry's (closing a week longer, say) reads as a dip on those days. The slide
detector's step logic and its CUSUM limit the damage (a festival pattern is not a steady slide),
and the backtest reports false warnings on healthy and seasonal firms, festival included.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from datetime import date
from pathlib import Path
from typing import Mapping

import orjson

from streams.vitality import DEFAULT as _VIT, SPRING_FESTIVAL_DATES as FESTIVAL_DATES

__all__ = [
    "FESTIVAL_DATES",
    "WINDOW",
    "DEFAULT_PROFILE",
    "DEFAULT_PROFILE_SOURCE",
    "festival_offset",
    "vitality_holiday_factor",
    "estimate_profile",
]

#: Festival dates and the holiday window: those of :mod:`streams.vitality` (the days the vitality
#: record flags ``holiday``), which owns them.
WINDOW: tuple[int, int] = tuple(_VIT.holiday_window)  # type: ignore[assignment]
_CENTERS = tuple(date.fromisoformat(d).toordinal() for d in FESTIVAL_DATES)
_OFFSET: dict[int, int] = {}
for _c in _CENTERS:
    for _o in range(WINDOW[0], WINDOW[1] + 1):
        _OFFSET.setdefault(_c + _o, _o)


def festival_offset(ordinal: int) -> int | None:
    """Days from the festival if ``ordinal`` lies in a festival window, else None.

    >>> festival_offset(date(2026, 2, 17).toordinal()), festival_offset(date(2026, 2, 10).toordinal())
    (0, -7)
    >>> festival_offset(date(2026, 3, 17).toordinal()) is None
    True
    """
    return _OFFSET.get(ordinal)


def vitality_holiday_factor(industry: str, offset: int) -> float:
    """The vitality expectation's holiday factor ``offset`` days from the festival (the same
    shape every year, so it is read off the first festival date).

    >>> vitality_holiday_factor("manufacturing", 1)
    0.15
    """
    return _VIT.holiday_factor(industry, _CENTERS[0] + offset)


#: Typical electricity ratio (actual / vitality expectation) per industry, offsets -7..10,
#: estimated by :func:`estimate_profile` on a calibration population (see
#: :data:`DEFAULT_PROFILE_SOURCE`), rounded to 3 decimals.
DEFAULT_PROFILE: dict[str, list[float]] = {
    "agriculture": [1.019, 1.03, 1.067, 1.125, 1.17, 1.316, 1.273, 1.264, 1.247, 1.265, 1.252, 1.256, 1.677, 2.089, 1.7, 1.52, 1.386, 1.148],
    "logistics_trade": [1.015, 1.029, 1.06, 1.14, 1.262, 1.645, 1.612, 1.656, 1.671, 1.616, 1.658, 1.659, 1.662, 1.665, 1.192, 1.098, 1.05, 1.022],
    "manufacturing": [1.009, 1.044, 1.078, 1.151, 1.301, 1.604, 1.676, 1.6, 1.666, 1.607, 1.633, 1.678, 1.627, 1.659, 1.234, 1.117, 1.052, 1.033],
    "restaurant_retail": [1.007, 1.011, 1.038, 1.061, 1.085, 1.122, 1.14, 1.127, 1.131, 1.117, 1.144, 1.335, 1.553, 1.78, 1.608, 1.49, 1.273, 1.118],
}

DEFAULT_PROFILE_SOURCE = (
    "estimate_profile on a calibration population: riskmon simulate --firms 500 --days 120 --seed 3 "
    "(2025-11-01 .. 2026-02-28; not the seed-7 or seed-11 evaluation populations)"
)


def estimate_profile(sim_dir: Path | str, min_firms: int = 20) -> dict[str, list[float]]:
    """The median electricity ratio on each festival-window day, per industry, over the
    *performing book* of ``SIMDIR/vitality.jsonl``: firms whose vitality band was ``healthy`` on
    their last day before the festival window (no labels used; firms already in distress would
    bias the median down). Data-gap days are left out. Offsets with fewer than ``min_firms``
    observations are left at 1.0 (no correction)."""
    from detectors.evaluate import iter_firm_records

    acc: dict[str, dict[int, list[float]]] = {}
    for _, recs in iter_firm_records(Path(sim_dir) / "vitality.jsonl"):
        band_before = None
        for r in recs:
            flags = r.get("flags") or ()
            off = festival_offset(date.fromisoformat(r["day"]).toordinal())
            if off is None:
                if not r.get("holiday"):
                    band_before = r.get("band")
                continue
            if band_before != "healthy" or r.get("band") == "warming_up":
                continue
            if "elec_missing" in flags or "silent" in flags or "elec_partial" in flags:
                continue
            ratio = ((r.get("components") or {}).get("elec") or {}).get("ratio")
            if ratio is None:
                continue
            acc.setdefault(r.get("industry") or "default", {}).setdefault(off, []).append(float(ratio))
    out = {}
    for ind in sorted(acc):
        row = []
        for off in range(WINDOW[0], WINDOW[1] + 1):
            xs = acc[ind].get(off, [])
            row.append(round(statistics.median(xs), 3) if len(xs) >= min_firms else 1.0)
        out[ind] = row
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m detectors.festival",
                                description="estimate the per-industry festival profile from a population")
    p.add_argument("path", help="simulation directory holding vitality.jsonl")
    a = p.parse_args(argv)
    prof = estimate_profile(a.path)
    sys.stdout.write(orjson.dumps({"window": list(WINDOW), "profile": prof},
                                  option=orjson.OPT_INDENT_2).decode() + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
