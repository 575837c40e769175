"""GSSAPI (Kerberos) as Kafka serves it, against a real MIT KDC (kerberos.py) with a realm
of its own: the broker's key in a keytab named by Kafka's Krb5LoginModule JAAS options,
`sasl.kerberos.service.name`, `sasl.kerberos.principal.to.local.rules`.

Clients: kcat (Debian's librdkafka with Cyrus SASL's GSSAPI plugin, kinit from a keytab)
and the Java console producer (Krb5LoginModule with a keytab). The principals' rights
come from ACLs, so each case also shows which user the broker took the client for.

A replayed AP-REQ comes from a ctypes initiator (gss_client.py); a ticket expired by the
broker's clock from a KDC and that initiator run with their clocks behind (libfaketime).

One broker for the module (security.SecureBroker) with GSSAPI beside PLAIN and SCRAM on
both SASL listeners. COMPAT_TARGET=kafka runs the same cases against Apache Kafka 4.4.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

import brokers
import kerberos
import security
from apache_kafka import DEFAULT_JARS_DIR
from certs import make_certs
from security import RawConnection, acl, create_topics, grant

SASL_AUTHENTICATION_FAILED = 58

pytestmark = pytest.mark.skipif(kerberos.available() is not None,
                                reason=kerberos.available() or "")

JARS_DIR = Path(os.environ.get("KAFKA_JARS_DIR") or DEFAULT_JARS_DIR)
SERVICE = "kafka/127.0.0.1"
RULES = "RULE:[2:$1-$2](etl-.*),DEFAULT"


def krb5_jaas(keytab: Path, principal: str) -> str:
    return ("com.sun.security.auth.module.Krb5LoginModule required useKeyTab=true "
            f'storeKey=true keyTab="{keytab}" principal="{principal}";')


@pytest.fixture(scope="module")
def kdc(tmp_path_factory):
    server = kerberos.Kdc(tmp_path_factory.mktemp("kdc")).start()
    for name in (SERVICE, "alice", "bob", "etl/batch", "carol", "other/127.0.0.1"):
        server.add_principal(name)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def sb(tmp_path_factory, kdc):
    certs = make_certs(tmp_path_factory.mktemp("certs"))
    jaas = krb5_jaas(kdc.keytab(SERVICE), kdc.principal(SERVICE))
    broker = security.SecureBroker(
        tmp_path_factory.mktemp(f"{brokers.target()}-gssapi"), certs,
        **{"sasl.enabled.mechanisms": ",".join(security.MECHANISMS + ("GSSAPI",)),
           "listener.name.sasl_plaintext.gssapi.sasl.jaas.config": jaas,
           "listener.name.sasl_ssl.gssapi.sasl.jaas.config": jaas,
           "sasl.kerberos.service.name": "kafka",
           "sasl.kerberos.principal.to.local.rules": RULES})
    saved = os.environ.get("KRB5_CONFIG")
    os.environ["KRB5_CONFIG"] = str(kdc.krb5_conf)  # Sluice's MIT library reads it
    if broker.kind == "kafka":
        broker.broker.jvm_properties = {"java.security.krb5.conf": str(kdc.krb5_conf)}
    try:
        broker.start()
        grant(broker, *(binding for principal in ("User:alice", "User:bob", "User:etl-batch")
                        for binding in (acl(principal, "TOPIC", "krb-", "ALL", pattern="PREFIXED"),
                                        acl(principal, "GROUP", "krb-", "ALL",
                                            pattern="PREFIXED"))))
        yield broker
    finally:
        code = broker.stop()
        if saved is None:
            os.environ.pop("KRB5_CONFIG", None)
        else:
            os.environ["KRB5_CONFIG"] = saved
        assert code in brokers.CLEAN_EXIT[broker.kind], f"{broker.kind} exited with {code}"


@pytest.fixture(scope="module")
def log4j(tmp_path_factory):
    return security.tools_log4j(tmp_path_factory)


def java_kerberos(kdc, tmp_path: Path) -> dict[str, str]:
    """JVM properties of a Kerberos client: the KDC, and a hosts file without 127.0.0.1,
    so that the Java client, which names the broker's service principal after the
    reverse lookup of its address, asks for kafka/127.0.0.1 (as librdkafka does) and not
    kafka/localhost."""
    hosts = tmp_path / "hosts"
    hosts.write_text("# no names for 127.0.0.1\n")
    return {"java.security.krb5.conf": str(kdc.krb5_conf), "jdk.net.hosts.file": str(hosts)}


def topic() -> str:
    return f"krb-{uuid.uuid4().hex[:8]}"


def kcat(sb, kdc, tmp_path: Path, principal: str, keytab: Path, *args: str,
         input: str | None = None, service: str = "kafka") -> subprocess.CompletedProcess:
    """kcat on SASL_PLAINTEXT as `principal`, its tickets in a cache of its own."""
    env = {**kdc.env, "KRB5CCNAME": f"FILE:{tmp_path}/{uuid.uuid4().hex}.cc"}
    return subprocess.run(
        ["kcat", "-b", sb.bootstrap_for("SASL_PLAINTEXT"),
         "-X", "security.protocol=SASL_PLAINTEXT", "-X", "sasl.mechanisms=GSSAPI",
         "-X", f"sasl.kerberos.service.name={service}",
         "-X", f"sasl.kerberos.principal={kdc.principal(principal)}",
         "-X", f"sasl.kerberos.keytab={keytab}", *args],
        input=input, env=env, capture_output=True, text=True, timeout=60)


def kcat_produce(sb, kdc, tmp_path, principal, keytab, name, lines, **kw):
    return kcat(sb, kdc, tmp_path, principal, keytab, "-P", "-t", name,
                "-X", "message.timeout.ms=15000",
                input="".join(f"{line}\n" for line in lines), **kw)


def kcat_consume(sb, kdc, tmp_path, principal, keytab, name, count):
    return kcat(sb, kdc, tmp_path, principal, keytab, "-C", "-t", name, "-o", "beginning",
                "-c", str(count), "-e", "-q", "-X", f"group.id=krb-{uuid.uuid4().hex[:6]}")


def read_all(sb, name: str, count: int) -> list[bytes]:
    import confluent_kafka
    consumer = confluent_kafka.Consumer({**security.ck_config(sb, security.admin_login()),
                                         "group.id": "compat-unused",
                                         "auto.offset.reset": "earliest"})
    consumer.assign([confluent_kafka.TopicPartition(name, 0, 0)])
    got = []
    try:
        for _ in range(60):
            msg = consumer.poll(0.5)
            if msg is not None and msg.error() is None:
                got.append(msg.value())
            if len(got) >= count:
                break
    finally:
        consumer.close()
    return got


# ----------------------------------------------------------------------------- cases

def test_kcat_produces_and_consumes_with_a_keytab(sb, kdc, tmp_path):
    """librdkafka kinits from alice's keytab, gets a ticket for kafka/127.0.0.1 and logs
    in: alice@SLUICE.TEST is User:alice (DEFAULT rule), whose ACLs allow krb- topics."""
    name = topic()
    create_topics(sb, name)
    keytab = kdc.keytab("alice")
    done = kcat_produce(sb, kdc, tmp_path, "alice", keytab, name, ["k1", "k2", "k3"])
    assert done.returncode == 0, done.stderr
    got = kcat_consume(sb, kdc, tmp_path, "alice", keytab, name, 3)
    assert got.returncode == 0, got.stderr
    assert got.stdout.split() == ["k1", "k2", "k3"]


def test_java_console_producer_with_krb5_login_module(sb, kdc, log4j, tmp_path):
    name = topic()
    create_topics(sb, name)
    props = security.write_properties(tmp_path / "bob.properties", {
        "security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "GSSAPI",
        "sasl.kerberos.service.name": "kafka",
        "sasl.jaas.config": krb5_jaas(kdc.keytab("bob"), kdc.principal("bob"))})
    done = security.java_tool(JARS_DIR, log4j, "org.apache.kafka.tools.ConsoleProducer",
                              "--bootstrap-server", sb.bootstrap_for("SASL_PLAINTEXT"),
                              "--topic", name, "--producer.config", str(props),
                              "--producer-property", "acks=all", input="j1\nj2\n", timeout=90,
                              jvm_properties=java_kerberos(kdc, tmp_path))
    assert done.returncode == 0, done.stderr
    assert read_all(sb, name, 2) == [b"j1", b"j2"]


def test_principal_to_local_rules_name_the_user(sb, kdc, tmp_path):
    """etl/batch@SLUICE.TEST becomes User:etl-batch by RULE:[2:$1-$2](etl-.*): it may
    write krb- topics (its ACL); carol (DEFAULT rule, User:carol, no ACL) may not."""
    name = topic()
    create_topics(sb, name)
    done = kcat_produce(sb, kdc, tmp_path, "etl/batch", kdc.keytab("etl/batch"), name, ["e1"])
    assert done.returncode == 0, done.stderr
    assert read_all(sb, name, 1) == [b"e1"]
    refused = kcat_produce(sb, kdc, tmp_path, "carol", kdc.keytab("carol"), name, ["c1"])
    assert refused.returncode != 0 or "authoriz" in refused.stderr.lower(), refused.stderr
    assert "authoriz" in refused.stderr.lower(), refused.stderr


def gssapi_first_step(sb, token: bytes):
    """SaslHandshake(GSSAPI) and the first SaslAuthenticate on a new connection: the
    broker's answer and the connection."""
    from kafka.protocol.sasl import SaslAuthenticateRequest, SaslHandshakeRequest
    conn = RawConnection(sb, "SASL_PLAINTEXT")
    assert conn.call(SaslHandshakeRequest(mechanism="GSSAPI"), 1).error_code == 0
    return conn.call(SaslAuthenticateRequest(auth_bytes=token), 1), conn


