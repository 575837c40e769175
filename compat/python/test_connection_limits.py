"""Limits on connections and request memory as Kafka has them, seen from a client's
socket: `max.connections` (further clients wait: the broker stops accepting until a
connection closes; a dynamic raise lets them in), `max.connections.per.ip` and
`max.connections.per.ip.overrides` (a connection over the address's limit is closed at
once), `connections.max.idle.ms` (a silent connection is closed),
`queued.max.request.bytes` (no request is read while the memory is spent), and the
values Kafka refuses at start.

A broker per case (the limits are static keys). Every connection comes from 127.0.0.1.
COMPAT_TARGET=kafka runs the same cases against Apache Kafka 4.4.
"""

from __future__ import annotations

import socket
import struct
import subprocess
import time
from contextlib import ExitStack

import pytest

import brokers
from security import recv_frame


def start(tmp_path, **config: str):
    return brokers.make_broker(tmp_path, **config)


@pytest.fixture
def broker_with(tmp_path):
    started = []

    def make(**config: str):
        b = start(tmp_path / f"broker{len(started)}", **config)
        started.append(b)
        return b
    yield make
    for b in started:
        b.stop()


API_VERSIONS_V0 = struct.pack(">hhih", 18, 0, 1, 4) + b"test"


class Client:
    """One TCP connection that asks ApiVersions v0 (the first thing every client sends)."""

    def __init__(self, broker, source: str | None = None):
        """`source`: the local address to connect from (another 127.x address)."""
        self.sock = socket.create_connection(("127.0.0.1", broker.port), timeout=10,
                                             source_address=(source, 0) if source else None)

    def ask(self) -> None:
        self.sock.sendall(struct.pack(">i", len(API_VERSIONS_V0)) + API_VERSIONS_V0)

    def answered(self, within: float) -> bool:
        """True when the answer came within `within` seconds; False if none came (the
        connection still open); ConnectionError if the broker closed it."""
        self.sock.settimeout(within)
        try:
            frame = recv_frame(self.sock)
        except socket.timeout:
            return False
        assert struct.unpack(">i", frame[:4])[0] == 1, "correlation id"
        return True

    def closed_by_broker(self, within: float) -> bool:
        self.sock.settimeout(within)
        try:
            return self.sock.recv(1) == b""
        except ConnectionResetError:
            return True
        except socket.timeout:
            return False

    def close(self) -> None:
        self.sock.close()


def open_answered(stack: ExitStack, broker, n: int) -> list[Client]:
    clients = []
    for _ in range(n):
        c = Client(broker)
        stack.callback(c.close)
        c.ask()
        assert c.answered(10), "a connection under the limit is served"
        clients.append(c)
    return clients


def test_max_connections_holds_further_clients_until_one_closes(broker_with):
    """max.connections=5: five clients are served; the sixth connects (the kernel's
    backlog) but gets no answer while the five stay; it is served once one closes."""
    b = broker_with(**{"max.connections": "5"})
    with ExitStack() as stack:
        first = open_answered(stack, b, 5)
        sixth = Client(b)
        stack.callback(sixth.close)
        sixth.ask()
        assert not sixth.answered(3), "the sixth connection is not served while five are open"
        first[0].close()
        assert sixth.answered(15), "served once a connection closed"


def test_max_connections_per_ip_closes_the_one_over(broker_with):
    """max.connections.per.ip=3: the fourth connection from 127.0.0.1 is closed at once;
    after one of the three closes, a new one is served."""
    b = broker_with(**{"max.connections.per.ip": "3"})
    with ExitStack() as stack:
        first = open_answered(stack, b, 3)
        fourth = Client(b)
        stack.callback(fourth.close)
        assert fourth.closed_by_broker(10), "the fourth connection from one address is closed"
        first[0].close()
        # The broker counts the close when it reads it: until then a new connection
        # may still be over the limit.
        deadline = time.monotonic() + 10
        while True:
            c = Client(b)
            stack.callback(c.close)
            try:
                c.ask()
                if c.answered(5):
                    break
            except ConnectionError:
                pass
            assert time.monotonic() < deadline, "no connection served after one closed"
            time.sleep(0.2)


def test_an_override_for_the_address_wins(broker_with):
    """max.connections.per.ip.overrides=127.0.0.1:2 (the default is higher): the third
    connection from 127.0.0.1 is closed."""
    b = broker_with(**{"max.connections.per.ip": "100",
                       "max.connections.per.ip.overrides": "127.0.0.1:2"})
    with ExitStack() as stack:
        open_answered(stack, b, 2)
        third = Client(b)
        stack.callback(third.close)
        assert third.closed_by_broker(10)


