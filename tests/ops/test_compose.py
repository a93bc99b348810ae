"""docker-compose.yml and the Dockerfile, checked without a Docker engine: structure, and that
they point at the same ports, settings, topics' partitioning, files and metrics endpoints as the
code and the Prometheus / Alertmanager / Grafana configs."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest

from ops_harness import OPS, PROM_CONFIG, REPO, load_yaml  # tests/ops/ops_harness.py
from riskmon.metrics import DEFAULT_METRICS_PORT
from riskmon.settings import Settings

COMPOSE = REPO / "docker-compose.yml"
RISKMON_SERVICES = ("simulate", "ingest", "worker", "replay")
LONG_RUNNING = ("ingest", "worker")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_yaml(COMPOSE)


@pytest.fixture(scope="module")
def services(compose: dict) -> dict[str, dict]:
    return compose["services"]


def _env(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


def _command(service: dict) -> list[str]:
    cmd = service.get("command") or []
    return shlex.split(cmd) if isinstance(cmd, str) else [str(c) for c in cmd]


def _riskmon_argv(service: dict) -> list[str]:
    """The ``riskmon ...`` invocation of a service, also inside ``sh -c '... exec riskmon ...'``."""
    cmd = _command(service)
    if cmd[:2] == ["sh", "-c"]:
        script = cmd[2].replace("$$", "$")
        words = shlex.split(script)
        start = max(i for i, w in enumerate(words) if w == "riskmon")
        return words[start:]
    assert cmd[0] == "riskmon", cmd
    return cmd


def _binds(service: dict) -> list[tuple[str, str]]:
    out = []
    for v in service.get("volumes", []):
        if isinstance(v, str):
            parts = v.split(":")
            out.append((parts[0], parts[1]))
        else:
            out.append((v["source"], v["target"]))
    return out


def _settings_fields() -> set[str]:
    return {name.upper() for name in Settings.model_fields}


def test_services_present(services: dict) -> None:
    for name in ("kafka", *RISKMON_SERVICES, "prometheus", "alertmanager", "grafana"):
        assert name in services, name
    assert not any("zookeeper" in name for name in services)


def test_riskmon_services_use_the_image_built_from_the_repo(services: dict) -> None:
    for name in RISKMON_SERVICES:
        s = services[name]
        assert s["build"]["context"] == "."
        assert (REPO / s["build"].get("dockerfile", "Dockerfile")).is_file()
    dockerfile = (REPO / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim", dockerfile, re.M)
    assert re.search(r"pip install \.", dockerfile)
    assert f"EXPOSE {DEFAULT_METRICS_PORT}" in dockerfile
    ignored = (REPO / ".dockerignore").read_text().split()
    assert ".venv" in ignored and ".git" in ignored
    assert "README.md" not in ignored and "pyproject.toml" not in ignored  # pip install . needs them


def test_kafka_is_kraft_with_network_and_host_listeners(services: dict) -> None:
    kafka = services["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    env = _env(kafka)
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    node_id = env["KAFKA_NODE_ID"]
    voters = env["KAFKA_CONTROLLER_QUORUM_VOTERS"]
    assert voters.startswith(f"{node_id}@kafka:")
    listeners = dict(re.match(r"(\w+)://([^:]*):(\d+)", l).group(1, 3) for l in env["KAFKA_LISTENERS"].split(","))
    protocol_map = dict(p.split(":") for p in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
    assert set(listeners) <= set(protocol_map)
    assert env["KAFKA_CONTROLLER_LISTENER_NAMES"] in listeners
    assert voters.endswith(":" + listeners[env["KAFKA_CONTROLLER_LISTENER_NAMES"]])
    assert env["KAFKA_INTER_BROKER_LISTENER_NAME"] in listeners
    advertised = {}
    for item in env["KAFKA_ADVERTISED_LISTENERS"].split(","):
        name, host, port = re.match(r"(\w+)://([^:]+):(\d+)", item).groups()
        assert listeners[name] == port
        advertised[name] = (host, port)
    hosts = {host for host, _ in advertised.values()}
    assert "kafka" in hosts and "localhost" in hosts  # in-network and host listeners
    published = {p.split(":")[-1] for p in kafka["ports"]}
    host_listener = [port for host, port in advertised.values() if host == "localhost"]
    assert set(host_listener) <= published
    # Every riskmon process bootstraps through the in-network listener.
    internal = [f"{h}:{p}" for h, p in advertised.values() if h == "kafka"]
    for name in RISKMON_SERVICES:
        assert _env(services[name])["RISKMON_BOOTSTRAP_SERVERS"] in internal, name
    # Topics riskmon and Faust create without an explicit count stay co-partitioned.
    for name in RISKMON_SERVICES:
        assert _env(services[name])["RISKMON_PARTITIONS"] == str(env["KAFKA_NUM_PARTITIONS"])


def test_every_riskmon_variable_is_a_setting() -> None:
    text = COMPOSE.read_text()
    used = set(re.findall(r"\bRISKMON_([A-Z0-9_]+)", text))
    unknown = used - _settings_fields()
    assert not unknown, f"RISKMON_* variables in docker-compose.yml that Settings does not read: {sorted(unknown)}"


def test_commands_parse_with_the_cli(services: dict) -> None:
    from riskmon.cli import build_parser

    parser = build_parser()
    expected = {"simulate": "simulate", "replay": "replay", "ingest": "ingest", "worker": "worker"}
    for name, sub in expected.items():
        argv = _riskmon_argv(services[name])
        args = parser.parse_args(argv[1:])
        assert args.command == sub, name


def test_workers_scale(services: dict) -> None:
    for name in LONG_RUNNING:
        s = services[name]
        assert "container_name" not in s, f"{name}: a fixed container name prevents --scale"
        assert "ports" not in s, f"{name}: a published port prevents --scale"
        assert "hostname" not in s
    worker_cmd = " ".join(_command(services["worker"]))
    assert re.search(r"RISKMON_WORKER_ID=\"?\$\$HOSTNAME", worker_cmd), worker_cmd
    ingest_cmd = " ".join(_command(services["ingest"]))
    assert "--instance-id" in ingest_cmd and "$$HOSTNAME" in ingest_cmd


def test_simulation_feeds_replay_and_firm_register(services: dict) -> None:
    sim = _riskmon_argv(services["simulate"])
    out_dir = sim[sim.index("--out") + 1]
    replay = _riskmon_argv(services["replay"])
    assert replay[2] == f"{out_dir}/events.jsonl.gz"
    for name in ("worker",):
        assert _env(services[name])["RISKMON_FIRMS_FILE"] == f"{out_dir}/truth.jsonl"
    volume = lambda s: {t: src for src, t in _binds(services[s])}  # noqa: E731
    data_mount = [t for t in volume("simulate") if out_dir.startswith(t)]
    assert data_mount
    for name in ("worker", "replay"):
        assert volume(name).get(data_mount[0]) == volume("simulate")[data_mount[0]], name
    assert services["worker"]["depends_on"]["simulate"]["condition"] == "service_completed_successfully"
    assert services["replay"]["depends_on"]["simulate"]["condition"] == "service_completed_successfully"


def test_metrics_endpoints_match_code_and_scrape_config(services: dict) -> None:
    prom = load_yaml(PROM_CONFIG)
    jobs = {j["job_name"]: j for j in prom["scrape_configs"]}
    for job, service in (("riskmon-worker", "worker"), ("riskmon-ingest", "ingest")):
        s = services[service]
        env = _env(s)
        port = int(env["RISKMON_METRICS_PORT"])
        assert port == DEFAULT_METRICS_PORT
        if "METRICS_PORT" in _settings_fields():
            assert Settings().metrics_port == port
            assert Settings().metrics_host == "127.0.0.1"  # loopback by default...
        assert env["RISKMON_METRICS_HOST"] == "0.0.0.0"  # ...reachable by Prometheus in compose
        assert str(port) in [str(p) for p in s.get("expose", [])]
        sd = jobs[job]["dns_sd_configs"][0]
        assert sd["names"] == [service] and sd["type"] == "A" and sd["port"] == port
        assert f":{port}/metrics" in " ".join(s["healthcheck"]["test"])


def test_prometheus_alertmanager_grafana_wiring(services: dict) -> None:
    # Prometheus: the repo's ops/prometheus mounted where --config.file points.
    prom = services["prometheus"]
    mounts = {t: src for src, t in _binds(prom)}
    config_flag = next(c for c in _command(prom) if c.startswith("--config.file="))
    config_in_container = Path(config_flag.split("=", 1)[1])
    src = mounts[str(config_in_container.parent)]
    assert (REPO / src / config_in_container.name).resolve() == PROM_CONFIG.resolve()
    prom_port = prom["ports"][0].split(":")[-1]
    # Prometheus sends alerts to the alertmanager service on its port.
    am_targets = load_yaml(PROM_CONFIG)["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    am = services["alertmanager"]
    am_port = am["ports"][0].split(":")[-1]
    assert am_targets == [f"alertmanager:{am_port}"]
    am_mounts = {t: src for src, t in _binds(am)}
    am_flag = next(c for c in _command(am) if c.startswith("--config.file="))
    am_config = Path(am_flag.split("=", 1)[1])
    assert (REPO / am_mounts[str(am_config.parent)] / am_config.name).resolve() == (OPS / "alertmanager" / "alertmanager.yml").resolve()
    # Alertmanager's webhook goes to the alert-sink service on the port it listens on.
    hook = load_yaml(OPS / "alertmanager" / "alertmanager.yml")["receivers"][0]["webhook_configs"][0]["url"]
    host, port = re.match(r"http://([^:/]+):(\d+)/", hook).groups()
    sink_cmd = _command(services[host])
    assert sink_cmd[sink_cmd.index("--port") + 1] == port
    sink_mounts = {t: src for src, t in _binds(services[host])}
    script = Path(next(c for c in sink_cmd if c.endswith(".py")))
    assert (REPO / sink_mounts[str(script.parent)] / script.name).is_file()
    # Grafana: provisioning and dashboards mounted; the datasource is the prometheus service.
    graf = services["grafana"]
    gmounts = {t: src for src, t in _binds(graf)}
    assert (REPO / gmounts["/etc/grafana/provisioning"]).resolve() == (OPS / "grafana" / "provisioning").resolve()
    provider = load_yaml(OPS / "grafana" / "provisioning" / "dashboards" / "riskmon.yml")["providers"][0]
    dash_dir = provider["options"]["path"]
    assert (REPO / gmounts[dash_dir] / "riskmon.json").is_file()
    home = _env(graf)["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home == f"{dash_dir}/riskmon.json"
    ds = load_yaml(OPS / "grafana" / "provisioning" / "datasources" / "prometheus.yml")["datasources"][0]
    assert ds["url"] == f"http://prometheus:{prom_port}"


def test_bind_mounts_exist_in_the_repo(services: dict) -> None:
    for name, s in services.items():
        for src, _target in _binds(s):
            if src.startswith("."):
                assert (REPO / src).exists(), f"{name}: {src} does not exist"
