"""Fetch v11 over a raw socket (the last version by topic name before
flexible encoding): what is and is not in a response is what the broker sent.
Shared by the fetch-session tests and bench/partitions."""

from __future__ import annotations

import socket
import struct
import time

import clients


class Reader:
    """Reads a response body field by field."""

    def __init__(self, data: bytes):
        self.data, self.at = data, 0

    def take(self, fmt: str):
        values = struct.unpack_from(fmt, self.data, self.at)
        self.at += struct.calcsize(fmt)
        return values if len(values) > 1 else values[0]

    def string(self) -> str:
        n = self.take(">h")
        s = self.data[self.at:self.at + n].decode()
        self.at += n
        return s

    def nullable_bytes(self) -> bytes:
        n = self.take(">i")
        if n < 0:
            return b""
        b = self.data[self.at:self.at + n]
        self.at += n
        return b


class FetchConnection:
    """One connection sending Fetch v11."""

    def __init__(self, bootstrap: str):
        host, port = bootstrap.split(":")
        self.sock = socket.create_connection((host, int(port)), timeout=30)
        self.correlation = 0
        # Seconds from sending the last request to its whole response read
        # (building the request and parsing the response left out).
        self.round_trip = 0.0

    def close(self):
        self.sock.close()

    def fetch(self, session_id: int, epoch: int, partitions: dict[tuple[str, int], int],
              forgotten: dict[str, list[int]] | None = None, max_wait_ms: int = 0) -> dict:
        """Sends a Fetch; returns {error, session_id, partitions: {(topic, p): (error, hw, record bytes)}}."""
        by_topic: dict[str, list[tuple[int, int]]] = {}
        for (topic, p), offset in partitions.items():
            by_topic.setdefault(topic, []).append((p, offset))
        body = struct.pack(">iiiibii", -1, max_wait_ms, 1, 50 * 1024 * 1024, 0, session_id, epoch)
        body += struct.pack(">i", len(by_topic))
        for topic, parts in by_topic.items():
            body += clients.kstring(topic) + struct.pack(">i", len(parts))
            for p, offset in parts:
                body += struct.pack(">iiqqi", p, -1, offset, -1, 1024 * 1024)
        forgotten = forgotten or {}
        body += struct.pack(">i", len(forgotten))
        for topic, parts in forgotten.items():
            body += clients.kstring(topic) + struct.pack(">i", len(parts)) + b"".join(struct.pack(">i", p) for p in parts)
        body += clients.kstring("")
        self.correlation += 1
        frame = struct.pack(">hhi", 1, 11, self.correlation) + clients.kstring("fetch-session-test") + body
        sent = time.perf_counter()
        self.sock.sendall(struct.pack(">i", len(frame)) + frame)
        size = struct.unpack(">i", clients.recv_exactly(self.sock, 4))[0]
        r = Reader(clients.recv_exactly(self.sock, size))
        self.round_trip = time.perf_counter() - sent
        assert r.take(">i") == self.correlation
        _throttle, error, sid = r.take(">ihi")
        out = {"error": error, "session_id": sid, "partitions": {}}
        for _ in range(r.take(">i")):
            topic = r.string()
            for _ in range(r.take(">i")):
                p, perr, hw, _lso, _start = r.take(">ihqqq")
                aborted = r.take(">i")
                for _ in range(max(aborted, 0)):
                    r.take(">qq")
                r.take(">i")  # preferred read replica
                records = r.nullable_bytes()
                out["partitions"][(topic, p)] = (perr, hw, len(records))
        return out
