"""A real MIT Kerberos KDC (Debian's krb5-kdc) for the GSSAPI cases: its own realm, on
127.0.0.1 at a free port, its database, principals and keytabs in a work directory.

    kdc = Kdc(workdir).start()
    kdc.add_principal("kafka/127.0.0.1")          # random key
    kdc.keytab("kafka/127.0.0.1")                 # -> Path of a keytab with its key
    kdc.env                                        # KRB5_CONFIG etc. for a process using it

Clients and brokers find the KDC through `krb5_conf` (KRB5_CONFIG for MIT's library,
-Djava.security.krb5.conf for the JVM). No reverse DNS: service principals use the host
as the client names it (127.0.0.1).
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import subprocess
import time
from pathlib import Path

from brokers import die_with_parent
from apache_kafka import free_port

REALM = "SLUICE.TEST"
TOOLS = ("krb5kdc", "kdb5_util", "kadmin.local", "kinit")


def available() -> str | None:
    """None when the KDC tools are here, else what is missing."""
    missing = [t for t in TOOLS if shutil.which(t) is None
               and not Path("/usr/sbin", t).exists()]
    return f"missing {', '.join(missing)} (Debian: krb5-kdc krb5-admin-server krb5-user)" \
        if missing else None


def _tool(name: str) -> str:
    return shutil.which(name) or str(Path("/usr/sbin", name))


class Kdc:
    def __init__(self, workdir: Path):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.krb5_conf = self.workdir / "krb5.conf"
        self.kdc_conf = self.workdir / "kdc.conf"
        self.proc: subprocess.Popen | None = None
        self.krb5_conf.write_text(f"""\
[libdefaults]
  default_realm = {REALM}
  dns_lookup_realm = false
  dns_lookup_kdc = false
  rdns = false
  dns_canonicalize_hostname = false
  udp_preference_limit = 1
  ticket_lifetime = 10h
  forwardable = true
[realms]
  {REALM} = {{
    kdc = 127.0.0.1:{self.port}
  }}
""")
        self.kdc_conf.write_text(f"""\
[kdcdefaults]
  kdc_listen = 127.0.0.1:{self.port}
  kdc_tcp_listen = 127.0.0.1:{self.port}
[realms]
  {REALM} = {{
    database_name = {self.workdir}/principal
    key_stash_file = {self.workdir}/stash
    acl_file = {self.workdir}/kadm5.acl
  }}
[logging]
  kdc = FILE:{self.workdir}/kdc.log
""")

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "KRB5_CONFIG": str(self.krb5_conf),
                "KRB5_KDC_PROFILE": str(self.kdc_conf)}

    def _run(self, *args: str) -> str:
        done = subprocess.run(list(args), env=self.env, capture_output=True, text=True,
                              timeout=60)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
        return done.stdout

    def kadmin(self, query: str) -> str:
        return self._run(_tool("kadmin.local"), "-r", REALM, "-q", query)

    def start(self) -> "Kdc":
        self._run(_tool("kdb5_util"), "create", "-s", "-r", REALM, "-P", "compat-master-key")
        self.add_principal("compat-probe")
        return self._launch({})

    def _launch(self, extra_env: dict[str, str]) -> "Kdc":
        log = open(self.workdir / "krb5kdc.out", "ab")
        self.proc = subprocess.Popen([_tool("krb5kdc"), "-n", "-r", REALM],
                                     env={**self.env, **extra_env},
                                     stdout=log, stderr=subprocess.STDOUT,
                                     start_new_session=True, preexec_fn=die_with_parent)
        deadline = time.monotonic() + 20
        probe = self.keytab("compat-probe")
        while True:  # ready when a kinit goes through
            done = subprocess.run(["kinit", "-k", "-t", str(probe), "compat-probe"],
                                  env={**self.env, **extra_env,
                                       "KRB5CCNAME": f"FILE:{self.workdir}/probe.cc"},
                                  capture_output=True, text=True, timeout=20)
            if done.returncode == 0:
                return self
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the KDC did not start: {done.stderr}; "
                                   f"see {self.workdir}/kdc.log")
            time.sleep(0.2)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)

    @staticmethod
    def faketime_env(behind: str) -> dict[str, str]:
        """The environment that sets a process's clock `behind` ("2d") the machine's
        (libfaketime; monotonic clocks left alone so timers still work)."""
        found = glob.glob("/usr/lib/*/faketime/libfaketime.so.1")
        if not found:
            raise RuntimeError("libfaketime is missing (Debian: faketime)")
        return {"LD_PRELOAD": found[0], "FAKETIME": f"-{behind}",
                "FAKETIME_DONT_FAKE_MONOTONIC": "1"}

    @contextlib.contextmanager
    def clock_behind(self, behind: str):
        """The KDC runs with its clock `behind` the machine's meanwhile (same port and
        database), so the tickets it issues end that much earlier."""
        self.stop()
        self._launch(self.faketime_env(behind))
        try:
            yield self
        finally:
            self.stop()
            self._launch({})

    def add_principal(self, name: str) -> None:
        self.kadmin(f"addprinc -randkey {name}")

    def keytab(self, name: str, path: Path | None = None) -> Path:
        """A keytab holding the principal's current key (-norandkey keeps it as is)."""
        path = path or self.workdir / f"{name.replace('/', '_')}.keytab"
        self.kadmin(f"ktadd -norandkey -k {path} {name}")
        return path

    def new_key(self, name: str) -> None:
        """Give the principal a new key: keytabs made before hold a stale one."""
        self.kadmin(f"cpw -randkey {name}")

    def principal(self, name: str) -> str:
        return f"{name}@{REALM}"
