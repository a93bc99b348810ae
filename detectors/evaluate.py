"""Detection backtest: run the engine over a simulated population and score it against
``truth.jsonl``.

``evaluate(sim_dir)`` (CLI: ``main(args)``; see :func:`add_arguments`):

1. vitality records of every firm-day: ``SIMDIR/vitality.jsonl`` if it is newer than the event
   file, else :func:`streams.backtest.run_backtest` over ``SIMDIR/events.jsonl.gz`` (firm register
   from ``truth.jsonl``), cached to ``SIMDIR/vitality.jsonl`` with
   :func:`streams.backtest.write_vitality`;
2. the engine (:mod:`detectors.engine`) and governance (:mod:`detectors.governance`), period by
   period exactly as the stream runs them (:func:`run_governed`): each firm alone and in day
   order under its period's decision (circuit-breaker downgrades, retrain resets); drift (PSI/CSI
   per industry segment) is measured on the *performing book* (firm-days past the vitality
   warm-up of firms without a warning in the last 30 days) and the breaker on each model's
   alert rate per 7-day period;
3. scores (:func:`score_firms`) against the labels, overall, per rule and per model.

Definitions (all days are local calendar days; a *warning* is a detection at level warning or
critical after governance):

* **recall** -- distressed firms (``shutdown``, ``gradual_decline``) whose onset lies in the
  observed window and that got a warning on a day in ``[onset, deadline]``; ``deadline`` = the
  default date, or the last observed day when the default lies beyond the window (such a firm
  is still counted: not warned yet = missed). ``recall_default_observed`` restricts to firms
  whose default falls inside the window (the outcome was observed). ``temporary_outage`` is
  reported apart (deadline: its recovery date);
* **delay** -- first warning day minus onset day (0 = warned on the onset day); median and p90
  (nearest rank) over the detected firms; **lead** -- default day minus first warning day;
* **warned before onset** -- distressed firms warned before their onset (not detections);
* **false warnings** -- on ``healthy`` and ``growth`` firms, warning *episodes* (warning days
  closer than ``merge_gap_days`` (7) belong to one episode) per 100 firm-months; firm-months
  count the observed days after the vitality warm-up, 30 days a month;
* ``seasonal_dip`` and ``data_outage`` -- share of firms warned at any time (after warm-up), and
  during the event (``[onset, recovery + 7 days]``).

The same metrics are computed per source (each rule id, each model name) using only that
source's warnings. The report also counts every detection's new episodes (soft alerts included)
by scenario group, the calibration of each model's score on healthy and distressed firm-days,
and the engine state size per firm.

Note that the combined median delay depends on the mix: shutdowns are warned the day after
onset, slow slides after about 11 days, so it is reported per scenario too.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import re
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping

import orjson

from detectors.drift import BreakerConfig, CircuitBreaker, DriftConfig
from detectors.governance import Governance, GovernanceConfig, govern_day, period_of, period_start
from streams.eventtime import day_ordinal as _ord
from detectors.engine import Engine, EngineConfig, state_size
from detectors.rules import LEVEL_RANK

__all__ = [
    "DISTRESS",
    "HEALTHY",
    "FirmObs",
    "ensure_vitality",
    "iter_firm_records",
    "load_truth",
    "run_engine",
    "govern",
    "score_firms",
    "evaluate",
    "format_report",
    "add_arguments",
    "main",
]

DISTRESS: tuple[str, ...] = ("shutdown", "gradual_decline")
HEALTHY: tuple[str, ...] = ("healthy", "growth")
BAD_OUTCOME: tuple[str, ...] = ("shutdown", "gradual_decline", "temporary_outage")
_WARN = LEVEL_RANK["warning"]

TARGETS = {
    "recall": 0.95,
    "median_delay_days": 1.0,
    "false_warnings_per_100_firm_months": 1.0,
    "seasonal_dip_share_warned": 0.02,
}


# --------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------


def _events_file(sim_dir: Path) -> Path:
    for name in ("events.jsonl.gz", "events.jsonl"):
        p = sim_dir / name
        if p.exists():
            return p
    raise FileNotFoundError(f"{sim_dir} holds no events.jsonl(.gz)")


def ensure_vitality(sim_dir: Path | str, rebuild: bool = False, out: Path | None = None
                    ) -> tuple[Path, dict[str, Any]]:
    """``SIMDIR/vitality.jsonl``, recomputed when missing, older than the event file or
    ``rebuild``. Returns the path and what was done."""
    sim_dir = Path(sim_dir)
    path = out or sim_dir / "vitality.jsonl"
    events = None
    try:
        events = _events_file(sim_dir)
    except FileNotFoundError:
        if not path.exists():
            raise
    if path.exists() and not rebuild and (events is None or path.stat().st_mtime >= events.stat().st_mtime):
        return path, {"vitality": "reused", "path": str(path)}
    from streams.backtest import run_backtest, write_vitality
    from streams.registry import FirmRegistry

    truth = sim_dir / "truth.jsonl"
    registry = FirmRegistry.from_file(truth if truth.exists() else None)
    result = run_backtest([events], None, registry)
    write_vitality(result, path)
    return path, {"vitality": "computed", "path": str(path), "events": result.events_read,
                  "backtest_seconds": round(result.seconds, 1), "events_per_s": round(result.events_per_s)}


_FIRM_ID = re.compile(rb'"firm_id"\s*:\s*"((?:[^"\\]|\\.)*)"')


def _is_grouped(path: Path) -> bool:
    """Whether every firm's lines are contiguous (a cheap scan: no JSON parsing)."""
    seen: set[bytes] = set()
    cur = None
    with path.open("rb") as fh:
        for line in fh:
            m = _FIRM_ID.search(line)
            if m is None:
                if line.strip():
                    return False
                continue
            fid = m.group(1)
            if fid != cur:
                if fid in seen:
                    return False
                seen.add(fid)
                cur = fid
    return True


