"""Delegation tokens in a cluster, side by side on Apache Kafka 4.4 (KRaft) and Sluice: a
token lives in the cluster metadata, so one made through one broker logs in at every
broker, survives the active controller's death and a broker's restart, and an expiry
sent through any broker ends it everywhere.

    3 nodes, broker+controller, each with PLAINTEXT and SASL_PLAINTEXT (SCRAM) listeners;
    alice's SCRAM credential is added at format time (--add-scram), the token secret
    (`delegation.token.secret.key`) is the same on every node.

The requests are raw (Kafka 4.4's message definitions, compat/python/kafka44); a token
login is SCRAM-SHA-512 with `tokenauth=true`, as the Java client's ScramLoginModule does.
"""

from __future__ import annotations

import time

import pytest

from cluster import Cluster, wait_until
from security import RawConnection
from test_cluster import running
from test_delegation_tokens import (SASL_AUTHENTICATION_FAILED, create, described, expire,
                                    renew, scram_login)

PASSWORD = "alice-secret"
SCRAM = (f"SCRAM-SHA-512=[name=alice,password={PASSWORD}]",)
CONFIG = {"delegation.token.secret.key": "compat-cluster-token-secret",
          "delegation.token.expiry.check.interval.ms": "1000",
          "broker.session.timeout.ms": "6000", "broker.heartbeat.interval.ms": "1000"}
TIMEOUT = 60.0


@pytest.fixture(scope="class")
def tokens_cluster(impl, tmp_path_factory):
    with running(impl, tmp_path_factory, 3, name="tokens", extra_config=CONFIG,
                 scram_users=SCRAM) as c:
        yield c


def connect(c: Cluster, node_id: int) -> RawConnection:
    return RawConnection(None, "SASL_PLAINTEXT", port=c.node(node_id).sasl_port)


def alice_on(c: Cluster, node_id: int) -> RawConnection:
    conn = connect(c, node_id)
    answer = scram_login(conn, "alice", PASSWORD)
    assert answer.error_code == 0, answer
    return conn


def token_login_code(c: Cluster, node_id: int, made) -> int:
    """The error code of a token login at that broker (0: logged in; then it asks for
    Metadata, which only a logged-in connection gets)."""
    import base64
    from kafka.protocol.metadata import MetadataRequest
    with connect(c, node_id) as conn:
        answer = scram_login(conn, made.token_id, base64.b64encode(made.hmac).decode(),
                             ",tokenauth=true")
        if answer.error_code == 0:
            assert conn.call(MetadataRequest(topics=[]), 1).brokers, "no brokers in Metadata"
        return answer.error_code


def logs_in_at(c: Cluster, node_ids, made) -> None:
    """Every broker in `node_ids` takes the token (each may learn it a moment later)."""
    for node_id in node_ids:
        wait_until(lambda: token_login_code(c, node_id, made) == 0,
                   f"the token logging in at node {node_id}", TIMEOUT)


def made_at(c: Cluster, node_id: int):
    """A token alice makes through that broker, once every broker takes it."""
    with alice_on(c, node_id) as conn:
        made = create(conn)
    assert made.error_code == 0, made
    logs_in_at(c, c.broker_ids, made)
    return made


class TestTokensInTheMetadata:
    def test_a_token_made_at_one_broker_logs_in_at_every_broker(self, tokens_cluster):
        c = tokens_cluster
        made = made_at(c, 1)

        # Renewed through node 2: node 3 describes the new expiry.
        with alice_on(c, 2) as conn:
            renewed = renew(conn, made.hmac, 3_600_000)
        assert renewed.error_code == 0, renewed
        with alice_on(c, 3) as conn:
            wait_until(lambda: described(conn, ["alice"])[made.token_id].expiry_timestamp
                       == renewed.expiry_timestamp_ms, "node 3 describing the renewal", TIMEOUT)

    def test_tokens_outlive_the_controller_and_a_restart(self, tokens_cluster):
        c = tokens_cluster
        made = made_at(c, 1)
        leader = c.active_controller()
        c.kill_9(leader)
        others = [i for i in c.broker_ids if i != leader]
        c.active_controller(exclude=(leader,), via=others[0])
        logs_in_at(c, others, made)
        c.restart(leader)  # its token comes back from its own metadata log
        logs_in_at(c, [leader], made)

    def test_an_expiry_through_one_broker_ends_the_token_everywhere(self, tokens_cluster):
        c = tokens_cluster
        made = made_at(c, 2)
        with alice_on(c, 3) as conn:
            expired = expire(conn, made.hmac, -1)  # a negative period: expire now
        assert expired.error_code == 0, expired
        assert expired.expiry_timestamp_ms <= int(time.time() * 1000) + 1000
        for node_id in c.broker_ids:
            wait_until(lambda: token_login_code(c, node_id, made) == SASL_AUTHENTICATION_FAILED,
                       f"node {node_id} refusing the expired token", TIMEOUT)
