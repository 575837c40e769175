"""Security as users see it: TLS, mutual TLS, SASL (PLAIN, SCRAM), ACLs, SCRAM user admin,
re-authentication, with kafka-python, confluent-kafka, the official Java tools and raw frames.

One broker for the module (security.SecureBroker: SASL_SSL, SSL with client certificates,
SASL_PLAINTEXT and PLAINTEXT listeners, the ACL authorizer on, super user User:admin),
with certificates made for the session (certs.py). Each case uses its own users (seeded
SCRAM users, one per case) and topics, so the ACLs of one case grant nothing to another.
The cases that restart the broker restart that one in place (Kafka: one JVM at a time).

COMPAT_TARGET=kafka runs the same cases against Apache Kafka 4.4 with the same server keys.
Run this file alone then (`COMPAT_TARGET=kafka compat/run test_security.py`), so that its
Kafka is the only one running (the rest of the suite shares another).
"""

from __future__ import annotations

import logging
import os
import re
import time
import uuid
from pathlib import Path

import confluent_kafka
import kafka
import kafka.errors
import pytest

import brokers
import security
from apache_kafka import DEFAULT_JARS_DIR
from certs import make_certs
from security import (RawConnection, acl, admin_login, create_topics, describe_acls, grant,
                      mtls, revoke, sasl)

# Kafka error codes, as the clients report them
TOPIC_AUTHORIZATION_FAILED = 29
GROUP_AUTHORIZATION_FAILED = 30
CLUSTER_AUTHORIZATION_FAILED = 31
UNSUPPORTED_SASL_MECHANISM = 33
ILLEGAL_SASL_STATE = 34
TRANSACTIONAL_ID_AUTHORIZATION_FAILED = 53
SASL_AUTHENTICATION_FAILED = 58
# librdkafka's local codes
RD_AUTHENTICATION = confluent_kafka.KafkaError._AUTHENTICATION
RD_TRANSPORT = confluent_kafka.KafkaError._TRANSPORT

CLIENTS = ("kafka-python", "confluent-kafka")
JARS_DIR = Path(os.environ.get("KAFKA_JARS_DIR") or DEFAULT_JARS_DIR)


def name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


# ----------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="session")
def certs(tmp_path_factory):
    return make_certs(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="module")
def secure(tmp_path_factory, certs):
    sb = security.SecureBroker(tmp_path_factory.mktemp(f"{brokers.target()}-secure"), certs)
    sb.start()
    try:
        yield sb
    finally:
        if sb.running:
            code = sb.stop()
            assert code in brokers.CLEAN_EXIT[sb.kind], (
                f"{sb.kind} exited with {code} on SIGTERM; logs in {sb.workdir}")


@pytest.fixture(scope="module")
def alice(secure):
    """alice may do anything with topics and groups named alice-*."""
    grant(secure,
          acl("User:alice", "TOPIC", "alice-", "ALL", pattern="PREFIXED"),
          acl("User:alice", "GROUP", "alice-", "ALL", pattern="PREFIXED"))
    return "alice"


@pytest.fixture(scope="module")
def canary(secure, alice):
    topic = name("alice-canary")
    create_topics(secure, topic)
    return topic


@pytest.fixture
def still_serving(secure, canary):
    """After the case: a good client still produces and reads back (the broker kept
    serving others after whatever the case did to it)."""
    yield
    value = uuid.uuid4().hex.encode()
    login = sasl("SASL_SSL", "alice")
    (offset,) = security.ck_produce(secure, login, canary, [(b"canary", value)])
    got = security.ck_read(secure, login, canary, offset + 1)
    assert got[offset:] == [(offset, b"canary", value)]


@pytest.fixture
def restarts(secure):
    """A case that restarts the module's broker: afterwards it runs again, with the
    original configuration, whatever the case did."""
    yield secure
    secure.reconfigure()
    if secure.running and secure.reconfigured_since_start:
        secure.stop()
    if not secure.running:
        secure.restart()


def restart(sb: security.SecureBroker, **reconfigure) -> None:
    if reconfigure:
        sb.reconfigure(**reconfigure)
    code = sb.stop()
    assert code in brokers.CLEAN_EXIT[sb.kind], f"{sb.kind} exited with {code}; see {sb.workdir}"
    sb.restart()


# ----------------------------------------------------------------------------- helpers

def expected(msgs, first: int = 0):
    return [(first + i, k, v) for i, (k, v) in enumerate(msgs)]


def produce_error(client: str, sb, login, topic: str, **config) -> int | None:
    """Produce one record; the Kafka error code the client reports (None: it succeeded)."""
    try:
        security.PRODUCE[client](sb, login, topic, [(b"k", b"v")], **config)
    except (kafka.errors.KafkaError, confluent_kafka.KafkaException) as e:
        return security.error_code(e)
    return None


def ck_connect_errors(sb, login, timeout: float = 6.0,
                      **config) -> list[confluent_kafka.KafkaError]:
    """What librdkafka reports (error_cb) when an admin client fails to get metadata.
    (No reference to the client survives: librdkafka would go on reconnecting.)"""
    errors: list = []
    admin = confluent_kafka.admin.AdminClient({**security.ck_config(sb, login),
                                               "error_cb": errors.append, **config})
    deadline = time.monotonic() + timeout
    failed = None
    while time.monotonic() < deadline:
        try:
            admin.list_topics(timeout=0.5)
            break
        except confluent_kafka.KafkaException as e:
            failed = e.args[0]
        admin.poll(0.1)  # serves error_cb
        if any(e.code() != confluent_kafka.KafkaError._ALL_BROKERS_DOWN for e in errors):
            break  # the first real reason is in
    del admin
    assert failed is not None, "list_topics succeeded"
    assert failed.code() == RD_TRANSPORT, failed
    return errors


def kp_connect_fails(sb, login, caplog) -> list[str]:
    """kafka-python cannot bootstrap; the reasons it logs."""
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="kafka"):
        with pytest.raises(kafka.errors.KafkaTimeoutError):
            kafka.KafkaAdminClient(bootstrap_timeout_ms=4000, **security.kp_config(sb, login))
    return [r.getMessage() for r in caplog.records]


def can_connect(sb, login) -> bool:
    """True when the login authenticates (an admin client gets metadata); False when
    librdkafka reports an authentication failure."""
    errors: list = []
    admin = confluent_kafka.admin.AdminClient({**security.ck_config(sb, login),
                                               "error_cb": errors.append})
    deadline = time.monotonic() + 8
    while time.monotonic() < deadline:
        try:
            admin.list_topics(timeout=0.5)
            return True
        except confluent_kafka.KafkaException:
            pass
        admin.poll(0.1)  # serves error_cb
        if any(e.code() == RD_AUTHENTICATION for e in errors):
            return False
    raise AssertionError(f"neither connected nor refused within 8s: {errors}")


def listed_topics(sb, login) -> set[str]:
    return set(confluent_kafka.admin.AdminClient(security.ck_config(sb, login))
               .list_topics(timeout=15).topics)


TOOLS_LOG4J: list[Path] = []  # the tools' log4j2 configuration, written once per session


@pytest.fixture(scope="session", autouse=True)
def tools_log4j(tmp_path_factory):
    path = tmp_path_factory.mktemp("tools") / "tools-log4j2.properties"
    path.write_text(security.TOOLS_LOG4J2)
    TOOLS_LOG4J[:] = [path]


