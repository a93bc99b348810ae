"""A static report of a run: PNG plots (matplotlib, Agg backend) and an HTML page embedding them.

:func:`write_report` reads a ``vitality.jsonl`` (one vitality update per line, as on
``riskmon.vitality`` and in the demo's or backtest's output) and, optionally, the alerts raised,
and writes into ``out_dir``:

* ``vitality_firms.png`` — the vitality score over time of a few firms (given, or picked: firms
  that entered distress, earliest first, plus a healthy one), the band of each day as the dot's
  colour, alerts marked on the day they were raised;
* ``alert_timeline.png`` — alerts per day by level (only when there are alerts);
* ``band_timeline.png`` — firms per band per day;
* ``index.html`` — a summary table and the plots (relative paths, so the directory can be moved).

An alert is a dict with at least ``firm_id`` and ``day`` (ISO date; ``time``/``created_at``
also accepted, the date part is used), and usually ``level`` and ``rule`` (or ``name``). Alerts
with ``"new": false`` (a rule still active on a later day of the same episode) are left out.
"""

from __future__ import annotations

import html
import math
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Iterable

import orjson

BAND_COLORS = {
    "healthy": "#2e7d32",
    "watch": "#f9a825",
    "distress": "#c62828",
    "warming_up": "#9e9e9e",
}
BAND_ORDER = ("healthy", "watch", "distress", "warming_up")
LEVEL_COLORS = {"critical": "#6a1b9a", "warning": "#c62828", "watch": "#ef6c00", "info": "#1565c0"}
LEVEL_ORDER = ("critical", "warning", "watch", "info")
MAX_DISTRESSED = 3


@dataclass
class FirmSeries:
    firm_id: str
    industry: str = "default"
    days: list[date] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    bands: list[str] = field(default_factory=list)

    def first_day_in(self, band: str) -> date | None:
        for d, b in zip(self.days, self.bands):
            if b == band:
                return d
        return None

    def scored(self) -> list[tuple[date, float, str]]:
        return [(d, s, b) for d, s, b in zip(self.days, self.scores, self.bands) if b != "warming_up"]


def load_vitality(path: Path) -> dict[str, FirmSeries]:
    """Per-firm series from a vitality JSON-lines file, sorted by day; a (firm, day) that
    appears several times (re-emitted after a restart) keeps its last update."""
    latest: dict[tuple[str, str], tuple[str, float, str]] = {}
    with Path(path).open("rb") as fh:
        for lineno, line in enumerate(fh, 1):
            line = line.strip()
            if not line:
                continue
            try:
                rec = orjson.loads(line)
                key = (str(rec["firm_id"]), str(rec["day"]))
                date.fromisoformat(key[1])
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
                raise ValueError(f"{path}:{lineno}: not a vitality update with firm_id and day ({exc!r})") from None
            score = rec.get("score")
            latest[key] = (
                rec.get("industry") or "default",
                float("nan") if score is None else float(score),
                rec.get("band") or "warming_up",
            )
    firms: dict[str, FirmSeries] = {}
    for (firm_id, day), (industry, score, band) in sorted(latest.items()):
        s = firms.get(firm_id)
        if s is None:
            s = firms[firm_id] = FirmSeries(firm_id, industry)
        s.days.append(date.fromisoformat(day))
        s.scores.append(score)
        s.bands.append(band)
    return firms


def _alert_day(alert: dict[str, Any]) -> date | None:
    for key in ("day", "time", "created_at", "event_time"):
        value = alert.get(key)
        if isinstance(value, str) and len(value) >= 10:
            try:
                return date.fromisoformat(value[:10])
            except ValueError:
                continue
    return None


def _alert_rule(alert: dict[str, Any]) -> str:
    return str(alert.get("rule") or alert.get("name") or alert.get("rule_id") or "alert")


