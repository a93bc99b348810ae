"""Model governance statistics: drift (PSI / CSI) per industry segment and a circuit breaker per
model. Pure and deterministic: both consume one day at a time, everything sorted, no clock, no
I/O; their state is JSON-serialisable and small (counts only), so the single-partition governance
stage checkpoints it. They emit events and (the breaker) decide which models are paused;
:mod:`detectors.governance` turns that into per-period decisions that every partition applies.

Drift
=====
:func:`psi` is the Population Stability Index ``sum_i (a_i - e_i) ln(a_i / e_i)`` of the shares
``e`` (reference) and ``a`` (actual) per bin, each share floored at ``eps`` (empty bins would
make it infinite). CSI (characteristic stability index) is the same formula applied to one input
feature instead of a model's score.

:class:`DriftMonitor` keeps, per ``(segment, kind, name)`` -- segment = industry, kind = "psi"
(a model's calibrated score, fixed bins :data:`SCORE_BINS`) or "csi" (a feature, bins at the
deciles of its values on the first reference day) -- a **reference window**: the first ``reference_days`` (28) days
on which the segment had at least ``min_daily`` observations of that score or feature (so it
starts after the vitality and model warm-ups by itself). After it, every day the distribution of
the trailing ``window_days`` (7) days is compared with the reference: PSI/CSI above
``investigate`` (0.1) emits an ``"investigate"`` event, above ``retrain`` (0.25) a ``"retrain"``
event. Windows that contain a Spring Festival day (a record marked ``holiday``) are computed and
reported but their events carry ``"holiday": true`` and ``"action": "none"``: a festival is a
known, temporary shift, not model decay. Note that PSI of a *score* also moves when the
population itself deteriorates (more firms in distress means more high scores): an
``investigate`` event asks a human which of the two happened.

What a retrain event does: :mod:`detectors.governance` runs this monitor on all firms, in event
time, and a ``retrain`` event of a model's score on regular days resets that model for the
segment's performing firms from the next 7-day period, with a fresh reference for its PSI (see
there). The monitor itself only computes and reports; Prometheus exports PSI per model and segment
as ``riskmon_psi`` and the rules in ``ops/prometheus/rules`` alert the model owner.

Circuit breaker
===============
:class:`CircuitBreaker` watches each model's behaviour per period (``period_days`` = 7: ISO
weeks). Metric ``"alert_rate"``: the share of the firms it scored in the period that it raised a
new warning on; metric ``"false_alarm_rate"`` (where ground truth is known, e.g. in a backtest):
the share of its newly warned firms whose outcome was not bad. When the metric breaks
``threshold`` for ``periods`` (2) consecutive closed periods, the breaker **opens** (on the first
day of the following period, when the second period closes): the model is paused and from that
day on its detections are downgraded by :meth:`CircuitBreaker.apply` --
level ``warning``/``critical`` -> ``watch``, action -> ``HUMAN_REVIEW`` (no freeze authority), with
a ``breaker_open`` reason -- until :meth:`CircuitBreaker.reenable` (after re-validation). A period
with fewer than ``min_firms`` scored firms does not count either way.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass
from datetime import date
from typing import Any, Callable, Iterable, Mapping

__all__ = [
    "SCORE_BINS",
    "psi",
    "bin_counts",
    "quantile_edges",
    "DriftConfig",
    "DriftMonitor",
    "BreakerConfig",
    "CircuitBreaker",
    "downgrade",
]

#: Bin edges of calibrated model scores (0.5 = decision point of every model).
SCORE_BINS: tuple[float, ...] = (0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9)


def psi(expected: Iterable[float], actual: Iterable[float], eps: float = 1e-4) -> float:
    """PSI of two histograms (counts or shares; normalised here; shares floored at ``eps``).

    >>> round(psi([50, 50], [50, 50]), 6)
    0.0
    >>> round(psi([0.5, 0.5], [0.9, 0.1]), 4)     # 0.4 ln 1.8 + (-0.4) ln 0.2
    0.8789
    """
    e = [float(x) for x in expected]
    a = [float(x) for x in actual]
    if len(e) != len(a) or not e:
        raise ValueError("histograms must have the same, non-zero number of bins")
    se, sa = sum(e), sum(a)
    if se <= 0 or sa <= 0:
        raise ValueError("empty histogram")
    total = 0.0
    for x, y in zip(e, a):
        p = max(x / se, eps)
        q = max(y / sa, eps)
        total += (q - p) * math.log(q / p)
    return total


def bin_counts(values: Iterable[float], edges: Iterable[float]) -> list[int]:
    """Counts per bin; bin ``i`` holds ``edges[i-1] <= v < edges[i]`` (``len(edges) + 1`` bins).

    >>> bin_counts([0.0, 0.07, 0.5, 0.95], SCORE_BINS)
    [1, 1, 0, 0, 0, 1, 0, 1]
    """
    edges = list(edges)
    out = [0] * (len(edges) + 1)
    for v in values:
        out[bisect.bisect_right(edges, v)] += 1
    return out


def quantile_edges(values: Iterable[float], bins: int = 10) -> list[float]:
    """Inner edges at the ``1/bins .. (bins-1)/bins`` quantiles (duplicates removed), so that a
    reference sample falls about evenly into ``len(edges) + 1`` bins.

    >>> quantile_edges(range(100), 4)
    [25, 50, 75]
    """
    xs = sorted(values)
    if not xs:
        return []
    n = len(xs)
    edges = []
    for i in range(1, bins):
        v = xs[min(n - 1, (i * n) // bins)]
        if not edges or v > edges[-1]:
            edges.append(v)
    return edges


# --------------------------------------------------------------------------------------------
# Drift monitor
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DriftConfig:
    reference_days: int = 28
    window_days: int = 7
    min_daily: int = 10
    min_count: int = 200
    investigate: float = 0.1
    retrain: float = 0.25
    feature_bins: int = 10
    score_bins: tuple[float, ...] = SCORE_BINS
    eps: float = 1e-4


class DriftMonitor:
    """Daily PSI of model scores and CSI of features per industry segment (see module doc).

    ``on_day(day, rows)`` with ``rows`` = ``[(firm_id, industry, holiday, scores, features),
    ...]`` (scores / features: ``{name: value or None}``) returns the day's events and keeps the
    day's values in :attr:`daily` (``(day, segment, kind, name) -> (value, n)``).

    The reference of a ``(segment, kind, name)`` is its first ``reference_days`` days with at
    least ``min_daily`` observations; each later day is compared over the trailing
    ``window_days`` days (a day's sample of one small segment is too small for a stable index:
    with ``n`` values in ``B`` bins, PSI has a noise floor of about ``(B - 1) / n``), once the
    window holds ``min_count`` values. Events of a window that contains a festival day carry
    ``"holiday": true``.
    """

    def __init__(self, config: DriftConfig | None = None) -> None:
        self.config = config or DriftConfig()
        # (segment, kind, name) -> {"days": reference days so far, "ref": samples (csi, during
        # the reference) or bin counts, "edges": bin edges, "win": [[day holiday, counts], ...]}
        self.state: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.daily: dict[tuple[str, str, str, str], tuple[float, int]] = {}

    def on_day(self, day: str, rows: Iterable[tuple[str, str, bool, Mapping, Mapping]]) -> list[dict]:
        cfg = self.config
        groups: dict[tuple[str, str, str], list[float]] = {}
        holiday: dict[str, bool] = {}
        for firm_id, industry, hol, scores, feats in sorted(rows, key=lambda r: r[0]):
            holiday[industry] = holiday.get(industry, False) or bool(hol)
            for kind, values in (("psi", scores), ("csi", feats)):
                for name, v in values.items():
                    if v is None:
                        continue
                    groups.setdefault((industry, kind, name), []).append(float(v))
        events: list[dict] = []
        for key in sorted(groups):
            vals = groups[key]
            if len(vals) < cfg.min_daily:
                continue
            segment, kind, name = key
            st = self.state.get(key)
            if st is None:
                # A feature's bins are the deciles of its first reference day, so that the
                # state holds counts only (it is checkpointed by the governance stage).
                edges = quantile_edges(vals, cfg.feature_bins) if kind == "csi" else list(cfg.score_bins)
                st = self.state[key] = {"days": 0, "ref": [0] * (len(edges) + 1), "edges": edges, "win": []}
            if st["days"] < cfg.reference_days:
                st["ref"] = [a + b for a, b in zip(st["ref"], bin_counts(vals, st["edges"]))]
                st["days"] += 1
                continue
            st["win"] = (st["win"] + [[holiday.get(segment, False), bin_counts(vals, st["edges"])]])[-cfg.window_days :]
            counts = [sum(c) for c in zip(*(w[1] for w in st["win"]))]
            n = sum(counts)
            if n < cfg.min_count:
                continue
            value = psi(st["ref"], counts, cfg.eps)
            self.daily[(day, segment, kind, name)] = (value, n)
            if value > cfg.investigate:
                hol = any(w[0] for w in st["win"])
                event = "retrain" if value > cfg.retrain else "investigate"
                events.append({
                    "day": day, "segment": segment, "kind": kind, "name": name, "value": round(value, 4),
                    "n": n, "event": event, "holiday": hol,
                    "action": "none" if hol else ("retrain_marked" if event == "retrain" else "review"),
                })
        return events

    def state_dict(self) -> dict[str, Any]:
        """JSON form of the monitor's state (keys ``segment|kind|name``)."""
        return {"|".join(k): dict(v) for k, v in sorted(self.state.items())}

    def load_state(self, state: Mapping[str, Any]) -> "DriftMonitor":
        """Continue from :meth:`state_dict` output (:attr:`daily` starts empty)."""
        self.state = {}
        for key, v in state.items():
            segment, kind, name = key.split("|", 2)
            self.state[(segment, kind, name)] = {"days": v["days"], "ref": list(v["ref"]), "edges": list(v["edges"]),
                                                 "win": [[bool(h), list(c)] for h, c in v["win"]]}
        self.daily = {}
        return self