def java(main_class: str, *args, input: str | None = None, timeout: float = 90.0):
    """An official Kafka tool (java -cp 'kafka-jars/*' <main class>); WARN+ logs to stderr."""
    return security.java_tool(JARS_DIR, TOOLS_LOG4J[0], main_class, *args, input=input,
                              timeout=timeout)


def admin_properties(sb, tmp_path: Path) -> Path:
    return security.write_properties(tmp_path / "admin.properties",
                                     security.java_config(sb, admin_login()))


# ============================================================================ SASL_SSL + SCRAM

@pytest.mark.parametrize("mechanism", security.SCRAM_MECHANISMS)
@pytest.mark.parametrize("client", CLIENTS)
def test_scram_over_sasl_ssl_produce_and_consume(secure, alice, client, mechanism):
    login = sasl("SASL_SSL", "alice", mechanism)
    topic = name("alice-scram")
    create_topics(secure, topic)
    msgs = security.records(f"{client}-{mechanism}", 20)
    assert security.PRODUCE[client](secure, login, topic, msgs) == list(range(20))
    assert security.READ[client](secure, login, topic, 20) == expected(msgs)


@pytest.mark.parametrize("client", CLIENTS)
def test_scram_consumer_group_with_group_acl(secure, alice, client):
    """Subscribe in a group alice may use (Read on the group): records, then a commit."""
    login = sasl("SASL_SSL", "alice")
    topic, group = name("alice-grp"), name("alice-group")
    create_topics(secure, topic)
    msgs = security.records(client, 5)
    security.PRODUCE[client](secure, login, topic, msgs)
    assert security.READ[client](secure, login, topic, 5, group=group) == expected(msgs)
    assert security.committed(secure, group, topic) == 5


@pytest.mark.parametrize("mechanism", security.SCRAM_MECHANISMS)
def test_java_console_tools_over_sasl_ssl(secure, alice, tmp_path, mechanism):
    """kafka-console-producer and kafka-console-consumer with a client config file:
    security.protocol=SASL_SSL, ScramLoginModule, a PEM trust store."""
    login = sasl("SASL_SSL", "alice", mechanism)
    props = security.write_properties(tmp_path / "client.properties",
                                      security.java_config(secure, login))
    topic, group = name("alice-console"), name("alice-console-group")
    create_topics(secure, topic)
    lines = [f"k{i}:{mechanism}-line-{i}" for i in range(5)]
    bootstrap = secure.bootstrap_for("SASL_SSL")
    produced = java("org.apache.kafka.tools.ConsoleProducer", "--bootstrap-server", bootstrap,
                    "--topic", topic, "--command-config", props,
                    "--reader-property", "parse.key=true", "--reader-property", "key.separator=:",
                    input="".join(f"{line}\n" for line in lines))
    assert produced.returncode == 0, produced
    consumed = java("org.apache.kafka.tools.consumer.ConsoleConsumer", "--bootstrap-server",
                    bootstrap, "--topic", topic, "--group", group, "--from-beginning",
                    "--max-messages", "5", "--timeout-ms", "30000", "--command-config", props,
                    "--formatter-property", "print.key=true",
                    "--formatter-property", "key.separator=:")
    assert consumed.returncode == 0, consumed
    assert consumed.stdout.splitlines() == lines
    assert "Processed a total of 5 messages" in consumed.stderr
    # and what they stored, read by another client
    assert security.ck_read(secure, login, topic, 5) == [
        (i, f"k{i}".encode(), f"{mechanism}-line-{i}".encode()) for i in range(5)]


# ============================================================================ mutual TLS

@pytest.mark.parametrize("client", CLIENTS)
def test_mtls_client_certificate_is_the_principal(secure, certs, client):
    """SSL listener, ssl.client.auth=required: client-1's certificate (CN=client-1,O=Acme,C=US)
    maps to User:client-1, whose ACLs let it produce and consume; client-2, from the same
    CA, has no ACLs and is refused."""
    topic = name("mtls")
    group = name("mtls-group")  # librdkafka's consumer looks up its group even when assigning
    create_topics(secure, topic)
    grant(secure,
          acl("User:client-1", "TOPIC", topic, "WRITE"),
          acl("User:client-1", "TOPIC", topic, "READ"),
          acl("User:client-1", "GROUP", group, "READ"))
    msgs = security.records(f"mtls-{client}", 10)
    one, two = mtls(certs.client1), mtls(certs.client2)
    assert security.PRODUCE[client](secure, one, topic, msgs) == list(range(10))
    assert security.READ[client](secure, one, topic, 10, **(
        {"group.id": group} if client == "confluent-kafka" else {})) == expected(msgs)
    # (client-2 may Write nowhere: kafka-python's default, idempotent producer would fail
    # earlier, at InitProducerId: see test_idempotent_producer_without_any_write_acl)
    assert produce_error(client, secure, two, topic,
                         **({"enable_idempotence": False} if client == "kafka-python" else {})
                         ) == TOPIC_AUTHORIZATION_FAILED
    assert security.end_offset(secure, topic) == 10


def test_mtls_acl_names_the_mapped_principal_not_the_dn(secure, certs):
    """An ACL for the full DN grants nothing: ssl.principal.mapping.rules made the
    principal User:client-2."""
    topic = name("mtls-dn")
    create_topics(secure, topic)
    grant(secure, acl(f"User:{certs.client2.dn}", "TOPIC", topic, "ALL"))
    assert produce_error("confluent-kafka", secure, mtls(certs.client2), topic) == \
        TOPIC_AUTHORIZATION_FAILED
    grant(secure, acl("User:client-2", "TOPIC", topic, "WRITE"))
    assert security.ck_produce(secure, mtls(certs.client2), topic, [(b"k", b"v")]) == [0]


# ============================================================================ PLAIN

@pytest.mark.parametrize("client", CLIENTS)
def test_plain_over_sasl_plaintext_with_jaas_users(secure, client):
    """PLAIN users from listener.name.sasl_plaintext.plain.sasl.jaas.config (user_pat=...)."""
    login = sasl("SASL_PLAINTEXT", "pat", "PLAIN")
    topic = name("pat")
    create_topics(secure, topic)
    grant(secure, acl("User:pat", "TOPIC", topic, "ALL"),
          acl("User:pat", "GROUP", "pat-", "ALL", pattern="PREFIXED"))
    msgs = security.records(f"plain-{client}", 10)
    assert security.PRODUCE[client](secure, login, topic, msgs) == list(range(10))
    assert security.READ[client](secure, login, topic, 10) == expected(msgs)


# ============================================================================ refused

WRONG = {
    "wrong-password-scram-512": sasl("SASL_SSL", "alice", "SCRAM-SHA-512", "not-her-password"),
    "wrong-password-scram-256": sasl("SASL_SSL", "alice", "SCRAM-SHA-256", "not-her-password"),
    "unknown-user-scram": sasl("SASL_SSL", "mallory", "SCRAM-SHA-512", "whatever"),
    "wrong-password-plain": sasl("SASL_PLAINTEXT", "pat", "PLAIN", "not-his-password"),
    "unknown-user-plain": sasl("SASL_PLAINTEXT", "mallory", "PLAIN", "whatever"),
}
FAILED_MESSAGE = {
    "SCRAM-SHA-512": "Authentication failed during authentication due to invalid credentials "
                     "with SASL mechanism SCRAM-SHA-512",
    "SCRAM-SHA-256": "Authentication failed during authentication due to invalid credentials "
                     "with SASL mechanism SCRAM-SHA-256",
    "PLAIN": "Authentication failed: Invalid username or password",
}