def iter_firm_records(path: Path | str) -> Iterator[tuple[str, list[dict]]]:
    """``(firm_id, records in day order)`` per firm from a vitality JSON-lines file.

    Streams (one firm in memory at a time) when the file is grouped by firm, as
    :func:`streams.backtest.write_vitality` writes it; otherwise loads it whole and yields the
    firms sorted by id."""
    path = Path(path)
    if _is_grouped(path):
        cur: str | None = None
        recs: list[dict] = []
        with path.open("rb") as fh:
            for line in fh:
                if not line.strip():
                    continue
                r = orjson.loads(line)
                if r["firm_id"] != cur:
                    if cur is not None:
                        yield cur, sorted(recs, key=lambda x: x["day"])
                    cur, recs = r["firm_id"], []
                recs.append(r)
        if cur is not None:
            yield cur, sorted(recs, key=lambda x: x["day"])
        return
    firms: dict[str, list[dict]] = {}
    with path.open("rb") as fh:
        for line in fh:
            if line.strip():
                r = orjson.loads(line)
                firms.setdefault(r["firm_id"], []).append(r)
    for fid in sorted(firms):
        yield fid, sorted(firms[fid], key=lambda x: x["day"])


def load_truth(path: Path | str) -> dict[str, dict]:
    out = {}
    with Path(path).open("rb") as fh:
        for line in fh:
            if line.strip():
                row = orjson.loads(line)
                out[row["firm_id"]] = row
    return out


# --------------------------------------------------------------------------------------------
# Engine and governance passes
# --------------------------------------------------------------------------------------------


@dataclass
class FirmObs:
    """What was observed of one firm: its window and the first day past the vitality warm-up."""

    firm_id: str
    industry: str
    first_day: str
    last_day: str
    scored_from: str | None  # first day not warming up


@dataclass
class EngineRun:
    firms: dict[str, FirmObs]
    detections: dict[str, list[dict]]  # raw (before governance), per firm, in day order
    scores: dict[str, list[tuple[str, dict]]]  # firm -> [(day, model scores)], every scored day
    state_bytes: list[int]
    firm_days: int
    seconds: float