def pick_firms(firms: dict[str, FirmSeries], alerts: list[dict] | None = None, n_distressed: int = MAX_DISTRESSED) -> list[str]:
    """Up to ``n_distressed`` firms that entered distress (earliest first; firms with alerts
    first when there are alerts) and the healthiest firm that never left the healthy band."""
    alerted = {a.get("firm_id") for a in alerts or []}
    distressed = [(s.first_day_in("distress"), s.firm_id) for s in firms.values() if s.first_day_in("distress")]
    distressed.sort(key=lambda t: (t[1] not in alerted, t[0], t[1]))
    chosen = [firm for _, firm in distressed[:n_distressed]]
    healthy = []
    for s in firms.values():
        scored = s.scored()
        if scored and all(b == "healthy" for _, _, b in scored):
            mean = sum(v for _, v, _ in scored if not math.isnan(v)) / len(scored)
            healthy.append((-len(scored), -mean, s.firm_id))
    if healthy:
        chosen.append(min(healthy)[2])
    if not chosen and firms:  # nothing distressed, nothing fully healthy: the lowest minimum
        lowest = min(firms.values(), key=lambda s: (min((v for v in s.scores if not math.isnan(v)), default=100.0), s.firm_id))
        chosen.append(lowest.firm_id)
    return chosen


def _plot_firms(firms: dict[str, FirmSeries], chosen: list[str], alerts: list[dict], path: Path) -> None:
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    by_firm: dict[str, list[dict]] = defaultdict(list)
    for a in alerts:
        by_firm[a.get("firm_id")].append(a)
    n = len(chosen)
    fig, axes = plt.subplots(n, 1, figsize=(11, 2.4 * n + 0.6), sharex=True, squeeze=False)
    for ax, firm_id in zip(axes[:, 0], chosen):
        s = firms[firm_id]
        ax.plot(s.days, s.scores, color="#37474f", linewidth=1.2, zorder=2)
        ax.scatter(s.days, s.scores, c=[BAND_COLORS.get(b, "#000") for b in s.bands], s=10, zorder=3)
        score_of = dict(zip(s.days, s.scores))
        seen_levels = set()
        for a in sorted(by_firm.get(firm_id, []), key=lambda a: LEVEL_ORDER.index(a.get("level")) if a.get("level") in LEVEL_ORDER else 9):
            d = _alert_day(a)
            if d is None:
                continue
            level = a.get("level") or "warning"
            color = LEVEL_COLORS.get(level, "#000000")
            ax.axvline(d, color=color, linestyle="--", linewidth=0.8, alpha=0.7, zorder=1)
            y = score_of.get(d)
            ax.scatter([d], [y if y is not None and not math.isnan(y) else 5], marker="v", s=70,
                       color=color, edgecolor="black", linewidth=0.5, zorder=4,
                       label=level if level not in seen_levels else None)
            seen_levels.add(level)
        first = s.first_day_in("distress")
        title = f"{firm_id} ({s.industry})"
        if first:
            title += f" — distress from {first.isoformat()}"
        ax.set_title(title, fontsize=10, loc="left")
        ax.set_ylim(-3, 105)
        ax.set_ylabel("vitality")
        ax.grid(True, alpha=0.3)
        if seen_levels:
            ax.legend(loc="lower left", fontsize=8, title="alerts", title_fontsize=8)
    axes[-1, 0].xaxis.set_major_formatter(mdates.DateFormatter("%Y-%m-%d"))
    fig.autofmt_xdate()
    handles = [plt.Line2D([], [], marker="o", linestyle="", color=c, label=b) for b, c in BAND_COLORS.items()]
    fig.legend(handles=handles, loc="upper right", ncol=4, fontsize=8, frameon=False)
    fig.suptitle("Business vitality over time", x=0.01, ha="left", fontsize=12)
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _band_counts(firms: dict[str, FirmSeries]) -> tuple[list[date], dict[str, list[int]]]:
    per_day: dict[date, Counter] = defaultdict(Counter)
    for s in firms.values():
        for d, b in zip(s.days, s.bands):
            per_day[d][b] += 1
    days = sorted(per_day)
    return days, {b: [per_day[d][b] for d in days] for b in BAND_ORDER}