def alice_token(kdc, tmp_path: Path, faketime: dict[str, str] | None = None) -> bytes:
    """alice's first GSSAPI token for kafka/127.0.0.1 (kinit from her keytab, then the
    ctypes initiator), made in a process of its own, with its clock set by `faketime`."""
    env = {**kdc.env, "KRB5CCNAME": f"FILE:{tmp_path}/{uuid.uuid4().hex}.cc",
           "PYTHONPATH": str(Path(__file__).resolve().parent), **(faketime or {})}
    kinit = subprocess.run(["kinit", "-k", "-t", str(kdc.keytab("alice")), "alice"], env=env,
                           capture_output=True, text=True, timeout=30)
    assert kinit.returncode == 0, kinit.stderr
    made = subprocess.run([sys.executable, "-c", "import gss_client; "
                           "print(gss_client.first_token('kafka@127.0.0.1').hex())"],
                          env=env, capture_output=True, text=True, timeout=30)
    assert made.returncode == 0, made.stderr
    return bytes.fromhex(made.stdout.strip())


def test_a_replayed_ap_req_is_refused(sb, kdc, tmp_path):
    """Someone who recorded a client's first GSSAPI token (its AP-REQ: ticket and
    authenticator) sends it again on a new connection: the broker's replay cache knows
    the authenticator, so the second use fails authentication (the first was taken and
    answered with the broker's AP-REP)."""
    token = alice_token(kdc, tmp_path)
    first, conn = gssapi_first_step(sb, token)
    with conn:
        assert first.error_code == 0, first.error_message
        assert len(first.auth_bytes) > 0  # the AP-REP: mutual authentication
    again, conn = gssapi_first_step(sb, token)
    with conn:
        assert again.error_code == SASL_AUTHENTICATION_FAILED
        conn.read_until_closed()
    fresh, conn = gssapi_first_step(sb, alice_token(kdc, tmp_path))
    with conn:
        assert fresh.error_code == 0, fresh.error_message


