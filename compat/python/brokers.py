"""The broker under test: Sluice (the binary) or Apache Kafka (from Maven Central jars).

Both expose the same small surface to the tests:
    bootstrap, port, log_dir   where clients connect and where the partition logs live
    kill()                     kill -9 (a crash)
    restart()                  start again on the same port and data directory
    stop()                     SIGTERM, then SIGKILL after a timeout; returns the exit code
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

COMPAT_DIR = Path(__file__).resolve().parent.parent
REPO_DIR = COMPAT_DIR.parent

sys.path.insert(0, str(COMPAT_DIR / "kafka"))
from apache_kafka import ApacheKafka, die_with_parent  # noqa: E402  (lives beside its pom.xml)

LISTENING = re.compile(r"listening on PLAINTEXT://127\.0\.0\.1:(\d+)")


def target() -> str:
    value = os.environ.get("COMPAT_TARGET", "sluice")
    if value not in ("sluice", "kafka"):
        raise ValueError(f"COMPAT_TARGET must be 'sluice' or 'kafka', not {value!r}")
    return value


def sluice_bin() -> Path:
    return Path(os.environ.get("SLUICE_BIN") or REPO_DIR / "target" / "release" / "sluice")


class Sluice:
    """The sluice binary on an ephemeral port, its data in workdir/data.

    Readiness is the log line `listening on PLAINTEXT://127.0.0.1:<port>` on stderr,
    which also tells the real port. stderr is then drained by a thread into
    workdir/sluice.log for the life of the process, so the pipe can never fill and
    block the broker.
    """

    kind = "sluice"

    def __init__(self, workdir: Path, binary: Path | None = None, overrides: tuple[str, ...] = ()):
        self.binary = Path(binary or sluice_bin())
        if not self.binary.is_file():
            raise FileNotFoundError(
                f"Sluice binary not found at {self.binary}: build it (cargo build --release) "
                f"or point SLUICE_BIN at it")
        self.workdir = Path(workdir)
        self.log_dir = self.workdir / "data"
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.log_file = self.workdir / "sluice.log"
        self.overrides = tuple(overrides)
        self.port = 0  # 0 = let the OS choose, the first time; then fixed for restarts
        self.proc: subprocess.Popen | None = None
        self._drain: threading.Thread | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> "Sluice":
        if self.proc is not None and self.proc.poll() is None:
            raise RuntimeError("Sluice is already running")
        args = [str(self.binary),
                "--override", f"listeners=PLAINTEXT://127.0.0.1:{self.port}",
                "--override", f"log.dirs={self.log_dir}",
                "--override", "group.initial.rebalance.delay.ms=0"]
        for o in self.overrides:
            args += ["--override", o]
        log = open(self.log_file, "ab")
        log.write(f"\n=== {' '.join(args)}\n".encode())
        log.flush()
        self.proc = subprocess.Popen(args, cwd=self.workdir, stdin=subprocess.DEVNULL,
                                     stdout=log, stderr=subprocess.PIPE,
                                     start_new_session=True, preexec_fn=die_with_parent)
        found = threading.Event()
        port_box: list[int] = []

        def drain(stream, log_file):
            # Copies every stderr line to the log; spots the readiness line on the way.
            with log_file:
                for line in iter(stream.readline, b""):
                    log_file.write(line)
                    log_file.flush()
                    if not found.is_set():
                        m = LISTENING.search(line.decode("utf-8", "replace"))
                        if m:
                            port_box.append(int(m.group(1)))
                            found.set()
            found.set()  # EOF: the process is gone; wake the waiter

        self._drain = threading.Thread(target=drain, args=(self.proc.stderr, log), daemon=True)
        self._drain.start()
        if not found.wait(timeout) or not port_box:
            exited = self.proc.poll()
            if exited is None and found.is_set():  # stderr closed: it is on its way out
                try:
                    exited = self.proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    pass
            self.kill()
            why = (f"exited with code {exited}" if exited is not None
                   else f"said nothing of it within {timeout}s")
            raise RuntimeError(f"Sluice never reported 'listening on PLAINTEXT://127.0.0.1:<port>': "
                               f"it {why}; see {self.log_file}")
        if self.port not in (0, port_box[0]):
            self.kill()
            raise RuntimeError(f"asked Sluice for port {self.port}, it reported {port_box[0]}")
        self.port = port_box[0]
        return self

    def restart(self, timeout: float = 30.0) -> "Sluice":
        """Same data directory; the port it got the first time (passed explicitly)."""
        return self.start(timeout=timeout)

    def _reap(self) -> None:
        if self._drain is not None:
            self._drain.join(timeout=10)
            self._drain = None

    def stop(self, timeout: float = 30.0) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
                self._reap()
                raise RuntimeError(f"Sluice ignored SIGTERM for {timeout}s; killed it")
        self._reap()
        return self.proc.returncode

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self._reap()


class Kafka(ApacheKafka):
    kind = "kafka"


def make_broker(workdir: Path):
    """A started broker of the selected target, data and logs under workdir."""
    if target() == "kafka":
        return Kafka(workdir=workdir).start()
    return Sluice(workdir=workdir).start()


# What each target returns on SIGTERM: Sluice must exit cleanly; the JVM reports 143
# (128 + SIGTERM) after running Kafka's shutdown hook.
CLEAN_EXIT = {"sluice": (0,), "kafka": (0, 143)}