def run_governed(records: Iterable[tuple[str, list[dict]]], engine: Engine | None = None,
                 config: GovernanceConfig | None = None, outcome: Callable[[str], bool] | None = None
                 ) -> tuple[EngineRun, "GovernedRun"]:
    """The engine and governance over every firm, period by period, exactly as the stream runs
    them (:mod:`detectors.governance`): each period's firm-days run under that period's decision
    (breaker downgrades, retrain resets), each firm alone and in day order; their rows feed
    :class:`~detectors.governance.Governance`, whose next decision follows from them. The rows
    keep the *performing book*: firm-days past the vitality warm-up of firms without a warning in
    the last ``book_exclude_warned_days`` (30) days, so that firms already in distress (whose
    scores are meant to be high) do not read as model drift."""
    engine = engine or Engine()
    config = config or GovernanceConfig()
    pd = config.breaker.period_days
    t0 = time.perf_counter()
    by_firm = sorted(((fid, recs) for fid, recs in records if recs), key=lambda x: x[0])
    firms: dict[str, FirmObs] = {}
    raw: dict[str, list[dict]] = {}
    final: dict[str, list[dict]] = {}
    all_scores: dict[str, list[tuple[str, dict]]] = {}
    states: dict[str, dict | None] = {}
    pos: dict[str, int] = {}
    n = 0
    for fid, recs in by_firm:
        scored_from = next((r["day"] for r in recs if r.get("band") != "warming_up"), None)
        firms[fid] = FirmObs(fid, recs[0].get("industry") or "default", recs[0]["day"], recs[-1]["day"], scored_from)
        raw[fid], final[fid], states[fid], pos[fid] = [], [], None, 0
    gov = Governance(config, partitions=1, outcome=outcome)
    decisions: dict[int, dict] = {}
    if by_firm:
        first = min(_ord(recs[0]["day"]) for _, recs in by_firm)
        last = max(_ord(recs[-1]["day"]) for _, recs in by_firm)
        gov.mark(0, first - 1)
        for d in gov.advance():
            decisions[d["period"]] = d
        for q in range(period_of(first, pd), period_of(last, pd) + 1):
            decision = decisions[q]
            end = period_start(q + 1, pd)
            rows = []
            for fid, recs in by_firm:
                i = pos[fid]
                st = states[fid]
                while i < len(recs) and _ord(recs[i]["day"]) < end:
                    res, dets, row = govern_day(engine, st, recs[i], decision, config)
                    st = res.state
                    raw[fid].extend(res.detections)
                    final[fid].extend(dets)
                    if any(v is not None for v in res.scores.values()):
                        all_scores.setdefault(fid, []).append((recs[i]["day"], res.scores))
                    if row is not None:
                        rows.append(row)
                    i += 1
                    n += 1
                pos[fid], states[fid] = i, st
            gov.add_rows(rows)
            gov.mark(0, end - 1)
            for d in gov.advance():
                decisions[d["period"]] = d
    sizes = [state_size(st) for st in states.values() if st is not None]
    run = EngineRun(firms, raw, all_scores, sizes, n, time.perf_counter() - t0)
    events = [e for d in gov.decisions for e in d["events"]] + gov.events_due
    return run, GovernedRun(final, [e for e in events if e["type"] == "drift"], gov)


@dataclass
class GovernedRun:
    detections: dict[str, list[dict]]  # final (after governance), per firm
    drift_events: list[dict]
    governance: Governance

    @property
    def breaker(self) -> CircuitBreaker:
        return self.governance.breaker


# --------------------------------------------------------------------------------------------
# Scoring
# --------------------------------------------------------------------------------------------


def _p(xs: list[float], q: float) -> float | None:
    """Nearest-rank percentile."""
    if not xs:
        return None
    ys = sorted(xs)
    return ys[max(0, math.ceil(q * len(ys)) - 1)]


def _median(xs: list[float]) -> float | None:
    return statistics.median(xs) if xs else None


def _warn_days(dets: Iterable[Mapping], source: str | None) -> list[int]:
    return sorted({_ord(d["day"]) for d in dets
                   if LEVEL_RANK[d["level"]] >= _WARN and (source is None or d["name"] == source)})


def _episodes(days: list[int], gap: int) -> int:
    n, last = 0, None
    for d in days:
        if last is None or d - last > gap:
            n += 1
        last = d
    return n


