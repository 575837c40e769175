"""Transaction version 2 (KIP-890 part 2) request by request, as Kafka 4.4 answers it:
raw requests (kafka-python's message classes, compat/python/kafka44 for TxnOffsetCommit
v6), for what no client library shows directly. The Java producer's use of it is in
compat/java/test_transaction_version_2_producer.py.

- EndTxn v5 bumps the producer epoch at every end and answers the new producer id and
  epoch; a retry with the old epoch is answered the same; an abort with nothing open
  still bumps it; EndTxn v4 and older (transaction version 1: librdkafka, kafka-python)
  end with the epoch they have.
- A transactional Produce v12+ adds its partition to the transaction (no
  AddPartitionsToTxn); older versions are checked to have added it and told
  INVALID_TXN_STATE (v10 and older) or TRANSACTION_ABORTABLE (v11) otherwise.
- AddPartitionsToTxn v5 is the brokers' form: a batch of transactions, each verified
  (verifyOnly) or added.
- TxnOffsetCommit v5+ adds the group's offsets partition (no AddOffsetsToTxn); v6 names
  topics by id.
- A partition that does not exist: UNKNOWN_TOPIC_OR_PARTITION for as long as a client
  asks, past the transaction timeout; nothing was added, so nothing is aborted or fenced.
"""

from __future__ import annotations

import time

import pytest
from kafka.protocol.producer.produce import ProduceRequest
from kafka.protocol.producer.transaction import (AddOffsetsToTxnRequest,
                                                 AddPartitionsToTxnRequest, EndTxnRequest,
                                                 InitProducerIdRequest)
from kafka.record.default_records import DefaultRecordBatchBuilder

import clients
from test_transactions import (READ_COMMITTED, READ_UNCOMMITTED, assert_both_read, values,
                               read_kp, wait_no_open_transaction)

INVALID_PRODUCER_EPOCH, INVALID_TXN_STATE, CONCURRENT_TRANSACTIONS, PRODUCER_FENCED = 47, 48, 51, 90
UNKNOWN_TOPIC_OR_PARTITION, OPERATION_NOT_ATTEMPTED = 3, 55
UNKNOWN_TOPIC_ID, TRANSACTION_ABORTABLE = 100, 120


class Txn:
    """One transactional id spoken by hand on one connection."""

    def __init__(self, broker, name: str, timeout_ms: int = 60000):
        self.raw = clients.RawGroupClient(broker)
        self.id = clients.unique_name(name)
        self.raw.find_coordinator(self.id, key_type=1)  # creates __transaction_state
        deadline = time.monotonic() + 30
        while True:
            r = self.raw.call(InitProducerIdRequest(transactional_id=self.id,
                                                    transaction_timeout_ms=timeout_ms,
                                                    producer_id=-1, producer_epoch=-1), version=4)
            if r.error_code == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.2)  # the coordinator may still be loading
        assert r.error_code == 0, r
        self.pid, self.epoch = r.producer_id, r.producer_epoch
        self.seq: dict[tuple[str, int], int] = {}

    def close(self) -> None:
        self.raw.close()

    def produce(self, topic: str, partition: int, value: bytes, version: int,
                epoch: int | None = None) -> int:
        epoch = self.epoch if epoch is None else epoch
        seq = self.seq.get((topic, partition), 0)
        builder = DefaultRecordBatchBuilder(magic=2, compression_type=0, is_transactional=True,
                                            producer_id=self.pid, producer_epoch=epoch,
                                            base_sequence=seq, batch_size=1 << 20)
        builder.append(0, timestamp=int(time.time() * 1000), key=None, value=value, headers=[])
        Topic = ProduceRequest.TopicProduceData
        r = self.raw.call(ProduceRequest(transactional_id=self.id, acks=-1, timeout_ms=10000,
                                         topic_data=[Topic(name=topic, partition_data=[
                                             Topic.PartitionProduceData(index=partition,
                                                                        records=bytes(builder.build()))])]),
                          version=version)
        code = r.responses[0].partition_responses[0].error_code
        if code == 0:
            self.seq[(topic, partition)] = seq + 1
        return code

    def end(self, commit: bool, version: int = 5, epoch: int | None = None):
        """EndTxn, again while CONCURRENT_TRANSACTIONS (as clients do: Kafka answers
        before its markers are written, and a retry meanwhile finds the end under way)."""
        deadline = time.monotonic() + 30
        while True:
            r = self.raw.call(EndTxnRequest(transactional_id=self.id, producer_id=self.pid,
                                            producer_epoch=self.epoch if epoch is None else epoch,
                                            committed=commit), version=version)
            if r.error_code != CONCURRENT_TRANSACTIONS or time.monotonic() > deadline:
                return r
            time.sleep(0.1)

    def adopt(self, epoch: int) -> None:
        """Go on with a new epoch: sequences start again."""
        self.epoch, self.seq = epoch, {}


