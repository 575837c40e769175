"""OAUTHBEARER as users meet it: Kafka's unsecured tokens (its default handlers, for
tests) and real validation of JWTs signed by an identity provider, with real clients.

One broker for the module (security.SecureBroker, as test_security.py) with OAUTHBEARER
beside PLAIN and SCRAM:

    SASL_SSL         Kafka's default (unsecured) validator: `"alg":"none"` tokens
    SASL_PLAINTEXT   OAuthBearerValidatorCallbackHandler: RS256 JWTs checked against the
                     keys of a local IdP's JWKS endpoint (oauth_idp.py), audience "kafka",
                     issuer the IdP

Clients: librdkafka (confluent-kafka) with its unsecured JWT and with
`sasl.oauthbearer.method=oidc` against the IdP's token endpoint; the Java console
producer with Kafka's unsecured login module and with OAuthBearerLoginCallbackHandler;
kafka-python with a token provider; raw SaslAuthenticate for what clients never send.

COMPAT_TARGET=kafka runs the same cases against Apache Kafka 4.4 (it must be told which
OAuth URLs it may reach: org.apache.kafka.sasl.oauthbearer.allowed.urls).
"""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

import confluent_kafka
import pytest
from kafka import KafkaConsumer, KafkaProducer
from kafka.net.sasl.oauth import AbstractTokenProvider

import brokers
import security
from apache_kafka import DEFAULT_JARS_DIR
from certs import make_certs
from oauth_idp import IdP, unsecured_token
from security import RawConnection, acl, create_topics, grant

SASL_AUTHENTICATION_FAILED = 58
INVALID_TOKEN = b'{"status":"invalid_token"}'
JARS_DIR = Path(os.environ.get("KAFKA_JARS_DIR") or DEFAULT_JARS_DIR)

LOGIN_MODULE = "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule"
VALIDATOR = "org.apache.kafka.common.security.oauthbearer.OAuthBearerValidatorCallbackHandler"
LOGIN_HANDLER = "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginCallbackHandler"
CLIENTS = {"svc-orders": "orders-secret"}


@pytest.fixture(scope="module")
def idp():
    server = IdP(CLIENTS).start()
    try:
        yield server
    finally:
        server.stop()


def allowed_urls(idp: IdP) -> dict[str, str]:
    """What a Kafka 4.x JVM must be told before it fetches keys or tokens."""
    return {"org.apache.kafka.sasl.oauthbearer.allowed.urls": f"{idp.jwks_url},{idp.token_url}"}


@pytest.fixture(scope="module")
def sb(tmp_path_factory, idp):
    certs = make_certs(tmp_path_factory.mktemp("certs"))
    broker = security.SecureBroker(
        tmp_path_factory.mktemp(f"{brokers.target()}-oauth"), certs,
        **{"sasl.enabled.mechanisms": ",".join(security.MECHANISMS + ("OAUTHBEARER",)),
           "listener.name.sasl_ssl.oauthbearer.sasl.jaas.config":
               f'{LOGIN_MODULE} required unsecuredLoginStringClaim_sub="admin";',
           "listener.name.sasl_plaintext.oauthbearer.sasl.jaas.config":
               f'{LOGIN_MODULE} required unsecuredLoginStringClaim_sub="admin";',
           "listener.name.sasl_plaintext.oauthbearer.sasl.server.callback.handler.class": VALIDATOR,
           "sasl.oauthbearer.jwks.endpoint.url": idp.jwks_url,
           "sasl.oauthbearer.expected.audience": IdP.AUDIENCE,
           "sasl.oauthbearer.expected.issuer": idp.issuer})
    if broker.kind == "kafka":
        broker.broker.jvm_properties = allowed_urls(idp)
    broker.start()
    # The principals of these cases may use the oauth- topics and groups, nothing else.
    grant(broker, *(binding for principal in ("User:oscar", "User:svc-orders") for binding in (
        acl(principal, "TOPIC", "oauth-", "ALL", pattern="PREFIXED"),
        acl(principal, "GROUP", "oauth-", "ALL", pattern="PREFIXED"))))
    try:
        yield broker
    finally:
        code = broker.stop()
        assert code in brokers.CLEAN_EXIT[broker.kind], f"{broker.kind} exited with {code}"


@pytest.fixture(scope="module")
def log4j(tmp_path_factory):
    return security.tools_log4j(tmp_path_factory)


def topic(prefix: str = "oauth-") -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


# ----------------------------------------------------------------------------- clients

class Tokens(AbstractTokenProvider):
    """kafka-python's token provider: a new token from `make` at each login."""

    def __init__(self, make):
        super().__init__()
        self.make = make

    def token(self):
        return self.make()


def unsecured(sub: str, lifetime_s: int = 300) -> str:
    now = int(time.time())
    return unsecured_token({"sub": sub, "iat": now, "exp": now + lifetime_s})


