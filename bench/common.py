"""Shared pieces of the benchmarks: starting brokers (the compat suite's own
classes), reading a process's memory, and timing the first answered request."""

from __future__ import annotations

import os
import socket
import struct
import sys
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
sys.path.insert(0, str(REPO_DIR / "compat" / "python"))
sys.path.insert(0, str(REPO_DIR / "compat" / "kafka"))

from brokers import Kafka, Sluice  # noqa: E402
from apache_kafka import free_port  # noqa: E402


def memory_kib(pid: int) -> dict[str, int]:
    """VmRSS (now) and VmHWM (peak) of a process, in KiB."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0])
    return out


def api_versions(host: str, port: int, timeout: float = 1.0) -> bool:
    """One ApiVersions v0 round trip on a fresh connection."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            body = struct.pack(">hhih", 18, 0, 1, -1)
            s.sendall(struct.pack(">i", len(body)) + body)
            size = struct.unpack(">i", _recv(s, 4))[0]
            frame = _recv(s, size)
            return struct.unpack(">i", frame[:4])[0] == 1 and struct.unpack(">h", frame[4:6])[0] == 0
    except OSError:
        return False


def _recv(s: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise OSError("closed")
        buf += chunk
    return buf


def wait_first_answer(port: int, since: float, limit: float = 120.0) -> float:
    """Seconds from `since` (a perf_counter) until ApiVersions is answered."""
    while time.perf_counter() - since < limit:
        if api_versions("127.0.0.1", port, timeout=0.5):
            return time.perf_counter() - since
        time.sleep(0.001)
    raise TimeoutError(f"no answer on port {port} within {limit}s")


def human(n: float) -> str:
    return f"{n:,.0f}"
