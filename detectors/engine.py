"""The per-firm detection engine: reference rules + per-firm online models, one closed firm-day
at a time.

    detections, new_state = on_day(state, record)

``record`` is a vitality record as published on ``riskmon.vitality`` (:func:`streams.pipeline.
vitality_record`); ``state`` is this firm's engine state from the previous call (None for the
firm's first day). The function is **pure**: the result depends only on the firm's own records,
in day order -- not on partitions, workers, other firms or replay speed. The state is
JSON-serialisable (lists, dicts with string keys, numbers, bools, None), bounded (no growing
lists: about 1.7 kB per firm with the default configuration, 2 kB at most on the simulated
population, see :func:`state_size`), never
mutated in place, and a state that went through JSON continues exactly like the original. The
new state shares the lists that did not change with the previous one (copy-on-write: copying
every list every day was a large part of the engine's cost), so treat states as values -- store
or serialise them, do not edit them.
A record for a day not after the state's last day is ignored (``([], state)``): re-delivered
records are harmless.

Detection schema
================
``{"firm_id", "day", "source": "rule" | "model", "name", "level", "action", "score", "new",
"reasons": [{"code", "observed", "reference", "contribution", "text"}, ...]}``

* ``level``: info / watch / warning / critical (:data:`detectors.rules.LEVELS`);
* ``action``: FREEZE_ADJUSTMENTS, RM_FOLLOW_UP, INCREASE_ELIGIBLE, HUMAN_REVIEW, DATA_CHECK, NONE;
* ``score`` in [0, 1] (rules: 0.5 at their threshold, more the deeper; models: the calibrated
  score, 0.5 = the model's decision point, see :mod:`detectors.firm_models`);
* ``new``: first day of an episode of this detection at this level (a detection is repeated every
  day its condition holds, so a freeze stays in force exactly while the evidence does);
* ``reasons``: ordered, most important first; ``observed`` / ``reference`` hold the exact
  numbers the rule or model compared, ``contribution`` the reason's share, ``text`` a sentence.

Detections come in a fixed order: rules in configuration order, then models.

Models in the firm path
=======================
Each :class:`ModelSpec` names a registered detector (:data:`detectors.base.REGISTRY`), its
parameters and its input feature(s), computed from the record by :func:`features`:

* ``elec``: log of today's electricity ratio (kWh / expected), None on a missing-data day; on a
  Spring Festival day, when lower, relative to the industry's typical festival day (see below);
* ``level``: the deseasonalised log kWh level (log ratio + log of yesterday's baseline level);
  on a Spring Festival day, relative to the industry's typical festival day within a tolerance,
  and only on the festival's first and last days (see below);
* ``activity``: log of the 3-day orders+payments ratio (shrunk, see :mod:`streams.vitality`);
* ``payments``: log of today's payment inflow ratio, shrunk by 2 payments of the firm's ticket;
* ``invoice``: log of the recent / baseline issued invoice amount.

Ratios are floored at 0.02 before the log. Models skip ``warming_up`` days and data-gap days
(``elec_missing`` or ``silent``: a data outage is not distress) entirely; on ``elec_partial``
days (an incomplete day) only the electricity features are used. On a Spring Festival day a
model scores but does not learn (``score_on_holiday``, ``learn_on_holiday``), except
``level_slide``, which scores and learns on the festival days that have a ``level``.

**Spring Festival.** The vitality expectation on festival days is the industry's *low-end*
festival activity, so a healthy factory runs at ~1.6x "expected" in the festival's core and a
firm sliding into trouble looks fine until it has lost ~40%. ``EngineConfig.festival_profile``
(a frozen per-industry profile of the typical ratio on each festival-window day, estimated
offline on a calibration population: :mod:`detectors.festival`) lets the features compare a
festival day with a typical firm's. Firms close more or less deeply (``festival_depth_spread``,
20% relative), which makes the deep festival days useless for a slide: ``level`` is given only
on days whose resulting tolerance is at most ``festival_max_tolerance`` (the ramps in and out),
soft-thresholded by that tolerance; the slide detector holds its state over the core. Without
the profile a declining firm that started within two weeks of the festival was invisible until
the festival ended (after the simulated window).

A model's score becomes a *watch* detection at
``watch_threshold`` and a *warning* when one of its ``warning`` conditions ``(threshold, k)``
holds: the score was at or above ``threshold`` on each of the last ``k`` days the model scored
(days it did not score hold the count). The profile and the CUSUMs run protected (a point scoring
above ``protect_threshold`` is not learned, so a collapse does not become the baseline); the
slide detector protects its reference itself (see :class:`detectors.firm_models.LevelSlide`).

Default models (:func:`default_models`; thresholds tuned on the simulated population, see
:mod:`detectors.evaluate`):

==============  ============  ===========================================  ======================
name            detector      input                                        warning when
==============  ============  ===========================================  ======================
firm_profile    firm_profile  elec, activity, payments, invoice (drops;    score >= 0.5 on 2 days
                              decoupling: payments or activity up while    or >= 0.8 on 1 day
                              power is down)
elec_shift      cusum_shift   elec (downward change)                       watch only
invoice_shift   cusum_shift   invoice (downward change)                    watch only
level_slide     level_slide   level (gradual slide; steps ignored;         score >= 0.5 on 1 day
                              festival-aware, see above)                   (CUSUM h = 7)
==============  ============  ===========================================  ======================

Cross-firm models (e.g. HalfSpaceTrees per industry) are deliberately not in the firm path: they
would make a firm's result depend on other firms unless frozen and versioned; the per-industry
view lives in governance (:mod:`detectors.governance`), which acts on a firm only through
per-period decisions (a paused model, a model reset) that every partition applies alike.

``electricity_growth`` (INCREASE_ELIGIBLE) is suppressed (action NONE, reason
``suppressed_by_warning``) while any warning was raised for the firm within
``suppress_increase_days``.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

import orjson

from detectors.base import REGISTRY, Detector, load_all
from detectors.festival import DEFAULT_PROFILE, WINDOW as _FEST_WINDOW, festival_offset, vitality_holiday_factor
from detectors.rules import LEVEL_RANK, Day, Rule, default_rules, reason, rules_from_config, rules_to_config

__all__ = [
    "ModelSpec",
    "EngineConfig",
    "Engine",
    "DayResult",
    "default_models",
    "features",
    "on_day",
    "state_size",
    "STATE_VERSION",
    "FEATURE_TEXT",
]

STATE_VERSION = 1
_FLOOR = 0.02
#: smallest predicted festival activity share (1 - depth x C) at which the depth-anchored
#: festival level is still given
_ANCHOR_MIN_SHARE = 0.05
_PAY_DECAY = 0.5 ** (1.0 / 30.0)  # the payment ticket's daily decay (30-day half-life)

#: Human wording of the features, for reason texts.
FEATURE_TEXT: dict[str, str] = {
    "elec": "electricity",
    "level": "electricity level",
    "activity": "orders and payments (3 days)",
    "payments": "payment inflow",
    "invoice": "issued invoice amount (recent)",
}


@dataclass(frozen=True)
class ModelSpec:
    """One per-firm model of the engine."""

    name: str
    detector: str
    inputs: tuple[str, ...]
    params: Mapping[str, Any] = field(default_factory=dict)
    watch_threshold: float | None = 0.5
    warning: tuple[tuple[float, int], ...] = ((0.5, 2),)
    action: str = "FREEZE_ADJUSTMENTS"
    watch_action: str = "RM_FOLLOW_UP"
    enabled: bool = True
    score_on_holiday: bool = True
    learn_on_holiday: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "inputs", tuple(self.inputs))
        object.__setattr__(self, "warning", tuple((float(t), int(k)) for t, k in self.warning))
        object.__setattr__(self, "params", dict(self.params))
        for t, k in self.warning:
            if not (0.0 < t <= 1.0 and k >= 1):
                raise ValueError(f"model {self.name!r}: warning conditions need 0 < threshold <= 1, k >= 1")

    @property
    def multivariate(self) -> bool:
        return len(self.inputs) > 1

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["inputs"] = list(self.inputs)
        d["warning"] = [list(w) for w in self.warning]
        return d


def default_models() -> tuple[ModelSpec, ...]:
    """The default per-firm models (thresholds tuned on the simulated population, see
    :mod:`detectors.evaluate`)."""
    return (
        ModelSpec(
            name="firm_profile",
            detector="firm_profile",
            inputs=("elec", "activity", "payments", "invoice"),
            params={
                "half_life": 30.0,
                "warmup": 10,
                "z_half": 4.0,
                "min_scale": {"elec": 0.35, "activity": 0.5, "payments": 0.7, "invoice": 0.5},
                "signs": {"elec": -1, "activity": -1, "payments": -1, "invoice": -1},
                "pairs": [["elec", "payments"], ["elec", "activity"]],
                "second_weight": 0.5,
                "protected": True,
                "protect_threshold": 0.5,
            },
            watch_threshold=0.5,
            warning=((0.5, 2), (0.8, 1)),
        ),
        ModelSpec(
            name="elec_shift",
            detector="cusum_shift",
            inputs=("elec",),
            params={"half_life": 30.0, "k": 0.5, "h": 8.0, "direction": "down", "min_scale": 0.05,
                    "warmup": 7, "protected": True, "protect_threshold": 0.5},
            watch_threshold=0.5,
            warning=(),
            watch_action="RM_FOLLOW_UP",
        ),
        ModelSpec(
            name="invoice_shift",
            detector="cusum_shift",
            inputs=("invoice",),
            params={"half_life": 30.0, "k": 1.0, "h": 10.0, "direction": "down", "min_scale": 0.3,
                    "warmup": 7, "protected": True, "protect_threshold": 0.5},
            watch_threshold=0.5,
            warning=(),
            watch_action="RM_FOLLOW_UP",
        ),
        ModelSpec(
            name="level_slide",
            detector="level_slide",
            inputs=("level",),
            params={"k": 1.0, "h": 7.0, "half_life": 60.0, "min_scale": 0.04, "jump": 0.25,
                    "suppress": 21, "warmup": 14, "direction": "down"},
            watch_threshold=0.5,
            warning=((0.5, 1),),
            # on festival days the input is the level relative to the industry's typical
            # festival day (EngineConfig.festival_profile); days it does not cover are skipped
            score_on_holiday=True,
            learn_on_holiday=True,
        ),
    )


@dataclass(frozen=True)
class EngineConfig:
    """Rules, models and engine policy. ``version`` is stamped into reports."""

    rules: tuple[Rule, ...] = field(default_factory=default_rules)
    models: tuple[ModelSpec, ...] = field(default_factory=default_models)
    payment_prior: float = 2.0
    suppress_increase_days: int = 30
    #: per-industry typical festival profile (see :mod:`detectors.festival`); None or {} = off
    festival_profile: Mapping[str, Any] | None = field(default_factory=lambda: dict(DEFAULT_PROFILE))
    #: how much deeper (relative) than its industry a firm may close for the festival, and the
    #: largest resulting tolerance (log) at which a festival day is still used (see
    #: _festival_table)
    festival_depth_spread: float = 0.2
    festival_max_tolerance: float = 0.3
    #: festival days (those too deep for the tolerance) on which a firm's own festival depth is
    #: estimated before its festival level is given relative to it; 0 = off (see features)
    festival_anchor_days: int = 3
    version: str = "detect-3"

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> "EngineConfig":
        """``{"rules": <see rules_from_config>, "models": {name: {field: value}} | [spec, ...],
        "payment_prior": ..., "suppress_increase_days": ..., "version": ...}``; anything
        missing keeps its default."""
        d = dict(d or {})
        rules = rules_from_config(d.pop("rules", None))
        mconf = d.pop("models", None)
        if mconf is None:
            models = default_models()
        elif isinstance(mconf, list):
            models = tuple(ModelSpec(**m) for m in mconf)
        else:
            base = {m.name: m for m in default_models()}
            out = []
            for name, m in base.items():
                over = mconf.get(name)
                if over:
                    params = {**m.params, **over.get("params", {})}
                    out.append(dataclasses.replace(m, **{**{k: v for k, v in over.items() if k != "params"},
                                                         "params": params}))
                else:
                    out.append(m)
            for name, over in mconf.items():
                if name not in base:
                    out.append(ModelSpec(name=name, **over))
            models = tuple(out)
        return cls(rules=rules, models=models, **d)

    def to_dict(self) -> dict[str, Any]:
        return {
            "rules": rules_to_config(self.rules),
            "models": [m.to_dict() for m in self.models],
            "payment_prior": self.payment_prior,
            "suppress_increase_days": self.suppress_increase_days,
            "festival_profile": dict(self.festival_profile) if self.festival_profile else None,
            "festival_depth_spread": self.festival_depth_spread,
            "festival_max_tolerance": self.festival_max_tolerance,
            "festival_anchor_days": self.festival_anchor_days,
            "version": self.version,
        }


# --------------------------------------------------------------------------------------------
# Features
# --------------------------------------------------------------------------------------------


def _log(r: float | None) -> float | None:
    if r is None:
        return None
    return math.log(r if r > _FLOOR else _FLOOR)


def _festival_table(profile: Mapping[str, Any] | None, depth_spread: float, max_tolerance: float
                    ) -> dict[str, tuple[tuple[float, float, bool, float, float] | None, ...]] | None:
    """``{industry: per festival-window offset, (log profile factor, tolerance, usable for the
    level, typical share of activity closed C, log vitality holiday factor) or None}``.

    The profile gives the typical ratio ``p`` of a firm's electricity to its (low-end) vitality
    expectation; ``p x`` the vitality holiday factor ``h`` is the typical share of normal
    activity kept that day, ``f = p h`` (so ``C = 1 - f``). Firms close more or less deeply than
    the typical one: a firm closing ``depth_spread`` (relative) deeper keeps
    ``1 - (1 + spread)(1 - f)``, i.e. its ratio is lower by ``tol = -log(1 - spread (1 - f) / f)``
    (None: such a firm could be shut that day). The level (slide detector) uses a day only when
    ``tol <= max_tolerance`` (the first and last days of the festival window: little of the
    activity is off); deeper festival days say nothing about a slide."""
    if not profile:
        return None
    out = {}
    for ind, row in profile.items():
        cells: list[tuple[float, float, bool, float, float] | None] = []
        for i, v in enumerate(row):
            if v is None or float(v) <= 0:
                cells.append(None)
                continue
            h = vitality_holiday_factor(ind, _FEST_WINDOW[0] + i)
            f = min(1.0, float(v) * h)
            q = 1.0 - depth_spread * (1.0 - f) / f
            if q <= 0:
                cells.append(None)
                continue
            tol = -math.log(q)
            cells.append((math.log(float(v)), tol, tol <= max_tolerance, 1.0 - f, math.log(h)))
        out[ind] = tuple(cells)
    return out


def features(day: Day, fstate: Mapping[str, Any] | None, payment_prior: float = 2.0,
             festival: Mapping[str, tuple] | None = None, anchor_days: int = 0
             ) -> tuple[dict[str, float | None], dict[str, Any]]:
    """The model features of one day and the new feature state ``{"t": [decayed payment
    inflow, decayed payment count], "lvl": yesterday's deseasonalised kWh level}``.

    ``festival``: the table of :func:`_festival_table` (see :mod:`detectors.festival`). On a holiday day covered by the table, ``elec`` is the log ratio
    to the vitality's (low-end) holiday expectation or, when lower, the log ratio relative to the
    industry's typical festival day (log ratio - log profile factor: a firm at standby power in
    the festival's core is not "above expectation"); ``level``, on the days usable for the level
    (else None: not scored), is the relative log ratio soft-thresholded by the day's tolerance
    (firms close more or less deeply than the typical one: a day within the tolerance reads as
    normal, one further away counts only by the excess) plus the log level. A holiday day the table does not cover keeps the raw ``elec`` (ratio to
    the low-end holiday expectation) and has no ``level``, as before."""
    if fstate:
        t, lvl = fstate["t"], fstate["lvl"]  # t is replaced, never changed: no copy
        fd = fstate.get("fd")
    else:
        t, lvl, fd = [0.0, 0.0], None, None
    no_evidence = day.elec_missing or day.silent
    elec = level = activity = payments = invoice = None
    in_window = False
    if not no_evidence:
        elec = _log(day.elec_ratio)
        if elec is not None and day.holiday:
            cell = None
            if festival is not None:
                row = festival.get(day.industry)
                off = festival_offset(day.ordinal)
                if row is not None and off is not None:
                    cell = row[off - _FEST_WINDOW[0]]
                    in_window = True
            if cell is not None:
                dev = elec - cell[0]  # relative to the industry's typical festival day
                if anchor_days > 0 and lvl and (fd is not None or not cell[2]):
                    # the firm's own festival depth (see the docstring): estimated on its first
                    # `anchor_days` deep festival days, then the level is relative to it
                    c = cell[3]
                    if fd is None:
                        fd = [0.0, 0.0, 0]
                    if fd[2] < anchor_days:
                        if c > 0.0:
                            a = math.exp(elec + cell[4])  # kWh / (level x weekday factor)
                            fd = [fd[0] + c * (1.0 - a), fd[1] + c * c, fd[2] + 1]
                    else:
                        pred = 1.0 - (fd[0] / fd[1]) * c
                        if pred >= _ANCHOR_MIN_SHARE:
                            level = elec + cell[4] - math.log(pred) + math.log(lvl)
                elif lvl and cell[2]:
                    # soft-thresholded by the tolerance for firms closing more or less deeply
                    tol = cell[1]
                    level = (dev - tol if dev > tol else dev + tol if dev < -tol else 0.0) + math.log(lvl)
                if dev < elec:
                    elec = dev
        elif elec is not None and lvl:
            level = elec + math.log(lvl)
        if not day.elec_partial:
            # a day with a data gap is incomplete for every feed (an outage usually hits several)
            comps = day.record.get("components") or {}
            activity = _log((comps.get("activity_3d") or {}).get("ratio"))
            invoice = _log((comps.get("invoice_amt") or {}).get("ratio"))
            pe = day.pay_expected
            if pe is not None and pe > 0 and t[1] > 0:
                k = payment_prior * t[0] / t[1]
                payments = _log((day.pay_in + k) / (pe + k))
    if day.pay_in_n > 0 and not day.holiday:
        t = [_PAY_DECAY * t[0] + day.pay_in, _PAY_DECAY * t[1] + day.pay_in_n]
    if day.kwh_level and not no_evidence:
        lvl = day.kwh_level
    nf = {"t": t, "lvl": lvl}
    if fd is not None and (in_window or (no_evidence and day.holiday)):
        nf["fd"] = fd  # kept through the festival window (a data gap inside it keeps it too)
    return ({"elec": elec, "level": level, "activity": activity, "payments": payments, "invoice": invoice},
            nf)


# --------------------------------------------------------------------------------------------
# Model reasons
# --------------------------------------------------------------------------------------------


def _pct(x: float) -> str:
    return f"{100.0 * x:.0f}%"


def _r4(x: float) -> float:
    return round(float(x), 4)


def _model_reasons(spec: ModelSpec, det: Detector, x: Any, days_above: int) -> list[dict[str, Any]]:
    kind = spec.detector
    out: list[dict[str, Any]] = []
    if kind == "cusum_shift":
        e = det.explain(x)
        f = spec.inputs[0]
        g = {"down": e["g_down"], "up": e["g_up"]}.get(det.direction, max(e["g_down"], e["g_up"]))
        out.append(reason(
            f"{f}_shift",
            {"ratio": _r4(math.exp(e["x"])), "log_ratio": _r4(e["x"]), "z": _r4(e["z"]), "cusum": _r4(g)},
            {"usual_ratio": _r4(math.exp(e["mean"])), "scale": _r4(e["scale"]), "decision_interval": e["h"]},
            1.0,
            f"{FEATURE_TEXT.get(f, f)} at {_pct(math.exp(e['x']))} of expected, usually "
            f"{_pct(math.exp(e['mean']))}: cumulative shift {g:.1f} vs decision interval {e['h']:g}",
        ))
    elif kind == "firm_profile":
        for row in det.explain(x)[:3]:
            if row["contribution"] <= 0:
                continue
            name = row["feature"]
            if ">" in name:
                a, b = name.split(">")
                out.append(reason(
                    f"{a}_down_{b}_up",
                    {"z_" + a: _r4(row["z_down"]), "z_" + b: _r4(row["z_up"])},
                    {"rule": f"{b} above its usual level while {a} is below"},
                    row["contribution"],
                    f"{FEATURE_TEXT.get(b, b)} up ({row['z_up']:+.1f} sd) while {FEATURE_TEXT.get(a, a)} "
                    f"is down ({row['z_down']:+.1f} sd)",
                ))
            else:
                ratio, usual = math.exp(row["x"]), math.exp(row["mean"])
                out.append(reason(
                    f"{name}_deviation",
                    {"ratio": _r4(ratio), "log_ratio": _r4(row["x"]), "z": _r4(row["z"])},
                    {"usual_ratio": _r4(usual), "scale": _r4(row["scale"])},
                    row["contribution"],
                    f"{FEATURE_TEXT.get(name, name)} at {_pct(ratio)} of expected (usually {_pct(usual)}): "
                    f"{abs(row['z']):.1f} robust sd {'below' if row['z'] < 0 else 'above'}",
                ))
    elif kind == "level_slide":
        p = det.explain(x)
        if p is not None:
            rel = math.exp(p["x"] - p["ref"])
            g = p["g_down"] if det.direction != "up" else p["g_up"]
            since = p["days_since_step"]
            out.append(reason(
                "level_slide",
                {"level_vs_reference": _r4(rel), "z": _r4(p["z"]), "cusum": _r4(g),
                 "days_since_step": since if since < 10**5 else None},
                {"reference_level_kwh": _r4(math.exp(p["ref"])), "noise": _r4(p["noise"]),
                 "decision_interval": p["h"], "k": det.k},
                1.0,
                f"{FEATURE_TEXT.get(spec.inputs[0], spec.inputs[0])} slid gradually to {_pct(rel)} of its "
                f"earlier level (cumulative shift {g:.1f} vs decision interval {p['h']:g}; no abrupt step)",
            ))
    else:  # a generic registered detector
        out.append(reason(f"{spec.name}_score", {"input": x}, {}, 1.0, f"{spec.name} score"))
    if days_above > 1:
        out.append(reason("persistence", {"days_above_threshold": days_above},
                          {"warning": [list(w) for w in spec.warning]}, 0.0,
                          f"score above threshold for {days_above} scored days"))
    return out


# --------------------------------------------------------------------------------------------
# The engine
# --------------------------------------------------------------------------------------------


@dataclass
class DayResult:
    detections: list[dict[str, Any]]
    state: dict[str, Any]
    scores: dict[str, float | None]  # model name -> calibrated score (None: not scored today)
    features: dict[str, float | None]


class _Model:
    """One enabled :class:`ModelSpec` resolved for the hot loop: its detector object and the
    spec's fields as plain attributes (a ModelSpec is frozen, so they are read once here rather
    than per firm-day)."""

    __slots__ = ("spec", "name", "det", "inputs", "first_input", "multivariate", "warning", "zeros", "watch",
                 "action", "watch_action", "score_on_holiday", "learn_on_holiday")

    def __init__(self, spec: ModelSpec, det: Detector) -> None:
        self.spec = spec
        self.name = spec.name
        self.det = det
        self.inputs = spec.inputs
        self.first_input = spec.inputs[0]
        self.multivariate = spec.multivariate
        self.warning = spec.warning
        self.zeros = (0,) * len(spec.warning)
        self.watch = spec.watch_threshold
        self.action = spec.action
        self.watch_action = spec.watch_action
        self.score_on_holiday = spec.score_on_holiday
        self.learn_on_holiday = spec.learn_on_holiday


_WARNING_RANK = LEVEL_RANK["warning"]


class Engine:
    """Holds a configuration and reusable detector objects (one engine serves any number of
    firms: each firm's state comes in with the call and goes out with the result).

    Hot path (runs on every closed firm-day in the stream worker; these choices keep it to a
    fraction of the straightforward version's cost, with bit-identical output):

    * the rules that apply to an industry and the models' fields are resolved once, not per day;
    * models run through :meth:`~detectors.firm_models.StatefulDetector.advance` on the JSON
      state: no load / dump copies, one pass of the maths for score-and-learn;
    * states are copied on write: the new state shares the lists that did not change with the
      previous one (nothing is ever mutated in place, so this is safe as long as callers treat
      states as values -- the stream worker only stores and serialises them);
    * detections (rounding, reasons, texts) are built only when one is emitted.
    """

    def __init__(self, config: EngineConfig | None = None) -> None:
        self.config = config or EngineConfig()
        load_all()
        self._models = [m for m in self.config.models if m.enabled]
        for m in self._models:
            if m.detector not in REGISTRY:
                raise KeyError(f"model {m.name!r}: unknown detector {m.detector!r}")
        self._dets = {m.name: REGISTRY[m.detector](**m.params) for m in self._models}
        self._run_models = tuple(_Model(m, self._dets[m.name]) for m in self._models)
        self._rules_by_industry: dict[str, tuple[tuple[str, Any], ...]] = {}
        self._festival = _festival_table(self.config.festival_profile, self.config.festival_depth_spread,
                                         self.config.festival_max_tolerance)

    def _rules_for(self, industry: str) -> tuple[tuple[str, Any], ...]:
        """``(rule id, rule.step)`` of the rules that apply to ``industry``, in config order."""
        rules = self._rules_by_industry.get(industry)
        if rules is None:
            rules = tuple((r.id, r.step) for r in self.config.rules if r.applies(industry))
            self._rules_by_industry[industry] = rules
        return rules

    def on_day(self, state: dict | None, record: Mapping[str, Any]) -> tuple[list[dict], dict]:
        dets, new_state, _, _ = self._run(state, record)
        return dets, new_state

    def reset_models(self, state: dict | None, models: Iterable[str]) -> dict | None:
        """``state`` with the named models starting afresh (their learned state, warning counters
        and episode level dropped: the model warms up again on the firm's next days); rules,
        features and the other models are kept. Governance uses it for a retrain event.

        >>> engine = Engine()
        >>> st = engine.reset_models({"v": STATE_VERSION, "d": 1, "r": {}, "m": {"firm_profile": {"n": 3}},
        ...                            "k": {"firm_profile": [1, 0]}, "e": {"firm_profile": 2}, "f": None, "lw": None},
        ...                           ["firm_profile"])
        >>> st["m"], st["k"], st["e"]
        ({}, {}, {})
        """
        if state is None:
            return None
        drop = set(models)
        return {**state,
                "m": {k: v for k, v in state["m"].items() if k not in drop},
                "k": {k: v for k, v in state["k"].items() if k not in drop},
                "e": {k: v for k, v in state["e"].items() if k not in drop}}

    def step(self, state: dict | None, record: Mapping[str, Any]) -> DayResult:
        return DayResult(*self._run(state, record))

    def _run(self, state: dict | None, record: Mapping[str, Any]
             ) -> tuple[list[dict[str, Any]], dict[str, Any], dict[str, Any], dict[str, Any]]:
        """``(detections, new state, model scores, features)`` of one closed firm-day (what
        :meth:`step` returns, without the DayResult that :meth:`on_day` does not need)."""
        cfg = self.config
        day = Day.from_record(record)
        ordinal = day.ordinal
        if state is not None:
            if state.get("v") != STATE_VERSION:
                raise ValueError(f"unknown engine state version {state.get('v')!r}")
            if ordinal <= state["d"]:
                return [], state, {}, {}
            rstates, mstates = state["r"], state["m"]
            counters, levels = state["k"], state["e"]
            fstate, last_warn = state["f"], state["lw"]
        else:
            rstates, mstates, counters, levels, fstate, last_warn = {}, {}, {}, {}, None, None
        new_r: dict[str, Any] = {}
        new_m: dict[str, Any] = {}
        new_k: dict[str, Any] = {}
        new_e: dict[str, Any] = {}
        dets: list[dict[str, Any]] = []
        firm_id, iso = day.firm_id, day.day

        # --- rules -----------------------------------------------------------------------------
        growth_hits = []
        rules = self._rules_by_industry.get(day.industry)
        if rules is None:
            rules = self._rules_for(day.industry)
        for rule_id, rule_step in rules:
            hit, st = rule_step(rstates.get(rule_id), day)
            new_r[rule_id] = st
            if hit is not None:
                d = {"firm_id": firm_id, "day": iso, "source": "rule", **hit}
                dets.append(d)
                if d["action"] == "INCREASE_ELIGIBLE":
                    growth_hits.append(d)

        # --- models ----------------------------------------------------------------------------
        feats, new_f = features(day, fstate, cfg.payment_prior, self._festival, cfg.festival_anchor_days)
        scores: dict[str, float | None] = {}
        skip_all = day.warming_up or day.elec_missing or day.silent  # warming up or no evidence
        holiday = day.holiday
        for m in self._run_models:
            name = m.name
            mstate = mstates.get(name)
            if m.multivariate:
                x: Any = {f: feats[f] for f in m.inputs if feats.get(f) is not None}
                has_x = bool(x)
            else:
                x = feats.get(m.first_input)
                has_x = x is not None
            if has_x and not skip_all and (m.score_on_holiday or not holiday):
                s, mstate = m.det.advance(mstate, x, not holiday or m.learn_on_holiday)
                scores[name] = s
                warn = False
                cnt = []
                if m.warning:
                    # per warning condition (threshold, k): scored days in a row at or above the
                    # threshold; the condition holds from the k-th
                    for c, (t, k) in zip(counters.get(name) or m.zeros, m.warning):
                        c = c + 1 if s >= t else 0
                        cnt.append(c)
                        if c >= k:
                            warn = True
                level = "warning" if warn else (
                    "watch" if m.watch is not None and s >= m.watch else None)
                if level is not None:
                    rank = LEVEL_RANK[level]
                    lvl = levels.get(name, -1)
                    # the reasons explain the score with the state after today (as the detector
                    # object held it after score_learn_one)
                    m.det.load_state(mstate)
                    dets.append({
                        "firm_id": firm_id,
                        "day": iso,
                        "source": "model",
                        "name": name,
                        "level": level,
                        "action": m.action if warn else m.watch_action,
                        "score": round(s, 4),
                        "new": rank > lvl,
                        "reasons": _model_reasons(m.spec, m.det, x, max(cnt or [0])),
                    })
                    lvl = rank
                else:
                    lvl = -1
            else:  # not scored today: the model's state, counters and level carry over
                scores[name] = None
                if not mstate:
                    mstate = m.det.initial_state()
                cnt = counters.get(name) or list(m.zeros)
                lvl = levels.get(name, -1)
            new_m[name] = mstate
            new_k[name] = cnt
            new_e[name] = lvl

        # --- policy ----------------------------------------------------------------------------
        if dets and any(LEVEL_RANK[d["level"]] >= _WARNING_RANK for d in dets):
            last_warn = ordinal
        if growth_hits and last_warn is not None and ordinal - last_warn <= cfg.suppress_increase_days:
            for d in growth_hits:
                d["action"] = "NONE"
                d["reasons"] = d["reasons"] + [reason(
                    "suppressed_by_warning", {"last_warning_days_ago": ordinal - last_warn},
                    {"suppress_increase_days": cfg.suppress_increase_days}, 0.0,
                    "credit increase suppressed: a warning was raised within "
                    f"{cfg.suppress_increase_days} days")]

        new_state = {"v": STATE_VERSION, "d": ordinal, "r": new_r, "m": new_m, "k": new_k, "e": new_e,
                     "f": new_f, "lw": last_warn}
        return dets, new_state, scores, feats


_DEFAULT: Engine | None = None


def on_day(state: dict | None, record: Mapping[str, Any], engine: Engine | None = None
           ) -> tuple[list[dict], dict]:
    """``(detections, new_state)`` of one closed firm-day with the default configuration (or
    ``engine``'s). Pure: see the module docstring."""
    global _DEFAULT
    if engine is None:
        if _DEFAULT is None:
            _DEFAULT = Engine()
        engine = _DEFAULT
    return engine.on_day(state, record)


def state_size(state: Mapping[str, Any]) -> int:
    """Bytes of the state as compact JSON (what a changelog table stores per firm)."""
    return len(orjson.dumps(state))
