"""kcat (Debian's, librdkafka 2.0.2) as a subprocess: list, produce, consume, query.

kcat is the oldest client here: it negotiates old API versions (Metadata v4, Produce
v7) and silently stops compressing if the broker's advertised versions look too old,
so the codec is checked on disk, not assumed.
"""

from __future__ import annotations

import json
import time

import pytest

import clients
from clients import Msg

FORMAT = "%t|%p|%o|%k|%s\\n"


def consume_lines(broker, topic, *extra):
    out = clients.kcat(broker, "-C", "-t", topic, "-e", "-q", "-f", FORMAT, *extra)
    return out.splitlines()


def test_kcat_metadata_list(broker, topic):
    clients.create_topic(broker, topic, 3)
    listing = json.loads(clients.kcat(broker, "-L", "-J", "-t", topic))
    (b,) = listing["brokers"]
    assert b["name"] == broker.bootstrap
    (t,) = listing["topics"]
    assert t["topic"] == topic
    assert [p["partition"] for p in t["partitions"]] == [0, 1, 2]
    assert {p["leader"] for p in t["partitions"]} == {b["id"]}
    assert all(p["isrs"] == [{"id": b["id"]}] for p in t["partitions"])

    text = clients.kcat(broker, "-L", "-t", topic)
    assert f'topic "{topic}" with 3 partitions:' in text
    assert f"broker {b['id']} at {broker.bootstrap}" in text


def test_kcat_list_all_topics(broker, topic):
    names = [f"{topic}-a", f"{topic}-b"]
    for name in names:
        clients.create_topic(broker, name, 2)
    listing = json.loads(clients.kcat(broker, "-L", "-J"))
    listed = {t["topic"]: len(t["partitions"]) for t in listing["topics"]}
    assert {n: listed.get(n) for n in names} == {n: 2 for n in names}


def test_kcat_produce_with_keys_and_consume(broker, topic):
    clients.create_topic(broker, topic, 1)
    lines = [f"key{i}:value {i}" for i in range(20)]
    clients.kcat(broker, "-P", "-t", topic, "-p", "0", "-K:",
                 input=("\n".join(lines) + "\n").encode())
    assert consume_lines(broker, topic, "-o", "beginning") == [
        f"{topic}|0|{i}|key{i}|value {i}" for i in range(20)]
    # What kcat wrote is what another client reads.
    assert [(r.offset, r.key, r.value) for r in clients.read_ck(broker, topic)] == [
        (i, f"key{i}".encode(), f"value {i}".encode()) for i in range(20)]
    # Relative to the end: the last three.
    assert consume_lines(broker, topic, "-o", "-3") == [
        f"{topic}|0|{i}|key{i}|value {i}" for i in range(17, 20)]


def test_kcat_produce_keyed_to_partitions(broker, topic):
    clients.create_topic(broker, topic, 3)
    lines = [f"k{i % 5}:v{i}" for i in range(30)]
    clients.kcat(broker, "-P", "-t", topic, "-K:", input=("\n".join(lines) + "\n").encode())
    got = [line.split("|") for line in consume_lines(broker, topic, "-o", "beginning")]
    assert sorted(v for *_, v in got) == sorted(f"v{i}" for i in range(30))
    partition_of = {}
    for _, p, o, k, v in got:
        assert partition_of.setdefault(k, p) == p, f"key {k} in partitions {partition_of[k]} and {p}"
    # Within a partition, offsets count up from 0 in the order kcat sent them.
    for p in {p for _, p, *_ in got}:
        rows = [(int(o), int(v[1:])) for _, pp, o, _, v in got if pp == p]
        assert [o for o, _ in sorted(rows)] == list(range(len(rows)))
        assert [v for _, v in sorted(rows)] == sorted(v for _, v in rows)


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
def test_kcat_produce_compressed(broker, topic, codec):
    clients.create_topic(broker, topic, 1)
    lines = [f"key{i}:" + f"compressible payload {i} " * 10 for i in range(200)]
    clients.kcat(broker, "-P", "-t", topic, "-p", "0", "-K:", "-z", codec,
                 "-X", "linger.ms=50", input=("\n".join(lines) + "\n").encode())
    assert consume_lines(broker, topic, "-o", "beginning") == [
        f"{topic}|0|{i}|{line.replace(':', '|', 1)}" for i, line in enumerate(lines)]
    batches = clients.stored_batches(broker, topic, 0)
    assert {b.codec for b in batches} == {codec}, batches
    assert batches[-1].last_offset == 199


def test_kcat_headers_and_null_values(broker, topic):
    clients.create_topic(broker, topic, 1)
    # -Z: an empty value is sent as NULL (a tombstone).
    clients.kcat(broker, "-P", "-t", topic, "-p", "0", "-K:", "-Z", "-H", "h1=one", "-H", "h2=two",
                 input=b"a:1\nb:\nc:3\n")
    out = consume_lines(broker, topic, "-o", "beginning", "-Z", "-f", "%o|%k|%s|%h\\n")
    assert out == ["0|a|1|h1=one,h2=two", "1|b|NULL|h1=one,h2=two", "2|c|3|h1=one,h2=two"]
    records = clients.read_kp(broker, topic)
    assert [(r.key, r.value, r.headers) for r in records] == [
        (k, v, (("h1", b"one"), ("h2", b"two"))) for k, v in ((b"a", b"1"), (b"b", None), (b"c", b"3"))]


def test_kcat_query_offset_for_timestamp(broker, topic):
    clients.create_topic(broker, topic, 2)
    base = (int(time.time()) - 3600) * 1000
    clients.send_kp(broker, topic, [Msg(b"k", f"v{i}".encode(), partition=1,
                                        timestamp=base + i * 1000) for i in range(10)], acks="all")
    out = clients.kcat(broker, "-Q", "-t", f"{topic}:1:{base + 6500}", "-t", f"{topic}:0:{base}")
    assert sorted(out.splitlines()) == sorted([f"{topic} [1] offset 7", f"{topic} [0] offset -1"])
    # And consuming from a timestamp starts there.
    assert consume_lines(broker, topic, "-p", "1", "-o", f"s@{base + 6500}") == [
        f"{topic}|1|{i}|k|v{i}" for i in range(7, 10)]