def test_a_ticket_expired_by_the_brokers_clock_is_refused(sb, kdc, tmp_path):
    """A client whose clock (and KDC's) is two days behind the broker's gets a ticket
    that ended a day and a half ago by the broker's clock (10 h tickets): the broker
    refuses it; a ticket of the right time is taken. (MIT's clients never send a ticket
    expired by their own clock, so the expired ticket reaches the broker only this way.)"""
    behind = kdc.faketime_env("2d")
    with kdc.clock_behind("2d"):
        late = alice_token(kdc, tmp_path, faketime=behind)
    refused, conn = gssapi_first_step(sb, late)
    with conn:
        assert refused.error_code == SASL_AUTHENTICATION_FAILED
        conn.read_until_closed()
    on_time, conn = gssapi_first_step(sb, alice_token(kdc, tmp_path))
    with conn:
        assert on_time.error_code == 0, on_time.error_message


def test_tickets_the_broker_cannot_read_are_refused(sb, kdc, tmp_path):
    """A ticket for a service whose key the broker lacks (other/127.0.0.1), and a ticket
    for kafka/127.0.0.1 once its key changed at the KDC (the broker's keytab is stale),
    both fail authentication; the broker goes on serving good logins."""
    name = topic()
    create_topics(sb, name)
    keytab = kdc.keytab("alice")
    other = kcat_produce(sb, kdc, tmp_path, "alice", keytab, name, ["x"], service="other")
    assert other.returncode != 0
    assert "authentication" in other.stderr.lower(), other.stderr
    good = kcat_produce(sb, kdc, tmp_path, "alice", keytab, name, ["after"])
    assert good.returncode == 0, good.stderr
    assert read_all(sb, name, 1) == [b"after"]
    # Last in the module: the broker's own key changes at the KDC.
    kdc.new_key(SERVICE)
    stale = kcat_produce(sb, kdc, tmp_path, "alice", keytab, name, ["y"])
    assert stale.returncode != 0
    assert "authentication" in stale.stderr.lower(), stale.stderr