def _plot_bands(firms: dict[str, FirmSeries], path: Path) -> None:
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    days, counts = _band_counts(firms)
    fig, ax = plt.subplots(figsize=(11, 3.6))
    order = ("distress", "watch", "healthy", "warming_up")  # the bands that move at the bottom
    ax.stackplot(days, *[counts[b] for b in order], labels=list(order),
                 colors=[BAND_COLORS[b] for b in order], alpha=0.85)
    ax.set_ylabel("firms")
    ax.set_title("Firms per vitality band per day", loc="left", fontsize=11)
    ax.legend(loc="upper left", fontsize=8, ncol=4)
    ax.grid(True, alpha=0.3)
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%Y-%m-%d"))
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_alerts(alerts: list[dict], path: Path) -> None:
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    per_day: dict[date, Counter] = defaultdict(Counter)
    per_rule: dict[str, list[tuple[date, str]]] = defaultdict(list)
    for a in alerts:
        d = _alert_day(a)
        if d is None:
            continue
        level = a.get("level") or "warning"
        per_day[d][level] += 1
        per_rule[_alert_rule(a)].append((d, level))
    days = sorted(per_day)
    levels = [lv for lv in LEVEL_ORDER if any(per_day[d][lv] for d in days)]
    levels += sorted({lv for d in days for lv in per_day[d]} - set(levels))
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(11, 5.5), sharex=True,
                                   gridspec_kw={"height_ratios": [3, 2]})
    bottom = [0] * len(days)
    for lv in levels:
        vals = [per_day[d][lv] for d in days]
        ax1.bar(days, vals, bottom=bottom, color=LEVEL_COLORS.get(lv, "#607d8b"), label=lv, width=0.9)
        bottom = [b + v for b, v in zip(bottom, vals)]
    ax1.set_ylabel("alerts per day")
    ax1.set_title("Alerts raised per day, by level", loc="left", fontsize=11)
    ax1.legend(loc="upper left", fontsize=8)
    ax1.grid(True, axis="y", alpha=0.3)
    rules = sorted(per_rule)
    for i, rule in enumerate(rules):
        pts = per_rule[rule]
        ax2.scatter([d for d, _ in pts], [i] * len(pts), c=[LEVEL_COLORS.get(lv, "#607d8b") for _, lv in pts],
                    marker="|", s=120)
    ax2.set_yticks(range(len(rules)))
    ax2.set_yticklabels(rules, fontsize=8)
    ax2.set_ylim(-0.7, len(rules) - 0.3)
    ax2.set_title("by rule", loc="left", fontsize=10)
    ax2.grid(True, axis="x", alpha=0.3)
    ax2.xaxis.set_major_formatter(mdates.DateFormatter("%Y-%m-%d"))
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def summarize(firms: dict[str, FirmSeries], alerts: list[dict]) -> dict[str, Any]:
    days = sorted({d for s in firms.values() for d in s.days})
    last = days[-1] if days else None
    final_bands = Counter(s.bands[-1] for s in firms.values() if s.days and s.days[-1] == last)
    return {
        "firms": len(firms),
        "firm_days": sum(len(s.days) for s in firms.values()),
        "first_day": days[0].isoformat() if days else None,
        "last_day": last.isoformat() if last else None,
        "bands_on_last_day": {b: final_bands.get(b, 0) for b in BAND_ORDER},
        "firms_ever_in_distress": sum(1 for s in firms.values() if "distress" in s.bands),
        "alerts": len(alerts),
        "alerts_by_level": dict(Counter(a.get("level") or "unknown" for a in alerts).most_common()),
        "alerts_by_rule": dict(Counter(_alert_rule(a) for a in alerts).most_common()),
        "firms_with_alerts": len({a.get("firm_id") for a in alerts}),
    }


def _table(rows: Iterable[tuple[str, Any]]) -> str:
    return "<table>" + "".join(
        f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>" for k, v in rows
    ) + "</table>"


