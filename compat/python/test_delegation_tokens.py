"""Delegation tokens (KIP-48) as users see them: `kafka-delegation-tokens` creates,
describes, renews and expires them; a client logs in with one (SCRAM with
`tokenauth=true`: the token id as user name, the HMAC as password) and acts with its
owner's rights; the refusals come with Kafka's error codes.

One broker for the module (security.SecureBroker, as test_security.py) with
`delegation.token.secret.key` set and expired tokens swept every second. Raw requests are
built from Kafka 4.4's own message definitions (compat/python/kafka44).

COMPAT_TARGET=kafka runs the same cases against Apache Kafka 4.4; run the file alone then.
"""

from __future__ import annotations

import base64
import os
import re
import time
import uuid
from pathlib import Path

import pytest

import brokers
import security
from apache_kafka import DEFAULT_JARS_DIR
from certs import make_certs
from kafka44 import (CreateDelegationTokenRequest as Create,
                     DescribeDelegationTokenRequest as Describe,
                     ExpireDelegationTokenRequest as Expire, RenewDelegationTokenRequest as Renew)
from security import RawConnection, acl, create_topics, grant, sasl

SASL_AUTHENTICATION_FAILED = 58
DELEGATION_TOKEN_NOT_FOUND = 62
DELEGATION_TOKEN_OWNER_MISMATCH = 63
DELEGATION_TOKEN_REQUEST_NOT_ALLOWED = 64
DELEGATION_TOKEN_AUTHORIZATION_FAILED = 65
INVALID_PRINCIPAL_TYPE = 67

SECRET = "compat-delegation-token-secret"
JARS_DIR = Path(os.environ.get("KAFKA_JARS_DIR") or DEFAULT_JARS_DIR)


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return make_certs(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="module")
def tokens(tmp_path_factory, certs):
    sb = security.SecureBroker(tmp_path_factory.mktemp(f"{brokers.target()}-tokens"), certs,
                               **{"delegation.token.secret.key": SECRET,
                                  "delegation.token.expiry.check.interval.ms": "1000"})
    sb.start()
    grant(sb, acl("User:alice", "TOPIC", "alice-", "ALL", pattern="PREFIXED"),
          acl("User:alice", "GROUP", "alice-", "ALL", pattern="PREFIXED"),
          acl("User:kate", "TOPIC", "kate-", "ALL", pattern="PREFIXED"))
    try:
        yield sb
    finally:
        code = sb.stop()
        assert code in brokers.CLEAN_EXIT[sb.kind], f"{sb.kind} exited with {code}"


@pytest.fixture(scope="module")
def log4j(tmp_path_factory):
    return security.tools_log4j(tmp_path_factory)


# ----------------------------------------------------------------------------- raw helpers

def scram_login(conn: RawConnection, user: str, password: str, extensions: str = "",
                mechanism: str = "SCRAM-SHA-512"):
    """SaslHandshake and the SCRAM exchange; the last SaslAuthenticate answer."""
    from kafka.protocol.sasl import SaslAuthenticateRequest, SaslHandshakeRequest
    assert conn.call(SaslHandshakeRequest(mechanism=mechanism), 1).error_code == 0
    nonce = uuid.uuid4().hex
    first = conn.call(SaslAuthenticateRequest(
        auth_bytes=security.scram_client_first(user, nonce, extensions)), 1)
    if first.error_code:
        return first
    return conn.call(SaslAuthenticateRequest(auth_bytes=security.scram_client_final(
        mechanism, user, password, nonce, first.auth_bytes, extensions)), 1)


def logged_in(sb, user: str) -> RawConnection:
    conn = RawConnection(sb, "SASL_PLAINTEXT")
    assert scram_login(conn, user, security.password_of(user)).error_code == 0
    return conn


def token_login(sb, token_id: str, hmac: bytes):
    """A SCRAM login with a token on a new connection: (the answer, the connection)."""
    conn = RawConnection(sb, "SASL_PLAINTEXT")
    answer = scram_login(conn, token_id, base64.b64encode(hmac).decode(), ",tokenauth=true")
    return answer, conn


def create(conn, renewers=(), owner: str | None = None, max_lifetime_ms: int = -1):
    """CreateDelegationToken; once made, waits until the broker serves the token (Kafka
    answers when the controller has committed it, a moment before its broker has it)."""
    renewers = [Create.CreatableRenewers(principal_type=t, principal_name=n)
                for t, n in (r.split(":", 1) for r in renewers)]
    made = conn.call(Create(owner_principal_type="User" if owner else None,
                            owner_principal_name=owner, renewers=renewers,
                            max_lifetime_ms=max_lifetime_ms), 3)
    deadline = time.monotonic() + 10
    while made.error_code == 0 and made.token_id not in described(conn, [made.principal_name]):
        assert time.monotonic() < deadline, f"token {made.token_id} never described"
        time.sleep(0.05)
    return made


def renew(conn, hmac: bytes, period: int = -1):
    return conn.call(Renew(hmac=hmac, renew_period_ms=period), 2)


