"""A broker with every security feature on, and client settings to reach it.

One broker (Sluice or Apache Kafka, per COMPAT_TARGET) with four listeners:

    SASL_SSL         TLS (server certificate only) + SASL PLAIN / SCRAM-SHA-256 / SCRAM-SHA-512
    SSL              mutual TLS: ssl.client.auth=required; principal from the certificate,
                     mapped by RULE:^CN=(.*?),.*$/$1/ (CN=client-1,O=Acme,C=US -> User:client-1)
    SASL_PLAINTEXT   SASL PLAIN / SCRAM-SHA-256 / SCRAM-SHA-512, no TLS
    PLAINTEXT        no security at all (principal User:ANONYMOUS); not used by the cases,
                     Kafka needs it for inter-broker traffic

and the ACL authorizer on (StandardAuthorizer, allow.everyone.if.no.acl.found=false,
super user User:admin). Both targets get the same server keys; Kafka additionally has
User:ANONYMOUS as a super user, because its broker reaches its own KRaft controller over
the PLAINTEXT CONTROLLER listener and needs ClusterAction there.

SCRAM users are created at format/start time with --add-scram (SEED_SCRAM), PLAIN users
come from the listeners' JAAS configuration (PLAIN_USERS).
"""

from __future__ import annotations

import socket
import ssl
import struct
import subprocess
import time
from dataclasses import dataclass, replace
from pathlib import Path

import confluent_kafka
import confluent_kafka.admin
import kafka
from kafka.admin import KafkaAdminClient

import brokers
from brokers import die_with_parent
from certs import Certs, Identity

LISTENERS = ("SASL_SSL", "SSL", "SASL_PLAINTEXT", "PLAINTEXT")
MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
SCRAM_MECHANISMS = ("SCRAM-SHA-256", "SCRAM-SHA-512")
AUTHORIZER = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
PRINCIPAL_MAPPING = "RULE:^CN=(.*?),.*$/$1/,DEFAULT"

ADMIN_PASSWORD = "admin-secret"


def password_of(user: str) -> str:
    return f"{user}-secret"


# Users with SCRAM credentials from the start (both mechanisms each), one per kind of case
# so that the ACLs of one case never grant anything to another.
SCRAM_USERS = ("admin", "alice", "bob", "dave", "erin", "frank", "gina", "hank", "ivan",
               "judy", "kate", "liam", "seeded")
SEED_SCRAM = tuple(f"{m}=[name={u},password={password_of(u)}]"
                   for u in SCRAM_USERS for m in SCRAM_MECHANISMS)
PLAIN_USERS = {"admin": ADMIN_PASSWORD, "pat": password_of("pat")}

SCRAM_JAAS = "org.apache.kafka.common.security.scram.ScramLoginModule required;"
PLAIN_JAAS = ("org.apache.kafka.common.security.plain.PlainLoginModule required "
              + " ".join(f'user_{u}="{p}"' for u, p in PLAIN_USERS.items()) + ";")


def server_config(certs: Certs, **extra: str) -> dict[str, str]:
    """The security keys of the broker, Kafka's names, the same for both targets."""
    config = {
        "ssl.keystore.type": "PEM",
        "ssl.keystore.location": str(certs.server.pem),
        "ssl.truststore.type": "PEM",
        "ssl.truststore.location": str(certs.ca),
        "listener.name.ssl.ssl.client.auth": "required",
        "ssl.principal.mapping.rules": PRINCIPAL_MAPPING,
        "sasl.enabled.mechanisms": ",".join(MECHANISMS),
        "authorizer.class.name": AUTHORIZER,
        "super.users": "User:admin",
        "allow.everyone.if.no.acl.found": "false",
    }
    for listener in ("sasl_ssl", "sasl_plaintext"):
        for mechanism in SCRAM_MECHANISMS:
            config[f"listener.name.{listener}.{mechanism.lower()}.sasl.jaas.config"] = SCRAM_JAAS
        config[f"listener.name.{listener}.plain.sasl.jaas.config"] = PLAIN_JAAS
    config.update(extra)
    return config


# ------------------------------------------------------------------------------ the broker

