"""The operators' view: Prometheus config and alerting rules (promtool), Alertmanager config
(amtool), the Grafana dashboard and provisioning, and a real Prometheus server that scrapes
riskmon metrics endpoints with the repo's scrape config, evaluates the repo's rules and answers
every query of the dashboard.

promtool, prometheus and amtool come from Debian's ``prometheus`` and ``prometheus-alertmanager``
packages; a missing binary skips the test locally and fails it in CI (``CI=true``).
"""

from __future__ import annotations

import importlib.util
import io
import json
import subprocess
import threading
import urllib.request
from contextlib import redirect_stdout
from pathlib import Path

import pytest

from ops_harness import (  # tests/ops/ops_harness.py
    DASHBOARD,
    OPS,
    PROM_CONFIG,
    PROM_DIR,
    SyntheticPipeline,
    Targets,
    check_live_prometheus,
    dashboard_queries,
    derive_config,
    load_yaml,
    metric_names,
    require_tool,
    rule_names,
)

RULE_FILES = sorted((PROM_DIR / "rules").glob("*.yml"))
RULE_TESTS = sorted((PROM_DIR / "tests").glob("*.yml"))
ALERTMANAGER_CONFIG = OPS / "alertmanager" / "alertmanager.yml"
GRAFANA_PROVISIONING = OPS / "grafana" / "provisioning"


def _run(argv: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=120, cwd=cwd)
    assert proc.returncode == 0, f"{' '.join(argv)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return proc


# -- promtool ----------------------------------------------------------------------------------


def test_promtool_check_config() -> None:
    promtool = require_tool("promtool")
    out = _run([promtool, "check", "config", str(PROM_CONFIG)])
    # The rule files are found through the config's glob, relative to the config file.
    for f in RULE_FILES:
        assert f.name in out.stdout + out.stderr


def test_promtool_check_rules() -> None:
    promtool = require_tool("promtool")
    assert RULE_FILES
    _run([promtool, "check", "rules", *map(str, RULE_FILES)])


def test_promtool_test_rules() -> None:
    promtool = require_tool("promtool")
    assert RULE_TESTS
    _run([promtool, "test", "rules", *map(str, RULE_TESTS)])


def test_every_alert_has_firing_and_quiet_unit_tests() -> None:
    fires: set[str] = set()
    quiet: set[str] = set()
    for f in RULE_TESTS:
        for case in load_yaml(f)["tests"]:
            for t in case.get("alert_rule_test", []):
                (fires if t.get("exp_alerts") else quiet).add(t["alertname"])
    alerts = rule_names()
    assert alerts - fires == set(), "alerts with no test where they fire"
    assert alerts - quiet == set(), "alerts with no test where they stay quiet"
    required = {"RiskmonWorkerDown", "RiskmonIngestDown", "RiskmonConsumerLagGrowing",
                "RiskmonDeadLetterRate", "RiskmonNoEvents", "RiskmonFreezeSurge",
                "RiskmonModelDrift", "RiskmonCircuitBreakerOpen"}
    assert required <= alerts


def test_rules_and_dashboard_read_only_existing_metrics() -> None:
    """Every riskmon_* name in the rules and the dashboard is a series RiskmonMetrics (or
    Faust's sensor on the same registry) exports: a renamed metric cannot leave a dead panel."""
    from prometheus_client.exposition import generate_latest

    pipeline = SyntheticPipeline()
    for _ in range(25):
        pipeline.advance()
    exported = set()
    for m in (pipeline.worker, pipeline.ingest):
        for line in generate_latest(m.registry).decode().splitlines():
            if line and not line.startswith("#"):
                exported.add(line.split("{")[0].split(" ")[0])
    exported |= {"up", "ALERTS"}
    exprs = [e for _, e in dashboard_queries()]
    for f in RULE_FILES:
        for group in load_yaml(f)["groups"]:
            exprs += [r["expr"] for r in group["rules"]]
    unknown = {name for e in exprs for name in metric_names(e)} - exported
    assert not unknown, f"expressions read metrics nobody exports: {sorted(unknown)}"


# -- Alertmanager ------------------------------------------------------------------------------


def test_alertmanager_config() -> None:
    config = load_yaml(ALERTMANAGER_CONFIG)
    receivers = {r["name"]: r for r in config["receivers"]}
    assert config["route"]["receiver"] in receivers
    hooks = [w for r in receivers.values() for w in r.get("webhook_configs", [])]
    assert hooks and all(h["url"].startswith("http") for h in hooks)
    amtool = require_tool("amtool")
    _run([amtool, "check-config", str(ALERTMANAGER_CONFIG)])