@pytest.mark.parametrize("case", WRONG)
def test_bad_credentials_refused_by_confluent_kafka(secure, still_serving, case):
    login = WRONG[case]
    errors = ck_connect_errors(secure, login)
    auth = [e for e in errors if e.code() == RD_AUTHENTICATION]
    assert auth, f"no authentication error reported, only {errors}"
    listener = login.listener.lower()
    assert re.fullmatch(
        rf"{listener}://127\.0\.0\.1:\d+/bootstrap: SASL authentication error: "
        rf"{re.escape(FAILED_MESSAGE[login.mechanism])} \(after \d+ms in state AUTH_REQ\)",
        auth[0].str()), auth[0].str()


@pytest.mark.parametrize("case", ["wrong-password-scram-512", "unknown-user-plain"])
def test_bad_credentials_refused_by_kafka_python(secure, still_serving, caplog, case):
    """kafka-python cannot bootstrap (the broker closes the connection)."""
    kp_connect_fails(secure, WRONG[case], caplog)


def sasl_handshake(conn: RawConnection, mechanism: str):
    from kafka.protocol.sasl import SaslHandshakeRequest
    return conn.call(SaslHandshakeRequest(mechanism=mechanism), 1)


def sasl_authenticate(conn: RawConnection, token: bytes):
    from kafka.protocol.sasl import SaslAuthenticateRequest
    return conn.call(SaslAuthenticateRequest(auth_bytes=token), 1)


@pytest.mark.parametrize("mechanism", security.SCRAM_MECHANISMS)
def test_scram_wrong_password_raw(secure, still_serving, mechanism):
    """SaslHandshake v1, client-first, then a client-final with a wrong proof:
    SASL_AUTHENTICATION_FAILED with Kafka's message, then the connection closes."""
    with RawConnection(secure, "SASL_PLAINTEXT") as conn:
        r = sasl_handshake(conn, mechanism)
        assert (r.error_code, sorted(r.mechanisms)) == (0, sorted(security.MECHANISMS))
        nonce = uuid.uuid4().hex
        first = sasl_authenticate(conn, security.scram_client_first("alice", nonce))
        assert first.error_code == 0
        assert first.auth_bytes.startswith(f"r={nonce}".encode())
        final = sasl_authenticate(conn, security.scram_client_final(
            mechanism, "alice", "not-her-password", nonce, first.auth_bytes))
        assert (final.error_code, final.error_message) == (
            SASL_AUTHENTICATION_FAILED, FAILED_MESSAGE[mechanism])
        assert conn.read_until_closed() == b""


def test_scram_right_password_raw(secure):
    """The same exchange with the right password: the server-final-message (v=...) and a
    connection that stays open; session lifetime 0 (connections.max.reauth.ms unset)."""
    with RawConnection(secure, "SASL_PLAINTEXT") as conn:
        sasl_handshake(conn, "SCRAM-SHA-512")
        nonce = uuid.uuid4().hex
        first = sasl_authenticate(conn, security.scram_client_first("alice", nonce))
        assert re.fullmatch(rf"r={nonce}[!-+\--~]+,s=[A-Za-z0-9+/=]+,i=4096",
                            first.auth_bytes.decode()), first.auth_bytes
        final = sasl_authenticate(conn, security.scram_client_final(
            "SCRAM-SHA-512", "alice", security.password_of("alice"), nonce, first.auth_bytes))
        assert final.error_code == 0
        assert final.auth_bytes.startswith(b"v=")
        assert final.session_lifetime_ms == 0


def test_scram_unknown_user_raw(secure, still_serving):
    """An unknown SCRAM user fails at the client-first-message (Kafka looks the user up
    before it answers), and the connection closes."""
    with RawConnection(secure, "SASL_PLAINTEXT") as conn:
        sasl_handshake(conn, "SCRAM-SHA-512")
        first = sasl_authenticate(conn, security.scram_client_first("mallory", uuid.uuid4().hex))
        assert (first.error_code, first.error_message) == (
            SASL_AUTHENTICATION_FAILED, FAILED_MESSAGE["SCRAM-SHA-512"])
        assert conn.read_until_closed() == b""


@pytest.mark.parametrize("user", ["pat", "mallory"])
def test_plain_bad_credentials_raw(secure, still_serving, user):
    with RawConnection(secure, "SASL_PLAINTEXT") as conn:
        sasl_handshake(conn, "PLAIN")
        r = sasl_authenticate(conn, f"\0{user}\0not-the-password".encode())
        assert (r.error_code, r.error_message) == (SASL_AUTHENTICATION_FAILED,
                                                   FAILED_MESSAGE["PLAIN"])
        assert conn.read_until_closed() == b""


def test_unsupported_mechanism_raw(secure, still_serving):
    with RawConnection(secure, "SASL_PLAINTEXT") as conn:
        r = sasl_handshake(conn, "GSSAPI")
        assert (r.error_code, sorted(r.mechanisms)) == (UNSUPPORTED_SASL_MECHANISM,
                                                        sorted(security.MECHANISMS))
        assert conn.read_until_closed() == b""


@pytest.mark.parametrize("listener", ["SSL", "SASL_SSL"])
def test_plaintext_bytes_on_tls_port(secure, still_serving, listener):
    """A raw ApiVersions frame on a TLS port: no Kafka answer, a fatal TLS alert record
    (content type 21, TLS 1.2 record version, level 2) and the connection closes."""
    import socket
    with socket.create_connection(("127.0.0.1", secure.broker.ports[listener]), timeout=10) as s:
        s.sendall(security.API_VERSIONS_V0)
        reply = security.read_until_closed(s)
    assert len(reply) == 7 and reply[:5] == b"\x15\x03\x03\x00\x02" and reply[5] == 2, reply


def test_plaintext_clients_on_tls_port(secure, still_serving, caplog):
    login = security.Login("PLAINTEXT")
    ck_connect_errors(secure, login, timeout=5, **{"bootstrap.servers": secure.bootstrap_for("SSL")})
    kp = {**security.kp_config(secure, login), "bootstrap_servers": secure.bootstrap_for("SSL")}
    with pytest.raises(kafka.errors.KafkaTimeoutError):
        kafka.KafkaAdminClient(bootstrap_timeout_ms=4000, **kp)


def raw_produce_request(topic: str, value: bytes):
    from kafka.protocol.producer.produce import ProduceRequest
    from kafka.record.memory_records import MemoryRecordsBuilder
    builder = MemoryRecordsBuilder(magic=2, compression_type=0, batch_size=1 << 20)
    builder.append(timestamp=None, key=b"sneaky", value=value, headers=[])
    builder.close()
    Topic = ProduceRequest.TopicProduceData
    return ProduceRequest(transactional_id=None, acks=-1, timeout_ms=5000, topic_data=[
        Topic(name=topic, partition_data=[Topic.PartitionProduceData(index=0,
                                                                     records=builder.buffer())])])