class SecureBroker:
    """The target broker with LISTENERS and server_config(); the same surface for both
    targets: bootstrap_for(listener), stop(), restart(), and `reconfigure` for a restart
    with other keys or without the --add-scram arguments (Sluice)."""

    def __init__(self, workdir: Path, certs: Certs, **extra: str):
        self.certs = certs
        self.workdir = Path(workdir)
        self.config = server_config(certs, **extra)
        if brokers.target() == "kafka":
            config = dict(self.config)
            config["super.users"] += ";User:ANONYMOUS"
            self.broker = brokers.Kafka(workdir=self.workdir, listeners=LISTENERS,
                                        extra_config=config, scram=SEED_SCRAM)
        else:
            args = [a for spec in SEED_SCRAM for a in ("--add-scram", spec)]
            self.broker = brokers.Sluice(
                self.workdir, listeners=LISTENERS, args=tuple(args),
                overrides=tuple(f"{k}={v}" for k, v in self.config.items()))
        self.kind = self.broker.kind
        self._default = self._settings()

    def _settings(self):
        if self.kind == "kafka":
            return dict(self.broker.extra_config)
        return (tuple(self.broker.overrides), tuple(self.broker.args))

    @property
    def reconfigured_since_start(self) -> bool:
        """True when the running broker was not started with the original configuration."""
        return self._started_with != self._default

    @property
    def log_file(self) -> Path:
        return self.broker.log_file

    def bootstrap_for(self, listener: str) -> str:
        return self.broker.bootstrap_for(listener)

    def start(self) -> "SecureBroker":
        self._started_with = self._settings()
        self.broker.start()
        return self

    def restart(self) -> "SecureBroker":
        self._started_with = self._settings()
        self.broker.restart()
        return self

    def stop(self):
        return self.broker.stop()

    @property
    def running(self) -> bool:
        return self.broker.proc is not None and self.broker.proc.poll() is None

    def reconfigure(self, seed_scram: bool = True, **extra: str) -> None:
        """Set what the next (re)start uses: the keys of server_config() plus `extra`
        (replacing earlier extras), and whether Sluice gets --add-scram again (Kafka's
        format-time credentials are only ever given once, at format)."""
        self.config = server_config(self.certs, **extra)
        if self.kind == "kafka":
            config = dict(self.config)
            config["super.users"] += ";User:ANONYMOUS"
            self.broker.extra_config = config
        else:
            self.broker.overrides = tuple(f"{k}={v}" for k, v in self.config.items())
            self.broker.args = (tuple(a for spec in SEED_SCRAM for a in ("--add-scram", spec))
                                if seed_scram else ())


# ------------------------------------------------------------------------------ who connects

@dataclass(frozen=True)
class Login:
    """How one client connects: listener, and SASL user or TLS client certificate."""
    listener: str
    mechanism: str | None = None
    user: str | None = None
    password: str | None = None
    cert: Identity | None = None

    def but(self, **changes) -> "Login":
        return replace(self, **changes)


def sasl(listener: str, user: str, mechanism: str = "SCRAM-SHA-512",
         password: str | None = None) -> Login:
    return Login(listener, mechanism, user, password if password is not None else password_of(user))


def admin_login() -> Login:
    return sasl("SASL_PLAINTEXT", "admin", "SCRAM-SHA-512", ADMIN_PASSWORD)


def mtls(cert: Identity) -> Login:
    return Login("SSL", cert=cert)


def kp_config(sb: SecureBroker, login: Login) -> dict:
    """kafka-python settings (bootstrap included)."""
    c = {"bootstrap_servers": sb.bootstrap_for(login.listener),
         "security_protocol": login.listener}
    if login.mechanism:
        c.update(sasl_mechanism=login.mechanism, sasl_plain_username=login.user,
                 sasl_plain_password=login.password)
    if "SSL" in login.listener:
        c.update(ssl_cafile=str(sb.certs.ca), ssl_check_hostname=True)
        if login.cert:
            c.update(ssl_certfile=str(login.cert.cert), ssl_keyfile=str(login.cert.key))
    return c


def ck_config(sb: SecureBroker, login: Login) -> dict:
    """confluent-kafka (librdkafka) settings (bootstrap included)."""
    c = {"bootstrap.servers": sb.bootstrap_for(login.listener),
         "security.protocol": login.listener}
    if login.mechanism:
        c.update({"sasl.mechanism": login.mechanism, "sasl.username": login.user,
                  "sasl.password": login.password})
    if "SSL" in login.listener:
        c["ssl.ca.location"] = str(sb.certs.ca)
        if login.cert:
            c.update({"ssl.certificate.location": str(login.cert.cert),
                      "ssl.key.location": str(login.cert.key)})
    return c


