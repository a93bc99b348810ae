"""Harness for the operations tests (their fixtures are in ``conftest.py`` beside this file):
promtool / Prometheus binaries, a real Prometheus server run from the repo's own scrape config
and rules, and metrics endpoints to scrape.

* ``require_tool(name)``: the binary's path; skipped with a reason when it is missing, except
  in CI (``CI=true``), where a missing tool fails the test (``.ci/run`` installs Debian's
  ``prometheus`` and ``prometheus-alertmanager`` packages).
* ``start_prometheus`` fixture: ``start_prometheus({"riskmon-worker": ["127.0.0.1:9464"], ...})``
  starts ``prometheus`` on a free 127.0.0.1 port with a temporary storage dir and a config
  derived from ``ops/prometheus/prometheus.yml`` (:func:`derive_config`), returns a
  :class:`PrometheusServer`, and stops it by PID at teardown.
* ``riskmon_targets`` fixture: the endpoints to scrape, by job. By default two synthetic
  endpoints (a worker's and an ingest's :class:`~riskmon.metrics.RiskmonMetrics`, fed with
  realistic, moving values by a background thread). To scrape real processes instead — e.g. a
  worker during a replay — override the fixture in a test module, or set
  ``RISKMON_PROM_TARGETS="riskmon-worker=127.0.0.1:9464,127.0.0.1:9466;riskmon-ingest=127.0.0.1:9465"``
  and, for metrics those processes do not produce yet, ``RISKMON_PROM_ALLOW_EMPTY`` (comma-separated
  substrings of the dashboard expressions that may return nothing).
"""

from __future__ import annotations

import json
import math
import os
import random
import re
import shutil
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import pytest

REPO = Path(__file__).resolve().parents[2]
OPS = REPO / "ops"
PROM_DIR = OPS / "prometheus"
PROM_CONFIG = PROM_DIR / "prometheus.yml"
DASHBOARD = OPS / "grafana" / "dashboards" / "riskmon.json"

#: Grafana's built-in variables, replaced so that an expression can be sent to Prometheus as is.
GRAFANA_VARIABLES = {
    "$__rate_interval": "1m",
    "${__rate_interval}": "1m",
    "$__interval": "1m",
    "${__interval}": "1m",
    "$__range": "5m",
    "${__range}": "5m",
}


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("true", "1", "yes")


def require_tool(name: str) -> str:
    path = shutil.which(name)
    if path:
        return path
    hint = "apt-get install -y prometheus prometheus-alertmanager"
    if in_ci():
        pytest.fail(f"{name} is not installed in CI ({hint} in .ci/run)")
    pytest.skip(f"{name} not installed ({hint})")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def load_yaml(path: Path) -> Any:
    yaml = pytest.importorskip("yaml", reason="PyYAML is needed (pip install pyyaml)")
    return yaml.safe_load(path.read_text())


def derive_config(
    targets: dict[str, list[str]], interval: str = "1s", source: Path = PROM_CONFIG
) -> dict[str, Any]:
    """The repo's scrape config for a local Prometheus: each riskmon job keeps its name and
    relabelling but scrapes ``targets[job]`` (static) instead of Docker's DNS; other jobs and
    Alertmanager are dropped; rule files become absolute; intervals are ``interval``."""
    config = load_yaml(source)
    config["global"].update(scrape_interval=interval, evaluation_interval=interval, scrape_timeout=interval)
    config.pop("alerting", None)
    config["rule_files"] = [str((source.parent / p).resolve()) for p in config.get("rule_files", [])]
    jobs = []
    for job in config["scrape_configs"]:
        name = job["job_name"]
        if name not in targets:
            continue
        job = {k: v for k, v in job.items() if not k.endswith("_sd_configs") and k != "static_configs"}
        job["static_configs"] = [{"targets": list(targets[name])}]
        jobs.append(job)
    missing = set(targets) - {j["job_name"] for j in jobs}
    if missing:
        raise ValueError(f"jobs {sorted(missing)} are not in {source}")
    config["scrape_configs"] = jobs
    return config