def test_webhook_sink_logs_notifications(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("webhook_sink", OPS / "alertmanager" / "webhook_sink.py")
    sink = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(sink)
    out_file = tmp_path / "alerts.jsonl"
    server = sink.make_server("127.0.0.1", 0, str(out_file))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    payload = {
        "receiver": "riskmon-webhook", "status": "firing",
        "alerts": [{"status": "firing", "labels": {"alertname": "RiskmonWorkerDown", "severity": "critical"},
                    "annotations": {"summary": "riskmon worker w1 is down"}, "startsAt": "2026-01-05T00:00:00Z"}],
    }
    buf = io.StringIO()
    try:
        with redirect_stdout(buf):
            req = urllib.request.Request(
                f"http://127.0.0.1:{server.server_port}/alerts", data=json.dumps(payload).encode(),
                headers={"Content-Type": "application/json"}, method="POST",
            )
            with urllib.request.urlopen(req, timeout=5) as r:
                assert r.status == 200
    finally:
        server.shutdown()
        server.server_close()
    line = json.loads(buf.getvalue().strip().splitlines()[-1])
    assert line["alerts"][0]["alertname"] == "RiskmonWorkerDown"
    assert json.loads(out_file.read_text())["status"] == "firing"


# -- Grafana -----------------------------------------------------------------------------------


def test_dashboard_and_provisioning() -> None:
    dash = json.loads(DASHBOARD.read_text())
    assert dash["uid"] == "riskmon-operators"  # fixed: links and provisioning rely on it
    datasources = load_yaml(GRAFANA_PROVISIONING / "datasources" / "prometheus.yml")["datasources"]
    ds_uids = {d["uid"] for d in datasources if d["type"] == "prometheus"}
    panels = [p for p in dash["panels"] if p["type"] != "row"]
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    for p in panels:
        assert p["datasource"]["uid"] in ds_uids, p["title"]
        assert p["targets"], p["title"]
        for t in p["targets"]:
            assert t["datasource"]["uid"] in ds_uids and t["expr"].strip(), p["title"]
    titles = " | ".join(p["title"].lower() for p in panels)
    for topic in ("events in per stream", "lag", "latency", "band", "alerts", "freezes",
                  "risk-share", "psi", "circuit breaker", "dead letters", "late"):
        assert topic in titles, f"no panel about {topic!r}"
    providers = load_yaml(GRAFANA_PROVISIONING / "dashboards" / "riskmon.yml")["providers"]
    assert providers[0]["options"]["path"] == "/var/lib/grafana/dashboards"


def test_derived_config_keeps_jobs_and_rules() -> None:
    config = derive_config({"riskmon-worker": ["127.0.0.1:1"], "riskmon-ingest": ["127.0.0.1:2"]})
    jobs = {j["job_name"]: j for j in config["scrape_configs"]}
    assert set(jobs) == {"riskmon-worker", "riskmon-ingest"}
    assert jobs["riskmon-worker"]["static_configs"] == [{"targets": ["127.0.0.1:1"]}]
    assert "dns_sd_configs" not in jobs["riskmon-worker"]
    assert jobs["riskmon-worker"]["relabel_configs"]  # the repo's relabelling is kept
    assert all(Path(p).is_absolute() for p in config["rule_files"])
    assert "alerting" not in config
    with pytest.raises(ValueError):
        derive_config({"no-such-job": ["127.0.0.1:1"]})


# -- a real Prometheus -------------------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.slow
def test_live_prometheus_scrapes_evaluates_and_answers_the_dashboard(
    start_prometheus, riskmon_targets: Targets
) -> None:
    prom = start_prometheus(riskmon_targets.jobs, interval="1s")
    check_live_prometheus(prom, riskmon_targets)

    if riskmon_targets.synthetic is not None:
        # The synthetic feed's values come through as set: 40 firms per scrape in bands by
        # industry, a tripped breaker firing its alert.
        bands = prom.query('sum(riskmon_firms)')
        assert float(bands[0]["value"][1]) == 40
        breaker = prom.wait_for(
            "RiskmonCircuitBreakerOpen to fire",
            lambda: [a for a in prom.api("alerts")["alerts"]
                     if a["labels"]["alertname"] == "RiskmonCircuitBreakerOpen" and a["state"] == "firing"],
            timeout=15,
        )
        assert breaker[0]["labels"]["model"] == "vitality"
        drift = [a for a in prom.api("alerts")["alerts"] if a["labels"]["alertname"] == "RiskmonModelDrift"]
        assert drift and drift[0]["labels"]["segment"] == "manufacturing"  # pending: `for: 5m`