@pytest.mark.parametrize("before", ["nothing", "api-versions"])
@pytest.mark.parametrize("listener", ["SASL_PLAINTEXT", "SASL_SSL"])
def test_produce_without_authenticating(secure, still_serving, listener, before):
    """A valid Produce frame as the first request, or after ApiVersions: no answer, the
    connection closes, nothing is stored."""
    from kafka.protocol.metadata.api_versions import ApiVersionsRequest
    topic = name("alice-unauthenticated")
    create_topics(secure, topic)
    with RawConnection(secure, listener) as conn:
        if before == "api-versions":
            r = conn.call(ApiVersionsRequest(client_software_name="compat-raw",
                                             client_software_version="1.0"), 3)
            assert r.error_code == 0
        conn.send(raw_produce_request(topic, b"should-not-be-stored"), 7)
        assert conn.read_until_closed() == b""
    assert security.end_offset(secure, topic) == 0


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-512"])
@pytest.mark.parametrize("listener", ["SASL_PLAINTEXT", "SASL_SSL"])
def test_produce_between_handshake_and_authenticate(secure, still_serving, listener, mechanism):
    """A Produce after SaslHandshake, where SaslAuthenticate is due: Kafka answers that
    Produce with ILLEGAL_SASL_STATE for each partition (its error response), then closes
    the connection; nothing is stored."""
    import io
    import struct
    from kafka.protocol.producer.produce import ProduceResponse
    topic = name("alice-unauthenticated")
    create_topics(secure, topic)
    with RawConnection(secure, listener) as conn:
        assert sasl_handshake(conn, mechanism).error_code == 0
        correlation_id = conn.send(raw_produce_request(topic, b"should-not-be-stored"), 7)
        reply = conn.read_until_closed()
    assert len(reply) >= 4, f"no answer before the close: {reply!r}"
    (size,) = struct.unpack(">i", reply[:4])
    assert len(reply) == 4 + size, f"more than one response: {reply!r}"
    response = ProduceResponse.decode(io.BytesIO(reply[4:]), version=7, header=True)
    assert response.header.correlation_id == correlation_id
    assert [(t.name, [(p.index, p.error_code, p.base_offset) for p in t.partition_responses])
            for t in response.responses] == [(topic, [(0, ILLEGAL_SASL_STATE, -1)])]
    assert security.end_offset(secure, topic) == 0


def test_metadata_without_authenticating(secure, still_serving):
    from kafka.protocol.metadata.metadata import MetadataRequest
    with RawConnection(secure, "SASL_PLAINTEXT") as conn:
        conn.send(MetadataRequest(topics=None, allow_auto_topic_creation=False), 4)
        assert conn.read_until_closed() == b""


@pytest.mark.parametrize("who", ["rogue-ca", "no-certificate"])
def test_client_certificate_refused(secure, certs, still_serving, caplog, who):
    """ssl.client.auth=required: a certificate from an untrusted CA (even with the same
    subject as a trusted one), or none, fails the TLS handshake."""
    login = mtls(certs.rogue) if who == "rogue-ca" else security.Login("SSL")
    errors = ck_connect_errors(secure, login)
    assert errors and errors[0].code() == RD_TRANSPORT, errors
    assert re.search(r"ssl://127\.0\.0\.1:\d+/bootstrap: Receive failed: .*SSL alert number \d+",
                     errors[0].str()), errors[0].str()
    logged = kp_connect_fails(secure, login, caplog)
    assert any(re.search(r"KafkaConnectionError: \[SSL: \w+ALERT\w+\]", m) for m in logged), logged
    # raw: the handshake may complete on the client's side (with TLS 1.3 the server checks
    # the client's certificate after), but no Kafka response ever comes
    import ssl
    try:
        with RawConnection(secure, "SSL", cert=certs.rogue if who == "rogue-ca" else None) as conn:
            conn.sock.sendall(security.API_VERSIONS_V0)
            reply = conn.read_until_closed()
    except (ssl.SSLError, ConnectionError):
        reply = b""
    assert reply == b""


# ============================================================================ authorization

@pytest.mark.parametrize("client", CLIENTS)
def test_produce_without_write_acl(secure, client):
    """bob may Write his own topics but only Read/Describe this one: the produce fails
    with TOPIC_AUTHORIZATION_FAILED; a topic he cannot even describe fails the same way;
    nothing is stored."""
    login = sasl("SASL_SSL", "bob")
    own, read_only, hidden = name("bob-own"), name("bob-readonly"), name("bob-hidden")
    create_topics(secure, own, read_only, hidden)
    grant(secure, acl("User:bob", "TOPIC", own, "WRITE"),
          acl("User:bob", "TOPIC", read_only, "READ"),
          acl("User:bob", "TOPIC", read_only, "DESCRIBE"))
    assert produce_error(client, secure, login, read_only) == TOPIC_AUTHORIZATION_FAILED
    assert produce_error(client, secure, login, hidden) == TOPIC_AUTHORIZATION_FAILED
    assert security.PRODUCE[client](secure, login, own, [(b"k", b"mine")]) == [0]
    assert [security.end_offset(secure, t) for t in (own, read_only, hidden)] == [1, 0, 0]


def test_idempotent_producer_without_any_write_acl(secure):
    """kafka-python's default producer is idempotent: with no Write on any topic (and no
    IdempotentWrite on the cluster) InitProducerId fails: CLUSTER_AUTHORIZATION_FAILED."""
    login = sasl("SASL_SSL", "ivan")
    topic = name("ivan")
    create_topics(secure, topic)
    grant(secure, acl("User:ivan", "TOPIC", topic, "DESCRIBE"))
    assert produce_error("kafka-python", secure, login, topic) == CLUSTER_AUTHORIZATION_FAILED
    assert produce_error("confluent-kafka", secure, login, topic,
                         **{"enable.idempotence": True}) == CLUSTER_AUTHORIZATION_FAILED
    assert security.end_offset(secure, topic) == 0


@pytest.mark.parametrize("client", CLIENTS)
def test_consume_without_group_acl(secure, client):
    """dave may Read the topic but has no ACL on the group: subscribing in it fails with
    GROUP_AUTHORIZATION_FAILED."""
    login = sasl("SASL_SSL", "dave")
    topic, group = name("dave"), name("dave-group")
    create_topics(secure, topic)
    security.ck_produce(secure, admin_login(), topic, [(b"k", b"v")])
    grant(secure, acl("User:dave", "TOPIC", topic, "READ"))
    with pytest.raises((kafka.errors.KafkaError, confluent_kafka.KafkaException)) as failed:
        security.READ[client](secure, login, topic, 1, group=group)
    assert security.error_code(failed.value) == GROUP_AUTHORIZATION_FAILED, failed.value
    # with Read on the group, the same consumer works
    grant(secure, acl("User:dave", "GROUP", group, "READ"))
    assert security.READ[client](secure, login, topic, 1, group=group) == [(0, b"k", b"v")]


@pytest.mark.parametrize("client", CLIENTS)
def test_super_user_needs_no_acl(secure, client):
    """super.users=User:admin: produce, and consume in a group, with no ACL at all."""
    login = admin_login()
    topic, group = name("nobody"), name("nobody-group")
    create_topics(secure, topic)
    msgs = security.records(f"super-{client}", 3)
    assert security.PRODUCE[client](secure, login, topic, msgs) == [0, 1, 2]
    assert security.READ[client](secure, login, topic, 3, group=group) == expected(msgs)
    assert security.committed(secure, group, topic) == 3


