"""ApiVersions compared with Apache Kafka 4.4's, API by API.

compat/kafka/api-versions-4.4.txt is what a Kafka 4.4.0 broker listener advertises (taken
from a real one; against COMPAT_TARGET=kafka this case checks the file is still true).
Clients that infer the broker's release from this list (librdkafka, franz-go, the Java
client's feature checks) must take Sluice for Kafka 4.4.

NOT_YET lists what Sluice does not serve yet (issue #14 and #15), each with the versions
it serves today (None: not at all). The case fails when an entry stops being true, so the
list only shrinks.
"""

from __future__ import annotations

import socket
import struct
from pathlib import Path

import brokers
import clients
from apache_kafka import _recv_exact  # on the path brokers sets up

KAFKA_TABLE = Path(__file__).resolve().parent.parent / "kafka" / "api-versions-4.4.txt"

NOT_YET: dict[int, tuple[int, int] | None] = {}


def kafka_table() -> dict[int, tuple[int, int]]:
    out = {}
    for line in KAFKA_TABLE.read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        key, lo, hi = map(int, line.split())
        out[key] = (lo, hi)
    return out


def advertised(host: str, port: int) -> dict[int, tuple[int, int]]:
    """ApiVersions v0: the fixed layout every broker answers."""
    client_id = b"compat-api-versions"
    request = struct.pack(">hhih", 18, 0, 11, len(client_id)) + client_id
    with socket.create_connection((host, port), timeout=10) as s:
        s.sendall(struct.pack(">i", len(request)) + request)
        (size,) = struct.unpack(">i", _recv_exact(s, 4))
        body = _recv_exact(s, size)
    correlation_id, error, count = struct.unpack(">ihi", body[:10])
    assert (correlation_id, error) == (11, 0)
    out = {}
    for i in range(count):
        key, lo, hi = struct.unpack(">hhh", body[10 + 6 * i:16 + 6 * i])
        out[key] = (lo, hi)
    return out


def test_api_versions_match_kafka_4_4(broker):
    host, port = broker.bootstrap.rsplit(":", 1)
    ours = advertised(host, int(port))
    kafka = kafka_table()
    if brokers.target() == "kafka":
        assert ours == kafka
        return
    differing = {k: (ours.get(k), kafka.get(k)) for k in set(ours) | set(kafka)
                 if ours.get(k) != kafka.get(k)}
    unexpected = {k: v for k, v in differing.items() if k not in NOT_YET}
    assert not unexpected, f"api key: (Sluice, Kafka 4.4) {unexpected}"
    done = {k: ours.get(k) for k in NOT_YET if k not in differing or ours.get(k) != NOT_YET[k]}
    assert not done, f"NOT_YET is out of date (now served as): {done}"


def test_transaction_version_feature_as_kafka_4_4(broker):
    """ApiVersions v3+ lists the features: transaction.version is supported from 0 to 2
    and finalized at 2, as on a fresh Kafka 4.4 cluster, with an epoch of 0 or more (the
    Java producer reads it to end every transaction with a new epoch, KIP-890). Kafka
    lists more features (group.version, metadata.version, ...): Sluice only the one it
    implements."""
    from kafka.protocol.metadata.api_versions import ApiVersionsRequest

    raw = clients.RawGroupClient(broker)
    try:
        r = raw.call(ApiVersionsRequest(client_software_name="compat",
                                        client_software_version="1"), version=4)
    finally:
        raw.close()
    assert r.error_code == 0
    supported = {f.name: (f.min_version, f.max_version) for f in r.supported_features}
    finalized = {f.name: (f.min_version_level, f.max_version_level) for f in r.finalized_features}
    assert supported["transaction.version"] == (0, 2), supported
    assert finalized["transaction.version"] == (2, 2), finalized
    assert r.finalized_features_epoch >= 0