def test_an_idle_connection_is_closed(broker_with):
    """connections.max.idle.ms=2000: a connection that asked once and then stays silent
    is closed by the broker after about two seconds, not before."""
    b = broker_with(**{"connections.max.idle.ms": "2000"})
    with ExitStack() as stack:
        (c,) = open_answered(stack, b, 1)
        began = time.monotonic()
        assert not c.closed_by_broker(1.0), "closed before it was idle for 2 s"
        assert c.closed_by_broker(15), "an idle connection is closed"
        assert time.monotonic() - began >= 1.5


def refused_at_start(tmp_path, config: dict[str, str], message: str) -> None:
    """The broker does not start with `config` and says `message` (Sluice: on stderr,
    exit code 2; Kafka: its format step or its log)."""
    if brokers.target() == "kafka":
        with pytest.raises(Exception) as failed:
            brokers.Kafka(workdir=tmp_path, extra_config=config).start(timeout=60)
        logs = "\n".join(p.read_text(errors="replace") for p in tmp_path.rglob("*.log"))
        assert message in str(failed.value) + logs
        return
    overrides = [a for k, v in config.items() for a in ("--override", f"{k}={v}")]
    done = subprocess.run([str(brokers.sluice_bin()), "--override", "listeners=PLAINTEXT://127.0.0.1:0",
                           "--override", f"log.dirs={tmp_path}/data", *overrides],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 2, done
    assert message in done.stderr, done.stderr


def test_zero_per_ip_without_overrides_is_refused_at_start(tmp_path):
    """Kafka's own check: max.connections.per.ip=0 only with overrides."""
    refused_at_start(tmp_path, {"max.connections.per.ip": "0"},
                     "max.connections.per.ip can be set to zero only if "
                     "max.connections.per.ip.overrides")


def test_a_raised_limit_lets_a_waiting_client_in(broker_with):
    """max.connections=3 with three open (one of them the admin's): a fourth waits; the
    cluster-wide dynamic max.connections=5 (IncrementalAlterConfigs on the default broker
    resource) lets it in without a restart."""
    from kafka.protocol.admin import IncrementalAlterConfigsRequest
    from security import RawConnection
    b = broker_with(**{"max.connections": "3"})
    with ExitStack() as stack:
        admin = RawConnection(None, "PLAINTEXT", port=b.port)
        stack.callback(admin.close)
        open_answered(stack, b, 2)
        fourth = Client(b)
        stack.callback(fourth.close)
        fourth.ask()
        assert not fourth.answered(3), "the fourth connection waits"
        BROKER, SET = 4, 0
        altered = admin.call(IncrementalAlterConfigsRequest(
            resources=[(BROKER, "", [("max.connections", SET, "5")])], validate_only=False), 0)
        assert [r.error_code for r in altered.responses] == [0], altered
        assert fourth.answered(15), "served once the limit was raised"


def test_queued_max_request_bytes_holds_reads_while_spent(broker_with):
    """queued.max.request.bytes=1 MiB (= socket.request.max.bytes): a client announces a
    request of 1 MiB and sends ten bytes of it; the broker has given that memory
    to it, so another client's ApiVersions is not read until the first goes away."""
    mib = str(1024 * 1024)
    b = broker_with(**{"socket.request.max.bytes": mib, "queued.max.request.bytes": mib})
    with ExitStack() as stack:
        hog = socket.create_connection(("127.0.0.1", b.port), timeout=10)
        stack.callback(hog.close)
        hog.sendall(struct.pack(">i", 1024 * 1024) + b"\x00" * 10)
        time.sleep(0.5)  # the broker reads the size and takes the memory
        other = Client(b)
        stack.callback(other.close)
        other.ask()
        assert not other.answered(3), "no request is read while the memory is spent"
        hog.close()
        assert other.answered(15), "read once the memory came back"


def test_queued_max_request_bytes_below_one_request_is_refused_at_start(tmp_path):
    """Kafka's own check: queued.max.request.bytes must hold one socket.request.max.bytes."""
    refused_at_start(tmp_path, {"queued.max.request.bytes": "1000"},
                     "queued.max.request.bytes must be larger or equal to socket.request.max.bytes")
