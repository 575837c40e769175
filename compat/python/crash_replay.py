"""Power-loss states of a broker's data directory, rebuilt from its recorded writes.

`strace` records every write, truncate, fsync, open, rename and unlink the broker makes
(with the bytes written). `Recording` replays them into a model of the files: per file,
what was last fsynced and the operations since. `state_at(k)` is a directory as a power
cut after the k-th operation could leave it: every file as of its last fsync, plus a
random prefix of its later operations, the last of those possibly torn part way.

Simplifications, stated: names (create, rename, unlink, mkdir) are durable in the order
they happen (a journaling filesystem commits them in order; a rename after an fsync of
the new file is then safe, as the broker assumes); data is per file, in order.
"""

from __future__ import annotations

import random
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

TRACED = "openat,write,pwrite64,fsync,fdatasync,ftruncate,rename,renameat,renameat2,unlink,unlinkat,mkdir,mkdirat"


def strace_command(trace_file: Path, binary: Path) -> list[str]:
    return ["strace", "-f", "-qq", "-ttt", "-y", "-xx", "-s", str(16 << 20), "--seccomp-bpf",
            "-e", f"trace={TRACED}", "-o", str(trace_file), str(binary)]


_LINE = re.compile(r"(\d+)\s+(\d+\.\d+)\s+(.*)$")
_STRING = re.compile(r'"((?:\\x[0-9a-f]{2})*)"')
_FD = re.compile(r"(\d+)<((?:\\x[0-9a-f]{2})*)>")


def _bytes(escaped: str) -> bytes:
    return bytes.fromhex(escaped.replace("\\x", ""))


@dataclass
class Op:
    """One operation on a file's bytes."""
    kind: str  # "write" (offset, data) or "truncate" (length)
    offset: int = 0
    data: bytes = b""


@dataclass
class FileModel:
    live: bytearray = field(default_factory=bytearray)
    synced: bytes = b""
    pending: list[Op] = field(default_factory=list)

    def apply(self, op: Op) -> None:
        self.pending.append(op)
        _apply(self.live, op)

    def sync(self) -> None:
        self.synced = bytes(self.live)
        self.pending.clear()


def _apply(content: bytearray, op: Op) -> None:
    if op.kind == "truncate":
        del content[op.offset:]
        content.extend(b"\0" * (op.offset - len(content)))
    else:
        end = op.offset + len(op.data)
        if len(content) < op.offset:
            content.extend(b"\0" * (op.offset - len(content)))
        content[op.offset:end] = op.data


@dataclass
class Event:
    """A traced call, in completion order."""
    time: float
    name: str
    text: str
    result: int


class Recording:
    """The traced operations on files under `root`, replayable up to any point."""

    def __init__(self, trace_file: Path, root: Path):
        self.root = str(root)
        self.events = [e for e in _events(trace_file) if _path_of(e).startswith(self.root)]

    def __len__(self) -> int:
        return len(self.events)

    def durable_points(self) -> list[int]:
        """Indexes of the fsyncs of files (where acknowledged data becomes durable)."""
        return [i for i, e in enumerate(self.events) if e.name in ("fsync", "fdatasync")]

    def state_at(self, k: int, into: Path, rng: random.Random) -> dict[str, int]:
        """Writes into `into` the files as a power cut after event k could leave them;
        returns counts of what the cut dropped or tore."""
        files: dict[str, FileModel] = {}
        dirs: set[str] = {self.root}
        fds: dict[int, tuple[str, bool, int]] = {}  # fd -> (path, append, offset)
        for e in self.events[:k + 1]:
            _replay(e, files, dirs, fds)
        if into.exists():
            shutil.rmtree(into)
        into.mkdir(parents=True)
        stats = {"files": 0, "ops_dropped": 0, "ops_torn": 0}
        for d in sorted(dirs):
            (into / d[len(self.root):].lstrip("/")).mkdir(parents=True, exist_ok=True)
        for path, model in files.items():
            content = bytearray(model.synced)
            keep = rng.randint(0, len(model.pending))
            for op in model.pending[:keep]:
                _apply(content, op)
            if keep < len(model.pending):
                stats["ops_dropped"] += len(model.pending) - keep
                torn = model.pending[keep]
                if torn.kind == "write" and len(torn.data) > 1 and rng.random() < 0.5:
                    _apply(content, Op("write", torn.offset, torn.data[:rng.randint(1, len(torn.data) - 1)]))
                    stats["ops_torn"] += 1
            target = into / path[len(self.root):].lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(bytes(content))
            stats["files"] += 1
        return stats


