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
mutated in place, and a state that went through JSON continues exactly like the original.
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

* ``elec``: log of today's electricity ratio (kWh / expected), None on a missing-data day;
* ``level``: the deseasonalised log kWh level (log ratio + log of yesterday's baseline level);
* ``activity``: log of the 3-day orders+payments ratio (shrunk, see :mod:`streams.vitality`);
* ``payments``: log of today's payment inflow ratio, shrunk by 2 payments of the firm's ticket;
* ``invoice``: log of the recent / baseline issued invoice amount.

Ratios are floored at 0.02 before the log. Models skip ``warming_up`` days and data-gap days
(``elec_missing`` or ``silent``: a data outage is not distress) entirely; on ``elec_partial``
days (an incomplete day) only the electricity features are used. On a Spring Festival day a
model scores but does not learn (``score_on_holiday``, ``learn_on_holiday``; ``level_slide``
does neither: the festival dip is not a slide). A model's score becomes a *watch* detection at
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
level_slide     level_slide   level (gradual slide; steps ignored)         score >= 0.5 on 1 day
==============  ============  ===========================================  ======================

Cross-firm models (e.g. HalfSpaceTrees per industry) are deliberately not in the firm path: they
would make a firm's result depend on other firms unless frozen and versioned; the per-industry
view lives in governance (:mod:`detectors.drift`), which only emits events.

``electricity_growth`` (INCREASE_ELIGIBLE) is suppressed (action NONE, reason
``suppressed_by_warning``) while any warning was raised for the firm within
``suppress_increase_days``.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Mapping

import orjson

from detectors.base import REGISTRY, Detector, load_all
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
            params={"k": 1.0, "h": 8.0, "half_life": 60.0, "min_scale": 0.04, "jump": 0.25,
                    "suppress": 21, "warmup": 14, "direction": "down"},
            watch_threshold=0.5,
            warning=((0.5, 1),),
            score_on_holiday=False,
        ),
    )


@dataclass(frozen=True)
class EngineConfig:
    """Rules, models and engine policy. ``version`` is stamped into reports."""

    rules: tuple[Rule, ...] = field(default_factory=default_rules)
    models: tuple[ModelSpec, ...] = field(default_factory=default_models)
    payment_prior: float = 2.0
    suppress_increase_days: int = 30
    version: str = "detect-1"

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
            "version": self.version,
        }


# --------------------------------------------------------------------------------------------
# Features
# --------------------------------------------------------------------------------------------


def _log(r: float | None) -> float | None:
    if r is None:
        return None
    return math.log(r if r > _FLOOR else _FLOOR)


def features(day: Day, fstate: Mapping[str, Any] | None, payment_prior: float = 2.0
             ) -> tuple[dict[str, float | None], dict[str, Any]]:
    """The model features of one day and the new feature state ``{"t": [decayed payment
    inflow, decayed payment count], "lvl": yesterday's deseasonalised kWh level}``."""
    fs = fstate or {"t": [0.0, 0.0], "lvl": None}
    t = list(fs["t"])
    comps = day.record.get("components") or {}
    feats: dict[str, float | None] = {"elec": None, "level": None, "activity": None, "payments": None,
                                      "invoice": None}
    if not day.no_evidence:
        feats["elec"] = _log(day.elec_ratio)
        if day.elec_ratio is not None and fs["lvl"]:
            feats["level"] = _log(day.elec_ratio) + math.log(fs["lvl"])
    if not (day.no_evidence or day.elec_partial):
        # a day with a data gap is incomplete for every feed (an outage usually hits several)
        feats["activity"] = _log((comps.get("activity_3d") or {}).get("ratio"))
        feats["invoice"] = _log((comps.get("invoice_amt") or {}).get("ratio"))
        if day.pay_expected is not None and day.pay_expected > 0 and t[1] > 0:
            k = payment_prior * t[0] / t[1]
            feats["payments"] = _log((day.pay_in + k) / (day.pay_expected + k))
    if day.pay_in_n > 0 and not day.holiday:
        d = 0.5 ** (1.0 / 30.0)
        t = [d * t[0] + day.pay_in, d * t[1] + day.pay_in_n]
    lvl = day.kwh_level if (day.kwh_level and not day.no_evidence) else fs["lvl"]
    return feats, {"t": t, "lvl": lvl}


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


