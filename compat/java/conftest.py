"""Fixtures for the Kafka command-line tool cases: the same ones as compat/python's.

compat/python/conftest.py (fixtures `broker`, `own_broker`, `topic`) is registered here
under the very name pytest gives it when it collects compat/python itself, so a run of
both folders has one definition of each fixture, hence one shared broker (one Kafka JVM
when COMPAT_TARGET=kafka). compat/run makes compat/python the rootdir, where pytest
makes that conftest's fixtures visible to every collected test.

Added here: `restartable`, a broker a test may stop and start again on the same port
and data (Sluice: a broker of its own; Kafka: the shared one, restarted in place, so
that no second Kafka JVM runs).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

JAVA_DIR = Path(__file__).resolve().parent
PYTHON_DIR = JAVA_DIR.parent / "python"
for d in (PYTHON_DIR, JAVA_DIR):  # brokers, clients; kafka_tools
    if str(d) not in sys.path:
        sys.path.insert(0, str(d))

import brokers  # noqa: E402
import kafka_tools  # noqa: E402


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "restart: stops the broker (SIGTERM) and starts it again on the same data")
    path = PYTHON_DIR / "conftest.py"
    if config.pluginmanager.get_plugin(str(path)) is None:
        spec = importlib.util.spec_from_file_location("compat_python_conftest", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        config.pluginmanager.register(module, name=str(path))


def pytest_collection_modifyitems(config, items):
    if not kafka_tools.jars_present() and any(JAVA_DIR in Path(i.path).parents for i in items):
        raise pytest.UsageError(
            f"no Kafka jars in {kafka_tools.JARS_DIR}: run compat/setup (or compat/kafka/fetch-jars.sh)")


@pytest.fixture
def restartable(request):
    """A running broker that the test may stop() and restart().

    Sluice starts in milliseconds: the test gets its own (the `own_broker` fixture).
    Kafka takes seconds and only one JVM may run: the shared broker is restarted in
    place, and started again afterwards if the test left it stopped.
    """
    if brokers.target() == "sluice":
        yield request.getfixturevalue("own_broker")
        return
    broker = request.getfixturevalue("broker")
    try:
        yield broker
    finally:
        if broker.proc is None or broker.proc.poll() is not None:
            broker.restart()


@pytest.fixture
def tool_topic(request) -> str:
    """A topic name unique to this test (not created), like `topic` but with dashes only:
    kafka-topics warns about names that mix '.' and '_' (metric names could collide)."""
    import clients
    return clients.unique_name(request.node.name.replace("_", "-"))