def dashboard_queries(path: Path = DASHBOARD) -> list[tuple[str, str]]:
    """(where, PromQL) of every panel target and annotation of the dashboard, with Grafana's
    variables substituted."""
    dash = json.loads(path.read_text())
    out: list[tuple[str, str]] = []

    def walk(panels: list[dict]) -> None:
        for p in panels:
            for t in p.get("targets", []):
                if t.get("expr"):
                    out.append((f"panel {p.get('title')!r} {t.get('refId')}", substitute(t["expr"])))
            walk(p.get("panels", []))

    walk(dash.get("panels", []))
    for a in dash.get("annotations", {}).get("list", []):
        if a.get("expr"):
            out.append((f"annotation {a.get('name')!r}", substitute(a["expr"])))
    return out


def substitute(expr: str) -> str:
    for var, value in sorted(GRAFANA_VARIABLES.items(), key=lambda kv: -len(kv[0])):
        expr = expr.replace(var, value)
    if "$" in expr:
        raise ValueError(f"unsubstituted Grafana variable in {expr!r}")
    return expr


def rule_names(rules_dir: Path = PROM_DIR / "rules") -> set[str]:
    names = set()
    for f in sorted(rules_dir.glob("*.yml")):
        for group in load_yaml(f)["groups"]:
            for rule in group["rules"]:
                names.add(rule.get("alert") or rule.get("record"))
    return names


# ---------------------------------------------------------------------------------------------
# A real Prometheus server
# ---------------------------------------------------------------------------------------------