def score_firms(truth: Mapping[str, Mapping], firms: Mapping[str, FirmObs],
                detections: Mapping[str, list[Mapping]], source: str | None = None,
                merge_gap_days: int = 7) -> dict[str, Any]:
    """The metrics of the module docstring for one source (None = every source)."""
    per: dict[str, dict[str, Any]] = {}

    def distress_block(scen: Iterable[str], until: str) -> dict[str, Any]:
        n = det = n_obs = det_obs = early = 0
        delays: list[int] = []
        leads: list[int] = []
        for fid in sorted(firms):
            t = truth.get(fid)
            if t is None or t["scenario"] not in scen or not t.get("onset_date"):
                continue
            obs = firms[fid]
            onset, last = _ord(t["onset_date"]), _ord(obs.last_day)
            if onset > last:
                continue
            end_date = t.get(until)
            end = min(_ord(end_date), last) if end_date else last
            observed = end_date is not None and _ord(end_date) <= last
            days = _warn_days(detections.get(fid, ()), source)
            n += 1
            n_obs += observed
            if any(d < onset for d in days):
                early += 1
            hit = next((d for d in days if onset <= d <= end), None)
            if hit is not None:
                det += 1
                det_obs += observed
                delays.append(hit - onset)
                if until == "default_date" and end_date:
                    leads.append(_ord(end_date) - hit)
        return {
            "firms": n, "warned": det, "recall": det / n if n else None,
            "firms_default_observed": n_obs, "warned_default_observed": det_obs,
            "recall_default_observed": det_obs / n_obs if n_obs else None,
            "delay_median": _median(delays), "delay_p90": _p(delays, 0.9),
            "delay_mean": round(sum(delays) / len(delays), 2) if delays else None,
            "lead_median": _median(leads), "lead_p10": _p(leads, 0.1),
            "warned_before_onset": early, "delays": delays,
        }

    for scen in DISTRESS:
        per[scen] = distress_block((scen,), "default_date")
    per["distressed"] = distress_block(DISTRESS, "default_date")
    per["temporary_outage"] = distress_block(("temporary_outage",), "recovery_date")

    # false warnings on healthy and growth firms
    episodes = 0
    days_obs = 0
    warned = 0
    n = 0
    for fid in sorted(firms):
        t = truth.get(fid)
        obs = firms[fid]
        if t is None or t["scenario"] not in HEALTHY or obs.scored_from is None:
            continue
        n += 1
        start = _ord(obs.scored_from)
        days = [d for d in _warn_days(detections.get(fid, ()), source) if d >= start]
        e = _episodes(days, merge_gap_days)
        episodes += e
        warned += e > 0
        days_obs += _ord(obs.last_day) - start + 1
    fm = days_obs / 30.0
    per["healthy"] = {"firms": n, "firm_months": round(fm, 1), "episodes": episodes,
                      "per_100_firm_months": 100.0 * episodes / fm if fm else None,
                      "firms_warned": warned, "share_warned": warned / n if n else None}

    for scen in ("seasonal_dip", "data_outage"):
        n = any_w = during = 0
        for fid in sorted(firms):
            t = truth.get(fid)
            obs = firms[fid]
            if t is None or t["scenario"] != scen or obs.scored_from is None:
                continue
            n += 1
            days = [d for d in _warn_days(detections.get(fid, ()), source) if d >= _ord(obs.scored_from)]
            any_w += bool(days)
            if t.get("onset_date"):
                lo = _ord(t["onset_date"])
                hi = _ord(t["recovery_date"]) + 7 if t.get("recovery_date") else _ord(obs.last_day)
                during += any(lo <= d <= hi for d in days)
        per[scen] = {"firms": n, "firms_warned": any_w, "share_warned": any_w / n if n else None,
                     "warned_during_event": during, "share_warned_during_event": during / n if n else None}
    return per


def _soft_alerts(truth: Mapping, detections: Mapping[str, list[Mapping]]) -> dict[str, dict[str, int]]:
    """New episodes of every (name, level), by scenario group."""
    groups = {"healthy": HEALTHY, "distressed": DISTRESS, "temporary_outage": ("temporary_outage",),
              "seasonal_dip": ("seasonal_dip",), "data_outage": ("data_outage",)}
    out: dict[str, dict[str, int]] = {}
    for fid in sorted(detections):
        scen = (truth.get(fid) or {}).get("scenario")
        g = next((k for k, v in groups.items() if scen in v), "other")
        for d in detections[fid]:
            if d.get("new"):
                key = f"{d['name']}:{d['level']}"
                out.setdefault(key, {}).setdefault(g, 0)
                out[key][g] += 1
    return dict(sorted(out.items()))