@pytest.fixture
def txns():
    made: list[Txn] = []

    def make(broker, name, **kw) -> Txn:
        t = Txn(broker, name, **kw)
        made.append(t)
        return t

    yield make
    for t in made:
        t.close()


def test_end_txn_v5_bumps_the_epoch_at_every_end(broker, topic, txns):
    clients.create_topic(broker, topic, 1)
    t = txns(broker, "tv2-end")
    e0 = t.epoch
    assert t.produce(topic, 0, b"one", version=12) == 0  # added by the Produce itself
    r = t.end(commit=True)
    assert (r.error_code, r.producer_id, r.producer_epoch) == (0, t.pid, e0 + 1)
    # The answer lost, the client retries with its old epoch: the same answer.
    r = t.end(commit=True)
    assert (r.error_code, r.producer_id, r.producer_epoch) == (0, t.pid, e0 + 1)
    r = t.end(commit=False)
    assert (r.error_code, r.producer_id, r.producer_epoch) == (INVALID_TXN_STATE, -1, -1)
    t.adopt(e0 + 1)
    # Nothing open: a commit is refused, an abort bumps the epoch all the same.
    assert t.end(commit=True).error_code == INVALID_TXN_STATE
    r = t.end(commit=False)
    assert (r.error_code, r.producer_epoch) == (0, e0 + 2)
    # The old epoch is fenced at the partition (the coordinator says PRODUCER_FENCED,
    # the leader passes it on as INVALID_PRODUCER_EPOCH) and at EndTxn.
    assert t.produce(topic, 0, b"zombie", version=12, epoch=e0 + 1) == INVALID_PRODUCER_EPOCH
    assert t.end(commit=True, epoch=e0).error_code == PRODUCER_FENCED
    t.adopt(e0 + 2)
    assert t.produce(topic, 0, b"two", version=12) == 0
    assert t.produce(topic, 0, b"three", version=12) == 0
    r = t.end(commit=False)
    assert (r.error_code, r.producer_epoch) == (0, e0 + 3)

    # EndTxn v4 (transaction version 1) ends with the epoch the producer has.
    t.adopt(e0 + 3)
    assert t.produce(topic, 0, b"four", version=12) == 0
    assert t.end(commit=True, version=4).error_code == 0
    assert t.end(commit=True, version=4).error_code == 0, "a retried commit, same epoch"
    assert t.end(commit=False, version=4).error_code == INVALID_TXN_STATE

    # one, its commit marker, (the empty abort writes no marker), two, three, their abort
    # marker, four, its commit marker.
    assert wait_no_open_transaction(broker, topic, 1) == {0: 7}
    assert_both_read(broker, topic, 1, READ_COMMITTED, [(0, 0, None, b"one"), (0, 5, None, b"four")])
    assert values(read_kp(broker, topic, 1, READ_UNCOMMITTED)) == [b"one", b"two", b"three", b"four"]


@pytest.mark.parametrize("version, code", [(9, INVALID_TXN_STATE), (10, INVALID_TXN_STATE),
                                           (11, TRANSACTION_ABORTABLE), (12, 0)])
def test_transactional_produce_to_a_partition_not_added(broker, topic, txns, version, code):
    """Before Produce v12 the client must have added the partition (AddPartitionsToTxn):
    the leader checks with the coordinator and refuses, in the words the version knows.
    From v12 the leader adds it."""
    clients.create_topic(broker, topic, 1)
    t = txns(broker, f"tv2-produce-v{version}")
    assert t.produce(topic, 0, b"x", version=version) == code
    if code:
        # With the partition added (as such a client does first), the same batch goes in.
        topics = [AddPartitionsToTxnRequest.AddPartitionsToTxnTopic(name=topic, partitions=[0])]
        r = t.raw.call(AddPartitionsToTxnRequest(v3_and_below_transactional_id=t.id,
                                                 v3_and_below_producer_id=t.pid,
                                                 v3_and_below_producer_epoch=t.epoch,
                                                 v3_and_below_topics=topics), version=3)
        assert r.results_by_topic_v3_and_below[0].results_by_partition[0].partition_error_code == 0
        assert t.produce(topic, 0, b"x", version=version) == 0
    assert t.end(commit=True, version=4).error_code == 0
    assert wait_no_open_transaction(broker, topic, 1) == {0: 2}


