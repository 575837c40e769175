"""Fixtures: which broker the cases run against, and fresh topic names.

COMPAT_TARGET=sluice (default): the binary at $SLUICE_BIN or <repo>/target/release/sluice.
COMPAT_TARGET=kafka: a real Apache Kafka 4.4 from compat/.cache/kafka-jars.
"""

from __future__ import annotations

import os

import pytest

import brokers
import clients


def pytest_report_header(config):
    where = brokers.sluice_bin() if brokers.target() == "sluice" else "Apache Kafka (Maven jars)"
    return f"compat target: {brokers.target()} ({where})"


def _stop(broker) -> None:
    code = broker.stop()
    assert code in brokers.CLEAN_EXIT[broker.kind], (
        f"{broker.kind} exited with {code} on SIGTERM; logs in {broker.workdir}")


@pytest.fixture(scope="session")
def broker(tmp_path_factory):
    """One broker for all the cases that don't disturb each other (unique topics each)."""
    b = brokers.make_broker(tmp_path_factory.mktemp(f"{brokers.target()}-shared"))
    try:
        yield b
    finally:
        _stop(b)


def _crash_tests_allowed() -> bool:
    # Kill -9 cases target Sluice's recovery. Kafka would pass them too (it recovers a
    # torn tail the same way), which is how their logic was checked:
    # COMPAT_KAFKA_CRASH_TESTS=1 runs them against Kafka. Run them alone then (-m crash),
    # so that only one Kafka JVM runs at a time.
    return brokers.target() == "sluice" or os.environ.get("COMPAT_KAFKA_CRASH_TESTS") == "1"


def _broker_of_its_own(tmp_path):
    b = brokers.make_broker(tmp_path / brokers.target())
    try:
        yield b
    finally:
        # A test may leave it killed; stop() of a dead process just reports its code.
        if b.proc is not None and b.proc.poll() is None:
            _stop(b)


@pytest.fixture
def own_broker(tmp_path):
    """A broker for one test alone, free to be killed and restarted."""
    if not _crash_tests_allowed():
        pytest.skip("kill -9 / restart cases run against Sluice only")
    yield from _broker_of_its_own(tmp_path)


@pytest.fixture
def fresh_broker(tmp_path):
    """A broker for one test alone, on either target (its peak memory is the test's)."""
    yield from _broker_of_its_own(tmp_path)


@pytest.fixture
def topic(request) -> str:
    """A topic name unique to this test (not created)."""
    return clients.unique_name(request.node.name)
