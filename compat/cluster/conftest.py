"""Fixtures for the cluster cases: which implementation(s), and what the run observed.

The implementation is a parameter of every case: `--impl kafka`, `--impl sluice`, or
`--impl kafka,sluice` (default: $CLUSTER_IMPL, else both). Ids read `test_x[kafka]`.

`observe(name, value)` records a measured or quoted value (a failover time, an error
message) for the summary printed at the end of the run, so a run against Kafka also
documents what Kafka does.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
for d in (HERE, HERE.parent / "python", HERE.parent / "java", HERE.parent / "kafka"):
    if str(d) not in sys.path:
        sys.path.insert(0, str(d))

import cluster  # noqa: E402

OBSERVED = pytest.StashKey[list]()


def pytest_addoption(parser):
    parser.addoption("--impl", default=os.environ.get("CLUSTER_IMPL", ",".join(cluster.IMPLEMENTATIONS)),
                     help="kafka, sluice or kafka,sluice (default $CLUSTER_IMPL, else both)")


def selected(config) -> list[str]:
    impls = [i.strip() for i in config.getoption("--impl").split(",") if i.strip()]
    bad = [i for i in impls if i not in cluster.IMPLEMENTATIONS]
    if bad or not impls:
        raise pytest.UsageError(f"--impl takes {', '.join(cluster.IMPLEMENTATIONS)}, not {bad or impls}")
    return impls


def pytest_configure(config):
    config.stash[OBSERVED] = []


def pytest_report_header(config):
    where = {"kafka": f"Apache Kafka 4.4 (jars in {cluster.kafka_tools.JARS_DIR})",
             "sluice": f"Sluice ({cluster.sluice_bin()})"}
    return [f"cluster implementation: {where[i]}" for i in selected(config)]


def pytest_generate_tests(metafunc):
    if "impl" in metafunc.fixturenames:
        # Class scope: the cases of one class share one cluster per implementation.
        metafunc.parametrize("impl", selected(metafunc.config), scope="class")


@pytest.fixture
def observe(request):
    """observe(name, value): keep a value for the end-of-run summary."""
    impl = request.node.callspec.params.get("impl", "?") if hasattr(request.node, "callspec") else "?"

    def record(name: str, value) -> None:
        request.config.stash[OBSERVED].append((impl, request.node.originalname, name, value))
    return record


def pytest_terminal_summary(terminalreporter, config):
    observed = config.stash.get(OBSERVED, [])
    if not observed:
        return
    terminalreporter.section("observed")
    for impl, test, name, value in observed:
        terminalreporter.write_line(f"[{impl}] {test}: {name}: {value}")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """On failure, each node's log tail (and where the whole logs are) in the report."""
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for value in getattr(item, "funcargs", {}).values():
            if isinstance(value, cluster.Cluster):
                report.sections.append((f"cluster logs ({value.impl})", value.describe() + "\n" + "\n".join(
                    value.tail(i, 25) for i in value.node_ids)))

# The short nemesis (compat/cluster/nemesis/test_nemesis_short.py) runs with the cluster
# cases; NEMESIS=0 leaves it out (it makes users and nftables rules of its own).
collect_ignore = ["nemesis"] if os.environ.get("NEMESIS") == "0" else []