class Engine:
    """Holds a configuration and reusable detector objects (their state is loaded per call,
    so one engine serves any number of firms)."""

    def __init__(self, config: EngineConfig | None = None) -> None:
        self.config = config or EngineConfig()
        load_all()
        self._models = [m for m in self.config.models if m.enabled]
        for m in self._models:
            if m.detector not in REGISTRY:
                raise KeyError(f"model {m.name!r}: unknown detector {m.detector!r}")
        self._dets = {m.name: REGISTRY[m.detector](**m.params) for m in self._models}

    def on_day(self, state: dict | None, record: Mapping[str, Any]) -> tuple[list[dict], dict]:
        r = self.step(state, record)
        return r.detections, r.state

    def step(self, state: dict | None, record: Mapping[str, Any]) -> DayResult:
        cfg = self.config
        day = Day.from_record(record)
        if state is not None:
            if state.get("v") != STATE_VERSION:
                raise ValueError(f"unknown engine state version {state.get('v')!r}")
            if day.ordinal <= state["d"]:
                return DayResult([], state, {}, {})
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
        base = {"firm_id": day.firm_id, "day": day.day}

        # --- rules -----------------------------------------------------------------------------
        growth_hits = []
        for rule in cfg.rules:
            if not rule.applies(day.industry):
                continue
            hit, st = rule.step(rstates.get(rule.id), day)
            new_r[rule.id] = st
            if hit is not None:
                d = {**base, "source": "rule", **hit}
                dets.append(d)
                if d["action"] == "INCREASE_ELIGIBLE":
                    growth_hits.append(d)

        # --- models ----------------------------------------------------------------------------
        feats, new_f = features(day, fstate, cfg.payment_prior)
        scores: dict[str, float | None] = {}
        skip_all = day.warming_up or day.no_evidence
        for spec in self._models:
            det = self._dets[spec.name]
            det.load_state(mstates.get(spec.name))
            cnt = list(counters.get(spec.name) or [0] * len(spec.warning))
            lvl = levels.get(spec.name, -1)
            if spec.multivariate:
                x = {f: feats[f] for f in spec.inputs if feats.get(f) is not None}
                has_x = bool(x)
            else:
                x = feats.get(spec.inputs[0])
                has_x = x is not None
            scored = has_x and not skip_all and (spec.score_on_holiday or not day.holiday)
            if scored:
                if day.holiday and not spec.learn_on_holiday:
                    s = det.score_one(x)
                else:
                    s = det.score_learn_one(x)
                scores[spec.name] = s
                cnt = [c + 1 if s >= t else 0 for c, (t, _) in zip(cnt, spec.warning)]
                warn = any(c >= k for c, (_, k) in zip(cnt, spec.warning))
                level = "warning" if warn else (
                    "watch" if spec.watch_threshold is not None and s >= spec.watch_threshold else None)
                if level is not None:
                    rank = LEVEL_RANK[level]
                    days_above = max([c for c in cnt] or [0])
                    dets.append({
                        **base,
                        "source": "model",
                        "name": spec.name,
                        "level": level,
                        "action": spec.action if warn else spec.watch_action,
                        "score": round(s, 4),
                        "new": rank > lvl,
                        "reasons": _model_reasons(spec, det, x, days_above),
                    })
                    lvl = rank
                else:
                    lvl = -1
            else:
                scores[spec.name] = None
            new_m[spec.name] = det.state_dict()
            new_k[spec.name] = cnt
            new_e[spec.name] = lvl

        # --- policy ----------------------------------------------------------------------------
        if any(LEVEL_RANK[d["level"]] >= LEVEL_RANK["warning"] for d in dets):
            last_warn = day.ordinal
        if growth_hits and last_warn is not None and day.ordinal - last_warn <= cfg.suppress_increase_days:
            for d in growth_hits:
                d["action"] = "NONE"
                d["reasons"] = d["reasons"] + [reason(
                    "suppressed_by_warning", {"last_warning_days_ago": day.ordinal - last_warn},
                    {"suppress_increase_days": cfg.suppress_increase_days}, 0.0,
                    "credit increase suppressed: a warning was raised within "
                    f"{cfg.suppress_increase_days} days")]

        new_state = {"v": STATE_VERSION, "d": day.ordinal, "r": new_r, "m": new_m, "k": new_k, "e": new_e,
                     "f": new_f, "lw": last_warn}
        return DayResult(dets, new_state, scores, feats)


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