def _calibration(truth: Mapping, run: EngineRun) -> dict[str, dict[str, Any]]:
    acc: dict[str, dict[str, list[int]]] = {}
    for fid, days in run.scores.items():
        t = truth.get(fid) or {}
        for day, scores in days:
            scen = t.get("scenario")
            if scen in HEALTHY:
                g = "healthy"
            elif scen in DISTRESS and t.get("onset_date") and day >= t["onset_date"]:
                g = "distressed"
            else:
                continue
            for m, s in scores.items():
                if s is None:
                    continue
                a = acc.setdefault(m, {}).setdefault(g, [0, 0, 0])
                a[0] += 1
                a[1] += s >= 0.5
                a[2] += s >= 0.8
    out = {}
    for m in sorted(acc):
        h = acc[m].get("healthy", [0, 0, 0])
        d = acc[m].get("distressed", [0, 0, 0])
        out[m] = {
            "healthy_days": h[0],
            "healthy_share_ge_0_5": h[1] / h[0] if h[0] else None,
            "healthy_share_ge_0_8": h[2] / h[0] if h[0] else None,
            "distressed_days": d[0],
            "distressed_share_ge_0_5": d[1] / d[0] if d[0] else None,
        }
    return out


# --------------------------------------------------------------------------------------------
# The whole evaluation
# --------------------------------------------------------------------------------------------


def evaluate(sim_dir: Path | str, config: EngineConfig | Mapping | None = None, rebuild: bool = False,
             breaker: BreakerConfig | None = None, drift: DriftConfig | None = None,
             detections_out: Path | str | None = None, merge_gap_days: int = 7,
             governance: GovernanceConfig | None = None) -> dict[str, Any]:
    """Run the detection backtest over a simulation directory; return the report (a dict)."""
    sim_dir = Path(sim_dir)
    truth_path = sim_dir / "truth.jsonl"
    if not truth_path.exists():
        raise FileNotFoundError(f"{sim_dir} holds no truth.jsonl")
    truth = load_truth(truth_path)
    vit_path, vit_info = ensure_vitality(sim_dir, rebuild)
    if not isinstance(config, EngineConfig):
        config = EngineConfig.from_dict(config)
    engine = Engine(config)
    gconfig = governance or GovernanceConfig()
    if breaker is not None or drift is not None:
        gconfig = dataclasses.replace(gconfig, breaker=breaker or gconfig.breaker, drift=drift or gconfig.drift)
    breaker, drift = gconfig.breaker, gconfig.drift
    outcome = (lambda f: (truth.get(f) or {}).get("scenario") in BAD_OUTCOME)
    run, gov = run_governed(iter_firm_records(vit_path), engine, gconfig,
                            outcome if breaker.metric == "false_alarm_rate" else None)
    final = gov.detections

    if detections_out:
        p = Path(detections_out)
        p.parent.mkdir(parents=True, exist_ok=True)
        with p.open("wb") as fh:
            for fid in sorted(final):
                for d in final[fid]:
                    fh.write(orjson.dumps(d) + b"\n")

    sources = [r.id for r in config.rules if r.enabled and LEVEL_RANK[r.level] >= _WARN] + [
        m.name for m in config.models if m.enabled and m.warning]
    overall = score_firms(truth, run.firms, final, None, merge_gap_days)
    per_source = {s: score_firms(truth, run.firms, final, s, merge_gap_days) for s in sources}
    raw_overall = score_firms(truth, run.firms, run.detections, None, merge_gap_days)

    scen_counts: dict[str, int] = {}
    for fid in run.firms:
        s = (truth.get(fid) or {}).get("scenario", "unknown")
        scen_counts[s] = scen_counts.get(s, 0) + 1
    drift_summary: dict[str, Any] = {}
    for ev in gov.drift_events:
        k = f"{ev['kind']}:{ev['event']}:{'holiday' if ev['holiday'] else 'regular'}"
        drift_summary[k] = drift_summary.get(k, 0) + 1
    worst = sorted(gov.drift_events, key=lambda e: (-e["value"], e["day"], e["segment"], e["name"]))
    regular = [e for e in gov.drift_events if not e["holiday"]]
    sizes = sorted(run.state_bytes)
    d = overall["distressed"]
    achieved = {
        "recall": d["recall"],
        "median_delay_days": d["delay_median"],
        "false_warnings_per_100_firm_months": overall["healthy"]["per_100_firm_months"],
        "seasonal_dip_share_warned": overall["seasonal_dip"]["share_warned"],
    }
    met = {
        "recall": achieved["recall"] is not None and achieved["recall"] >= TARGETS["recall"],
        "median_delay_days": achieved["median_delay_days"] is not None
        and achieved["median_delay_days"] <= TARGETS["median_delay_days"],
        "false_warnings_per_100_firm_months": achieved["false_warnings_per_100_firm_months"] is not None
        and achieved["false_warnings_per_100_firm_months"] <= TARGETS["false_warnings_per_100_firm_months"],
        "seasonal_dip_share_warned": achieved["seasonal_dip_share_warned"] is not None
        and achieved["seasonal_dip_share_warned"] <= TARGETS["seasonal_dip_share_warned"],
    }
    return {
        "sim_dir": str(sim_dir),
        "engine_version": config.version,
        "firms": len(run.firms),
        "scenarios": dict(sorted(scen_counts.items())),
        "firm_days": run.firm_days,
        "first_day": min((f.first_day for f in run.firms.values()), default=None),
        "last_day": max((f.last_day for f in run.firms.values()), default=None),
        "vitality": vit_info,
        "engine_seconds": round(run.seconds, 2),
        "firm_days_per_s": round(run.firm_days / run.seconds) if run.seconds > 0 else None,
        "state_bytes": {"mean": round(sum(sizes) / len(sizes)) if sizes else None,
                        "p99": _p(sizes, 0.99), "max": sizes[-1] if sizes else None},
        "targets": {"target": TARGETS, "achieved": achieved, "met": met},
        "overall": overall,
        "overall_before_governance": raw_overall,
        "per_source": per_source,
        "soft_alerts": _soft_alerts(truth, final),
        "calibration": _calibration(truth, run),
        "governance": {
            "drift_config": dataclasses.asdict(drift or DriftConfig()),
            "drift_events": drift_summary,
            "drift_events_regular_days": len(regular),
            "worst_drift_events": worst[:8],
            "breaker_config": dataclasses.asdict(breaker),
            "breaker_events": [e for e in gov.breaker.history if e["event"] != "period_closed"],
            "breaker_max_rate": {m: max((e["value"] for e in gov.breaker.history
                                         if e["event"] == "period_closed" and e["model"] == m), default=None)
                                 for m in sorted(gov.breaker.state)},
            "retrain_policy": gconfig.retrain_action,
            "resets": [[d["from"], seg, m] for d in gov.governance.decisions for seg, m in d["resets"]],
            "paused_periods": [[d["from"], d["paused"]] for d in gov.governance.decisions if d["paused"]],
        },
        "config": config.to_dict(),
    }


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------