def test_metadata_hides_topics_without_describe(secure):
    """erin sees exactly the topics she may describe (Describe, or any ACL implying it)."""
    login = sasl("SASL_SSL", "erin")
    readable, writable, described, hidden = (name(f"erin-{w}") for w in
                                              ("read", "write", "describe", "hidden"))
    create_topics(secure, readable, writable, described, hidden)
    grant(secure, acl("User:erin", "TOPIC", readable, "READ"),
          acl("User:erin", "TOPIC", writable, "WRITE"),
          acl("User:erin", "TOPIC", described, "DESCRIBE"))
    assert listed_topics(secure, login) == {readable, writable, described}
    kp = kafka.KafkaAdminClient(**security.kp_config(secure, login))
    try:
        assert set(kp.list_topics()) == {readable, writable, described}
    finally:
        kp.close()
    assert hidden in listed_topics(secure, admin_login())


def test_prefixed_acl_grants_a_family(secure):
    login = sasl("SASL_SSL", "frank")
    prefix = name("frank-fam") + "-"
    family = [prefix + "a", prefix + "b"]
    outsider = prefix[:-1] + "x"  # shares all but the last character of the prefix
    create_topics(secure, *family, outsider)
    grant(secure, acl("User:frank", "TOPIC", prefix, "WRITE", pattern="PREFIXED"),
          acl("User:frank", "TOPIC", prefix, "DESCRIBE", pattern="PREFIXED"))
    for t in family:
        assert security.ck_produce(secure, login, t, [(b"k", t.encode())]) == [0]
    assert produce_error("confluent-kafka", secure, login, outsider) == TOPIC_AUTHORIZATION_FAILED
    assert listed_topics(secure, login) == set(family)
    assert describe_acls(secure, principal="User:frank") == {
        ("TOPIC", prefix, "PREFIXED", "User:frank", "*", "WRITE", "ALLOW"),
        ("TOPIC", prefix, "PREFIXED", "User:frank", "*", "DESCRIBE", "ALLOW")}


def test_deny_overrides_allow(secure):
    login = sasl("SASL_SSL", "gina")
    prefix = name("gina") + "-"
    open_topic, blocked = prefix + "open", prefix + "blocked"
    create_topics(secure, open_topic, blocked)
    grant(secure, acl("User:gina", "TOPIC", prefix, "ALL", pattern="PREFIXED"),
          acl("User:gina", "TOPIC", blocked, "WRITE", permission="DENY"))
    assert security.ck_produce(secure, login, open_topic, [(b"k", b"v")]) == [0]
    assert produce_error("confluent-kafka", secure, login, blocked) == TOPIC_AUTHORIZATION_FAILED
    # Deny Write leaves Read (from the ALL) alone
    assert blocked in listed_topics(secure, login)
    # a Deny for User:* covers gina too
    grant(secure, acl("User:*", "TOPIC", open_topic, "WRITE", permission="DENY"))
    assert produce_error("confluent-kafka", secure, login, open_topic) == TOPIC_AUTHORIZATION_FAILED
    assert security.end_offset(secure, open_topic) == 1


def test_acl_host(secure):
    """An Allow from another host grants nothing; from the client's host (127.0.0.1) it does."""
    login = sasl("SASL_SSL", "hank")
    topic = name("hank")
    create_topics(secure, topic)
    grant(secure, acl("User:hank", "TOPIC", topic, "WRITE", host="10.9.8.7"))
    assert produce_error("confluent-kafka", secure, login, topic) == TOPIC_AUTHORIZATION_FAILED
    grant(secure, acl("User:hank", "TOPIC", topic, "WRITE", host="127.0.0.1"))
    assert security.ck_produce(secure, login, topic, [(b"k", b"v")]) == [0]


def transactional_producer(sb, login, txn: str) -> confluent_kafka.Producer:
    return confluent_kafka.Producer({**security.ck_config(sb, login), "transactional.id": txn})


def test_transactional_id_without_acl(secure):
    """A transactional producer needs Write on its TransactionalId: without it
    init_transactions fails with TRANSACTIONAL_ID_AUTHORIZATION_FAILED (Write on the topic
    is not enough)."""
    login = sasl("SASL_SSL", "liam")
    topic, txn = name("liam"), name("liam-tx")
    create_topics(secure, topic)
    grant(secure, acl("User:liam", "TOPIC", topic, "ALL"))
    producer = transactional_producer(secure, login, txn)
    with pytest.raises(confluent_kafka.KafkaException) as failed:
        producer.init_transactions(10)
    assert failed.value.args[0].code() == TRANSACTIONAL_ID_AUTHORIZATION_FAILED, failed.value


def test_transactional_id_prefixed_acl(secure):
    """With Write on TransactionalId liam-tx-* (prefixed) the producer initialises, produces
    and commits, and a read_committed consumer reads the record."""
    login = sasl("SASL_SSL", "liam")
    topic, txn = name("liam-committed"), name("liam-tx")
    create_topics(secure, topic)
    grant(secure, acl("User:liam", "TOPIC", topic, "ALL"),
          acl("User:liam", "GROUP", "liam-", "ALL", pattern="PREFIXED"),
          acl("User:liam", "TRANSACTIONAL_ID", "liam-tx-", "WRITE", pattern="PREFIXED"))
    producer = transactional_producer(secure, login, txn)
    producer.init_transactions(10)
    producer.begin_transaction()
    producer.produce(topic, key=b"k", value=b"committed")
    producer.commit_transaction(20)
    assert security.ck_read(secure, login, topic, 1, group=name("liam-g"),
                            **{"isolation.level": "read_committed"}) == [(0, b"k", b"committed")]


def acl_tool_entries(stdout: str) -> set[str]:
    """The ACL lines kafka-acls prints: (principal=..., host=..., operation=..., permissionType=...)."""
    return {line.strip() for line in stdout.splitlines() if line.strip().startswith("(principal=")}


def test_kafka_acls_tool_adds_lists_removes(secure, tmp_path):
    props = admin_properties(secure, tmp_path)
    bootstrap = secure.bootstrap_for("SASL_PLAINTEXT")
    topic = name("judy")
    create_topics(secure, topic)
    login = sasl("SASL_SSL", "judy")
    assert produce_error("confluent-kafka", secure, login, topic) == TOPIC_AUTHORIZATION_FAILED

    tool = ("org.apache.kafka.tools.AclCommand", "--bootstrap-server", bootstrap,
            "--command-config", props)
    added = java(*tool, "--add", "--allow-principal", "User:judy", "--operation", "Write",
                 "--operation", "Describe", "--topic", topic)
    assert added.returncode == 0, added
    assert f"Adding ACLs for resource `ResourcePattern(resourceType=TOPIC, name={topic}, " \
           f"patternType=LITERAL)`:" in added.stdout, added
    entries = {"(principal=User:judy, host=*, operation=WRITE, permissionType=ALLOW)",
               "(principal=User:judy, host=*, operation=DESCRIBE, permissionType=ALLOW)"}
    listed = java(*tool, "--list", "--topic", topic)
    assert listed.returncode == 0, listed
    assert f"Current ACLs for resource `ResourcePattern(resourceType=TOPIC, name={topic}, " \
           f"patternType=LITERAL)`:" in listed.stdout, listed
    assert acl_tool_entries(listed.stdout) == entries
    by_principal = java(*tool, "--list", "--principal", "User:judy")
    assert acl_tool_entries(by_principal.stdout) == entries, by_principal
    assert describe_acls(secure, principal="User:judy") == {
        ("TOPIC", topic, "LITERAL", "User:judy", "*", "WRITE", "ALLOW"),
        ("TOPIC", topic, "LITERAL", "User:judy", "*", "DESCRIBE", "ALLOW")}
    assert security.ck_produce(secure, login, topic, [(b"k", b"v")]) == [0]

    removed = java(*tool, "--remove", "--force", "--allow-principal", "User:judy",
                   "--operation", "Write", "--topic", topic)
    assert removed.returncode == 0, removed
    listed = java(*tool, "--list", "--topic", topic)
    assert acl_tool_entries(listed.stdout) == {
        "(principal=User:judy, host=*, operation=DESCRIBE, permissionType=ALLOW)"}, listed
    assert produce_error("confluent-kafka", secure, login, topic) == TOPIC_AUTHORIZATION_FAILED


