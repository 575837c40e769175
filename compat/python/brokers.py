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
# The whole start-up line, any listeners: `listening on SASL_SSL://127.0.0.1:P1, SSL://...`.
LISTENING_ALL = re.compile(r"listening on ((?:[A-Za-z0-9_]+://[^\s,]+:\d+(?:, )?)+)")
LISTENER = re.compile(r"([A-Za-z0-9_]+)://[^\s,]+:(\d+)")


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

    Security and other set-ups (test_security.py):
        listeners   listener names, e.g. ("SASL_SSL", "SSL", "PLAINTEXT"): each is bound on
                    127.0.0.1 (an ephemeral port the first time, the same one on restarts);
                    `ports` maps each name to its port. Default: PLAINTEXT alone.
        overrides   extra `--override key=value` (e.g. ssl.*, sasl.*, authorizer keys)
        args        extra command-line arguments (e.g. `--add-scram SPEC`)
    `overrides` and `args` are plain attributes, read at each start: a test may change them
    between stop() and restart(). `port`/`bootstrap` are the PLAINTEXT listener's when there
    is one, else the first listener's.
    """

    kind = "sluice"

    def __init__(self, workdir: Path, binary: Path | None = None, overrides: tuple[str, ...] = (),
                 listeners: tuple[str, ...] | None = None, args: tuple[str, ...] = ()):
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
        self.args = tuple(args)
        self.listener_names = tuple(listeners) if listeners else None
        # 0 = let the OS choose, the first time; then fixed for restarts
        self.ports: dict[str, int] = {n: 0 for n in (self.listener_names or ("PLAINTEXT",))}
        self.port = 0
        self.proc: subprocess.Popen | None = None
        self._drain: threading.Thread | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def bootstrap_for(self, listener: str) -> str:
        """host:port of one listener (by name, e.g. SASL_SSL)."""
        return f"127.0.0.1:{self.ports[listener]}"

    def start(self, timeout: float = 30.0) -> "Sluice":
        if self.proc is not None and self.proc.poll() is None:
            raise RuntimeError("Sluice is already running")
        if self.listener_names is None:
            listeners = f"PLAINTEXT://127.0.0.1:{self.port}"
        else:
            listeners = ",".join(f"{n}://127.0.0.1:{self.ports[n]}" for n in self.listener_names)
        args = [str(self.binary),
                "--override", f"listeners={listeners}",
                "--override", f"log.dirs={self.log_dir}",
                "--override", "group.initial.rebalance.delay.ms=0",
                # The compaction cases wait for the cleaner: let it look every second.
                "--override", "log.cleaner.backoff.ms=1000"]
        for o in self.overrides:
            args += ["--override", o]
        args += list(self.args)
        log = open(self.log_file, "ab")
        log.write(f"\n=== {' '.join(args)}\n".encode())
        log.flush()
        self.proc = subprocess.Popen(args, cwd=self.workdir, stdin=subprocess.DEVNULL,
                                     stdout=log, stderr=subprocess.PIPE,
                                     start_new_session=True, preexec_fn=die_with_parent)
        found = threading.Event()
        port_box: list[int] = []
        ports_box: list[dict[str, int]] = []
        multi = self.listener_names is not None

        def drain(stream, log_file):
            # Copies every stderr line to the log; spots the readiness line on the way.
            with log_file:
                for line in iter(stream.readline, b""):
                    log_file.write(line)
                    log_file.flush()
                    if not found.is_set():
                        text = line.decode("utf-8", "replace")
                        m = (LISTENING_ALL if multi else LISTENING).search(text)
                        if m and multi:
                            ports = {n: int(p) for n, p in LISTENER.findall(m.group(1))}
                            ports_box.append(ports)
                            port_box.append(ports.get("PLAINTEXT", next(iter(ports.values()))))
                            found.set()
                        elif m:
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
            said = "listening on NAME://..." if multi else "listening on PLAINTEXT://127.0.0.1:<port>"
            raise RuntimeError(f"Sluice never reported '{said}': it {why}; see {self.log_file}")
        if multi:
            reported = ports_box[0]
            asked = dict(self.ports)
            if set(reported) != set(asked) or any(p not in (0, reported[n]) for n, p in asked.items()):
                self.kill()
                raise RuntimeError(f"asked Sluice for listeners {asked}, it reported {reported}")
            self.ports = {n: reported[n] for n in self.listener_names}
        elif self.port not in (0, port_box[0]):
            self.kill()
            raise RuntimeError(f"asked Sluice for port {self.port}, it reported {port_box[0]}")
        self.port = port_box[0]
        if not multi:
            self.ports = {"PLAINTEXT": self.port}
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


def make_broker(workdir: Path, **config: str):
    """A started broker of the selected target, data and logs under workdir, with
    broker configs (keys with dots: pass them as **{"a.b": "1"})."""
    if target() == "kafka":
        return Kafka(workdir=workdir, extra_config=config).start()
    return Sluice(workdir, overrides=tuple(f"{k}={v}" for k, v in config.items())).start()


# What each target returns on SIGTERM: Sluice must exit cleanly; the JVM reports 143
# (128 + SIGTERM) after running Kafka's shutdown hook.
CLEAN_EXIT = {"sluice": (0,), "kafka": (0, 143)}