def java_config(sb: SecureBroker, login: Login) -> dict:
    """Java client settings (a --command-config / --producer.config file's content)."""
    c = {"security.protocol": login.listener}
    if login.mechanism:
        module = ("org.apache.kafka.common.security.plain.PlainLoginModule"
                  if login.mechanism == "PLAIN"
                  else "org.apache.kafka.common.security.scram.ScramLoginModule")
        c["sasl.mechanism"] = login.mechanism
        c["sasl.jaas.config"] = (f'{module} required username="{login.user}" '
                                 f'password="{login.password}";')
    if "SSL" in login.listener:
        c.update({"ssl.truststore.type": "PEM", "ssl.truststore.location": str(sb.certs.ca)})
        if login.cert:
            c.update({"ssl.keystore.type": "PEM", "ssl.keystore.location": str(login.cert.pem)})
    return c


def write_properties(path: Path, config: dict) -> Path:
    path.write_text("".join(f"{k}={v}\n" for k, v in config.items()))
    return path


# ------------------------------------------------------------------------------ admin helpers

def kp_admin(sb: SecureBroker, login: Login | None = None) -> KafkaAdminClient:
    return KafkaAdminClient(client_id="compat-admin", request_timeout_ms=20000,
                            **kp_config(sb, login or admin_login()))


def ck_admin(sb: SecureBroker, login: Login | None = None) -> confluent_kafka.admin.AdminClient:
    return confluent_kafka.admin.AdminClient(ck_config(sb, login or admin_login()))


def create_topics(sb: SecureBroker, *names: str, partitions: int = 1) -> None:
    """Create topics as the super user and wait until each serves (ListOffsets answers)."""
    admin = ck_admin(sb)
    futures = admin.create_topics([confluent_kafka.admin.NewTopic(n, partitions, 1)
                                   for n in names], operation_timeout=20)
    for f in futures.values():
        f.result(timeout=30)
    consumer = confluent_kafka.Consumer({**ck_config(sb, admin_login()),
                                         "group.id": "compat-unused"})
    try:
        deadline = time.monotonic() + 30
        for n in names:
            for p in range(partitions):
                while True:
                    try:
                        consumer.get_watermark_offsets(
                            confluent_kafka.TopicPartition(n, p), timeout=5)
                        break
                    except confluent_kafka.KafkaException:
                        if time.monotonic() > deadline:
                            raise
                        time.sleep(0.1)
    finally:
        consumer.close()


def end_offset(sb: SecureBroker, topic: str, partition: int = 0) -> int:
    consumer = confluent_kafka.Consumer({**ck_config(sb, admin_login()),
                                         "group.id": "compat-unused"})
    try:
        return consumer.get_watermark_offsets(
            confluent_kafka.TopicPartition(topic, partition), timeout=10)[1]
    finally:
        consumer.close()


# ------------------------------------------------------------------------------ Java tools

def java_tool(jars_dir: Path, log4j: Path, main_class: str, *args: str,
              input: str | None = None, timeout: float = 60.0,
              jvm_properties: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """One official Kafka tool (java -cp 'kafka-jars/*' <main class> ...), bounded."""
    cmd = ["java", "-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
           *(f"-D{k}={v}" for k, v in (jvm_properties or {}).items()),
           "-Djava.awt.headless=true", f"-Dlog4j2.configurationFile={log4j}",
           "-cp", str(jars_dir / "*"), main_class, *map(str, args)]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, preexec_fn=die_with_parent)
    try:
        out, err = proc.communicate(input, timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"{main_class} {' '.join(map(str, args))} still running after "
                             f"{timeout}s\n--- stdout\n{out}\n--- stderr\n{err}") from None
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def tools_log4j(tmp_path_factory) -> Path:
    """A log4j2 file for the Java tools (warnings and errors on stderr); for module fixtures."""
    path = tmp_path_factory.mktemp("tools") / "tools-log4j2.properties"
    path.write_text(TOOLS_LOG4J2)
    return path


