"""Test certificates, made with the `openssl` command-line tool (compat/setup installs it).

make_certs(dir) writes, all PEM, keys unencrypted PKCS#8 (what Kafka's PEM key stores,
librdkafka, Python's ssl and rustls all read):

    ca.pem                  the trusted CA (brokers' and clients' trust store)
    server.pem              the broker's key + certificate chain (server cert, then CA),
                            for 127.0.0.1 and localhost (subjectAltName)
    client-1.pem/.crt/.key  a client of the trusted CA: CN=client-1,O=Acme,C=US
    client-2.pem/.crt/.key  another one:                 CN=client-2,O=Acme,C=US
    rogue-ca.pem            a second CA, trusted by nobody
    rogue.pem/.crt/.key     a client of the rogue CA:   CN=client-1,O=Acme,C=US (same name!)

Those are X.509 v3 with the usual extensions. Signed as Kafka's security documentation
signs client certificates (`openssl x509 -req` without extensions), these are X.509 v1:

    client-v1.*             a v1 client of the trusted CA: CN=client-v1,O=Acme,C=US
    rogue-v1.*              a v1 client of the rogue CA
    forged-v1.*             a v1 certificate signed with client-1's key (client-1 is no
                            CA); its .crt holds client-1's certificate after it
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

DAYS = "30"

CA_EXTENSIONS = """\
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
"""

SERVER_EXTENSIONS = """\
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth, clientAuth
subjectAltName = IP:127.0.0.1, DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
"""

CLIENT_EXTENSIONS = """\
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
"""


@dataclass(frozen=True)
class Identity:
    """A key and its certificate: separate files, and both in one PEM (key first)."""
    key: Path
    cert: Path      # the leaf certificate only
    pem: Path       # key + leaf + issuing CA: a PEM key store (Kafka's ssl.keystore.location)
    dn: str         # subject DN as Kafka prints it (RFC 2253, most specific first)


@dataclass(frozen=True)
class Certs:
    dir: Path
    ca: Path            # trusted CA certificate
    server: Identity
    client1: Identity
    client2: Identity
    rogue_ca: Path      # untrusted CA certificate
    rogue: Identity     # client certificate issued by the untrusted CA
    client_v1: Identity
    rogue_v1: Identity
    forged_v1: Identity
    expired_v1: Identity    # a v1 client of the trusted CA, valid only in 2020


def openssl(*args: str, cwd: Path) -> None:
    exe = shutil.which("openssl")
    if exe is None:
        raise FileNotFoundError("the openssl command is missing (compat/setup installs it)")
    result = subprocess.run([exe, *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args)} failed ({result.returncode}):\n"
                           f"{result.stdout}\n{result.stderr}")


def _key(d: Path, name: str) -> Path:
    path = d / f"{name}.key"
    openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
            "-out", str(path), cwd=d)
    return path


def _ca(d: Path, name: str, subject: str) -> tuple[Path, Path]:
    key = _key(d, name)
    cert = d / f"{name}.pem"
    extensions = [a for line in CA_EXTENSIONS.splitlines() for a in ("-addext", line)]
    openssl("req", "-new", "-x509", "-key", str(key), "-subj", subject, "-days", DAYS,
            "-sha256", "-config", "/dev/null", *extensions, "-out", str(cert), cwd=d)
    return key, cert


def _issue(d: Path, name: str, subject: str, dn: str, extensions: str | None,
           ca_key: Path, ca_cert: Path) -> Identity:
    """A certificate signed by ca_key; without extensions, an X.509 v1 one."""
    key = _key(d, name)
    csr = d / f"{name}.csr"
    ext = d / f"{name}.ext"
    cert = d / f"{name}.crt"
    openssl("req", "-new", "-key", str(key), "-subj", subject, "-config", "/dev/null",
            "-out", str(csr), cwd=d)
    extfile = []
    if extensions is not None:
        ext.write_text(extensions)
        extfile = ["-extfile", str(ext)]
    openssl("x509", "-req", "-in", str(csr), "-CA", str(ca_cert), "-CAkey", str(ca_key),
            "-CAcreateserial", "-days", DAYS, "-sha256", *extfile,
            "-out", str(cert), cwd=d)
    pem = d / f"{name}.pem"
    pem.write_text(key.read_text() + cert.read_text() + ca_cert.read_text())
    return Identity(key=key, cert=cert, pem=pem, dn=dn)


def _issue_expired(d: Path, name: str, subject: str, dn: str, ca_key: Path,
                   ca_cert: Path) -> Identity:
    """A v1 certificate of the CA whose validity ended years ago: `openssl ca` takes
    explicit dates (`x509 -req` cannot backdate), and with no extensions section it
    makes a v1 certificate too."""
    key = _key(d, name)
    csr = d / f"{name}.csr"
    cert = d / f"{name}.crt"
    db = d / f"{name}-ca"
    (db / "new").mkdir(parents=True, exist_ok=True)
    (db / "index.txt").write_text("")
    (db / "serial").write_text("1000\n")
    config = db / "ca.cnf"
    config.write_text(f"""[ ca ]