def _html(summary: dict[str, Any], plots: list[tuple[str, str]], firm_rows: list[dict[str, Any]], title: str) -> str:
    s = summary
    rows = [
        ("firms scored", f"{s['firms']:,}"),
        ("firm-days", f"{s['firm_days']:,}"),
        ("days", f"{s['first_day']} .. {s['last_day']}"),
        (f"bands on {s['last_day']}", ", ".join(f"{b} {n}" for b, n in s["bands_on_last_day"].items())),
        ("firms ever in distress", s["firms_ever_in_distress"]),
        ("alerts", f"{s['alerts']:,}" + (" (" + ", ".join(f"{lv} {n}" for lv, n in s["alerts_by_level"].items()) + ")" if s["alerts"] else "")),
    ]
    if s["alerts"]:
        rows.append(("alerts by rule", ", ".join(f"{r} {n}" for r, n in s["alerts_by_rule"].items())))
        rows.append(("firms with alerts", s["firms_with_alerts"]))
    firm_table = "<table><tr><th>firm</th><th>industry</th><th>min score</th><th>first distress</th><th>alerts</th></tr>" + "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(r[k]))}</td>" for k in ("firm_id", "industry", "min_score", "first_distress", "alerts")) + "</tr>"
        for r in firm_rows
    ) + "</table>"
    figures = "".join(
        f'<figure><img src="{html.escape(src)}" alt="{html.escape(caption)}"><figcaption>{html.escape(caption)}</figcaption></figure>'
        for src, caption in plots
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; max-width: 1250px; color: #212121; }}
table {{ border-collapse: collapse; margin: 0.5em 0 1.5em; }}
th, td {{ border: 1px solid #ccc; padding: 0.25em 0.7em; text-align: left; }}
th {{ background: #f5f5f5; }}
img {{ max-width: 100%; border: 1px solid #eee; }}
figcaption {{ color: #616161; font-size: 0.9em; }}
</style></head><body>
<h1>{html.escape(title)}</h1>
<h2>Summary</h2>
{_table(rows)}
<h2>Firms plotted</h2>
{firm_table}
<h2>Plots</h2>
{figures}
</body></html>
"""


def write_report(
    vitality_jsonl: Path,
    out_dir: Path,
    alerts: list[dict] | None = None,
    firms: list[str] | None = None,
    title: str = "riskmon report",
) -> dict:
    """Write the plots and ``index.html`` into ``out_dir``; returns ``{"html", "plots",
    "firms", "summary"}`` (paths as :class:`~pathlib.Path`)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    series = load_vitality(Path(vitality_jsonl))
    # A rule's alert may repeat on every day its condition holds; only episode starts are shown.
    alerts = [a for a in alerts or [] if a.get("new", True) is not False]
    if firms:
        missing = [f for f in firms if f not in series]
        if missing:
            raise ValueError(f"no vitality updates for firm(s) {', '.join(missing)}")
        chosen = list(firms)
    else:
        chosen = pick_firms(series, alerts)
    plots: list[tuple[str, str]] = []
    paths: list[Path] = []
    if chosen:
        p = out_dir / "vitality_firms.png"
        _plot_firms(series, chosen, alerts, p)
        plots.append((p.name, "Vitality score of selected firms (dot colour: band; triangles and dashed lines: alerts)"))
        paths.append(p)
    if alerts:
        p = out_dir / "alert_timeline.png"
        _plot_alerts(alerts, p)
        plots.append((p.name, "Alert timeline"))
        paths.append(p)
    if series:
        p = out_dir / "band_timeline.png"
        _plot_bands(series, p)
        plots.append((p.name, "Firms per vitality band per day"))
        paths.append(p)
    alerts_per_firm = Counter(a.get("firm_id") for a in alerts)
    firm_rows = []
    for firm_id in chosen:
        s = series[firm_id]
        finite = [v for v in s.scores if not math.isnan(v)]
        first = s.first_day_in("distress")
        firm_rows.append({
            "firm_id": firm_id,
            "industry": s.industry,
            "min_score": f"{min(finite):.1f}" if finite else "-",
            "first_distress": first.isoformat() if first else "-",
            "alerts": alerts_per_firm.get(firm_id, 0),
        })
    summary = summarize(series, alerts)
    index = out_dir / "index.html"
    index.write_text(_html(summary, plots, firm_rows, title), encoding="utf-8")
    return {"html": index, "plots": paths, "firms": chosen, "summary": summary}


def read_alerts(path: Path) -> list[dict]:
    """Alerts from a JSON-lines file (e.g. a dump of the alert topic)."""
    out = []
    with Path(path).open("rb") as fh:
        for line in fh:
            if line.strip():
                out.append(orjson.loads(line))
    return out


def main(args: Any) -> int:
    """``riskmon report VITALITY [--alerts FILE] [--firm ID ...] [--out DIR]``."""
    vitality = Path(args.vitality)
    out = Path(args.out) if args.out else vitality.parent / "report"
    try:
        alerts = read_alerts(Path(args.alerts)) if args.alerts else None
        result = write_report(vitality, out, alerts=alerts, firms=args.firm or None)
    except (OSError, ValueError) as exc:
        print(f"riskmon report: {exc}", file=sys.stderr)
        return 2
    print(f"report: {result['html']}")
    for p in result["plots"]:
        print(f"  {p}")
    return 0