def expire(conn, hmac: bytes, period: int = -1):
    return conn.call(Expire(hmac=hmac, expiry_time_period_ms=period), 2)


def described(conn, owners=None) -> dict[str, object]:
    if owners is not None:
        owners = [Describe.DescribeDelegationTokenOwner(principal_type="User", principal_name=o)
                  for o in owners]
    response = conn.call(Describe(owners=owners), 3)
    assert response.error_code == 0, response
    return {t.token_id: t for t in response.tokens}


# ----------------------------------------------------------------------------- the tool

def tool(sb, log4j, tmp_path: Path, login, *args: str):
    props = security.write_properties(tmp_path / f"{uuid.uuid4().hex}.properties",
                                      security.java_config(sb, login))
    return security.java_tool(JARS_DIR, log4j, "org.apache.kafka.tools.DelegationTokenCommand",
                              "--bootstrap-server", sb.bootstrap_for(login.listener),
                              "--command-config", str(props), *args)


def test_the_tool_creates_describes_renews_and_expires_a_token(tokens, log4j, tmp_path):
    admin = security.admin_login()
    made = tool(tokens, log4j, tmp_path, admin, "--create", "--max-life-time-period", "-1",
                "--renewer-principal", "User:bob")
    assert made.returncode == 0, made
    token_id = re.search(r"Created delegation token with tokenId : (\S+)", made.stdout).group(1)
    row = next(line for line in made.stdout.splitlines() if line.startswith(token_id))
    hmac = row.split()[1]
    assert "User:admin" in row and "[User:bob]" in row, made.stdout

    # Without --owner-principal the tool asks about an empty list of owners: no tokens.
    listed = tool(tokens, log4j, tmp_path, admin, "--describe", "--owner-principal", "User:admin")
    assert listed.returncode == 0, listed
    assert any(line.startswith(f"{token_id} ") and hmac in line and "[User:bob]" in line
               for line in listed.stdout.splitlines()), listed.stdout

    # bob, a renewer, renews it; the tool prints the new expiry
    renewed = tool(tokens, log4j, tmp_path, sasl("SASL_PLAINTEXT", "bob"), "--renew",
                   "--hmac", hmac, "--renew-time-period", "-1")
    assert renewed.returncode == 0, renewed
    assert "Completed renew operation. New expiry date : " in renewed.stdout, renewed.stdout

    gone = tool(tokens, log4j, tmp_path, admin, "--expire", "--hmac", hmac,
                "--expiry-time-period", "-1")
    assert gone.returncode == 0, gone
    assert "Completed expire operation. New expiry date : " in gone.stdout, gone.stdout
    after = tool(tokens, log4j, tmp_path, admin, "--describe", "--owner-principal", "User:admin")
    assert token_id not in after.stdout, after.stdout


def test_a_token_logs_in_with_its_owners_rights(tokens, log4j, tmp_path):
    """alice makes a token for herself; the Java console producer logs in with it
    (ScramLoginModule tokenauth=true) and writes to a topic only alice may write."""
    with logged_in(tokens, "alice") as conn:
        made = create(conn)
    assert made.error_code == 0, made
    assert (made.principal_type, made.principal_name) == ("User", "alice")
    assert made.issue_timestamp_ms < made.expiry_timestamp_ms < made.max_timestamp_ms
    topic = f"alice-token-{uuid.uuid4().hex[:8]}"
    create_topics(tokens, topic)
    config = {"security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "SCRAM-SHA-256",
              "sasl.jaas.config": (
                  'org.apache.kafka.common.security.scram.ScramLoginModule required '
                  f'username="{made.token_id}" '
                  f'password="{base64.b64encode(made.hmac).decode()}" tokenauth="true";')}
    props = security.write_properties(tmp_path / "token.properties", config)
    produced = security.java_tool(
        JARS_DIR, log4j, "org.apache.kafka.tools.ConsoleProducer",
        "--bootstrap-server", tokens.bootstrap_for("SASL_PLAINTEXT"), "--topic", topic,
        "--command-config", str(props), input="one\ntwo\nthree\n")
    assert produced.returncode == 0, produced
    assert [v for _, _, v in security.ck_read(tokens, sasl("SASL_PLAINTEXT", "alice"), topic, 3)] \
        == [b"one", b"two", b"three"]

    # Logged in with a token, a client may not manage tokens.
    answer, conn = token_login(tokens, made.token_id, made.hmac)
    with conn:
        assert answer.error_code == 0
        assert create(conn).error_code == DELEGATION_TOKEN_REQUEST_NOT_ALLOWED
        assert conn.call(Describe(owners=None), 3).error_code == DELEGATION_TOKEN_REQUEST_NOT_ALLOWED


