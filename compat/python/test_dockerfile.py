"""The Dockerfile's commands, run in order outside a container (no Docker
engine here), so that the image recipe cannot rot: the build command builds,
the copied config loads, the entrypoint starts a broker configured by the
image's SLUICE_ environment, and the HEALTHCHECK command sees it healthy."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

import brokers

REPO = brokers.REPO_DIR
DOCKERFILE = REPO / "Dockerfile"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, with line continuations joined."""
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    out = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


def exec_form(args: str) -> list[str]:
    return json.loads(args)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(brokers.target() != "sluice", reason="the Dockerfile builds Sluice")
def test_dockerfile_commands_run_in_order(tmp_path):
    steps = instructions()
    kinds = [k for k, _ in steps]
    # The recipe's shape: two stages, a non-root user, a data volume, the Kafka port.
    assert kinds.count("FROM") == 2
    assert ("USER", "sluice") in steps
    assert ("EXPOSE", "9092") in steps
    assert any(k == "VOLUME" and "/var/lib/sluice" in a for k, a in steps)

    # 1. The build stage's cargo command (a no-op when the release build is fresh).
    build = [a for k, a in steps if k == "RUN" and a.startswith("cargo ")]
    assert len(build) == 1, build
    subprocess.run(shlex.split(build[0]), cwd=REPO, check=True, timeout=1800)
    binary = REPO / "target" / "release" / "sluice"
    assert binary.is_file()

    # 2. The files the runtime stage copies in, mapped to this checkout.
    copies = {}
    for k, a in steps:
        if k == "COPY" and not a.startswith("--from") and not a.startswith(". "):
            src, dest = a.split()
            copies[dest] = REPO / src
    assert all(p.is_file() for p in copies.values()), copies

    # 3. The image's environment, with a free port instead of 9092 and a scratch data dir.
    env = dict(os.environ)
    port = free_port()
    for k, a in steps:
        if k == "ENV":
            for key, value in re.findall(r"(\w+)=(\S+)", a):
                env[key] = value
    env["SLUICE_LISTENERS"] = env["SLUICE_LISTENERS"].replace("0.0.0.0:9092", f"127.0.0.1:{port}")
    env["SLUICE_ADVERTISED_LISTENERS"] = env["SLUICE_ADVERTISED_LISTENERS"].replace("9092", str(port))
    env["SLUICE_LOG_DIRS"] = str(tmp_path / "data")
    env.pop("SLUICE_BIN", None)

    # 4. The entrypoint, with the image's paths mapped to this checkout.
    entrypoint = [a for k, a in steps if k == "ENTRYPOINT"]
    assert len(entrypoint) == 1
    command = [str(copies.get(arg, arg)) for arg in exec_form(entrypoint[0])]
    assert command[0] == "/usr/local/bin/sluice"
    command[0] = str(binary)
    log = open(tmp_path / "sluice.log", "wb")
    proc = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=log, stderr=log)
    try:
        # 5. The HEALTHCHECK command, pointed at the same broker.
        health = [a for k, a in steps if k == "HEALTHCHECK"]
        assert len(health) == 1
        check = exec_form(health[0][health[0].index("CMD") + 3:].strip())
        check[0] = str(binary)
        check = [c.replace("localhost:9092", f"localhost:{port}") for c in check]
        deadline = time.monotonic() + 20
        while True:
            result = subprocess.run(check, capture_output=True, timeout=10)
            if result.returncode == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert result.returncode == 0, result.stderr
        text = (tmp_path / "sluice.log").read_text()
        assert f"listening on PLAINTEXT://127.0.0.1:{port}" in text, text
        assert "unknown config key" not in text, text
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    # A stopped broker is not healthy.
    assert subprocess.run(check, capture_output=True, timeout=10).returncode == 1
