"""The official Apache Kafka command-line tools, run the way the release's bin/*.sh run them.

Each command a user knows (kafka-topics, kafka-console-producer, ...) maps to the main
class that Kafka 4.4.0's bin/<command>.sh hands to kafka-run-class.sh; here it runs as

    java -Xmx256m -Dlog4j2.configurationFile=tools-log4j2.properties \
         -cp 'compat/.cache/kafka-jars/*' <main class> <args>

with the jars fetched from Maven Central by compat/kafka/fetch-jars.sh. Every run has a
timeout; a run returns (exit code, stdout, stderr). Tools log WARN and above to stderr only.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

HERE = Path(__file__).resolve().parent
COMPAT_DIR = HERE.parent

sys.path.insert(0, str(COMPAT_DIR / "kafka"))
from apache_kafka import die_with_parent  # noqa: E402  (no tool outlives the test run)
JARS_DIR = Path(os.environ.get("KAFKA_JARS_DIR") or COMPAT_DIR / ".cache" / "kafka-jars")
LOG4J2_CONFIG = HERE / "tools-log4j2.properties"

# Command name (bin/<name>.sh) -> the main class Kafka 4.4.0's script runs.
MAIN_CLASS = {
    "kafka-topics": "org.apache.kafka.tools.TopicCommand",
    "kafka-console-producer": "org.apache.kafka.tools.ConsoleProducer",
    "kafka-console-consumer": "org.apache.kafka.tools.consumer.ConsoleConsumer",
    "kafka-consumer-groups": "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand",
    "kafka-configs": "org.apache.kafka.tools.ConfigCommand",
    "kafka-producer-perf-test": "org.apache.kafka.tools.ProducerPerformance",
    "kafka-consumer-perf-test": "org.apache.kafka.tools.ConsumerPerformance",
    "kafka-dump-log": "org.apache.kafka.tools.DumpLogSegments",
    "kafka-transactions": "org.apache.kafka.tools.TransactionsCommand",
    "kafka-features": "org.apache.kafka.tools.FeatureCommand",
    "kafka-console-share-consumer": "org.apache.kafka.tools.consumer.ConsoleShareConsumer",
    "kafka-share-groups": "org.apache.kafka.tools.consumer.group.ShareGroupCommand",
    "kafka-groups": "org.apache.kafka.tools.GroupsCommand",
    "kafka-streams-groups": "org.apache.kafka.tools.streams.StreamsGroupCommand",
}

# kafka-run-class.sh's defaults, made smaller: two cores are shared with the broker.
# Short-lived admin tools spend their time starting up, which C1 alone does fastest;
# the perf tools get the full JIT.
JVM_OPTS = ["-Xmx256m", "-XX:+UseSerialGC", "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={LOG4J2_CONFIG}"]
QUICK_START = ["-XX:TieredStopAtLevel=1"]
FULL_JIT = ("kafka-producer-perf-test", "kafka-consumer-perf-test")

DEFAULT_TIMEOUT = 60.0


class Result(NamedTuple):
    code: int
    stdout: str
    stderr: str

    def __str__(self) -> str:  # what an assertion message shows
        return f"exit {self.code}\n--- stdout\n{self.stdout}\n--- stderr\n{self.stderr}"


def jars_present() -> bool:
    return any(JARS_DIR.glob("kafka-tools-*.jar"))


def compile_java(source: Path, classes_root: Path) -> Path:
    """A single-file Java program (class named as the file) compiled against the jars,
    once per (source, jar set), into a folder of `classes_root`, by the JDK's javac
    module (no build tool). javac gets the jars one by one (it does not expand 'dir/*'
    as the java launcher does)."""
    jars = sorted(JARS_DIR.glob("*.jar"))
    key = hashlib.sha256(source.read_bytes() + "\n".join(j.name for j in jars).encode()).hexdigest()
    out = classes_root / key[:16]
    if (out / f"{source.stem}.class").is_file():
        return out
    classes_root.mkdir(parents=True, exist_ok=True)
    fresh = classes_root / f".build-{os.getpid()}"
    shutil.rmtree(fresh, ignore_errors=True)
    fresh.mkdir()
    r = subprocess.run(["java", "-m", "jdk.compiler/com.sun.tools.javac.Main",
                        "-cp", os.pathsep.join(map(str, jars)), "-d", str(fresh),
                        "-Xlint:all", "-Werror", str(source)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, f"javac {source} failed:\n{r.stdout}\n{r.stderr}"
    try:
        fresh.rename(out)
    except OSError:  # another run made it meanwhile
        shutil.rmtree(fresh, ignore_errors=True)
    return out


def command_line(command: str, *args: str) -> list[str]:
    if command not in MAIN_CLASS:
        raise ValueError(f"unknown tool {command!r}; known: {', '.join(sorted(MAIN_CLASS))}")
    if not jars_present():
        raise FileNotFoundError(f"no kafka-tools jar in {JARS_DIR}: run compat/kafka/fetch-jars.sh")
    opts = JVM_OPTS + ([] if command in FULL_JIT else QUICK_START)
    return ["java", *opts, "-cp", str(JARS_DIR / "*"), MAIN_CLASS[command], *map(str, args)]


def run(command: str, *args, input: str | bytes | None = None,
        timeout: float = DEFAULT_TIMEOUT) -> Result:
    """Run one tool to completion (killed, with its JVM, after `timeout` seconds)."""
    text = not isinstance(input, bytes)
    proc = subprocess.Popen(command_line(command, *args),
                            stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            encoding="utf-8" if text else None, errors="replace" if text else None,
                            start_new_session=True, preexec_fn=die_with_parent)
    try:
        out, err = proc.communicate(input, timeout=timeout)
    except subprocess.TimeoutExpired:
        kill(proc)
        out, err = proc.communicate()
        raise TimeoutError(f"{command} {' '.join(map(str, args))} still running after {timeout}s"
                           f"\n--- stdout\n{out}\n--- stderr\n{err}") from None
    if not text:
        out, err = out.decode("utf-8", "replace"), err.decode("utf-8", "replace")
    return Result(proc.returncode, out, err)


def start(command: str, *args, **popen) -> subprocess.Popen:
    """Start a tool in the background (e.g. a console producer fed through a pipe).
    The caller must end it: close its stdin and wait, or kill(proc)."""
    popen.setdefault("stdin", subprocess.PIPE)
    popen.setdefault("stdout", subprocess.PIPE)
    popen.setdefault("stderr", subprocess.PIPE)
    return subprocess.Popen(command_line(command, *args), start_new_session=True,
                            preexec_fn=die_with_parent, **popen)


def kill(proc: subprocess.Popen) -> None:
    """SIGKILL a tool started here (its own process group: the JVM and nothing else)."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=10)


