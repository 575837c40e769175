"""The share coordinator's APIs (KIP-932), which brokers send one another about a share
group's delivery state in `__share_group_state`, request by request as Kafka 4.4 answers
them (raw requests built from Kafka's message definitions, compat/python/kafka44):
FindCoordinator with key type 2 ("group:topicId:partition"), InitializeShareGroupState,
ReadShareGroupState, WriteShareGroupState, DeleteShareGroupState and
ReadShareGroupStateSummary.

- State must be initialized (the group coordinator does it) before it is read or
  written: INVALID_REQUEST otherwise, with Kafka's message.
- Writes combine with what was written: for each offset, the batch delivered more often
  (then the later state) wins; batches below the start offset go.
- A read by a newer leader fences writes of older leaders (FENCED_LEADER_EPOCH); a new
  state epoch (initialize again, as AlterShareGroupOffsets does) fences every writer
  before it (FENCED_STATE_EPOCH).
"""

from __future__ import annotations

import base64
import time
import uuid

from kafka.protocol.metadata.find_coordinator import FindCoordinatorRequest

import clients
from kafka44 import (DeleteShareGroupStateRequest as Delete, InitializeShareGroupStateRequest as Init,
                     ReadShareGroupStateRequest as Read, ReadShareGroupStateSummaryRequest as Summary,
                     WriteShareGroupStateRequest as Write)

INVALID_REQUEST, FENCED_LEADER_EPOCH, FENCED_STATE_EPOCH = 42, 74, 124
AVAILABLE, ACKNOWLEDGED, ARCHIVED = 0, 2, 4


class ShareState:
    """One group's state for partition 0 of one topic, spoken by hand."""

    def __init__(self, broker, topic: str, group: str):
        clients.create_topic(broker, topic, 1)
        admin = clients.kp_admin(broker)
        try:
            self.topic_id = admin.describe_topics([topic])[0]["topic_id"]
        finally:
            admin.close()
        self.group = group
        self.raw = clients.RawGroupClient(broker)
        kafka_id = base64.urlsafe_b64encode(uuid.UUID(self.topic_id).bytes).rstrip(b"=").decode()
        self.coordinator = self.raw.find_coordinator(f"{group}:{kafka_id}:0", key_type=2)

    def partition(self, response):
        (result,) = response.results
        (p,) = result.partitions
        return p

    def initialize(self, state_epoch: int, start: int):
        return self.partition(self.raw.call(Init(group_id=self.group, topics=[Init.InitializeStateData(
            topic_id=self.topic_id, partitions=[Init.InitializeStateData.PartitionData(
                partition=0, state_epoch=state_epoch, start_offset=start)])]), version=0))

    def read(self, leader_epoch: int, group: str | None = None):
        r = self.raw.call(Read(group_id=self.group if group is None else group, topics=[Read.ReadStateData(
            topic_id=self.topic_id, partitions=[Read.ReadStateData.PartitionData(
                partition=0, leader_epoch=leader_epoch)])]), version=0)
        return r if group is not None else self.partition(r)

    def write(self, state_epoch: int, leader_epoch: int, start: int, batches, complete: int = -1):
        B = Write.WriteStateData.PartitionData.StateBatch
        return self.partition(self.raw.call(Write(group_id=self.group, topics=[Write.WriteStateData(
            topic_id=self.topic_id, partitions=[Write.WriteStateData.PartitionData(
                partition=0, state_epoch=state_epoch, leader_epoch=leader_epoch, start_offset=start,
                delivery_complete_count=complete,
                state_batches=[B(first_offset=a, last_offset=z, delivery_state=s, delivery_count=c)
                               for a, z, s, c in batches])])]), version=1))

    def summary(self):
        return self.partition(self.raw.call(Summary(group_id=self.group, topics=[Summary.ReadStateSummaryData(
            topic_id=self.topic_id, partitions=[Summary.ReadStateSummaryData.PartitionData(
                partition=0, leader_epoch=0)])]), version=1))

    def delete(self):
        return self.partition(self.raw.call(Delete(group_id=self.group, topics=[Delete.DeleteStateData(
            topic_id=self.topic_id, partitions=[Delete.DeleteStateData.PartitionData(partition=0)])]), version=0))