default_ca = expired
[ expired ]
database = {db}/index.txt
new_certs_dir = {db}/new
serial = {db}/serial
default_md = sha256
policy = any
unique_subject = no
[ any ]
countryName = optional
organizationName = optional
commonName = supplied
""")
    openssl("req", "-new", "-key", str(key), "-subj", subject, "-config", "/dev/null",
            "-out", str(csr), cwd=d)
    openssl("ca", "-batch", "-config", str(config), "-cert", str(ca_cert), "-keyfile",
            str(ca_key), "-in", str(csr), "-out", str(cert), "-notext",
            "-startdate", "20200101000000Z", "-enddate", "20201231000000Z", cwd=d)
    pem = d / f"{name}.pem"
    pem.write_text(key.read_text() + cert.read_text() + ca_cert.read_text())
    return Identity(key=key, cert=cert, pem=pem, dn=dn)


def make_certs(d: Path) -> Certs:
    d = Path(d)
    d.mkdir(parents=True, exist_ok=True)
    ca_key, ca = _ca(d, "ca", "/C=US/O=Acme/CN=Compat Test CA")
    rogue_key, rogue_ca = _ca(d, "rogue-ca", "/C=US/O=Rogue/CN=Rogue CA")
    server = _issue(d, "server", "/C=US/O=Acme/CN=localhost", "CN=localhost,O=Acme,C=US",
                    SERVER_EXTENSIONS, ca_key, ca)
    client1 = _issue(d, "client-1", "/C=US/O=Acme/CN=client-1", "CN=client-1,O=Acme,C=US",
                     CLIENT_EXTENSIONS, ca_key, ca)
    client2 = _issue(d, "client-2", "/C=US/O=Acme/CN=client-2", "CN=client-2,O=Acme,C=US",
                     CLIENT_EXTENSIONS, ca_key, ca)
    rogue = _issue(d, "rogue", "/C=US/O=Acme/CN=client-1", "CN=client-1,O=Acme,C=US",
                   CLIENT_EXTENSIONS, rogue_key, rogue_ca)
    client_v1 = _issue(d, "client-v1", "/C=US/O=Acme/CN=client-v1", "CN=client-v1,O=Acme,C=US",
                       None, ca_key, ca)
    rogue_v1 = _issue(d, "rogue-v1", "/C=US/O=Acme/CN=client-v1", "CN=client-v1,O=Acme,C=US",
                      None, rogue_key, rogue_ca)
    forged_v1 = _issue(d, "forged-v1", "/C=US/O=Acme/CN=client-v1", "CN=client-v1,O=Acme,C=US",
                       None, client1.key, client1.cert)
    # Its issuer goes with it, so that the broker sees the whole (bad) chain.
    forged_v1.cert.write_text(forged_v1.cert.read_text() + client1.cert.read_text())
    expired_v1 = _issue_expired(d, "expired-v1", "/C=US/O=Acme/CN=client-v1",
                                "CN=client-v1,O=Acme,C=US", ca_key, ca)
    return Certs(dir=d, ca=ca, server=server, client1=client1, client2=client2,
                 rogue_ca=rogue_ca, rogue=rogue, client_v1=client_v1, rogue_v1=rogue_v1,
                 forged_v1=forged_v1, expired_v1=expired_v1)


if __name__ == "__main__":  # by hand: python3 certs.py DIR
    import sys
    c = make_certs(Path(sys.argv[1]))
    for f in sorted(c.dir.iterdir()):
        print(f)
