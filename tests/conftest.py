"""Shared fixtures: the test session starts its own Kafka-protocol broker (noida-db).

* ``broker`` (session): one :class:`riskmon.broker.EmbeddedBroker` on a free port with a fresh
  temporary data dir, stopped at the end of the session. Set ``RISKMON_TEST_BOOTSTRAP_SERVERS`` to
  run the suite against an existing broker instead.
* ``settings``: :class:`riskmon.settings.Settings` pointing at that broker, with
  ``partitions = TEST_PARTITIONS``. The event topics' names are fixed, so every test that creates
  them on the session broker must use ``settings.partitions`` (topics stay co-partitioned).
* ``fresh_broker`` / ``fresh_settings``: a broker of the test's own (starting one takes well under
  a second), for tests that need empty topics or another partition count.
* ``unique_name``: a factory of unique topic / group names.

Tests that use a broker fixture are marked ``integration`` automatically; ``-m "not integration"``
runs the rest. The embedded broker burns CPU for every idle consumer: keep consumers few and stop
them as soon as the test has read what it needs.
"""

from __future__ import annotations

import itertools
import os
import uuid
from typing import Callable, Iterator

import pytest

from riskmon.broker import EmbeddedBroker
from riskmon.settings import Settings

#: Partition count of the event topics on the session broker.
TEST_PARTITIONS = 4
_BROKER_FIXTURES = {"broker", "settings", "fresh_broker", "fresh_settings"}


class _ExternalBroker:
    """Stands in for an EmbeddedBroker when RISKMON_TEST_BOOTSTRAP_SERVERS is set."""

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap


def _uses_our_broker(item: pytest.Item) -> bool:
    info = getattr(item, "_fixtureinfo", None)
    for name in _BROKER_FIXTURES & set(getattr(item, "fixturenames", ())):
        defs = info.name2fixturedefs.get(name) if info is not None else None
        # only these fixtures, not a same-named fixture a test module defines for itself
        if defs and getattr(defs[-1].func, "__module__", None) == __name__:
            return True
    return False


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if _uses_our_broker(item):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def broker() -> Iterator[EmbeddedBroker | _ExternalBroker]:
    external = os.environ.get("RISKMON_TEST_BOOTSTRAP_SERVERS")
    if external:
        yield _ExternalBroker(external)
        return
    with EmbeddedBroker() as b:
        yield b


@pytest.fixture
def settings(broker: EmbeddedBroker) -> Settings:
    return Settings(bootstrap_servers=broker.bootstrap, partitions=TEST_PARTITIONS, metrics_port=0)


@pytest.fixture
def fresh_broker() -> Iterator[EmbeddedBroker]:
    with EmbeddedBroker() as b:
        yield b


@pytest.fixture
def fresh_settings(fresh_broker: EmbeddedBroker) -> Settings:
    return Settings(bootstrap_servers=fresh_broker.bootstrap, partitions=TEST_PARTITIONS, metrics_port=0)


_counter = itertools.count()


@pytest.fixture
def unique_name() -> Callable[[str], str]:
    """``unique_name("alerts")`` -> ``"test.alerts.<run id>.<n>"``, unique within the session."""
    run_id = uuid.uuid4().hex[:8]

    def make(base: str = "t") -> str:
        return f"test.{base}.{run_id}.{next(_counter)}"

    return make