TOOLS_LOG4J2 = """\
status = warn
appender.stderr.type = Console
appender.stderr.name = stderr
appender.stderr.target = SYSTEM_ERR
appender.stderr.layout.type = PatternLayout
appender.stderr.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.stderr.ref = stderr
"""


# ------------------------------------------------------------------------------ raw protocol

def frame(api_key: int, version: int, correlation_id: int, body: bytes,
          client_id: bytes = b"compat-raw") -> bytes:
    """A request frame with a v1 request header (non-flexible versions only)."""
    payload = struct.pack(">hhih", api_key, version, correlation_id, len(client_id)) + client_id + body
    return struct.pack(">i", len(payload)) + payload


API_VERSIONS_V0 = frame(18, 0, 7, b"")


def read_until_closed(sock: socket.socket, timeout: float = 10.0) -> bytes:
    """Everything the peer sends until it closes (or resets) the connection; fails the
    test if it is still open after `timeout`."""
    sock.settimeout(timeout)
    data = b""
    deadline = time.monotonic() + timeout
    while True:
        try:
            chunk = sock.recv(65536)
        except (ConnectionResetError, ssl.SSLError, ssl.SSLEOFError):
            return data
        except socket.timeout:
            raise AssertionError(f"connection still open after {timeout}s; got {data!r}") from None
        if not chunk:
            return data
        data += chunk
        if time.monotonic() > deadline:
            raise AssertionError(f"connection still open after {timeout}s; got {data!r}")


def recv_frame(sock: socket.socket) -> bytes:
    def exact(n):
        buf = bytearray()
        while len(buf) < n:
            chunk = sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError(f"closed after {len(buf)} of {n} bytes")
            buf += chunk
        return bytes(buf)
    (size,) = struct.unpack(">i", exact(4))
    return exact(size)


class RawConnection:
    """One connection speaking the protocol by hand (kafka-python's generated request and
    response classes), plain TCP or TLS, for what no client sends on purpose."""

    def __init__(self, sb: SecureBroker | None, listener: str, timeout: float = 10.0,
                 cert: Identity | None = None, tls_version: ssl.TLSVersion | None = None,
                 port: int | None = None):
        """`port`: connect there instead of to `sb`'s listener (plain TCP only)."""
        if port is None:
            port = sb.broker.ports[listener]
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        if "SSL" in listener:
            context = ssl.create_default_context(cafile=str(sb.certs.ca))
            if tls_version is not None:  # only this TLS version
                context.minimum_version = context.maximum_version = tls_version
            if cert is not None:
                context.load_cert_chain(str(cert.cert), str(cert.key))
            self.sock = context.wrap_socket(self.sock, server_hostname="127.0.0.1")
        self._next_id = 1

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> "RawConnection":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def send(self, request, version: int) -> int:
        request.API_VERSION = version
        correlation_id = self._next_id
        self._next_id += 1
        request.with_header(correlation_id=correlation_id, client_id="compat-raw")
        self.sock.sendall(request.encode(header=True, framed=True))
        return correlation_id

    def call(self, request, version: int):
        correlation_id = self.send(request, version)
        response = request.header.get_response_class().decode(recv_frame(self.sock), header=True,
                                                              version=version)
        assert response.header.correlation_id == correlation_id
        return response

    def read_until_closed(self, timeout: float = 10.0) -> bytes:
        return read_until_closed(self.sock, timeout)


def scram_client_first(user: str, nonce: str, extensions: str = "") -> bytes:
    """`extensions`: Kafka's SCRAM extensions, e.g. ",tokenauth=true" for a token login."""
    return f"n,,n={user},r={nonce}{extensions}".encode()