# ------------------------------------------------------------------ reading what they print

def parse_topic_description(stdout: str) -> tuple[dict, list[dict]]:
    """kafka-topics --describe of one topic: its header fields (Configs as a dict) and one
    dict per partition line (Partition, Leader, Replicas, Isr, ...)."""
    header: dict = {}
    partitions: list[dict] = []
    for line in stdout.splitlines():
        if not line.strip():
            continue
        fields = {}
        for part in line.strip("\n").split("\t"):
            if ": " in part or part.endswith(":"):
                k, _, v = part.partition(":")
                fields[k.strip()] = v.strip()
        if line.startswith("\t"):
            partitions.append(fields)
        else:
            configs = fields.get("Configs", "")
            fields["Configs"] = dict(c.split("=", 1) for c in configs.split(",") if c)
            header = fields
    return header, partitions


def parse_table(stdout: str) -> list[dict]:
    """The whitespace-aligned tables of kafka-consumer-groups (GROUP TOPIC PARTITION ...),
    one dict per row keyed by the column headers. Blank cells do not occur ('-' instead)."""
    rows: list[dict] = []
    columns: list[str] | None = None
    for line in stdout.splitlines():
        cells = line.split()
        if not cells:
            columns = None
            continue
        if cells[0] == "GROUP":
            columns = cells
        elif columns is not None:
            assert len(cells) == len(columns), f"row {line!r} does not fit columns {columns}"
            rows.append(dict(zip(columns, cells)))
    return rows


CONFIG_LINE = re.compile(r"^  (\S+?)=(.*) sensitive=(true|false) synonyms=\{(.*)\}$")


def parse_configs(stdout: str) -> dict[str, tuple[str, str]]:
    """kafka-configs --describe: name -> (value, synonyms as printed between the braces)."""
    out = {}
    for line in stdout.splitlines():
        m = CONFIG_LINE.match(line)
        if m:
            out[m.group(1)] = (m.group(2), m.group(4))
    return out


DUMP_FIELD = re.compile(r"(\w+): (\S*)")
DUMP_RECORD = re.compile(r"^\| offset: (\d+) .*?(?: key: (.*?))? payload: (.*)$")


def parse_dump_log(stdout: str) -> list[dict]:
    """kafka-dump-log of a .log file: one dict per batch (its header fields as strings),
    with batch["records"] = [(offset, key, payload)] when --print-data-log was given."""
    batches: list[dict] = []
    for line in stdout.splitlines():
        if line.startswith("baseOffset:"):
            batch = dict(DUMP_FIELD.findall(line))
            batch["records"] = []
            batches.append(batch)
        elif line.startswith("| offset:"):
            m = DUMP_RECORD.match(line)
            assert m, f"unexpected record line: {line!r}"
            batches[-1]["records"].append((int(m.group(1)), m.group(2), m.group(3)))
    return batches


if __name__ == "__main__":  # compat/java/kafka_tools.py kafka-topics --bootstrap-server ... --list
    import sys
    sys.exit(subprocess.run(command_line(sys.argv[1], *sys.argv[2:]), timeout=600).returncode)