def add_v5(t: Txn, transactions: list[tuple[str, int, int, bool, dict[str, list[int]]]]):
    """AddPartitionsToTxn v5 (the brokers' form): (id, pid, epoch, verify_only, topics)."""
    Txn_ = AddPartitionsToTxnRequest.AddPartitionsToTxnTransaction
    Topic = Txn_.AddPartitionsToTxnTopic
    r = t.raw.call(AddPartitionsToTxnRequest(transactions=[
        Txn_(transactional_id=i, producer_id=p, producer_epoch=e, verify_only=v,
             topics=[Topic(name=n, partitions=ps) for n, ps in topics.items()])
        for i, p, e, v, topics in transactions]), version=5)
    assert r.error_code == 0, r
    return {x.transactional_id: {(tr.name, pr.partition_index): pr.partition_error_code
                                 for tr in x.topic_results for pr in tr.results_by_partition}
            for x in r.results_by_transaction}


def test_add_partitions_to_txn_v5_verifies_or_adds_a_batch(broker, topic, txns):
    clients.create_topic(broker, topic, 2)
    a, b = txns(broker, "tv2-add-a"), txns(broker, "tv2-add-b")
    # Two transactions in one request: a's partition is checked (not added), b's added.
    got = add_v5(a, [(a.id, a.pid, a.epoch, True, {topic: [0]}),
                     (b.id, b.pid, b.epoch, False, {topic: [0, 1]})])
    assert got == {a.id: {(topic, 0): TRANSACTION_ABORTABLE}, b.id: {(topic, 0): 0, (topic, 1): 0}}
    assert add_v5(a, [(b.id, b.pid, b.epoch, True, {topic: [1]})]) == {b.id: {(topic, 1): 0}}
    # The coordinator's own words: a fenced epoch is PRODUCER_FENCED here.
    assert add_v5(a, [(b.id, b.pid, b.epoch - 1 if b.epoch else b.epoch + 1, True, {topic: [1]})]) == {
        b.id: {(topic, 1): PRODUCER_FENCED}}
    # One partition that does not exist and none is added.
    assert add_v5(a, [(a.id, a.pid, a.epoch, False, {topic: [1, 7]})]) == {
        a.id: {(topic, 1): OPERATION_NOT_ATTEMPTED, (topic, 7): UNKNOWN_TOPIC_OR_PARTITION}}
    assert add_v5(a, [(a.id, a.pid, a.epoch, True, {topic: [1]})]) == {a.id: {(topic, 1): TRANSACTION_ABORTABLE}}
    # b's partitions are in its transaction: its records go in with Produce v11, and the
    # end writes markers to both.
    assert b.produce(topic, 0, b"b0", version=11) == 0
    assert b.produce(topic, 1, b"b1", version=11) == 0
    assert b.end(commit=True).error_code == 0
    assert wait_no_open_transaction(broker, topic, 2) == {0: 2, 1: 2}


