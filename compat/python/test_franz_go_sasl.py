"""franz-go (github.com/twmb/franz-go 1.22.3, Go) logging in with SASL OAUTHBEARER
(pkg/sasl/oauth) and with a delegation token (pkg/sasl/scram, IsToken: tokenauth=true).

The client is compat/go/saslclient, a franz-go program in its own process: it logs in,
produces, reads the records back and prints what it saw (or the Kafka error it got) as
JSON lines. The brokers are those of test_oauthbearer.py (`sb`: SASL_SSL with Kafka's
unsecured validator, SASL_PLAINTEXT checking RS256 JWTs against the local IdP's JWKS) and
of test_delegation_tokens.py (`tokens`), imported from there with their ACLs.

COMPAT_TARGET=kafka runs the same cases against Apache Kafka 4.4; run the file alone
then (its two brokers are two JVMs).
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

import test_delegation_tokens
import test_oauthbearer
from brokers import die_with_parent
from oauth_idp import Key
from security import create_topics
from test_delegation_tokens import create, expire, logged_in
from test_oauthbearer import topic, unsecured

# The brokers of those modules, as fixtures (module-scoped: this module gets its own).
certs, tokens = test_delegation_tokens.certs, test_delegation_tokens.tokens
idp, sb = test_oauthbearer.idp, test_oauthbearer.sb

GO_DIR = Path(__file__).resolve().parent.parent / "go"
CLIENT_BIN = GO_DIR.parent / ".cache" / "go-bin" / "saslclient"
VALUES = ["v0", "v1", "v2"]
# What the client prints after producing the three records and reading them back.
ROUND_TRIP = {"code": 0, "produced": 3, "consumed": 3, "values": VALUES}


@pytest.fixture(scope="session")
def saslclient() -> Path:
    """compat/go/saslclient, built by compat/setup; built again here if sources changed."""
    r = subprocess.run([str(GO_DIR / "build.sh")], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, f"compat/go/build.sh failed:\n{r.stdout}\n{r.stderr}"
    return CLIENT_BIN


def franz(binary: Path, broker, listener: str, name: str, **login) -> dict:
    """Runs saslclient: produce VALUES to `name`, read them back. Its JSON lines merged
    into one dict, with "code", its exit status."""
    config = {"bootstrap": broker.bootstrap_for(listener), "topic": name,
              "produce": len(VALUES), "consume": True, "timeout_ms": 20000,
              "log_level": os.environ.get("COMPAT_FRANZ_GO_LOG", "info"), **login}
    if "SSL" in listener:
        config["ca_file"] = str(broker.certs.ca)
    r = subprocess.run([str(binary), json.dumps(config)], capture_output=True, text=True,
                       timeout=60, preexec_fn=die_with_parent)
    # What it printed and franz-go's log, shown when a case fails.
    print(config["mechanism"], listener, r.stdout, r.stderr, sep="\n", file=sys.stderr)
    seen = {"code": r.returncode}
    for line in r.stdout.splitlines():
        seen.update(json.loads(line))
    return seen


def oauth(token: str) -> dict:
    return {"mechanism": "OAUTHBEARER", "token": token}


def delegation_token(token_id: str, hmac: bytes) -> dict:
    """franz-go's scram.Auth{User: id, Pass: base64(HMAC), IsToken: true}."""
    return {"mechanism": "SCRAM-SHA-512", "user": token_id, "is_token": True,
            "password": base64.b64encode(hmac).decode()}


def refused(seen: dict) -> bool:
    return seen["code"] == 1 and seen.get("error") == "SASL_AUTHENTICATION_FAILED" \
        and "produced" not in seen


# ----------------------------------------------------------------------------- OAUTHBEARER

def test_unsecured_jwt_principal_is_its_subject(sb, saslclient):
    """An unsecured token for oscar: his oauth- topic round-trips, another is refused by
    ACLs; the same topic with a token for admin (a super user) goes through."""
    name, secret = topic(), topic("secret-")
    create_topics(sb, name, secret)
    assert franz(saslclient, sb, "SASL_SSL", name, **oauth(unsecured("oscar"))) == ROUND_TRIP
    denied = franz(saslclient, sb, "SASL_SSL", secret, **oauth(unsecured("oscar")))
    assert (denied["code"], denied["error"]) == (1, "TOPIC_AUTHORIZATION_FAILED"), denied
    assert franz(saslclient, sb, "SASL_SSL", secret, **oauth(unsecured("admin"))) == ROUND_TRIP


def test_rs256_jwt_from_the_idp(sb, idp, saslclient):
    name = topic()
    create_topics(sb, name)
    token = idp.token("svc-orders")
    assert franz(saslclient, sb, "SASL_PLAINTEXT", name, **oauth(token)) == ROUND_TRIP


@pytest.mark.parametrize("why", ["wrong audience", "signed by another key"])
def test_refused_jwt(sb, idp, saslclient, why):
    """franz-go answers the broker's error challenge with %x01 and reports the
    SASL_AUTHENTICATION_FAILED that follows, with the challenge as its message."""
    name = topic()
    create_topics(sb, name)
    token = (idp.sign(idp.claims("svc-orders", aud="other-cluster")) if why == "wrong audience"
             else idp.sign(idp.claims("svc-orders"), key=Key(idp.key.kid)))
    seen = franz(saslclient, sb, "SASL_PLAINTEXT", name, **oauth(token))
    assert refused(seen), seen
    assert '{"status":"invalid_token"}' in seen["message"], seen


# ----------------------------------------------------------------------------- delegation tokens

def test_delegation_token_acts_with_its_owners_rights(tokens, saslclient):
    """alice's token: her alice- topic round-trips; a kate- topic (kate's alone, by
    test_delegation_tokens.py's ACLs) is refused."""
    with logged_in(tokens, "alice") as alice:
        made = create(alice)
    assert made.error_code == 0, made
    name, kates = topic("alice-"), topic("kate-")
    create_topics(tokens, name, kates)
    login = delegation_token(made.token_id, made.hmac)
    assert franz(saslclient, tokens, "SASL_PLAINTEXT", name, **login) == ROUND_TRIP
    denied = franz(saslclient, tokens, "SASL_PLAINTEXT", kates, **login)
    assert (denied["code"], denied["error"]) == (1, "TOPIC_AUTHORIZATION_FAILED"), denied


def test_expired_and_unknown_delegation_tokens_are_refused(tokens, saslclient):
    name = topic("alice-")
    create_topics(tokens, name)
    with logged_in(tokens, "alice") as alice:
        made = create(alice)
        assert made.error_code == 0, made
        assert expire(alice, made.hmac).error_code == 0
    for token_id, hmac in ((made.token_id, made.hmac), (uuid.uuid4().hex, os.urandom(64))):
        seen = franz(saslclient, tokens, "SASL_PLAINTEXT", name,
                     **delegation_token(token_id, hmac))
        assert refused(seen), seen
        assert seen["message"].endswith(
            "invalid credentials with SASL mechanism SCRAM-SHA-512"), seen
