"""A small OAuth identity provider for the OAUTHBEARER cases, on 127.0.0.1.

    GET  /jwks    the published verification keys (RSA, RS256), as a JWKS document
    POST /token   the client-credentials grant (RFC 6749 §4.4): client id and secret in
                  HTTP Basic auth or in the form; answers a signed JWT whose `sub` is
                  the client id, `aud` the audience, `iss` this IdP

Keys are made here (cryptography); `rotate()` publishes a new key and withdraws the old
one, `sign()` makes any token a case needs (another key, no kid, odd claims). Every
request is counted, so a case can tell when a broker fetched the keys.
"""

from __future__ import annotations

import base64
import json
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _uint(n: int) -> str:
    return b64url(n.to_bytes((n.bit_length() + 7) // 8, "big"))


class Key:
    def __init__(self, kid: str):
        self.kid = kid
        self.private = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def jwk(self) -> dict:
        numbers = self.private.public_key().public_numbers()
        return {"kty": "RSA", "kid": self.kid, "use": "sig", "alg": "RS256",
                "n": _uint(numbers.n), "e": _uint(numbers.e)}


def unsecured_token(claims: dict) -> str:
    """A token as Kafka's unsecured login handler makes one: alg none, no signature."""
    return (b64url(json.dumps({"alg": "none"}).encode()) + "."
            + b64url(json.dumps(claims).encode()) + ".")


class IdP:
    AUDIENCE = "kafka"

    def __init__(self, clients: dict[str, str], lifetime_s: int = 300):
        self.clients = dict(clients)
        self.lifetime_s = lifetime_s
        self._serial = 0
        self.key = self._new_key()
        self.published = [self.key]
        self.requests = {"/jwks": 0, "/token": 0}
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def _new_key(self) -> Key:
        self._serial += 1
        return Key(f"compat-key-{self._serial}")

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def jwks_url(self) -> str:
        return f"{self.issuer}/jwks"

    @property
    def token_url(self) -> str:
        return f"{self.issuer}/token"

    def start(self) -> "IdP":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def rotate(self) -> Key:
        """Publish a new signing key and withdraw the old one."""
        self.key = self._new_key()
        self.published = [self.key]
        return self.key

    # ---------------------------------------------------------------------- tokens

    def claims(self, sub: str, lifetime_s: int | None = None, **extra) -> dict:
        now = int(time.time())
        claims = {"sub": sub, "aud": self.AUDIENCE, "iss": self.issuer, "iat": now,
                  "exp": now + (lifetime_s if lifetime_s is not None else self.lifetime_s),
                  "scope": "kafka"}
        claims.update(extra)
        return {k: v for k, v in claims.items() if v is not None}

    def sign(self, claims: dict, key: Key | None = None, kid: str | None = "key's") -> str:
        key = key or self.key
        header = {"alg": "RS256", "typ": "JWT"}
        if kid == "key's":
            header["kid"] = key.kid
        elif kid is not None:
            header["kid"] = kid
        signing_input = (b64url(json.dumps(header).encode()) + "."
                         + b64url(json.dumps(claims).encode()))
        signature = key.private.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return signing_input + "." + b64url(signature)

    def token(self, sub: str, lifetime_s: int | None = None, **extra) -> str:
        return self.sign(self.claims(sub, lifetime_s, **extra))

    # ---------------------------------------------------------------------- HTTP

    def _handler(self):
        idp = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def _send(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                if self.path != "/jwks":
                    return self._send(404, {"error": "not_found"})
                idp.requests["/jwks"] += 1
                self._send(200, {"keys": [k.jwk() for k in idp.published]})

            def do_POST(self):
                if self.path != "/token":
                    return self._send(404, {"error": "not_found"})
                idp.requests["/token"] += 1
                length = int(self.headers.get("Content-Length") or 0)
                form = urllib.parse.parse_qs(self.rfile.read(length).decode())
                client_id = (form.get("client_id") or [None])[0]
                secret = (form.get("client_secret") or [None])[0]
                auth = self.headers.get("Authorization", "")
                if auth.startswith("Basic "):
                    user, _, password = base64.b64decode(auth[6:]).decode().partition(":")
                    client_id = urllib.parse.unquote(user)
                    secret = urllib.parse.unquote(password)
                if (form.get("grant_type") or [None])[0] != "client_credentials":
                    return self._send(400, {"error": "unsupported_grant_type"})
                if client_id is None or idp.clients.get(client_id) != secret:
                    return self._send(401, {"error": "invalid_client"})
                self._send(200, {"access_token": idp.token(client_id), "token_type": "Bearer",
                                 "expires_in": idp.lifetime_s})

        return Handler