def test_txn_offset_commit_v5_adds_the_offsets_partition(broker, topic, txns):
    """With transaction version 2 the client sends no AddOffsetsToTxn: TxnOffsetCommit v5+
    puts the group's offsets partition in the transaction. v4 and older still need
    AddOffsetsToTxn first. v6 names topics by id."""
    from kafka.protocol.producer.transaction import TxnOffsetCommitRequest as V5
    from kafka44 import TxnOffsetCommitRequest as V6

    clients.create_topic(broker, topic, 2)
    admin = clients.kp_admin(broker)
    try:
        topic_id = admin.describe_topics([topic])[0]["topic_id"]
    finally:
        admin.close()
    t = txns(broker, "tv2-offsets")
    group = clients.unique_name("tv2-offsets-group")
    t.raw.find_coordinator(group)

    def commit(version: int, partition: int, offset: int, by_id=None) -> int:
        cls = V6 if version >= 6 else V5
        Topic = cls.TxnOffsetCommitRequestTopic
        part = Topic.TxnOffsetCommitRequestPartition(partition_index=partition, committed_offset=offset,
                                                     committed_leader_epoch=-1, committed_metadata="")
        topic_field = {"topic_id": by_id} if version >= 6 else {"name": topic}
        # kafka-python's own class (up to v5) has the field's older name.
        generation = {"generation_id_or_member_epoch" if version >= 6 else "generation_id": -1}
        r = t.raw.call(cls(transactional_id=t.id, group_id=group, producer_id=t.pid,
                           producer_epoch=t.epoch, member_id="", group_instance_id=None,
                           topics=[Topic(partitions=[part], **topic_field)], **generation),
                       version=version)
        return r.topics[0].partitions[0].error_code

    # v4 without AddOffsetsToTxn: the offsets partition is not in the transaction.
    assert commit(4, 0, 5) == TRANSACTION_ABORTABLE
    assert commit(3, 0, 5) == INVALID_TXN_STATE
    assert commit(5, 0, 5) == 0
    assert commit(6, 1, 7, by_id=topic_id) == 0
    import uuid
    assert commit(6, 1, 8, by_id=str(uuid.uuid4())) == UNKNOWN_TOPIC_ID
    assert commit(4, 0, 6) == 0, "now that the partition is in the transaction"
    assert clients.group_offsets(broker, group) == {}, "nothing before the commit"
    r = t.end(commit=True)
    assert (r.error_code, r.producer_epoch) == (0, t.epoch + 1)

    def committed():
        return {k: v[0] for k, v in clients.group_offsets(broker, group).items()}
    clients.wait_until(lambda: committed() == {(topic, 0): 6, (topic, 1): 7},
                       "the transaction's offsets to be committed")

    # Transaction version 1 unchanged: AddOffsetsToTxn, then TxnOffsetCommit v3.
    t.adopt(t.epoch + 1)
    r = t.raw.call(AddOffsetsToTxnRequest(transactional_id=t.id, producer_id=t.pid,
                                          producer_epoch=t.epoch, group_id=group), version=3)
    assert r.error_code == 0
    assert commit(3, 0, 9) == 0
    assert t.end(commit=False, version=3).error_code == 0
    time.sleep(1)
    assert committed() == {(topic, 0): 6, (topic, 1): 7}, "aborted: the offsets stay"


@pytest.mark.parametrize("with_other", [False, True], ids=["nothing-added", "other-added"])
def test_adding_a_partition_that_does_not_exist(broker, topic, txns, with_other):
    """A transaction version 1 client (AddPartitionsToTxn before producing, as librdkafka
    and kafka-python) asks again and again to add a partition that does not exist. It is
    told UNKNOWN_TOPIC_OR_PARTITION every time, also after the transaction timeout (3 s;
    the broker looks for timed-out transactions every 10 s): the coordinator never
    learnt of the partition. With nothing added no transaction is open, so there is
    nothing to abort: the client's EndTxn(abort) gets INVALID_TXN_STATE, its epoch
    unchanged. Had it added another partition, that transaction times out and is
    aborted with a new epoch: then the client is fenced (PRODUCER_FENCED)."""
    clients.create_topic(broker, topic, 1)
    t = txns(broker, "tv2-missing", timeout_ms=3000)

    def add(partitions: list[int]) -> list[int]:
        topics = [AddPartitionsToTxnRequest.AddPartitionsToTxnTopic(name=topic, partitions=partitions)]
        r = t.raw.call(AddPartitionsToTxnRequest(v3_and_below_transactional_id=t.id,
                                                 v3_and_below_producer_id=t.pid,
                                                 v3_and_below_producer_epoch=t.epoch,
                                                 v3_and_below_topics=topics), version=3)
        return [p.partition_error_code for p in r.results_by_topic_v3_and_below[0].results_by_partition]

    if with_other:
        assert add([0]) == [0]
    started = time.monotonic()
    while time.monotonic() - started < 16:
        assert add([5]) == [UNKNOWN_TOPIC_OR_PARTITION]
        assert t.produce(topic, 5, b"x", version=9) == UNKNOWN_TOPIC_OR_PARTITION
        time.sleep(2)
    if with_other:
        assert t.end(commit=False, version=3).error_code == PRODUCER_FENCED
    else:
        assert t.end(commit=False, version=3).error_code == INVALID_TXN_STATE
        assert add([0]) == [0], "the producer is not fenced"
        assert t.end(commit=False, version=3).error_code == 0