def test_acl_admin_needs_alter_on_cluster(secure):
    """A user without Alter on the cluster cannot create ACLs (CLUSTER_AUTHORIZATION_FAILED)
    nor describe them without Describe on the cluster."""
    login = sasl("SASL_SSL", "kate")
    admin = security.ck_admin(secure, login)
    (f,) = admin.create_acls([acl("User:kate", "TOPIC", "anything", "ALL")],
                             request_timeout=20).values()
    with pytest.raises(confluent_kafka.KafkaException) as failed:
        f.result(timeout=30)
    assert failed.value.args[0].code() == CLUSTER_AUTHORIZATION_FAILED
    # (confluent-kafka's describe_acls returns [] on this error, with both brokers)
    kp = kafka.KafkaAdminClient(**security.kp_config(secure, login))
    try:
        with pytest.raises(kafka.errors.ClusterAuthorizationFailedError):
            kp.describe_acls(kafka.admin.ACLFilter(
                principal=None, host="*", operation=kafka.admin.ACLOperation.ANY,
                permission_type=kafka.admin.ACLPermissionType.ANY,
                resource_pattern=kafka.admin.ResourcePatternFilter(
                    kafka.admin.ResourceType.ANY, None, kafka.admin.ACLResourcePatternType.ANY)))
    finally:
        kp.close()
    assert describe_acls(secure, principal="User:kate") == set()


def test_topic_creation_needs_create_acl(secure):
    login = sasl("SASL_SSL", "kate")
    topic = name("kate")
    admin = security.ck_admin(secure, login)
    (f,) = admin.create_topics([confluent_kafka.admin.NewTopic(topic, 1, 1)]).values()
    with pytest.raises(confluent_kafka.KafkaException) as failed:
        f.result(timeout=30)
    assert failed.value.args[0].code() == TOPIC_AUTHORIZATION_FAILED
    grant(secure, acl("User:kate", "TOPIC", topic, "CREATE"))
    (f,) = admin.create_topics([confluent_kafka.admin.NewTopic(topic, 1, 1)]).values()
    f.result(timeout=30)
    assert topic in listed_topics(secure, admin_login())


# ============================================================================ SCRAM users

def kafka_configs(sb, tmp_path, *args):
    props = admin_properties(sb, tmp_path)
    return java("org.apache.kafka.tools.ConfigCommand", "--bootstrap-server",
                sb.bootstrap_for("SASL_PLAINTEXT"), "--command-config", props, *args)


def wait_until(predicate, what: str, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.2)


def test_scram_user_added_and_deleted_with_kafka_configs(restarts, tmp_path):
    """kafka-configs --alter --add-config 'SCRAM-SHA-512=[iterations=8192,password=...]'
    --entity-type users --entity-name carol: carol connects (that mechanism and password
    only); --delete-config SCRAM-SHA-512: she is refused, also after a restart."""
    secure = restarts
    carol = name("carol")
    login = sasl("SASL_SSL", carol, "SCRAM-SHA-512", "carol-secret")
    assert not can_connect(secure, login)

    added = kafka_configs(secure, tmp_path, "--alter", "--add-config",
                          "SCRAM-SHA-512=[iterations=8192,password=carol-secret]",
                          "--entity-type", "users", "--entity-name", carol)
    assert added.returncode == 0, added
    assert added.stdout.strip() == f"Completed updating config for user {carol}.", added
    wait_until(lambda: can_connect(secure, login), f"{carol} to authenticate")
    assert not can_connect(secure, login.but(password="wrong"))
    assert not can_connect(secure, login.but(mechanism="SCRAM-SHA-256"))

    deleted = kafka_configs(secure, tmp_path, "--alter", "--delete-config", "SCRAM-SHA-512",
                            "--entity-type", "users", "--entity-name", carol)
    assert deleted.returncode == 0, deleted
    assert deleted.stdout.strip() == f"Completed updating config for user {carol}.", deleted
    wait_until(lambda: not can_connect(secure, login), f"{carol} to be refused")

    restart(secure)
    assert not can_connect(secure, login)


SCRAM_LINE = re.compile(r"SCRAM credential configs for user-principal '([^']*)' are (.*)")


def scram_described(stdout: str) -> dict[str, dict[str, int]]:
    """kafka-configs --describe --entity-type users: {user: {mechanism: iterations}} from its
    lines `SCRAM credential configs for user-principal 'U' are M1=iterations=N1, M2=...`
    (the order of the mechanisms on a line is not defined). Other lines are ignored."""
    out = {}
    for line in stdout.splitlines():
        m = SCRAM_LINE.fullmatch(line.strip())
        if m:
            out[m.group(1)] = {mech: int(n) for mech, n in
                               (part.split("=iterations=") for part in m.group(2).split(", "))}
    return out


def test_kafka_configs_describes_scram_users(secure, tmp_path):
    """kafka-configs --describe --entity-type users [--entity-name]: mechanism and
    iterations of each user's credentials (the tool asks DescribeClientQuotas too)."""
    carol = name("carol")
    for config in ("SCRAM-SHA-512=[iterations=8192,password=carol-secret]",
                   "SCRAM-SHA-256=[password=carol-secret]"):
        added = kafka_configs(secure, tmp_path, "--alter", "--add-config", config,
                              "--entity-type", "users", "--entity-name", carol)
        assert added.returncode == 0, added
    described = kafka_configs(secure, tmp_path, "--describe", "--entity-type", "users",
                              "--entity-name", carol)
    assert described.returncode == 0, described
    assert len(described.stdout.strip().splitlines()) == 1, described
    assert scram_described(described.stdout) == {
        carol: {"SCRAM-SHA-512": 8192, "SCRAM-SHA-256": 4096}}, described
    everyone = kafka_configs(secure, tmp_path, "--describe", "--entity-type", "users")
    assert everyone.returncode == 0, everyone
    users = scram_described(everyone.stdout)
    assert users[carol] == {"SCRAM-SHA-512": 8192, "SCRAM-SHA-256": 4096}, everyone
    assert users["alice"] == {"SCRAM-SHA-512": 4096, "SCRAM-SHA-256": 4096}, everyone
    assert set(security.SCRAM_USERS) <= set(users), everyone
    deleted = kafka_configs(secure, tmp_path, "--alter", "--delete-config", "SCRAM-SHA-512",
                            "--entity-type", "users", "--entity-name", carol)
    assert deleted.returncode == 0, deleted
    described = kafka_configs(secure, tmp_path, "--describe", "--entity-type", "users",
                              "--entity-name", carol)
    assert described.returncode == 0, described
    assert described.stdout.strip() == (f"SCRAM credential configs for user-principal '{carol}' "
                                        f"are SCRAM-SHA-256=iterations=4096"), described