def scram_client_final(mechanism: str, user: str, password: str, nonce: str,
                       server_first: bytes, extensions: str = "") -> bytes:
    """RFC 5802 client-final-message for the server-first-message received."""
    import base64
    import hashlib
    import hmac

    digest = {"SCRAM-SHA-256": hashlib.sha256, "SCRAM-SHA-512": hashlib.sha512}[mechanism]
    fields = dict(f.split("=", 1) for f in server_first.decode().split(","))
    salt, iterations, server_nonce = base64.b64decode(fields["s"]), int(fields["i"]), fields["r"]
    salted = hashlib.pbkdf2_hmac(digest().name, password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", digest).digest()
    stored_key = digest(client_key).digest()
    without_proof = f"c=biws,r={server_nonce}"
    auth_message = f"n={user},r={nonce}{extensions},{server_first.decode()},{without_proof}".encode()
    signature = hmac.new(stored_key, auth_message, digest).digest()
    proof = bytes(a ^ b for a, b in zip(client_key, signature))
    return f"{without_proof},p={base64.b64encode(proof).decode()}".encode()


# ------------------------------------------------------------------------------ ACLs

def acl(principal: str, restype: str, name: str, operation: str, permission: str = "ALLOW",
        pattern: str = "LITERAL", host: str = "*"):
    """One ACL binding (confluent-kafka), named with Kafka's words."""
    from confluent_kafka.admin import (AclBinding, AclOperation, AclPermissionType,
                                       ResourcePatternType, ResourceType)
    return AclBinding(ResourceType[restype], name, ResourcePatternType[pattern], principal, host,
                      AclOperation[operation], AclPermissionType[permission])


def acl_key(binding) -> tuple:
    """A binding as comparable words: (type, name, pattern, principal, host, op, permission)."""
    return (binding.restype.name, binding.name, binding.resource_pattern_type.name,
            binding.principal, binding.host, binding.operation.name, binding.permission_type.name)


def describe_acls(sb: SecureBroker, principal: str | None = None, restype: str = "ANY",
                  name: str | None = None, pattern: str = "ANY") -> set[tuple]:
    from confluent_kafka.admin import (AclBindingFilter, AclOperation, AclPermissionType,
                                       ResourcePatternType, ResourceType)
    f = AclBindingFilter(ResourceType[restype], name, ResourcePatternType[pattern], principal,
                         None, AclOperation.ANY, AclPermissionType.ANY)
    admin = ck_admin(sb)  # held until the future is done: the handle must outlive it
    return {acl_key(b) for b in admin.describe_acls(f, request_timeout=20).result(timeout=30)}


def grant(sb: SecureBroker, *bindings) -> None:
    """CreateAcls as the super user; then wait until DescribeAcls shows them all (the
    authorizer's view: Kafka applies ACLs once its metadata log has them)."""
    admin = ck_admin(sb)
    for f in admin.create_acls(list(bindings), request_timeout=20).values():
        f.result(timeout=30)
    wanted = {acl_key(b) for b in bindings}
    deadline = time.monotonic() + 30
    while not wanted <= describe_acls(sb):
        assert time.monotonic() < deadline, f"ACLs never listed: {wanted - describe_acls(sb)}"
        time.sleep(0.1)


def revoke(sb: SecureBroker, *bindings) -> None:
    from confluent_kafka.admin import AclBindingFilter
    admin = ck_admin(sb)
    filters = [AclBindingFilter(b.restype, b.name, b.resource_pattern_type, b.principal, b.host,
                                b.operation, b.permission_type) for b in bindings]
    for f in admin.delete_acls(filters, request_timeout=20).values():
        f.result(timeout=30)
    gone = {acl_key(b) for b in bindings}
    deadline = time.monotonic() + 30
    while gone & describe_acls(sb):
        assert time.monotonic() < deadline, f"ACLs still listed: {gone & describe_acls(sb)}"
        time.sleep(0.1)


# ------------------------------------------------------------------------------ clients

READ_TIMEOUT = 30.0


def records(tag: str, n: int) -> list[tuple[bytes, bytes]]:
    """n (key, value) pairs, distinct per tag."""
    return [(f"k{i}".encode(), f"{tag}-v{i}".encode()) for i in range(n)]


def kp_produce(sb: SecureBroker, login: Login, topic: str, msgs, **config) -> list[int]:
    """Produce (key, value) pairs in order with kafka-python; the acknowledged offsets.
    Raises what the client raises (e.g. kafka.errors.TopicAuthorizationFailedError)."""
    config.setdefault("request_timeout_ms", 20000)
    config.setdefault("max_block_ms", 20000)
    producer = kafka.KafkaProducer(client_id="compat-kp", **kp_config(sb, login), **config)
    try:
        futures = [producer.send(topic, key=k, value=v) for k, v in msgs]
        producer.flush(timeout=READ_TIMEOUT)
        return [f.get(timeout=READ_TIMEOUT).offset for f in futures]
    finally:
        producer.close(timeout=10)


def ck_produce(sb: SecureBroker, login: Login, topic: str, msgs, **config) -> list[int]:
    """Produce (key, value) pairs in order with confluent-kafka; the offsets from the
    delivery reports. A failed delivery raises KafkaException with the report's error."""
    errors: list = []
    producer = confluent_kafka.Producer({**ck_config(sb, login), "client.id": "compat-ck",
                                         "error_cb": errors.append, **config})
    reports: list = [None] * len(msgs)

    def on_delivery(i):
        def cb(err, msg):
            reports[i] = (err, None if err is not None else msg.offset())
        return cb

    for i, (k, v) in enumerate(msgs):
        producer.produce(topic, key=k, value=v, on_delivery=on_delivery(i))
        producer.poll(0)
    remaining = producer.flush(READ_TIMEOUT)
    assert remaining == 0, f"{remaining} messages undelivered after {READ_TIMEOUT}s; errors {errors}"
    for err, _ in reports:
        if err is not None:
            raise confluent_kafka.KafkaException(err)
    return [offset for _, offset in reports]


def kp_read(sb: SecureBroker, login: Login, topic: str, n: int, group: str | None = None,
            **config) -> list[tuple[int, bytes, bytes]]:
    """(offset, key, value) of the first n records of partition 0, with kafka-python:
    assign + seek to the beginning, or, given a group, subscribe (and commit)."""
    config.setdefault("request_timeout_ms", 20000)
    consumer = kafka.KafkaConsumer(client_id="compat-kp", group_id=group,
                                   enable_auto_commit=False, auto_offset_reset="earliest",
                                   **kp_config(sb, login), **config)
    try:
        if group is None:
            tp = kafka.TopicPartition(topic, 0)
            consumer.assign([tp])
            consumer.seek_to_beginning(tp)
        else:
            consumer.subscribe([topic])
        out = []
        deadline = time.monotonic() + READ_TIMEOUT
        while len(out) < n and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500).values():
                out.extend((r.offset, r.key, r.value) for r in batch)
        if group is not None and out:
            consumer.commit()
        return out
    finally:
        consumer.close()