def kp_oauth(sb, listener: str, make_token) -> dict:
    c = {"bootstrap_servers": sb.bootstrap_for(listener), "security_protocol": listener,
         "sasl_mechanism": "OAUTHBEARER", "sasl_oauth_token_provider": Tokens(make_token),
         "request_timeout_ms": 20000}
    if "SSL" in listener:
        c.update(ssl_cafile=str(sb.certs.ca), ssl_check_hostname=True)
    return c


def ck_oauth(sb, listener: str, **settings) -> dict:
    c = {"bootstrap.servers": sb.bootstrap_for(listener), "security.protocol": listener,
         "sasl.mechanism": "OAUTHBEARER", **settings}
    if "SSL" in listener:
        c["ssl.ca.location"] = str(sb.certs.ca)
    return c


def ck_produce(config: dict, name: str, values: list[bytes]) -> None:
    errors = []
    producer = confluent_kafka.Producer({**config, "acks": "all"})
    for v in values:
        producer.produce(name, v, on_delivery=lambda err, msg: err and errors.append(err))
    assert producer.flush(30) == 0, "records still undelivered after 30 s"
    assert not errors, errors


def ck_consume(config: dict, name: str, count: int, timeout: float = 30.0) -> list[bytes]:
    consumer = confluent_kafka.Consumer({**config, "group.id": f"oauth-{uuid.uuid4().hex[:6]}",
                                         "auto.offset.reset": "earliest"})
    consumer.subscribe([name])
    got, deadline = [], time.monotonic() + timeout
    try:
        while len(got) < count and time.monotonic() < deadline:
            msg = consumer.poll(1.0)
            if msg is not None and msg.error() is None:
                got.append(msg.value())
            elif msg is not None and msg.error().fatal():
                raise AssertionError(msg.error())
    finally:
        consumer.close()
    return got


def console_producer(sb, log4j, tmp_path: Path, listener: str, config: dict, name: str,
                     lines: list[str], jvm_properties=None):
    props = {"security.protocol": listener, "sasl.mechanism": "OAUTHBEARER", **config}
    if "SSL" in listener:
        props.update({"ssl.truststore.type": "PEM",
                      "ssl.truststore.location": str(sb.certs.ca)})
    path = security.write_properties(tmp_path / f"{uuid.uuid4().hex}.properties", props)
    return security.java_tool(JARS_DIR, log4j, "org.apache.kafka.tools.ConsoleProducer",
                              "--bootstrap-server", sb.bootstrap_for(listener),
                              "--topic", name, "--producer.config", str(path),
                              "--producer-property", "acks=all",
                              input="".join(f"{line}\n" for line in lines), timeout=90,
                              jvm_properties=jvm_properties)


def read_all(sb, name: str, count: int) -> list[bytes]:
    """The topic's records, read by the super user."""
    return ck_consume(security.ck_config(sb, security.admin_login()), name, count)


# ----------------------------------------------------------------------------- raw

def initial_response(token: str, authzid: str = "", extensions: str = "") -> bytes:
    a = f"a={authzid}" if authzid else ""
    return f"n,{a},\x01auth=Bearer {token}{extensions}\x01\x01".encode()


def bearer_login(sb, listener: str, response: bytes):
    """SaslHandshake OAUTHBEARER, then the initial response: (answer, connection)."""
    from kafka.protocol.sasl import SaslAuthenticateRequest, SaslHandshakeRequest
    conn = RawConnection(sb, listener)
    assert conn.call(SaslHandshakeRequest(mechanism="OAUTHBEARER"), 1).error_code == 0
    return conn.call(SaslAuthenticateRequest(auth_bytes=response), 1), conn


def assert_refused(sb, listener: str, token: str, what: str) -> None:
    """Kafka's way to refuse a token: the error challenge, the client's \\x01, then
    SASL_AUTHENTICATION_FAILED with the challenge as the message, and the close."""
    from kafka.protocol.sasl import SaslAuthenticateRequest
    first, conn = bearer_login(sb, listener, initial_response(token))
    with conn:
        assert (first.error_code, first.auth_bytes) == (0, INVALID_TOKEN), what
        last = conn.call(SaslAuthenticateRequest(auth_bytes=b"\x01"), 1)
        assert last.error_code == SASL_AUTHENTICATION_FAILED, what
        assert last.error_message == INVALID_TOKEN.decode(), what
        conn.read_until_closed()


def metadata_ok(conn) -> bool:
    from kafka.protocol.metadata import MetadataRequest
    return conn.call(MetadataRequest[1](topics=[]), 1).brokers is not None


# ----------------------------------------------------------------------------- cases