def test_kafka_configs_scram_errors(secure, tmp_path):
    """Two mechanisms of one user in one --add-config (one AlterUserScramCredentials
    request altering the user twice): DUPLICATE_RESOURCE, nothing created. Deleting a
    credential that does not exist: RESOURCE_NOT_FOUND."""
    zoe = name("zoe")
    both = kafka_configs(secure, tmp_path, "--alter", "--add-config",
                         "SCRAM-SHA-512=[iterations=8192,password=zoe-secret],"
                         "SCRAM-SHA-256=[password=zoe-secret]",
                         "--entity-type", "users", "--entity-name", zoe)
    assert both.returncode == 1, both
    assert ("org.apache.kafka.common.errors.DuplicateResourceException: "
            "A user credential cannot be altered twice in the same request") in both.stderr, both
    for mechanism in security.SCRAM_MECHANISMS:
        assert not can_connect(secure, sasl("SASL_SSL", zoe, mechanism, "zoe-secret"))
    missing = kafka_configs(secure, tmp_path, "--alter", "--delete-config", "SCRAM-SHA-512",
                            "--entity-type", "users", "--entity-name", zoe)
    assert missing.returncode == 1, missing
    assert ("org.apache.kafka.common.errors.ResourceNotFoundException: "
            "Attempt to delete a user credential that does not exist") in missing.stderr, missing


def test_scram_credentials_survive_restart(restarts):
    """Credentials from --add-scram (Sluice: restarted without the argument; Kafka: given
    at format only) and from AlterUserScramCredentials both work after a restart, and
    DescribeUserScramCredentials lists them."""
    from confluent_kafka.admin import (ScramCredentialInfo, ScramMechanism,
                                       UserScramCredentialUpsertion)
    secure = restarts
    dora = name("dora")
    admin = security.ck_admin(secure)
    upsert = UserScramCredentialUpsertion(
        dora, ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 5000), b"dora-secret")
    for f in admin.alter_user_scram_credentials([upsert]).values():
        f.result(timeout=30)
    dora_login = sasl("SASL_SSL", dora, "SCRAM-SHA-256", "dora-secret")
    wait_until(lambda: can_connect(secure, dora_login), f"{dora} to authenticate")

    restart(secure, seed_scram=False)
    assert can_connect(secure, dora_login)
    assert can_connect(secure, sasl("SASL_SSL", "seeded", "SCRAM-SHA-512"))
    assert can_connect(secure, sasl("SASL_SSL", "seeded", "SCRAM-SHA-256"))
    admin = security.ck_admin(secure)
    described = admin.describe_user_scram_credentials([dora, "seeded"])
    got = {user: sorted((i.mechanism.name, i.iterations) for i in f.result(timeout=30)
                        .scram_credential_infos)
           for user, f in described.items()}
    assert got == {dora: [("SCRAM_SHA_256", 5000)],
                   "seeded": [("SCRAM_SHA_256", 4096), ("SCRAM_SHA_512", 4096)]}


def test_acls_survive_restart(restarts):
    secure = restarts
    login = sasl("SASL_SSL", "judy", "SCRAM-SHA-256")
    topic = name("judy-persist")
    create_topics(secure, topic)
    bindings = [acl("User:judy", "TOPIC", topic, "WRITE"),
                acl("User:judy", "TOPIC", topic, "READ"),
                acl("User:judy", "GROUP", topic, "READ", pattern="PREFIXED"),
                acl("User:judy", "TOPIC", topic + "-no", "WRITE", permission="DENY", host="10.0.0.1")]
    grant(secure, *bindings)
    before = describe_acls(secure, principal="User:judy")
    assert {security.acl_key(b) for b in bindings} <= before

    restart(secure)
    assert describe_acls(secure, principal="User:judy") == before
    assert security.ck_produce(secure, login, topic, [(b"k", b"after-restart")]) == [0]
    assert security.ck_read(secure, login, topic, 1, group=topic + "-g") == [
        (0, b"k", b"after-restart")]
    revoke(secure, bindings[0])
    restart(secure)
    assert describe_acls(secure, principal="User:judy") == before - {security.acl_key(bindings[0])}
    assert produce_error("confluent-kafka", secure, login, topic) == TOPIC_AUTHORIZATION_FAILED


# ============================================================================ re-authentication

REAUTH_MS = 3000


def test_session_lifetime_raw(restarts):
    """With connections.max.reauth.ms the SaslAuthenticate response carries the session
    lifetime; a connection that does not re-authenticate is closed after it."""
    secure = restarts
    restart(secure, **{"connections.max.reauth.ms": str(REAUTH_MS)})
    from kafka.protocol.metadata.metadata import MetadataRequest
    with RawConnection(secure, "SASL_PLAINTEXT", timeout=20) as conn:
        sasl_handshake(conn, "PLAIN")
        r = sasl_authenticate(conn, b"\0pat\0" + security.password_of("pat").encode())
        assert (r.error_code, r.session_lifetime_ms) == (0, REAUTH_MS)
        assert conn.call(MetadataRequest(topics=[], allow_auto_topic_creation=False), 4)
        time.sleep(REAUTH_MS / 1000 + 1)
        conn.send(MetadataRequest(topics=[], allow_auto_topic_creation=False), 4)
        assert conn.read_until_closed(15) == b""


def test_a_large_fetch_reaches_a_tls_client_that_reads_late(secure, alice):
    """A consumer on SASL_SSL that reads its Fetch response late (the socket's buffers
    full meanwhile) still gets all of it: the last bytes must not wait in the broker's
    TLS buffer for a request the client sends only once it has them."""
    login = sasl("SASL_SSL", "alice")
    topic = name("alice-late-reader")
    create_topics(secure, topic)
    value = b"v" * 1024
    security.ck_produce(secure, login, topic, [(None, value)] * 8192,
                        **{"linger.ms": 20, "batch.size": 1_000_000})
    import socket
    import struct
    with RawConnection(secure, "SASL_SSL", timeout=20) as conn:
        assert sasl_handshake(conn, "PLAIN").error_code == 0
        # PLAIN is admin's here (alice has SCRAM credentials only); admin reads any topic.
        token = b"\0admin\0" + security.ADMIN_PASSWORD.encode()
        assert sasl_authenticate(conn, token).error_code == 0
        # Fetch v4 of partition 0 from offset 0, up to 8 MiB, by hand.
        body = struct.pack(">iiiib", -1, 0, 1, 64 << 20, 0) + struct.pack(">ih", 1, len(topic))
        body += topic.encode() + struct.pack(">iiqi", 1, 0, 0, 8 << 20)
        header = struct.pack(">hhih", 1, 4, 99, 4) + b"late"
        conn.sock.sendall(struct.pack(">i", len(header) + len(body)) + header + body)
        # Read slowly, so that the socket's buffers stay full to the last bytes.
        conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 << 10)
        time.sleep(1)
        response = bytearray()
        while len(response) < 4 or len(response) < 4 + struct.unpack_from(">i", response)[0]:
            chunk = conn.sock.recv(32 << 10)
            assert chunk, f"closed after {len(response)} bytes"
            response += chunk
            time.sleep(0.002)
        response = bytes(response[4:])
    correlation, _throttle, topics = struct.unpack_from(">iii", response, 0)
    (name_len,) = struct.unpack_from(">h", response, 12)
    at = 14 + name_len
    _partitions, partition, error = struct.unpack_from(">iih", response, at)
    at += 4 + 4 + 2 + 8 + 8  # ... high watermark, last stable offset
    (aborted,) = struct.unpack_from(">i", response, at)
    at += 4 + max(aborted, 0) * 16
    (records,) = struct.unpack_from(">i", response, at)
    assert (correlation, topics, partition, error) == (99, 1, 0, 0)
    assert records > 4 << 20 and at + 4 + records == len(response), (records, len(response))