# --------------------------------------------------------------------------------------------
# Circuit breaker
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BreakerConfig:
    metric: str = "alert_rate"  # or "false_alarm_rate"
    threshold: float = 0.05
    periods: int = 2
    period_days: int = 7
    min_firms: int = 20

    def __post_init__(self) -> None:
        if self.metric not in ("alert_rate", "false_alarm_rate"):
            raise ValueError("metric must be 'alert_rate' or 'false_alarm_rate'")


def _period(day: str, period_days: int) -> int:
    return (date.fromisoformat(day).toordinal() - 1) // period_days  # weeks start on Mondays


class CircuitBreaker:
    """Per-model circuit breaker (see module doc).

    Call :meth:`observe` once per day with that day's model scores and detections (any order:
    sorted inside), then :meth:`apply` to the *next* days' detections. ``outcome(firm_id)`` ->
    True when the firm's outcome was bad; needed for ``metric="false_alarm_rate"``.
    """

    def __init__(self, config: BreakerConfig | None = None,
                 outcome: Callable[[str], bool] | None = None) -> None:
        self.config = config or BreakerConfig()
        if self.config.metric == "false_alarm_rate" and outcome is None:
            raise ValueError("false_alarm_rate needs an outcome function")
        self.outcome = outcome
        # model -> {"p": period, "scored": [firm ids], "warned": [firm ids], "run": n, "paused": bool}
        self.state: dict[str, dict[str, Any]] = {}
        self.history: list[dict[str, Any]] = []  # closed periods and breaker events

    def is_paused(self, model: str) -> bool:
        st = self.state.get(model)
        return bool(st and st["paused"])

    def reenable(self, model: str, day: str) -> dict[str, Any]:
        st = self.state.setdefault(model, self._fresh(None))
        st["paused"] = False
        st["run"] = 0
        ev = {"day": day, "model": model, "event": "breaker_reset"}
        self.history.append(ev)
        return ev

    @staticmethod
    def _fresh(period: int | None) -> dict[str, Any]:
        return {"p": period, "scored": set(), "warned": set(), "run": 0, "paused": False}

    def _close(self, model: str, st: dict[str, Any], day: str) -> list[dict]:
        cfg = self.config
        n = len(st["scored"])
        events = []
        if n >= cfg.min_firms:
            warned = sorted(st["warned"])
            if cfg.metric == "alert_rate":
                rate = len(warned) / n
            else:
                rate = (sum(1 for f in warned if not self.outcome(f)) / len(warned)) if warned else 0.0
            bad = rate > cfg.threshold
            st["run"] = st["run"] + 1 if bad else 0
            rec = {"day": day, "model": model, "event": "period_closed", "period": st["p"], "metric": cfg.metric,
                   "value": round(rate, 4), "firms": n, "warned": len(warned), "breaks": bad, "run": st["run"]}
            self.history.append(rec)
            if st["run"] >= cfg.periods and not st["paused"]:
                st["paused"] = True
                ev = {"day": day, "model": model, "event": "breaker_open", "metric": cfg.metric,
                      "value": round(rate, 4), "threshold": cfg.threshold, "periods": st["run"]}
                self.history.append(ev)
                events.append(ev)
        st["scored"], st["warned"] = set(), set()
        return events

    def observe(self, day: str, scored: Mapping[str, Iterable[str]],
                detections: Iterable[Mapping[str, Any]]) -> list[dict]:
        """``scored``: model -> firm ids it scored today; ``detections``: today's model
        detections (before downgrading). Returns breaker events (periods closing on ``day``
        close *before* today's observations are added)."""
        cfg = self.config
        p = _period(day, cfg.period_days)
        events: list[dict] = []
        for model in sorted(set(scored) | set(self.state)):
            st = self.state.setdefault(model, self._fresh(p))
            if st["p"] is None:
                st["p"] = p
            if st["p"] != p:
                events.extend(self._close(model, st, day))
                st["p"] = p
            st["scored"].update(scored.get(model, ()))
        for d in detections:
            if d.get("source") == "model" and d.get("new") and d.get("level") in ("warning", "critical"):
                st = self.state.setdefault(d["name"], self._fresh(p))
                st["warned"].add(d["firm_id"])
        return events

    def paused(self) -> list[str]:
        """The models paused now, sorted."""
        return sorted(m for m, st in self.state.items() if st["paused"])

    def apply(self, detections: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The detections with those of paused models downgraded (new dicts; input unchanged)."""
        return downgrade(detections, self.paused(), self.config)

    def state_dict(self) -> dict[str, Any]:
        return {m: {**st, "scored": sorted(st["scored"]), "warned": sorted(st["warned"])}
                for m, st in sorted(self.state.items())}

    def load_state(self, state: Mapping[str, Any]) -> "CircuitBreaker":
        """Continue from :meth:`state_dict` output (:attr:`history` starts empty)."""
        self.state = {m: {"p": st["p"], "scored": set(st["scored"]), "warned": set(st["warned"]),
                          "run": st["run"], "paused": st["paused"]} for m, st in state.items()}
        self.history = []
        return self


def downgrade(detections: Iterable[Mapping[str, Any]], paused: Iterable[str],
              config: BreakerConfig | None = None) -> list[dict[str, Any]]:
    """``detections`` with the warnings of ``paused`` models downgraded to human review (new
    dicts; the input is unchanged).

    >>> d = {"source": "model", "name": "m", "level": "warning", "action": "FREEZE_ADJUSTMENTS", "reasons": []}
    >>> [(x["level"], x["action"], x["reasons"][-1]["code"]) for x in downgrade([d], ["m"])]
    [('watch', 'HUMAN_REVIEW', 'breaker_open')]
    >>> downgrade([d], [])[0]["level"]
    'warning'
    """
    config = config or BreakerConfig()
    paused = set(paused)
    out = []
    for d in detections:
        if d.get("source") == "model" and d["name"] in paused and d["level"] in ("warning", "critical"):
            d = {**d, "level": "watch", "action": "HUMAN_REVIEW", "paused": True,
                 "reasons": list(d["reasons"]) + [{
                     "code": "breaker_open", "observed": {"model": d["name"]},
                     "reference": {"metric": config.metric, "threshold": config.threshold,
                                   "periods": config.periods},
                     "contribution": 0.0,
                     "text": f"model {d['name']} paused by its circuit breaker: human review, no freeze"}]}
        out.append(dict(d))
    return out