def _f(x: Any, fmt: str = "{:.3f}") -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        return fmt.format(x)
    return str(x)


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100.0 * x:.1f}%"


def format_report(rep: Mapping[str, Any]) -> str:
    L: list[str] = []
    o = rep["overall"]
    L.append(f"riskmon detection backtest: {rep['sim_dir']}  (engine {rep['engine_version']})")
    L.append(f"  {rep['firms']:,} firms, {rep['firm_days']:,} firm-days, {rep['first_day']} .. {rep['last_day']}; "
             + ", ".join(f"{k} {v}" for k, v in rep["scenarios"].items()))
    v = rep["vitality"]
    if v.get("vitality") == "computed":
        L.append(f"  vitality: computed by run_backtest ({v['events']:,} events in {v['backtest_seconds']} s, "
                 f"{v['events_per_s']:,} events/s) -> {v['path']}")
    else:
        L.append(f"  vitality: reused {v['path']}")
    sb = rep["state_bytes"]
    L.append(f"  engine and governance: {rep['engine_seconds']} s ({rep['firm_days_per_s']:,} firm-days/s); "
             f"engine state per firm: mean {sb['mean']} B, p99 {sb['p99']} B, "
             f"max {sb['max']} B (JSON)")
    L.append("")
    L.append("Targets (default population)")
    t = rep["targets"]
    L.append(f"  {'metric':<36} {'target':>8} {'achieved':>10}  met")
    names = {"recall": ("recall of distressed firms", ">= ", "{:.3f}"),
             "median_delay_days": ("median warning delay from onset, days", "<= ", "{:.1f}"),
             "false_warnings_per_100_firm_months": ("false warnings / 100 healthy firm-months", "<= ", "{:.2f}"),
             "seasonal_dip_share_warned": ("share of seasonal-dip firms warned", "<= ", "{:.3f}")}
    for k, (label, op, fmt) in names.items():
        L.append(f"  {label:<36} {op + str(t['target'][k]):>8} {_f(t['achieved'][k], fmt):>10}  "
                 f"{'yes' if t['met'][k] else 'NO'}")
    L.append("")
    L.append("Distressed firms warned (level >= warning) between onset and default")
    L.append(f"  {'scenario':<18} {'firms':>5} {'warned':>6} {'recall':>7} | {'dflt in window':>14} {'recall':>7} | "
             f"{'delay med':>9} {'p90':>4} {'mean':>5} | {'lead med':>8} {'p10':>4} | {'early':>5}")
    for k in ("shutdown", "gradual_decline", "distressed", "temporary_outage"):
        b = o[k]
        L.append(f"  {k:<18} {b['firms']:>5} {b['warned']:>6} {_f(b['recall']):>7} | "
                 f"{str(b['warned_default_observed']) + '/' + str(b['firms_default_observed']):>14} "
                 f"{_f(b['recall_default_observed']):>7} | {_f(b['delay_median'], '{:.1f}'):>9} "
                 f"{_f(b['delay_p90']):>4} {_f(b['delay_mean'], '{:.1f}'):>5} | {_f(b['lead_median'], '{:.1f}'):>8} "
                 f"{_f(b['lead_p10']):>4} | {b['warned_before_onset']:>5}")
    L.append("  (temporary_outage: between onset and recovery; 'early' = warned before onset)")
    L.append("")
    h = o["healthy"]
    L.append("False warnings")
    L.append(f"  healthy + growth: {h['firms']} firms, {h['firm_months']} firm-months, {h['episodes']} warning "
             f"episodes = {_f(h['per_100_firm_months'], '{:.2f}')} per 100 firm-months; firms warned "
             f"{h['firms_warned']} ({_pct(h['share_warned'])})")
    for k in ("seasonal_dip", "data_outage"):
        b = o[k]
        L.append(f"  {k}: {b['firms_warned']}/{b['firms']} firms warned ({_pct(b['share_warned'])}); during the "
                 f"event (+7 d): {b['warned_during_event']} ({_pct(b['share_warned_during_event'])})")
    L.append("")
    L.append("Per source (only that source's warnings)")
    L.append(f"  {'source':<24} {'recall':>7} {'shutdn':>7} {'decline':>7} {'delay med':>9} {'p90':>4} "
             f"{'temp':>6} {'FW/100fm':>8} {'dip':>6} {'outage':>6}")
    rows = [("(any)", o)] + list(rep["per_source"].items())
    for name, b in rows:
        L.append(f"  {name:<24} {_f(b['distressed']['recall']):>7} {_f(b['shutdown']['recall']):>7} "
                 f"{_f(b['gradual_decline']['recall']):>7} {_f(b['distressed']['delay_median'], '{:.1f}'):>9} "
                 f"{_f(b['distressed']['delay_p90']):>4} {_f(b['temporary_outage']['recall']):>6} "
                 f"{_f(b['healthy']['per_100_firm_months'], '{:.2f}'):>8} {_pct(b['seasonal_dip']['share_warned']):>6} "
                 f"{_pct(b['data_outage']['share_warned']):>6}")
    L.append("")
    L.append("All detections: new episodes by name:level and scenario group")
    groups = ["healthy", "distressed", "temporary_outage", "seasonal_dip", "data_outage"]
    L.append(f"  {'name:level':<34} " + " ".join(f"{g[:10]:>10}" for g in groups))
    for key, c in rep["soft_alerts"].items():
        L.append(f"  {key:<34} " + " ".join(f"{c.get(g, 0):>10}" for g in groups))
    L.append("")
    L.append("Model score calibration (share of scored firm-days at or above a score)")
    L.append(f"  {'model':<16} {'healthy days':>12} {'>=0.5':>8} {'>=0.8':>8} | {'distressed days':>15} {'>=0.5':>7}")
    for m, c in rep["calibration"].items():
        L.append(f"  {m:<16} {c['healthy_days']:>12,} {_pct(c['healthy_share_ge_0_5']):>8} "
                 f"{_pct(c['healthy_share_ge_0_8']):>8} | {c['distressed_days']:>15,} {_pct(c['distressed_share_ge_0_5']):>7}")
    L.append("")
    g = rep["governance"]
    L.append("Governance")
    L.append("  drift events (kind:event:day type): " + (", ".join(f"{k} {v}" for k, v in g["drift_events"].items())
                                                        or "none"))
    L.append(f"  drift events on regular (non-festival) days: {g['drift_events_regular_days']}; retrain action: "
             f"{g['retrain_policy']}; model resets (period start, segment, model): "
             + (", ".join(f"{d} {seg} {m}" for d, seg, m in g["resets"]) or "none"))
    for e in g["worst_drift_events"][:5]:
        L.append(f"    {e['day']} {e['segment']:<18} {e['kind']} {e['name']:<14} {e['value']:.3f} {e['event']}"
                 f"{' (festival)' if e['holiday'] else ''}")
    bc = g["breaker_config"]
    L.append(f"  circuit breaker: {bc['metric']} > {bc['threshold']} for {bc['periods']} periods of "
             f"{bc['period_days']} days; highest period value per model: "
             + ", ".join(f"{m} {_f(v, '{:.4f}')}" for m, v in g["breaker_max_rate"].items()))
    if g["breaker_events"]:
        for e in g["breaker_events"]:
            L.append(f"    {e['day']} {e['model']} {e['event']}")
    else:
        L.append("    no breaker opened")
    for start, paused in g["paused_periods"]:
        L.append(f"    period from {start}: paused {', '.join(paused)}")
    ob = rep["overall_before_governance"]
    L.append(f"  before governance: recall {_f(ob['distressed']['recall'])}, false warnings "
             f"{_f(ob['healthy']['per_100_firm_months'], '{:.2f}')} per 100 firm-months")
    return "\n".join(L)


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Arguments of the detection backtest (``riskmon detect SIMDIR``)."""
    p.add_argument("path", help="simulation directory (events.jsonl.gz + truth.jsonl)")
    p.add_argument("--json", action="store_true", help="print the full report as JSON")
    p.add_argument("--rebuild", action="store_true", help="recompute SIMDIR/vitality.jsonl even if it is fresh")
    p.add_argument("--config", help="engine configuration (JSON file; see detectors.engine.EngineConfig.from_dict)")
    p.add_argument("--breaker-metric", choices=["alert_rate", "false_alarm_rate"], default="alert_rate",
                   help="circuit-breaker metric (false_alarm_rate uses the ground truth)")
    p.add_argument("--breaker-threshold", type=float, default=None, help="circuit-breaker threshold per period")
    p.add_argument("--detections-out", help="write the final detections (JSON lines) to this file")
    p.add_argument("--retrain-action", choices=["reset", "mark"], default=None,
                   help="what a retrain event does (default: RISKMON_GOVERNANCE_RETRAIN_ACTION, reset)")


def main(args: argparse.Namespace) -> int:
    """``riskmon detect SIMDIR``: print the detection backtest report."""
    try:
        config = None
        if getattr(args, "config", None):
            config = orjson.loads(Path(args.config).read_bytes())
        kw = {"metric": args.breaker_metric}
        if getattr(args, "breaker_threshold", None) is not None:
            kw["threshold"] = args.breaker_threshold
        elif args.breaker_metric == "false_alarm_rate":
            kw["threshold"] = 0.5
        from riskmon.settings import Settings

        settings = Settings()
        action = getattr(args, "retrain_action", None) or settings.governance_retrain_action
        gconfig = settings.model_copy(update={"governance_retrain_action": action}).governance_config()
        rep = evaluate(args.path, config, rebuild=args.rebuild, breaker=BreakerConfig(**kw),
                       detections_out=getattr(args, "detections_out", None),
                       governance=gconfig or GovernanceConfig(retrain_action=action))
    except (FileNotFoundError, ValueError) as exc:
        print(f"riskmon detect: {exc}", file=sys.stderr)
        return 2
    if args.json:
        sys.stdout.write(orjson.dumps(rep, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS).decode() + "\n")
    else:
        print(format_report(rep))
    return 0


if __name__ == "__main__":  # python -m detectors.evaluate SIMDIR
    _p_ = argparse.ArgumentParser(prog="python -m detectors.evaluate")
    add_arguments(_p_)
    raise SystemExit(main(_p_.parse_args()))
