"""What a test harness sees when it starts Sluice for itself: with port 0 the
broker binds free ports and prints, on stdout, one JSON line naming them (and
its data directories) the moment it answers; `--ephemeral` keeps the data in
a temporary directory that is gone once the broker stops. Sluice's own
command line: Apache Kafka has neither, so these run on Sluice only."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest
from kafka import KafkaConsumer

import brokers
import clients

pytestmark = pytest.mark.skipif(brokers.target() != "sluice", reason="Sluice's command line")


class Started:
    """A `sluice` process and the ready line it printed."""

    def __init__(self, *args: str, cwd: Path):
        self.proc = subprocess.Popen([str(brokers.sluice_bin()), *args], cwd=cwd, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, text=True)
        line = self.proc.stdout.readline()
        assert line, f"sluice exited ({self.proc.wait(timeout=10)}) without a ready line"
        self.ready = json.loads(line)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(timeout=30)
        self.proc.stdout.close()
        return rc


def round_trip(bootstrap: str, topic: str) -> list[bytes]:
    """Produce one record with kafka-python and read the topic back."""
    broker = SimpleNamespace(bootstrap=bootstrap)
    clients.send_kp(broker, topic, [clients.Msg(None, b"hello")])
    return [r.value for r in clients.read_kp(broker, topic)]


def test_port_zero_is_bound_and_named_in_the_ready_line(tmp_path):
    data = tmp_path / "data"
    b = Started("--override", "listeners=PLAINTEXT://127.0.0.1:0,INTERNAL://127.0.0.1:0",
                "--override", "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,INTERNAL:PLAINTEXT",
                "--override", "inter.broker.listener.name=INTERNAL",
                "--override", f"log.dirs={data}", cwd=tmp_path)
    try:
        r = b.ready
        assert r["sluice"] == "ready" and r["pid"] == b.proc.pid
        ports = {name: int(addr.rsplit(":", 1)[1]) for name, addr in r["listeners"].items()}
        assert set(ports) == {"PLAINTEXT", "INTERNAL"}
        assert all(p > 0 for p in ports.values()) and ports["PLAINTEXT"] != ports["INTERNAL"]
        # Advertised as bound (the advertised listeners default to the listeners).
        assert r["advertised_listeners"]["PLAINTEXT"] == f"127.0.0.1:{ports['PLAINTEXT']}"
        assert r["bootstrap"] == f"127.0.0.1:{ports['PLAINTEXT']}"
        assert r["log_dirs"] == [str(data.resolve())]
        assert round_trip(r["bootstrap"], "ready-line") == [b"hello"]
    finally:
        assert b.stop() == 0
    assert (data / "ready-line-0").is_dir(), "a broker that is not ephemeral keeps its data"


def test_an_ephemeral_broker_leaves_nothing_behind(tmp_path):
    b = Started("--ephemeral", "--override", "listeners=PLAINTEXT://127.0.0.1:0", cwd=tmp_path)
    try:
        data = Path(b.ready["log_dirs"][0])
        assert data.is_dir() and not data.is_relative_to(tmp_path)
        assert round_trip(b.ready["bootstrap"], "ephemeral") == [b"hello"]
        assert (data / "ephemeral-0").is_dir()
    finally:
        assert b.stop() == 0
    assert not data.exists()
    assert os.listdir(tmp_path) == [], "nothing written where it was started"

    # The next one starts empty: the topic is not there.
    b = Started("--ephemeral", "--override", "listeners=PLAINTEXT://127.0.0.1:0", cwd=tmp_path)
    try:
        assert Path(b.ready["log_dirs"][0]) != data
        consumer = KafkaConsumer(bootstrap_servers=b.ready["bootstrap"])
        try:
            assert "ephemeral" not in consumer.topics()
        finally:
            consumer.close()
    finally:
        assert b.stop() == 0


def test_ephemeral_wins_over_configured_directories(tmp_path):
    kept = tmp_path / "kept"
    b = Started("--ephemeral", "--override", "listeners=PLAINTEXT://127.0.0.1:0",
                "--override", f"log.dirs={kept}", "--override", f"metadata.log.dir={kept}/meta", cwd=tmp_path)
    try:
        assert round_trip(b.ready["bootstrap"], "elsewhere") == [b"hello"]
    finally:
        assert b.stop() == 0
    assert not kept.exists()
