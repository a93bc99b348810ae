"""Fixtures of the operations tests; the machinery is in ``ops_harness.py`` (see its docstring)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Iterator

import pytest

from ops_harness import (
    PrometheusServer,
    SyntheticPipeline,
    Targets,
    derive_config,
    require_tool,
    targets_from_env,
)


@pytest.fixture
def start_prometheus(tmp_path: Path) -> Iterator[Callable[..., PrometheusServer]]:
    binary = require_tool("prometheus")
    servers: list[PrometheusServer] = []

    def start(targets: dict[str, list[str]], interval: str = "1s") -> PrometheusServer:
        workdir = tmp_path / f"prometheus-{len(servers)}"
        workdir.mkdir()
        server = PrometheusServer(binary, workdir, derive_config(targets, interval))
        servers.append(server)
        return server.start()

    try:
        yield start
    finally:
        for s in servers:
            s.stop()


@pytest.fixture
def riskmon_targets() -> Iterator[Targets]:
    from_env = targets_from_env()
    if from_env:
        allow = tuple(s.strip() for s in os.environ.get("RISKMON_PROM_ALLOW_EMPTY", "").split(",") if s.strip())
        yield Targets(from_env, None, allow)
        return
    pipeline = SyntheticPipeline().start()
    try:
        yield Targets(pipeline.targets(), pipeline)
    finally:
        pipeline.stop()
