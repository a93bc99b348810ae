"""From detections to alerts and actions: the per-firm alert lifecycle, the credit-line state
machine and the dynamic risk share. Pure: no I/O, no clock.

    out, new_state = policy.on_day(state, record, detections)

``record`` is a firm's vitality record of one closed day (as on ``riskmon.vitality``),
``detections`` that day's output of the detection engine (:mod:`detectors.engine`) and ``state``
this firm's policy state from the previous call (``None`` for the first day). ``out`` holds the
messages to publish, by kind: ``alerts`` (``riskmon.alerts``), ``credit``
(``riskmon.actions.credit``), ``riskshare`` (``riskmon.actions.riskshare``) and ``watchlist``
(``riskmon.watchlist``). Like the engine, the result depends only on the firm's own days in
order, so it is the same whatever the partitioning, the number of workers or the replay speed.
A day not after the state's last day is ignored, so re-delivered days are harmless.

Idempotent identifiers
======================
Every message carries a ``message_id`` derived from its content's cause (firm, detector or
action, firm-day, transition): a replay, a restart or a crash between output and checkpoint
re-emits the *same* message with the same id, never a new one. A deduplicating consumer keeps
the first message per id (see ``docs/alerts.md``).

* ``alert_id`` = hash(firm, cause, the detector that raised it, the firm-day it was raised);
  ``message_id`` of an alert message = hash(alert_id, transition, firm-day).
* ``action_id`` of a credit action = hash(firm, action, firm-day); a credit action is emitted
  only on a change of the credit-line state, so a firm gets one freeze per freeze episode.
* ``adjustment_id`` of a risk-share change = hash(firm, new split, firm-day).

Alerts: one per firm and cause
==============================
Detectors are grouped into *causes* (:data:`DEFAULT_CAUSES`): the power-and-logistics stall, the
firm profile model, the electricity shift and the level slide all see the same thing — the
firm's activity breaking down — so a shutdown yields **one** ``activity_breakdown`` alert, raised
by the first detector that fires and escalated when another one (or the same) reaches a higher
level, with the concurring detectors' reasons, instead of four alerts for one event. An alert
is:

* ``raised`` on the first day any detector of its cause is active;
* ``escalated`` on a day its level rises (watch -> warning -> critical), or when its action
  becomes a freeze;
* ``corroborated`` on the first day another detector of the cause is active at the alert's
  level (once per detector and alert), with that detector's reasons first;
* ``resolved`` after ``resolve_after_clean_days`` clean days in a row: days with evidence (not
  warming up, not a data gap) on which no detector of the cause is active. Data-gap days neither
  count nor break the run: a firm that goes dark after collapsing is not "resolved".

Reasons: at most ``max_reasons``, the triggering detector's first, then the other active
detectors of the cause by level and score; each keeps the detector's own ``observed`` and
``reference`` values (for a rule, exactly the inputs it compared) plus ``detector``.

The watch list: a firm enters when it gets an open alert at ``watch`` or above and leaves when
its last such alert resolves (``entered`` / ``exited`` events with the causes; the state keeps
the last ``history_len`` stays).

Credit line (``riskmon.actions.credit``)
========================================
States ``normal``, ``frozen``, ``increase_eligible``. A freeze-worthy detection (action
``FREEZE_ADJUSTMENTS`` at ``warning`` or above from a rule, or from a model whose circuit
breaker is closed) moves any state to ``frozen`` and emits ``FREEZE_ADJUSTMENTS`` (no increases,
no new drawdowns). A frozen line is released (``RELEASE``, back to ``normal``) after
``release_after_clean_days`` evidence days in a row without a freeze-worthy detection and with
the vitality band back at ``healthy`` (a day below healthy restarts the count). An
``INCREASE_ELIGIBLE`` detection (the growth rule, not suppressed by a recent warning) moves
``normal`` to ``increase_eligible`` and emits ``INCREASE_ELIGIBLE``. A model whose breaker is
open (``breaker_open``) cannot freeze: its warning alert carries action ``HUMAN_REVIEW`` and
authority ``human_review``.

Risk share (``riskmon.actions.riskshare``)
==========================================
Each firm's expected-loss split fiscal fund : bank : guarantor starts at ``normal_split``
(40:30:30, domain brief), kept in basis points so it always sums to exactly 100%. Weekly (ISO
weeks of the firm's days; a week is evaluated when its Sunday closes) the policy computes the
health index (the mean vitality score of the week's scored days: not warming up, no data gap,
not a Spring Festival day; a week with fewer than ``min_scored_days`` of them is skipped) and
the projected cash-flow gap (the week's shortfall of payment inflow against the firm's own
baseline, plus refunds paid, as a share of the expected weekly inflow). When the index has
declined two consecutive weeks (by at least ``min_weekly_decline`` points each and
``min_total_decline`` in all) and the gap has widened in the last week, the split moves to
``adjusted_split``: the brief's fiscal compensation rising by 15 points (30% -> 45%), taken
equally from bank and guarantor -- default 55:22.5:22.5. It reverts to ``normal_split`` on
recovery: a week whose index is back within ``recovery_margin`` points of the index before the
decline, or two consecutive weekly rises (by the same margins as a decline) with the gap
narrowing. Every change is an event with ``before``, ``after`` and the reason's figures.

>>> policy = AlertPolicy()
>>> rec = {"firm_id": "F1", "day": "2026-01-05", "industry": "manufacturing", "score": 12.0,
...        "band": "distress", "flags": [], "components": {}, "baselines": {}, "aggregate": {}}
>>> det = {"firm_id": "F1", "day": "2026-01-05", "source": "rule", "name": "power_logistics_stall",
...        "level": "warning", "action": "FREEZE_ADJUSTMENTS", "score": 0.9, "new": True,
...        "reasons": [{"code": "electricity_low", "observed": {"ratio": 0.1}, "reference": {},
...                     "contribution": 1.0, "text": "electricity at 10% of expected"}]}
>>> out, state = policy.on_day(None, rec, [det])
>>> [(a["event"], a["cause"], a["level"], a["action"]) for a in out["alerts"]]
[('raised', 'activity_breakdown', 'warning', 'FREEZE_ADJUSTMENTS')]
>>> [(c["action"], c["before"], c["after"]) for c in out["credit"]]
[('FREEZE_ADJUSTMENTS', 'normal', 'frozen')]
>>> out2, _ = policy.on_day(None, rec, [det])
>>> out2["credit"][0]["action_id"] == out["credit"][0]["action_id"]  # same cause, same id
True
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Mapping, Sequence

__all__ = [
    "AlertPolicy",
    "PolicyConfig",
    "RiskShareConfig",
    "DEFAULT_CAUSES",
    "LEVELS",
    "CREDIT_STATES",
    "STATE_VERSION",
    "SCHEMA_VERSION",
    "OUTPUT_KINDS",
    "stable_id",
]

STATE_VERSION = 1
SCHEMA_VERSION = "1"
LEVELS: tuple[str, ...] = ("info", "watch", "warning", "critical")
_RANK: dict[str, int] = {name: i for i, name in enumerate(LEVELS)}
CREDIT_STATES: tuple[str, ...] = ("normal", "frozen", "increase_eligible")
OUTPUT_KINDS: tuple[str, ...] = ("alerts", "credit", "riskshare", "watchlist")

#: Detector name -> cause. Detectors not listed are their own cause.
DEFAULT_CAUSES: dict[str, str] = {
    "power_logistics_stall": "activity_breakdown",
    "firm_profile": "activity_breakdown",
    "elec_shift": "activity_breakdown",
    "level_slide": "activity_breakdown",
    "tax_decline": "revenue_decline",
    "tax_decline_weekly": "revenue_decline",
    "invoice_shift": "revenue_decline",
    "order_drop": "order_drop",
    "electricity_growth": "growth",
    "feed_silence": "data_quality",
}


def stable_id(*parts: Any) -> str:
    """A short deterministic identifier of a cause (24 hex digits of SHA-256).

    >>> stable_id("F1", "FREEZE_ADJUSTMENTS", "2026-01-05")
    '9d5643060e041ada9c14e6e7'
    """
    return hashlib.sha256("|".join(str(p) for p in parts).encode()).hexdigest()[:24]


@dataclass(frozen=True)
class RiskShareConfig:
    """Splits are fiscal fund : bank : guarantor in basis points (10,000 = 100%)."""

    normal_split: tuple[int, int, int] = (4000, 3000, 3000)
    adjusted_split: tuple[int, int, int] = (5500, 2250, 2250)
    min_weekly_decline: float = 2.0
    min_total_decline: float = 10.0
    min_gap_widening: float = 0.05  # of the expected weekly inflow
    recovery_margin: float = 5.0
    min_scored_days: int = 4  # a week with fewer scored days is not evaluated
    enabled: bool = True

    def __post_init__(self) -> None:
        for name in ("normal_split", "adjusted_split"):
            split = tuple(int(x) for x in getattr(self, name))
            object.__setattr__(self, name, split)
            if len(split) != 3 or sum(split) != 10_000 or min(split) < 0:
                raise ValueError(f"{name} must be three non-negative basis-point shares summing to 10000, got {split}")


@dataclass(frozen=True)
class PolicyConfig:
    """Everything the policy decides with; every field has a default."""

    resolve_after_clean_days: int = 7
    release_after_clean_days: int = 7
    max_reasons: int = 5
    history_len: int = 10
    causes: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_CAUSES))
    breaker_open: frozenset[str] = frozenset()  # models whose authority to freeze is paused
    riskshare: RiskShareConfig = field(default_factory=RiskShareConfig)
    version: str = "alerts-1"

    def __post_init__(self) -> None:
        object.__setattr__(self, "breaker_open", frozenset(self.breaker_open))
        object.__setattr__(self, "causes", dict(self.causes))
        if self.resolve_after_clean_days < 1 or self.release_after_clean_days < 1:
            raise ValueError("resolve_after_clean_days and release_after_clean_days must be at least 1")
        if not 1 <= self.max_reasons <= 5:
            raise ValueError("max_reasons must be between 1 and 5")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> "PolicyConfig":
        d = dict(d or {})
        if "riskshare" in d and not isinstance(d["riskshare"], RiskShareConfig):
            d["riskshare"] = RiskShareConfig(**d["riskshare"])
        if "breaker_open" in d:
            d["breaker_open"] = frozenset(d["breaker_open"])
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown alert policy settings {sorted(unknown)}; known: {sorted(names)}")
        return cls(**d)


def _split_dict(split: Sequence[int]) -> dict[str, float]:
    return {"fiscal": split[0] / 100.0, "bank": split[1] / 100.0, "guarantor": split[2] / 100.0}


def _r2(x: float) -> float:
    return round(float(x), 2)


def _r4(x: float) -> float:
    return round(float(x), 4)


def _snapshot(record: Mapping[str, Any]) -> dict[str, Any]:
    comps = record.get("components") or {}
    return {
        "day": record["day"],
        "score": record.get("score"),
        "band": record.get("band"),
        "flags": list(record.get("flags") or ()),
        "components": {name: c.get("ratio") for name, c in comps.items() if isinstance(c, Mapping)},
    }


class AlertPolicy:
    """The alert lifecycle, credit-line state machine and risk-share policy (see the module
    docstring). Stateless itself: one instance serves every firm."""

    def __init__(self, config: PolicyConfig | None = None) -> None:
        self.config = config or PolicyConfig()

    # ------------------------------------------------------------------------------------------
    def on_day(
        self, state: Mapping[str, Any] | None, record: Mapping[str, Any], detections: Sequence[Mapping[str, Any]]
    ) -> tuple[dict[str, list[dict[str, Any]]], dict[str, Any]]:
        cfg = self.config
        firm = record["firm_id"]
        day_iso = record["day"]
        ordinal = date.fromisoformat(day_iso).toordinal()
        out: dict[str, list[dict[str, Any]]] = {k: [] for k in OUTPUT_KINDS}
        if state is not None:
            if state.get("v") != STATE_VERSION:
                raise ValueError(f"unknown alert policy state version {state.get('v')!r}")
            if ordinal <= state["d"]:
                return out, dict(state)
            open_alerts = {c: dict(a) for c, a in state["a"].items()}
            credit = dict(state["c"])
            watch = dict(state["w"])
            share = dict(state["s"])
        else:
            open_alerts = {}
            credit = {"s": "normal", "since": None, "clean": 0, "by": None}
            watch = {"on": False, "since": None, "hist": []}
            share = {"split": list(cfg.riskshare.normal_split), "adj": False, "ref": None, "wk": None, "weeks": []}
        flags = record.get("flags") or ()
        evidence = record.get("band") != "warming_up" and "silent" not in flags and "elec_missing" not in flags
        base = {"schema_version": SCHEMA_VERSION, "policy_version": cfg.version, "firm_id": firm,
                "industry": record.get("industry"), "day": day_iso}

        by_cause: dict[str, list[Mapping[str, Any]]] = {}
        for det in detections:
            by_cause.setdefault(cfg.causes.get(det["name"], det["name"]), []).append(det)

        freeze_by: list[tuple[str, Mapping[str, Any]]] = []
        increase_by: Mapping[str, Any] | None = None
        snapshot: dict[str, Any] | None = None

        # --- alert lifecycle per cause ------------------------------------------------------------
        for cause in sorted(set(by_cause) | set(open_alerts)):
            dets = by_cause.get(cause)
            current = open_alerts.get(cause)
            if dets:
                ranked = sorted(dets, key=lambda d: (-_RANK[d["level"]], -float(d.get("score") or 0.0), d["name"]))
                top = ranked[0]
                level = top["level"]
                action, authority = self._action(top)
                trigger = top
                for d in ranked:
                    a, auth = self._action(d)
                    if a == "FREEZE_ADJUSTMENTS" and auth == "automatic":
                        # the alert acts on the strongest detection that has the authority to
                        trigger, action, authority = d, a, auth
                        freeze_by.append((cause, d))
                        break
                if any(d["action"] == "INCREASE_ELIGIBLE" for d in dets):
                    increase_by = next(d for d in dets if d["action"] == "INCREASE_ELIGIBLE")
                at_level = {d["name"] for d in dets if _RANK[d["level"]] >= _RANK[level]}
                if current is None:
                    alert_id = stable_id(firm, cause, trigger["name"], day_iso)
                    current = {"id": alert_id, "lvl": _RANK[level], "act": action, "since": day_iso,
                               "by": trigger["name"], "clean": 0, "ds": sorted(at_level)}
                    transition = "raised"
                elif _RANK[level] > current["lvl"] or (
                    action == "FREEZE_ADJUSTMENTS" and current["act"] != "FREEZE_ADJUSTMENTS"
                ):
                    current = {**current, "lvl": max(_RANK[level], current["lvl"]), "act": action, "clean": 0,
                               "ds": sorted(at_level)}
                    transition = "escalated"
                else:
                    # Another detector confirming the alert at its level: one message per detector
                    # and alert, so the evidence of every detector (e.g. a rule's inputs) reaches
                    # the subscriber without repeating daily.
                    joined = {d["name"] for d in dets if _RANK[d["level"]] >= current["lvl"]} - set(current["ds"])
                    current = {**current, "clean": 0}
                    transition = None
                    if joined:
                        trigger = next(d for d in ranked if d["name"] in joined)
                        level = LEVELS[current["lvl"]]
                        authority = "automatic" if current["act"] != "HUMAN_REVIEW" else "human_review"
                        current = {**current, "ds": sorted(set(current["ds"]) | joined)}
                        transition = "corroborated"
                open_alerts[cause] = current
                if transition is not None:
                    if snapshot is None:
                        snapshot = _snapshot(record)
                    out["alerts"].append({
                        **base,
                        "message_id": stable_id(current["id"], transition, day_iso),
                        "alert_id": current["id"],
                        "event": transition,
                        "cause": cause,
                        "level": LEVELS[current["lvl"]],
                        "source": trigger["source"],
                        "name": trigger["name"],
                        "action": current["act"],
                        "authority": authority,
                        "raised_day": current["since"],
                        "detectors": [d["name"] for d in ranked],
                        "reasons": self._reasons(trigger, ranked),
                        "vitality": snapshot,
                    })
            elif current is not None and evidence:
                clean = current["clean"] + 1
                if clean >= cfg.resolve_after_clean_days:
                    del open_alerts[cause]
                    out["alerts"].append({
                        **base,
                        "message_id": stable_id(current["id"], "resolved", day_iso),
                        "alert_id": current["id"],
                        "event": "resolved",
                        "cause": cause,
                        "level": LEVELS[current["lvl"]],
                        "source": None,
                        "name": current["by"],
                        "action": "NONE",
                        "authority": "automatic",
                        "raised_day": current["since"],
                        "detectors": [],
                        "reasons": [{
                            "code": "clean_days", "observed": {"clean_days": clean},
                            "reference": {"resolve_after_clean_days": cfg.resolve_after_clean_days},
                            "contribution": 1.0, "detector": None,
                            "text": f"no detection of this cause for {clean} days with data",
                        }],
                        "vitality": snapshot if snapshot is not None else (snapshot := _snapshot(record)),
                    })
                else:
                    open_alerts[cause] = {**current, "clean": clean}

        # --- watch list ---------------------------------------------------------------------------
        watched = sorted(c for c, a in open_alerts.items() if a["lvl"] >= _RANK["watch"])
        if watched and not watch["on"]:
            watch = {"on": True, "since": day_iso, "hist": watch["hist"]}
            out["watchlist"].append({**base, "message_id": stable_id(firm, "watchlist", "entered", day_iso),
                                     "event": "entered", "causes": watched,
                                     "level": LEVELS[max(open_alerts[c]["lvl"] for c in watched)],
                                     "entered_day": day_iso})
        elif not watched and watch["on"]:
            hist = (watch["hist"] + [[watch["since"], day_iso]])[-cfg.history_len:]
            out["watchlist"].append({**base, "message_id": stable_id(firm, "watchlist", "exited", day_iso),
                                     "event": "exited", "causes": [], "level": None,
                                     "entered_day": watch["since"]})
            watch = {"on": False, "since": None, "hist": hist}

        # --- credit line --------------------------------------------------------------------------
        before = credit["s"]
        if freeze_by:
            credit = {**credit, "clean": 0}
            if before != "frozen":
                cause, det = freeze_by[0]
                credit = {"s": "frozen", "since": day_iso, "clean": 0, "by": open_alerts[cause]["id"]}
                out["credit"].append(self._credit(base, "FREEZE_ADJUSTMENTS", before, "frozen",
                                                  open_alerts[cause]["id"], self._reasons(det, [det])))
        elif before == "frozen":
            if evidence and record.get("band") != "healthy":
                credit = {**credit, "clean": 0}  # not recovered while the index is below healthy
            elif evidence:
                clean = credit["clean"] + 1
                credit = {**credit, "clean": clean}
                if clean >= cfg.release_after_clean_days:
                    released_by = credit["by"]
                    credit = {"s": "normal", "since": day_iso, "clean": 0, "by": None}
                    out["credit"].append(self._credit(base, "RELEASE", "frozen", "normal", released_by, [{
                        "code": "recovered", "observed": {"clean_days": clean},
                        "reference": {"release_after_clean_days": cfg.release_after_clean_days},
                        "contribution": 1.0, "detector": None,
                        "text": f"no freeze-worthy detection for {clean} days with data",
                    }]))
        elif increase_by is not None and before == "normal":
            alert = open_alerts.get(cfg.causes.get(increase_by["name"], increase_by["name"]))
            credit = {"s": "increase_eligible", "since": day_iso, "clean": 0, "by": alert["id"] if alert else None}
            out["credit"].append(self._credit(base, "INCREASE_ELIGIBLE", before, "increase_eligible",
                                              credit["by"], self._reasons(increase_by, [increase_by])))

        # --- risk share ---------------------------------------------------------------------------
        if cfg.riskshare.enabled:
            share = self._riskshare(share, record, ordinal, base, out["riskshare"])

        new_state = {"v": STATE_VERSION, "d": ordinal, "a": open_alerts, "c": credit, "w": watch, "s": share}
        return out, new_state

    # ------------------------------------------------------------------------------------------
    def _action(self, det: Mapping[str, Any]) -> tuple[str, str]:
        """The action a detection may take and on whose authority."""
        action = det["action"]
        if det.get("paused"):  # downgraded by a governance decision (detectors.drift.downgrade)
            return "HUMAN_REVIEW", "human_review"
        if det["source"] == "model" and det["name"] in self.config.breaker_open and action == "FREEZE_ADJUSTMENTS":
            return "HUMAN_REVIEW", "human_review"
        if action == "FREEZE_ADJUSTMENTS" and _RANK[det["level"]] < _RANK["warning"]:
            return "RM_FOLLOW_UP", "automatic"  # below warning a freeze-action detector only asks a human
        return action, "automatic"

    def _reasons(self, trigger: Mapping[str, Any], ranked: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        reasons: list[dict[str, Any]] = []
        for det in [trigger, *(d for d in ranked if d is not trigger)]:
            for r in det.get("reasons") or ():
                if len(reasons) >= self.config.max_reasons:
                    return reasons
                reasons.append({**r, "detector": det["name"]})
        return reasons

    def _credit(self, base: Mapping[str, Any], action: str, before: str, after: str, alert_id: str | None,
                reasons: list[dict[str, Any]]) -> dict[str, Any]:
        return {**base, "action_id": stable_id(base["firm_id"], action, base["day"]), "action": action,
                "before": before, "after": after, "alert_id": alert_id, "reasons": reasons}

    def _riskshare(self, share: dict[str, Any], record: Mapping[str, Any], ordinal: int,
                   base: Mapping[str, Any], out: list[dict[str, Any]]) -> dict[str, Any]:
        rs = self.config.riskshare
        iso_year, iso_week, weekday = date.fromordinal(ordinal).isocalendar()
        key = iso_year * 100 + iso_week
        wk = share["wk"]
        if wk is not None and wk[0] != key:
            wk = None  # a week whose Sunday never closed (cannot happen with daily closes): drop it
        if wk is None:
            wk = [key, 0.0, 0, 0.0, 0.0]  # key, score sum, scored days, shortfall, expected inflow
        flags = record.get("flags") or ()
        # Festival days are left out: the whole economy dips, the firm's index is not comparable.
        if (record.get("band") != "warming_up" and not record.get("holiday")
                and "silent" not in flags and "elec_missing" not in flags):
            wk = [wk[0], wk[1] + float(record.get("score") or 0.0), wk[2] + 1, wk[3], wk[4]]
        expected = float((record.get("baselines") or {}).get("pay_in_amt") or 0.0)
        agg = record.get("aggregate") or {}
        got = float(agg.get("pay_in_amt") or 0.0)
        refunds = float(agg.get("refund_amt") or 0.0)
        wk = [wk[0], wk[1], wk[2], wk[3] + max(0.0, expected - got) + refunds, wk[4] + expected]
        if weekday != 7:
            return {**share, "wk": wk}
        weeks = [list(w) for w in share["weeks"]]
        if wk[2] < rs.min_scored_days or wk[4] <= 0:
            # Too few scored days (festival, data gap): no evidence either way; the series holds.
            return {**share, "wk": None}
        weeks = (weeks + [[f"{iso_year}-W{iso_week:02d}", _r2(wk[1] / wk[2]), _r4(wk[3] / wk[4])]])[-3:]
        split, adj, ref = share["split"], share["adj"], share["ref"]
        if len(weeks) == 3:
            (_, i0, g0), (_, i1, g1), (_, i2, g2) = weeks
            if not adj:
                declined = (i1 <= i0 - rs.min_weekly_decline and i2 <= i1 - rs.min_weekly_decline
                            and i2 <= i0 - rs.min_total_decline)
                widened = g2 >= g1 + rs.min_gap_widening
                if declined and widened:
                    new = list(rs.adjusted_split)
                    out.append(self._share(base, split, new, "health_decline_gap_widening", weeks, {
                        "min_weekly_decline": rs.min_weekly_decline, "min_total_decline": rs.min_total_decline,
                        "min_gap_widening": rs.min_gap_widening}))
                    split, adj, ref = new, True, i0
            else:
                back = ref is not None and i2 >= ref - rs.recovery_margin
                rising = (i1 >= i0 + rs.min_weekly_decline and i2 >= i1 + rs.min_weekly_decline
                          and i2 >= i0 + rs.min_total_decline and g2 < g1)
                if back or rising:
                    new = list(rs.normal_split)
                    out.append(self._share(base, split, new, "recovered", weeks, {
                        "index_before_decline": ref, "recovery_margin": rs.recovery_margin,
                        "rule": "index back near its level before the decline, or two weekly rises "
                                "with the gap narrowing"}))
                    split, adj, ref = new, False, None
        return {"split": split, "adj": adj, "ref": ref, "wk": None, "weeks": weeks}

    def _share(self, base: Mapping[str, Any], before: Sequence[int], after: Sequence[int], code: str,
               weeks: list[list[Any]], reference: dict[str, Any]) -> dict[str, Any]:
        text = {
            "health_decline_gap_widening": "health index declined two consecutive weeks "
            f"({weeks[0][1]} -> {weeks[1][1]} -> {weeks[2][1]}) and the cash-flow gap widened "
            f"({100 * weeks[1][2]:.0f}% -> {100 * weeks[2][2]:.0f}% of expected inflow)",
            "recovered": f"health index recovered to {weeks[2][1]} (weekly: "
            f"{', '.join(str(w[1]) for w in weeks)})",
        }[code]
        return {
            **base,
            "adjustment_id": stable_id(base["firm_id"], "riskshare", *after, base["day"]),
            "before": _split_dict(before),
            "after": _split_dict(after),
            "reason": {
                "code": code,
                "observed": {"weeks": [w[0] for w in weeks], "health_index": [w[1] for w in weeks],
                             "cash_flow_gap": [w[2] for w in weeks]},
                "reference": reference,
                "text": text,
            },
        }