def test_unsecured_tokens_with_librdkafka_and_kafka_python(sb):
    """librdkafka's unsecured JWT writes, kafka-python with its own unsecured token reads,
    both as User:oscar: the oauth- topic is theirs, any other is refused by its ACLs."""
    name = topic()
    create_topics(sb, name, "secret-" + name)
    librdkafka = ck_oauth(sb, "SASL_SSL", **{"enable.sasl.oauthbearer.unsecure.jwt": True,
                                             "sasl.oauthbearer.config": "principal=oscar"})
    ck_produce(librdkafka, name, [b"a", b"b", b"c"])
    consumer = KafkaConsumer(name, auto_offset_reset="earliest", consumer_timeout_ms=20000,
                             group_id=f"oauth-{uuid.uuid4().hex[:6]}",
                             **kp_oauth(sb, "SASL_SSL", lambda: unsecured("oscar")))
    try:
        got = [r.value for r in consumer][:3]
    finally:
        consumer.close()
    assert got == [b"a", b"b", b"c"]
    producer = KafkaProducer(**kp_oauth(sb, "SASL_SSL", lambda: unsecured("oscar")))
    try:
        with pytest.raises(Exception) as refused:
            producer.send("secret-" + name, b"x").get(timeout=20)
        assert "TopicAuthorizationFailed" in type(refused.value).__name__, refused.value
    finally:
        producer.close()


def test_java_console_producer_with_kafkas_unsecured_login_module(sb, log4j, tmp_path):
    name = topic()
    create_topics(sb, name)
    jaas = f'{LOGIN_MODULE} required unsecuredLoginStringClaim_sub="oscar";'
    done = console_producer(sb, log4j, tmp_path, "SASL_SSL", {"sasl.jaas.config": jaas},
                            name, ["one", "two"])
    assert done.returncode == 0, done.stderr
    assert read_all(sb, name, 2) == [b"one", b"two"]


def test_librdkafka_oidc_client_credentials(sb, idp):
    """librdkafka fetches a token from the IdP (client credentials) and the broker checks
    its signature with the JWKS keys: User:svc-orders writes and reads its topic."""
    name = topic()
    create_topics(sb, name)
    before = idp.requests["/token"]
    oidc = ck_oauth(sb, "SASL_PLAINTEXT", **{
        "sasl.oauthbearer.method": "oidc",
        "sasl.oauthbearer.client.id": "svc-orders",
        "sasl.oauthbearer.client.secret": CLIENTS["svc-orders"],
        "sasl.oauthbearer.token.endpoint.url": idp.token_url,
        "sasl.oauthbearer.scope": "kafka"})
    ck_produce(oidc, name, [b"x", b"y"])
    assert ck_consume(oidc, name, 2) == [b"x", b"y"]
    assert idp.requests["/token"] > before


def test_java_console_producer_with_oidc_login(sb, idp, log4j, tmp_path):
    name = topic()
    create_topics(sb, name)
    config = {"sasl.login.callback.handler.class": LOGIN_HANDLER,
              "sasl.oauthbearer.token.endpoint.url": idp.token_url,
              "sasl.jaas.config": (f'{LOGIN_MODULE} required clientId="svc-orders" '
                                   f'clientSecret="{CLIENTS["svc-orders"]}" scope="kafka";')}
    done = console_producer(sb, log4j, tmp_path, "SASL_PLAINTEXT", config, name,
                            ["alpha", "beta"], jvm_properties=allowed_urls(idp))
    assert done.returncode == 0, done.stderr
    assert read_all(sb, name, 2) == [b"alpha", b"beta"]