class Lines(logging.Handler):
    """Collects log messages (librdkafka's `logger`, kafka-python's loggers)."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record):
        self.lines.append(record.getMessage())


@pytest.mark.parametrize("client", CLIENTS)
def test_clients_reauthenticate(restarts, alice, client):
    """connections.max.reauth.ms=3000: a producer and a consumer keep working for more than
    three session lifetimes without an error: they re-authenticate in place (their debug
    logs show it) and every record is acknowledged and read back once, in order."""
    secure = restarts
    restart(secure, **{"connections.max.reauth.ms": str(REAUTH_MS)})
    login = sasl("SASL_SSL", "alice")
    topic = name("alice-reauth")
    create_topics(secure, topic)
    duration = 3.5 * REAUTH_MS / 1000
    sent, got, offsets, errors = [], [], [], []
    logs = Lines()
    if client == "confluent-kafka":
        logger = logging.getLogger(f"compat.rdkafka.{uuid.uuid4().hex}")
        logger.addHandler(logs)
        logger.setLevel(logging.DEBUG)
        logger.propagate = False
        common = {**security.ck_config(secure, login), "error_cb": errors.append,
                  "debug": "security,broker", "logger": logger}
        producer = confluent_kafka.Producer(common)
        consumer = confluent_kafka.Consumer({**common, "group.id": name("alice-reauth-group"),
                                             "enable.auto.commit": False})
        consumer.assign([confluent_kafka.TopicPartition(topic, 0,
                                                        confluent_kafka.OFFSET_BEGINNING)])
        reports = []

        def poll(timeout):
            m = consumer.poll(timeout)
            while m is not None:
                assert not m.error(), m.error()
                got.append(m.value())
                m = consumer.poll(0)

        start = time.monotonic()
        while time.monotonic() - start < duration:
            value = f"r{len(sent)}".encode()
            producer.produce(topic, value=value,
                             on_delivery=lambda err, msg: reports.append(
                                 (err, None if err is not None else msg.offset())))
            sent.append(value)
            assert producer.flush(10) == 0
            poll(0.3)
        deadline = time.monotonic() + 20
        while len(got) < len(sent) and time.monotonic() < deadline:
            poll(0.5)
        consumer.close()
        del producer
        assert [err for err, _ in reports] == [None] * len(sent)
        offsets = [o for _, o in reports]
        reauthentications = [line for line in logs.lines if "Received REAUTH op" in line]
        failures = [line for line in logs.lines if "reauth" in line.lower() and "fail" in line.lower()]
    else:
        kafka_logger = logging.getLogger("kafka.net.connection")
        kafka_logger.addHandler(logs)
        old_level = kafka_logger.level
        kafka_logger.setLevel(logging.DEBUG)
        try:
            producer = kafka.KafkaProducer(**security.kp_config(secure, login),
                                           request_timeout_ms=10000)
            consumer = kafka.KafkaConsumer(**security.kp_config(secure, login), group_id=None,
                                           enable_auto_commit=False)
            tp = kafka.TopicPartition(topic, 0)
            consumer.assign([tp])
            consumer.seek_to_beginning(tp)
            start = time.monotonic()
            while time.monotonic() - start < duration:
                value = f"r{len(sent)}".encode()
                offsets.append(producer.send(topic, value=value).get(timeout=10).offset)
                sent.append(value)
                for batch in consumer.poll(timeout_ms=300).values():
                    got.extend(r.value for r in batch)
            deadline = time.monotonic() + 20
            while len(got) < len(sent) and time.monotonic() < deadline:
                for batch in consumer.poll(timeout_ms=500).values():
                    got.extend(r.value for r in batch)
            producer.close(timeout=10)
            consumer.close()
        finally:
            kafka_logger.removeHandler(logs)
            kafka_logger.setLevel(old_level)
        reauthentications = [line for line in logs.lines
                             if "Beginning SASL re-authentication" in line]
        failures = [line for line in logs.lines if "re-authentication failed" in line
                    or "Connection lost" in line]
    assert len(sent) >= 8
    assert offsets == list(range(len(sent)))
    assert got == sent
    assert errors == []
    assert failures == []
    # two connections (bootstrap/metadata and the partition leader's), > 3 lifetimes each
    assert len(reauthentications) >= 4, logs.lines[-30:]


# ============================================================================ X.509 v1 client certificates

@pytest.mark.parametrize("client", CLIENTS)
def test_v1_client_certificate_is_accepted(secure, certs, client):
    """A client certificate signed as Kafka's documentation signs one (`openssl x509 -req`,
    no extensions: X.509 v1) by the trusted CA: accepted, principal User:client-v1."""
    topic = name("mtls-v1")
    create_topics(secure, topic)
    grant(secure, acl("User:client-v1", "TOPIC", topic, "WRITE"))
    msgs = security.records(f"v1-{client}", 5)
    assert security.PRODUCE[client](secure, mtls(certs.client_v1), topic, msgs) == list(range(5))
    assert security.end_offset(secure, topic) == 5


@pytest.mark.parametrize("version", ["TLSv1_2", "TLSv1_3"])
def test_v1_client_certificate_signs_either_tls_handshake(secure, certs, version):
    """The v1 certificate's key signs the handshake of TLS 1.2 and of TLS 1.3 (each
    verified differently): ApiVersions is answered."""
    import ssl
    from kafka.protocol.metadata.api_versions import ApiVersionsRequest
    with RawConnection(secure, "SSL", cert=certs.client_v1,
                       tls_version=ssl.TLSVersion[version]) as conn:
        assert conn.call(ApiVersionsRequest(), 0).error_code == 0


@pytest.mark.parametrize("who", ["rogue-v1", "forged-v1", "expired-v1"])
def test_v1_client_certificate_refused(secure, certs, still_serving, caplog, who):
    """A v1 certificate from a CA nobody trusts, one signed by a trusted certificate that
    is no CA (client-1's, sent along as the chain), and one of the trusted CA that expired
    in 2020: the TLS handshake fails."""
    identity = {"rogue-v1": certs.rogue_v1, "forged-v1": certs.forged_v1,
                "expired-v1": certs.expired_v1}[who]
    errors = ck_connect_errors(secure, mtls(identity))
    assert errors and errors[0].code() == RD_TRANSPORT, errors
    logged = kp_connect_fails(secure, mtls(identity), caplog)
    assert any(re.search(r"KafkaConnectionError: \[SSL: \w+ALERT\w+\]", m) for m in logged), logged