def _path_of(e: "Event") -> str:
    """The file or directory a call is about (by its fd, or its first path)."""
    if e.name in ("write", "pwrite64", "ftruncate", "fsync", "fdatasync"):
        return _path_arg(e.text) or ""
    m = _STRING.search(e.text)
    return _bytes(m.group(1)).decode(errors="replace") if m else ""


def _events(trace_file: Path):
    started: dict[str, tuple[float, str]] = {}
    with open(trace_file, encoding="ascii", errors="replace") as f:
        for line in f:
            head = _LINE.match(line)
            if not head:
                continue
            pid, ts, rest = head.groups()
            if rest.endswith("<unfinished ...>"):
                started[pid] = (float(ts), rest[:-len("<unfinished ...>")].rstrip())
                continue
            m = re.match(r"<\.\.\. (\w+) resumed>(.*)", rest)
            if m:
                if pid not in started:
                    continue
                rest = started.pop(pid)[1] + m.group(2)
            m = re.match(r"(\w+)\((.*)\) += (-?\d+)", rest)
            if m:
                yield Event(float(ts), m.group(1), m.group(2), int(m.group(3)))


def _path_arg(text: str) -> str | None:
    m = _FD.match(text)
    return _bytes(m.group(2)).decode(errors="replace") if m else None


def _strings(text: str) -> list[bytes]:
    return [_bytes(s) for s in _STRING.findall(text)]


def _replay(e: Event, files: dict[str, FileModel], dirs: set[str], fds: dict) -> None:
    if e.result < 0:
        return
    name = e.name
    if name == "openat":
        path = _strings(e.text)[0].decode(errors="replace")
        flags = e.text.split(",")[2] if e.text.count(",") >= 2 else ""
        if "O_DIRECTORY" in flags:
            return
        if path not in files and "O_CREAT" in flags:
            files[path] = FileModel()
        if path in files:
            if "O_TRUNC" in flags and files[path].live:
                files[path].apply(Op("truncate", 0))
            fds[e.result] = (path, "O_APPEND" in flags, 0)
    elif name in ("write", "pwrite64"):
        fd = int(_FD.match(e.text).group(1))
        path = _path_arg(e.text)
        data = _strings(e.text)[0][:e.result]
        if path not in files:
            return
        model = files[path]
        if name == "pwrite64":
            offset = int(e.text.rsplit(",", 1)[1])
        else:
            known, append, offset = fds.get(fd, (path, False, len(model.live)))
            if append or known != path:
                offset = len(model.live)
            fds[fd] = (path, append, offset + len(data))
        model.apply(Op("write", offset, data))
    elif name == "ftruncate":
        path = _path_arg(e.text)
        if path in files:
            files[path].apply(Op("truncate", int(e.text.rsplit(",", 1)[1])))
    elif name in ("fsync", "fdatasync"):
        path = _path_arg(e.text)
        if path in files:
            files[path].sync()
    elif name.startswith("rename"):
        old, new = (s.decode(errors="replace") for s in _strings(e.text)[:2])
        if old in files:
            files[new] = files.pop(old)
        elif old in dirs:  # a directory (a partition being deleted)
            moved = {p: m for p, m in files.items() if p.startswith(old + "/")}
            for p, m in moved.items():
                files[new + p[len(old):]] = files.pop(p)
            dirs.discard(old)
            dirs.add(new)
    elif name.startswith("unlink"):
        path = _strings(e.text)[0].decode(errors="replace")
        if "AT_REMOVEDIR" in e.text:
            dirs.discard(path)
        else:
            files.pop(path, None)
    elif name.startswith("mkdir"):
        dirs.add(_strings(e.text)[0].decode(errors="replace"))