def ck_read(sb: SecureBroker, login: Login, topic: str, n: int, group: str | None = None,
            **config) -> list[tuple[int, bytes, bytes]]:
    """The same with confluent-kafka. Consumer errors raise KafkaException."""
    consumer = confluent_kafka.Consumer({
        **ck_config(sb, login), "client.id": "compat-ck",
        "group.id": group or f"{login.user or 'compat'}-unused",
        "enable.auto.commit": False, "auto.offset.reset": "earliest", **config})
    try:
        if group is None:
            consumer.assign([confluent_kafka.TopicPartition(topic, 0,
                                                            confluent_kafka.OFFSET_BEGINNING)])
        else:
            consumer.subscribe([topic])
        out = []
        deadline = time.monotonic() + READ_TIMEOUT
        while len(out) < n and time.monotonic() < deadline:
            m = consumer.poll(0.5)
            if m is None:
                continue
            if m.error():
                raise confluent_kafka.KafkaException(m.error())
            out.append((m.offset(), m.key(), m.value()))
        if group is not None and out:
            consumer.commit(asynchronous=False)
        return out
    finally:
        consumer.close()


PRODUCE = {"kafka-python": kp_produce, "confluent-kafka": ck_produce}
READ = {"kafka-python": kp_read, "confluent-kafka": ck_read}


def error_code(exc: BaseException) -> int | None:
    """The Kafka error code a client's exception carries (kafka-python: errno;
    confluent-kafka: KafkaError.code())."""
    if isinstance(exc, confluent_kafka.KafkaException):
        return exc.args[0].code()
    if getattr(exc, "errno", None) is not None:
        return exc.errno
    # kafka-python wraps some broker errors: "KafkaError: Unexpected error in
    # InitProducerIdResponse: [Error 31] ClusterAuthorizationFailedError"
    import re
    m = re.search(r"\[Error (-?\d+)\]", str(exc))
    return int(m.group(1)) if m else None


def committed(sb: SecureBroker, group: str, topic: str) -> int:
    """The group's committed offset of partition 0, read as the super user."""
    consumer = confluent_kafka.Consumer({**ck_config(sb, admin_login()), "group.id": group})
    try:
        (tp,) = consumer.committed([confluent_kafka.TopicPartition(topic, 0)], timeout=20)
        return tp.offset
    finally:
        consumer.close()