def test_who_may_renew_describe_and_make_tokens(tokens):
    with logged_in(tokens, "alice") as alice, logged_in(tokens, "bob") as bob, \
            logged_in(tokens, "erin") as erin:
        made = create(alice, renewers=["User:bob"])
        assert made.error_code == 0, made
        # the owner and a renewer may renew; nobody else; a wrong HMAC is no token
        assert renew(erin, made.hmac).error_code == DELEGATION_TOKEN_OWNER_MISMATCH
        assert renew(bob, made.hmac).error_code == 0
        renewed = renew(alice, made.hmac, period=60_000)
        assert renewed.error_code == 0
        assert 0 < renewed.expiry_timestamp_ms - time.time() * 1000 <= 60_000
        assert renew(alice, os.urandom(64)).error_code == DELEGATION_TOKEN_NOT_FOUND
        assert expire(erin, made.hmac).error_code == DELEGATION_TOKEN_OWNER_MISMATCH
        # who sees it: owner and renewer, not a stranger; owners=[] lists nothing
        assert made.token_id in described(alice)
        seen = described(bob, owners=["alice"])[made.token_id]
        assert [(r.principal_type, r.principal_name) for r in seen.renewers] == [("User", "bob")]
        assert seen.hmac == made.hmac
        assert made.token_id not in described(erin)
        assert described(alice, owners=[]) == {}
        # renewers are users; a token for someone else needs CreateTokens on them
        assert create(alice, renewers=["Group:g"]).error_code == INVALID_PRINCIPAL_TYPE
        assert create(erin, owner="kate").error_code == DELEGATION_TOKEN_AUTHORIZATION_FAILED
    with logged_in(tokens, "admin") as admin:
        for_kate = create(admin, owner="kate")
        assert for_kate.error_code == 0, for_kate
        assert (for_kate.principal_name, for_kate.token_requester_principal_name) == ("kate", "admin")


def test_no_token_requests_without_authentication(tokens):
    """PLAINTEXT (nobody proved who they are): every token request refused."""
    with RawConnection(tokens, "PLAINTEXT") as conn:
        assert create(conn).error_code == DELEGATION_TOKEN_REQUEST_NOT_ALLOWED
        assert renew(conn, b"x" * 64).error_code == DELEGATION_TOKEN_REQUEST_NOT_ALLOWED
        assert expire(conn, b"x" * 64).error_code == DELEGATION_TOKEN_REQUEST_NOT_ALLOWED
        assert conn.call(Describe(owners=None), 3).error_code == DELEGATION_TOKEN_REQUEST_NOT_ALLOWED


def test_expired_tokens_no_longer_log_in(tokens):
    """A token expired on request, or past its maximum lifetime, logs in no more and is
    swept from the metadata (delegation.token.expiry.check.interval.ms=1000)."""
    with logged_in(tokens, "alice") as alice:
        short = create(alice, max_lifetime_ms=2000)
        ended = create(alice)
        assert short.error_code == ended.error_code == 0
        assert short.max_timestamp_ms - short.issue_timestamp_ms == 2000
        answer, conn = token_login(tokens, short.token_id, short.hmac)
        conn.close()
        assert answer.error_code == 0
        assert expire(alice, ended.hmac).error_code == 0
        answer, conn = token_login(tokens, ended.token_id, ended.hmac)
        conn.close()
        assert answer.error_code == SASL_AUTHENTICATION_FAILED
        deadline = time.monotonic() + 15
        while short.token_id in described(alice) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert short.token_id not in described(alice)
        assert renew(alice, short.hmac).error_code == DELEGATION_TOKEN_NOT_FOUND
        answer, conn = token_login(tokens, short.token_id, short.hmac)
        conn.close()
        assert answer.error_code == SASL_AUTHENTICATION_FAILED


def test_a_replayed_token_login_is_refused(tokens):
    """Someone who recorded a token login replays the client's messages on a new
    connection: the server's nonce differs, so the recorded proof fails."""
    from kafka.protocol.sasl import SaslAuthenticateRequest, SaslHandshakeRequest
    with logged_in(tokens, "alice") as alice:
        made = create(alice)
        assert made.error_code == 0
    password = base64.b64encode(made.hmac).decode()
    nonce = uuid.uuid4().hex
    recorded = []
    with RawConnection(tokens, "SASL_PLAINTEXT") as conn:
        assert conn.call(SaslHandshakeRequest(mechanism="SCRAM-SHA-512"), 1).error_code == 0
        first = security.scram_client_first(made.token_id, nonce, ",tokenauth=true")
        server_first = conn.call(SaslAuthenticateRequest(auth_bytes=first), 1).auth_bytes
        final = security.scram_client_final("SCRAM-SHA-512", made.token_id, password, nonce,
                                            server_first, ",tokenauth=true")
        assert conn.call(SaslAuthenticateRequest(auth_bytes=final), 1).error_code == 0
        recorded = [first, final]
    with RawConnection(tokens, "SASL_PLAINTEXT") as replay:
        assert replay.call(SaslHandshakeRequest(mechanism="SCRAM-SHA-512"), 1).error_code == 0
        again = replay.call(SaslAuthenticateRequest(auth_bytes=recorded[0]), 1)
        assert again.error_code == 0 and again.auth_bytes != server_first
        answer = replay.call(SaslAuthenticateRequest(auth_bytes=recorded[1]), 1)
        assert answer.error_code == SASL_AUTHENTICATION_FAILED
        replay.read_until_closed()