def test_refused_tokens(sb, idp):
    """Each bad token is refused as Kafka refuses it; Sluice's log never holds a token."""
    from oauth_idp import Key
    stranger = Key(idp.key.kid)  # same kid, another key: a forged signature
    now = int(time.time())
    signed_cases = {
        "signed by another key": idp.sign(idp.claims("svc-orders"), key=stranger),
        "wrong audience": idp.sign(idp.claims("svc-orders", aud="other-cluster")),
        "wrong issuer": idp.sign(idp.claims("svc-orders", iss="https://evil.example")),
        "no audience": idp.sign(idp.claims("svc-orders", aud=None)),
        "expired beyond the clock skew": idp.sign(idp.claims("svc-orders", iat=now - 600,
                                                             exp=now - 120)),
        "not valid before a minute from now": idp.sign(idp.claims("svc-orders", nbf=now + 120)),
        "no kid the JWKS knows": idp.sign(idp.claims("svc-orders"), kid="nobody-knows-me"),
        "unsecured token on a validated listener": unsecured("svc-orders"),
        "tampered claims": (lambda t: t.split(".")[0] + "." + unsecured("admin").split(".")[1]
                            + "." + t.split(".")[2])(idp.token("svc-orders")),
    }
    for what, token in signed_cases.items():
        assert_refused(sb, "SASL_PLAINTEXT", token, what)
    unsecured_cases = {
        "expired": unsecured_token({"sub": "oscar", "iat": now - 600, "exp": now - 60}),
        "signed (not alg none)": idp.token("oscar"),
        "no subject": unsecured_token({"iat": now, "exp": now + 60}),
    }
    for what, token in unsecured_cases.items():
        assert_refused(sb, "SASL_SSL", token, what)
    # A good token for another principal than the authorization id asked for.
    answer, conn = bearer_login(sb, "SASL_PLAINTEXT",
                                initial_response(idp.token("svc-orders"), authzid="admin"))
    with conn:
        assert answer.error_code == SASL_AUTHENTICATION_FAILED
        assert "authorization id (admin)" in answer.error_message
        conn.read_until_closed()
    # Not an OAUTHBEARER initial response at all.
    answer, conn = bearer_login(sb, "SASL_PLAINTEXT", b"n,,auth=Bearer x")
    with conn:
        assert answer.error_code == SASL_AUTHENTICATION_FAILED
        assert answer.error_message == ("Authentication failed during authentication due to "
                                        "invalid credentials with SASL mechanism OAUTHBEARER")
        conn.read_until_closed()
    # Still served after all that, and nothing of a token in the broker's log.
    answer, conn = bearer_login(sb, "SASL_PLAINTEXT", initial_response(idp.token("svc-orders")))
    with conn:
        assert answer.error_code == 0 and metadata_ok(conn)
    # Kafka's jose4j puts the refused JWT in its WARN lines; Sluice logs only why.
    if sb.kind == "kafka":
        return
    log = sb.log_file.read_text(errors="replace")
    for token in list(signed_cases.values()) + list(unsecured_cases.values()):
        signature = token.split(".")[-1]
        assert token not in log and (not signature or signature not in log), "a token in the log"


def test_rotated_keys_are_fetched_from_the_jwks_endpoint(sb, idp):
    """The IdP rotates its signing key: a token of the new key is taken once the broker
    has fetched the new key set (it asks when a token names a kid it lacks), and a token
    of the withdrawn key is refused from then on."""
    old_key = idp.key
    old_token = idp.token("svc-orders")
    fetches = idp.requests["/jwks"]
    idp.rotate()
    new_token = idp.token("svc-orders")
    deadline = time.monotonic() + 30
    while True:
        answer, conn = bearer_login(sb, "SASL_PLAINTEXT", initial_response(new_token))
        conn.close()
        if answer.error_code == 0 and answer.auth_bytes == b"":
            break
        assert time.monotonic() < deadline, "a token of the new key never accepted"
        time.sleep(0.5)
    assert idp.requests["/jwks"] > fetches
    assert_refused(sb, "SASL_PLAINTEXT", old_token, f"signed by withdrawn {old_key.kid}")


def test_the_session_ends_when_the_token_expires(sb, idp):
    """SaslAuthenticate's session lifetime is the token's remaining life; a client that
    does not re-authenticate is disconnected at its next request after that."""
    answer, conn = bearer_login(sb, "SASL_PLAINTEXT",
                                initial_response(idp.token("svc-orders", lifetime_s=3)))
    with conn:
        assert answer.error_code == 0
        assert 0 < answer.session_lifetime_ms <= 3000, answer.session_lifetime_ms
        assert metadata_ok(conn)
        time.sleep(answer.session_lifetime_ms / 1000 + 0.5)
        from kafka.protocol.metadata import MetadataRequest
        conn.send(MetadataRequest[1](topics=[]), 1)
        assert conn.read_until_closed() == b""


def test_librdkafka_re_authenticates_with_fresh_tokens(sb, idp):
    """Tokens that live 8 s: librdkafka refreshes them through its oauth_cb and
    re-authenticates before each session ends; 16 s of writes go through unbroken."""
    name = topic()
    create_topics(sb, name)
    issued = []

    def oauth_cb(_config):
        claims = idp.claims("svc-orders", lifetime_s=8)
        issued.append(claims)
        # librdkafka refreshes at 80% of the lifetime it is told: the token's own.
        return idp.sign(claims), float(claims["exp"])

    errors = []
    producer = confluent_kafka.Producer(ck_oauth(sb, "SASL_PLAINTEXT", **{
        "oauth_cb": oauth_cb, "acks": "all", "error_cb": errors.append}))
    delivered = []
    deadline = time.monotonic() + 16
    sent = 0
    while time.monotonic() < deadline:
        producer.produce(name, str(sent).encode(),
                         on_delivery=lambda err, msg: delivered.append(err))
        sent += 1
        producer.poll(0.2)
    assert producer.flush(30) == 0
    assert delivered.count(None) == sent, [e for e in delivered if e is not None][:3]
    assert len(issued) >= 3, f"only {len(issued)} tokens asked for in 16 s"
    assert not errors, errors