@dataclass
class PrometheusServer:
    binary: str
    workdir: Path
    config: dict[str, Any]
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> "PrometheusServer":
        import yaml

        config_path = self.workdir / "prometheus.yml"
        config_path.write_text(yaml.safe_dump(self.config, sort_keys=False))
        storage = self.workdir / "data"
        storage.mkdir(parents=True, exist_ok=True)
        self.log_path = self.workdir / "prometheus.log"
        log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [
                self.binary,
                f"--config.file={config_path}",
                f"--storage.tsdb.path={storage}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--storage.tsdb.retention.time=1h",
                "--log.level=warn",
            ],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"prometheus exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as r:
                    if r.status == 200:
                        return self
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"prometheus not ready after {timeout} s:\n{self.log_tail()}")

    def stop(self) -> None:
        """SIGTERM by PID, then SIGKILL."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def log_tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except (AttributeError, FileNotFoundError):
            return ""

    def api(self, path: str, **params: str) -> Any:
        url = f"{self.url}/api/v1/{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        with urllib.request.urlopen(url, timeout=5) as r:
            body = json.loads(r.read())
        if body.get("status") != "success":
            raise RuntimeError(f"{path}: {body}")
        return body["data"]

    def query(self, expr: str) -> list[dict]:
        return self.api("query", query=expr)["result"]

    def wait_for(self, what: str, check: Callable[[], Any], timeout: float) -> Any:
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            last = check()
            if last:
                return last
            time.sleep(0.5)
        raise AssertionError(f"timed out waiting for {what}; last: {last!r}\n{self.log_tail()}")


# ---------------------------------------------------------------------------------------------
# Endpoints to scrape
# ---------------------------------------------------------------------------------------------

INDUSTRIES = ("manufacturing", "restaurant_retail", "agriculture", "logistics_trade")
STREAM_RATES = {"electricity": 400, "invoice": 30, "logistics": 60, "payment": 900}  # events per tick


class SyntheticPipeline:
    """A worker's and an ingest's metrics, moving as during a replay: events per stream, late
    and duplicate events, dead letters, lag, closed firm-days with band transitions, latencies,
    checkpoints, alerts, freezes, risk-share adjustments, PSI, a tripped breaker and Faust's
    own sensor. Deterministic values, advanced every ``tick`` seconds by a thread."""

    def __init__(self, tick: float = 0.2, seed: int = 7) -> None:
        from prometheus_client import CollectorRegistry

        from riskmon.metrics import RiskmonMetrics, attach_faust_sensor

        self.worker = RiskmonMetrics(CollectorRegistry(), component="worker", tz="Asia/Shanghai")
        self.ingest = RiskmonMetrics(CollectorRegistry(), component="ingest", tz="Asia/Shanghai")
        self.faust = attach_faust_sensor(_AppStub(), self.worker.registry)
        self.tick = tick
        self.rng = random.Random(seed)
        self.n = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="synthetic-metrics", daemon=True)
        self.ports: dict[str, int] = {}

    def start(self) -> "SyntheticPipeline":
        from riskmon.metrics import start_metrics_server

        self.advance()
        self.ports["riskmon-worker"] = start_metrics_server(self.worker, port=0)
        self.ports["riskmon-ingest"] = start_metrics_server(self.ingest, port=0)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.worker.close()
        self.ingest.close()

    def targets(self) -> dict[str, list[str]]:
        return {job: [f"127.0.0.1:{port}"] for job, port in self.ports.items()}

    def _run(self) -> None:
        while not self._stop.wait(self.tick):
            self.advance()

    def advance(self) -> None:
        from types import SimpleNamespace

        from riskmon.metrics import day_end_epoch

        w, i, rng = self.worker, self.ingest, self.rng
        self.n += 1
        n = self.n
        # Ingest: records, envelopes, valid events, a few dead letters; its lag.
        for stream, rate in STREAM_RATES.items():
            i.ingest_events_total.labels(stream).inc(rate)
            w.events(stream, rate - 1)
        i.ingest_records_total.inc(12)
        i.ingest_envelopes_total.inc(8)
        i.ingest_watermarks_total.inc(4)
        i.dead_letter("riskmon.events.payment.dlq", 1 if n % 3 == 0 else 0)
        i.dead_letter("riskmon.events.invoice.dlq", 1 if n % 7 == 0 else 0)
        i.set_lag("ingest", {t: rng.randint(0, 40) for t in (
            "riskmon.events.electricity", "riskmon.events.invoice", "riskmon.events.logistics", "riskmon.events.payment")})
        # Worker: late and duplicate events, lag, closed firm-days with bands and latencies.
        w.late("invoice", 1 if n % 2 == 0 else 0)
        w.late("electricity", 1 if n % 5 == 0 else 0)
        w.duplicates(3)
        w.set_lag("worker", {"riskmon.internal.events": rng.randint(0, 6)})
        w.worker_records_total.inc(9)
        day = f"2026-01-{1 + (n // 25) % 28:02d}"
        now = day_end_epoch(day, w.tz) + 36 * 3600 + rng.uniform(0, 3600)
        updates = []
        for f in range(40):
            firm = f"F{f:04d}"
            industry = INDUSTRIES[f % len(INDUSTRIES)]
            if n < 3:
                band = "warming_up"
            elif f % 10 == 0 and n > 10:
                band = "distress"
            elif f % 7 == 0:
                band = "watch"
            else:
                band = "healthy"
            updates.append({"firm_id": firm, "day": day, "industry": industry, "band": band})
        w.record_vitality(updates, partition=0, record_timestamp=now - rng.uniform(0.01, 0.5), now=now)
        with w.checkpoint_timer():
            time.sleep(rng.uniform(0.0005, 0.003))
        # Alerts, freezes, risk sharing, models.
        if n % 2 == 0:
            w.alert("power_logistics_stall", "warning", day=day, now=now)
        if n % 3 == 0:
            w.alert("order_drop", "watch", day=day, now=now)
        if n % 4 == 0:
            w.freeze()
        w.set_active_freezes(n // 4)
        if n % 5 == 0:
            w.risk_share_adjusted("up")
        for segment, psi in (("manufacturing", 0.31), ("restaurant_retail", 0.12), ("agriculture", 0.04)):
            w.set_psi("vitality", segment, psi + rng.uniform(-0.005, 0.005))
        w.set_circuit_breaker("vitality", True)
        w.set_circuit_breaker("order_model", False)
        # Faust's sensor.
        tp = SimpleNamespace(topic="riskmon.internal.events", partition=n % 4)
        self.faust._metrics.messages_received.inc(9)
        self.faust._metrics.messages_received_per_topics.labels(topic=tp.topic).inc(9)


class _AppStub:
    """attach_faust_sensor only sets ``app.monitor``."""

    monitor: Any = None


def targets_from_env() -> dict[str, list[str]] | None:
    spec = os.environ.get("RISKMON_PROM_TARGETS", "").strip()
    if not spec:
        return None
    targets: dict[str, list[str]] = {}
    for part in spec.split(";"):
        job, _, hosts = part.partition("=")
        targets[job.strip()] = [h.strip() for h in hosts.split(",") if h.strip()]
    return targets


@dataclass
class Targets:
    jobs: dict[str, list[str]]
    synthetic: SyntheticPipeline | None = None
    allow_empty: tuple[str, ...] = ()


METRIC_NAME = re.compile(r"\b(riskmon_[a-zA-Z0-9_:]+|up|ALERTS)\b")
STRING = re.compile(r'"(?:[^"\\]|\\.)*"')


def metric_names(expr: str) -> set[str]:
    """Metric names an expression reads (riskmon_*, up, ALERTS), label values left out.

    >>> sorted(metric_names('sum by (topic) (rate(riskmon_dead_letters_total{topic="riskmon.x"}[1m])) and up'))
    ['riskmon_dead_letters_total', 'up']
    """
    return set(METRIC_NAME.findall(STRING.sub('""', expr)))


def check_live_prometheus(prom: PrometheusServer, targets: Targets, timeout: float = 25.0) -> dict[str, list]:
    """What the issue asks of a real Prometheus running the repo's config: every target is
    scraped, the repo's rules are loaded and evaluate without error, and every query of the
    dashboard returns data (at least one sample that is not NaN; ``targets.allow_empty`` lists
    substrings of the queries that may return nothing). Returns the results by query."""

    def targets_up():
        active = prom.api("targets")["activeTargets"]
        expected = sum(len(v) for v in targets.jobs.values())
        up = [t for t in active if t["health"] == "up"]
        return len(active) == expected and len(up) == expected and active

    prom.wait_for("every target up", targets_up, timeout=timeout)

    expected_rules = rule_names()

    def rules_evaluated():
        groups = prom.api("rules")["groups"]
        rules = {r["name"]: r for g in groups for r in g["rules"]}
        ok = set(rules) >= expected_rules and all(
            r["health"] == "ok" and not r.get("lastError") for r in rules.values()
        ) and all(g.get("lastEvaluation", "").startswith("20") for g in groups)
        return rules if ok else None

    prom.wait_for("rules loaded and evaluated", rules_evaluated, timeout=timeout)

    queries = dashboard_queries()
    assert len(queries) >= 20
    pending = {expr: where for where, expr in queries}
    results: dict[str, list] = {}

    def all_answered():
        for expr in list(pending):
            result = prom.query(expr)
            if result and any(not math.isnan(float(s["value"][1])) for s in result):
                results[expr] = result
                del pending[expr]
        return not pending

    try:
        prom.wait_for("every dashboard query to return data", all_answered, timeout=timeout)
    except AssertionError:
        missing = {e: w for e, w in pending.items() if not any(a in e for a in targets.allow_empty)}
        assert not missing, "dashboard queries without data:\n" + "\n".join(
            f"  {w}: {e}" for e, w in missing.items())
    return results
