"""Connection creation rates, as Kafka's ConnectionQuotas meters them (raw sockets: what
a client sees). Kafka's rate counts over quota.window.num (11) windows of
quota.window.size.seconds (1 s), and over ten windows at least, so a burst of ten
times the rate is taken at once before the limit bites.

- max.connection.creation.rate: the acceptor waits; every connection is served, later.
- connection_creation_rate on an `ips` quota (kafka-configs --entity-type ips): the
  connection over it is closed without an answer, and the other addresses go on.
"""

from __future__ import annotations

import time
from contextlib import ExitStack

from test_connection_limits import Client, broker_with  # noqa: F401 (a fixture)
from test_tools import ok


def burst(stack: ExitStack, broker, n: int) -> list[Client]:
    """n connections as fast as they open, each asking ApiVersions."""
    out = []
    for _ in range(n):
        c = Client(broker)
        stack.callback(c.close)
        c.ask()
        out.append(c)
    return out


def test_the_broker_rate_delays_new_connections_and_serves_them_all(broker_with):
    """max.connection.creation.rate=2: 30 connections at once; the first 20 are within
    the rate over ten windows, the rest wait at the acceptor; every one is answered,
    and the last no sooner than a second after the burst."""
    b = broker_with(**{"max.connection.creation.rate": "2"})
    with ExitStack() as stack:
        start = time.monotonic()
        conns = burst(stack, b, 30)
        for i, c in enumerate(conns):
            assert c.answered(30), f"connection {i + 1} of 30 was not answered"
        waited = time.monotonic() - start
        assert waited >= 1.0, f"30 connections at a rate of 2/s were all served in {waited:.2f} s"


def test_an_ip_quota_closes_the_connections_over_it(broker_with):
    """connection_creation_rate=1 for 127.0.0.1: of 20 connections at once about ten
    are served and the rest closed with no answer; 127.0.0.2 is not limited."""
    b = broker_with()
    ok("kafka-configs", "--bootstrap-server", b.bootstrap, "--entity-type", "ips",
       "--entity-name", "127.0.0.1", "--alter", "--add-config", "connection_creation_rate=1")
    time.sleep(1)  # the quota reaches the broker's acceptor (Kafka: its metadata publisher)
    with ExitStack() as stack:
        served, closed = 0, 0
        for c in burst(stack, b, 20):
            try:
                if c.answered(15):
                    served += 1
                    continue
            except ConnectionError:
                pass
            closed += 1
        assert 5 <= served <= 11 and served + closed == 20, f"served {served}, closed {closed}"

        other = Client(b, source="127.0.0.2")
        stack.callback(other.close)
        other.ask()
        assert other.answered(10), "another address is not held back"