def batches(p) -> list[tuple[int, int, int, int]]:
    return [(b.first_offset, b.last_offset, b.delivery_state, b.delivery_count) for b in p.state_batches]


def test_find_coordinator_for_a_share_partition_key(broker, topic):
    s = ShareState(broker, topic, clients.unique_name("state-find"))
    assert (s.coordinator.error_code, s.coordinator.port) == (0, broker.port)
    r = s.raw.call(FindCoordinatorRequest(key="not-a-key", key_type=2, coordinator_keys=["not-a-key"]))
    assert [(c.error_code, c.node_id) for c in r.coordinators] == [(INVALID_REQUEST, -1)]


def test_state_is_initialized_before_it_is_read_or_written(broker, topic):
    s = ShareState(broker, topic, clients.unique_name("state-uninit"))
    deadline = time.monotonic() + 30
    while (p := s.read(0)).error_code not in (0, INVALID_REQUEST) and time.monotonic() < deadline:
        time.sleep(0.2)  # the coordinator may still be loading its new topic
    assert (p.error_code, p.error_message) == (
        INVALID_REQUEST, "Read operation on uninitialized share partition not allowed.")
    w = s.write(0, 0, 0, [(0, 4, ACKNOWLEDGED, 1)])
    assert (w.error_code, w.error_message) == (
        INVALID_REQUEST, "Write operation on uninitialized share partition not allowed.")
    summary = s.summary()
    assert (summary.error_code, summary.state_epoch, summary.start_offset) == (0, 0, -1)
    # No group: Kafka answers with no results at all.
    assert s.read(0, group="").results == []


def test_writes_combine_and_epochs_fence_stale_writers(broker, topic):
    s = ShareState(broker, topic, clients.unique_name("state-write"))
    deadline = time.monotonic() + 30
    while (i := s.initialize(0, 5)).error_code != 0 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert i.error_code == 0
    assert s.write(0, 1, 5, [(5, 9, ACKNOWLEDGED, 1), (10, 12, AVAILABLE, 1)], complete=5).error_code == 0
    # Delivered more often, offset 11's state wins over the earlier batch.
    assert s.write(0, 1, -1, [(11, 11, ARCHIVED, 3), (8, 8, AVAILABLE, 1)]).error_code == 0

    p = s.read(2)  # a new leader (epoch 2) takes over
    assert (p.error_code, p.state_epoch, p.start_offset) == (0, 0, 5)
    assert batches(p) == [(5, 9, ACKNOWLEDGED, 1), (10, 10, AVAILABLE, 1), (11, 11, ARCHIVED, 3),
                          (12, 12, AVAILABLE, 1)]
    stale = s.write(0, 1, 10, [])
    assert (stale.error_code, stale.error_message) == (
        FENCED_LEADER_EPOCH, "The leader epoch in the request is older than the epoch on the broker.")
    # The start moves past what is done with; batches below it go.
    assert s.write(0, 2, 11, [(10, 10, ACKNOWLEDGED, 1)], complete=1).error_code == 0
    p = s.read(2)
    assert (p.start_offset, batches(p)) == (11, [(11, 11, ARCHIVED, 3), (12, 12, AVAILABLE, 1)])
    summary = s.summary()
    assert (summary.state_epoch, summary.leader_epoch, summary.start_offset,
            summary.delivery_complete_count) == (0, 2, 11, 1)

    # A new state epoch (offsets reset): the state starts again; older writers are fenced.
    assert s.initialize(1, 20).error_code == 0
    old = s.write(0, 3, 21, [])
    assert (old.error_code, old.error_message) == (
        FENCED_STATE_EPOCH, "The coordinator rejected the request because the state epoch did not match.")
    p = s.read(3)
    assert (p.error_code, p.state_epoch, p.start_offset, batches(p)) == (0, 1, 20, [])

    assert s.delete().error_code == 0
    assert s.read(3).error_code == INVALID_REQUEST
    assert s.delete().error_code == 0  # nothing left: still fine
