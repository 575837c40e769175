"""One consumer-group member, in its own OS process, as a user runs it.

    python group_worker.py '<json config>'

Started by clients.GroupMember. It subscribes with a real, unchanged client
(kafka-python or confluent-kafka), polls, and reports what it sees as JSON lines on
stdout (one event per line, flushed at once):

    {"ev": "started"}
    {"ev": "assign",  "added":   [[topic, p], ...], "assignment": [[topic, p], ...]}
    {"ev": "revoke",  "removed": [[topic, p], ...], "assignment": [...]}
    {"ev": "lost",    "removed": [[topic, p], ...], "assignment": [...]}
    {"ev": "records", "records": [[topic, p, offset, value], ...]}
    {"ev": "commit",  "ok": true, "offsets": [[topic, p, offset, metadata], ...]}
    {"ev": "commit",  "ok": false, "error": "...", "offsets": [...]}
    {"ev": "closed"}                       after a clean close()

"assignment" is the member's whole assignment after the callback (eager protocols
revoke everything and assign the new whole; cooperative ones move only what changes).

Config keys: client ("kp" | "ck"), bootstrap, group, topics, client_id, strategies
(assignor names, the client's own spelling), session_timeout_ms, instance_id,
commit (commit synchronously after every batch it processed), metadata (the commit
metadata string), max_records (process that many records in all, commit them, close
and exit), commit_at_start ([[topic, p, offset, metadata], ...] committed once, on
the first assignment, before consuming anything), extra (raw client config).

Commands on stdin, one per line: "close" = close the consumer cleanly (LeaveGroup,
unless static) and exit 0. EOF on stdin (the test went away) does the same.
"""

from __future__ import annotations

import json
import queue
import sys
import threading
import traceback

OUT_LOCK = threading.Lock()


def emit(event: str, **fields) -> None:
    line = json.dumps({"ev": event, **fields})
    with OUT_LOCK:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def tps(parts) -> list:
    return sorted([t, p] for t, p in parts)


def read_commands() -> "queue.Queue[str]":
    commands: "queue.Queue[str]" = queue.Queue()

    def reader():
        for line in sys.stdin:
            if line.strip():
                commands.put(line.strip())
        commands.put("close")  # EOF: nobody is listening any more

    threading.Thread(target=reader, daemon=True).start()
    return commands


class Member:
    """What both clients share: the assignment bookkeeping and the record budget."""

    def __init__(self, config: dict):
        self.config = config
        self.assignment: set[tuple[str, int]] = set()
        self.commit_at_start = config.get("commit_at_start")
        self.remaining = config.get("max_records")
        self.metadata = config.get("metadata") or ""

    def assigned(self, added) -> None:
        added = list(added)
        self.assignment |= set(added)
        emit("assign", added=tps(added), assignment=tps(self.assignment))

    def revoked(self, removed, lost: bool = False) -> None:
        removed = list(removed)
        self.assignment -= set(removed)
        emit("lost" if lost else "revoke", removed=tps(removed), assignment=tps(self.assignment))

    def take(self, records: list) -> list:
        """The records to process from a batch: all, or up to the remaining budget."""
        if self.remaining is not None:
            records = records[: self.remaining]
            self.remaining -= len(records)
        return records

    @property
    def budget_spent(self) -> bool:
        return self.remaining is not None and self.remaining <= 0

    def run(self, commands) -> None:
        self.subscribe()
        emit("started")
        while True:
            try:
                command = commands.get_nowait()
            except queue.Empty:
                command = None
            if command == "close":
                self.close()
                emit("closed")
                return
            records = self.poll()
            if self.commit_at_start and self.assignment:
                self.commit([tuple(x) for x in self.commit_at_start])
                self.commit_at_start = None
            records = self.take(records)
            if records:
                emit("records", records=records)
                if self.config.get("commit", True):
                    last: dict[tuple[str, int], int] = {}
                    for t, p, o, _ in records:
                        last[(t, p)] = max(o, last.get((t, p), -1))
                    self.commit([(t, p, o + 1, self.metadata) for (t, p), o in sorted(last.items())])
            if self.budget_spent:
                self.close()
                emit("closed")
                return


class KafkaPythonMember(Member):
    def subscribe(self) -> None:
        import kafka
        from kafka.consumer.subscription_state import ConsumerRebalanceListener
        from kafka.coordinator.assignors.cooperative_sticky import CooperativeStickyAssignor
        from kafka.coordinator.assignors.range import RangePartitionAssignor
        from kafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor
        from kafka.coordinator.assignors.sticky.sticky_assignor import StickyPartitionAssignor

        assignors = {a.name: a for a in (RangePartitionAssignor, RoundRobinPartitionAssignor,
                                         StickyPartitionAssignor, CooperativeStickyAssignor)}
        c = self.config
        settings = {
            "bootstrap_servers": c["bootstrap"],
            "group_id": c["group"],
            "client_id": c["client_id"],
            "enable_auto_commit": False,
            "auto_offset_reset": "earliest",
            "session_timeout_ms": c.get("session_timeout_ms", 6000),
            "heartbeat_interval_ms": min(1000, c.get("session_timeout_ms", 6000) // 3),
            "reconnect_backoff_max_ms": 1000,
            "request_timeout_ms": 20000,
        }
        if c.get("strategies"):
            settings["partition_assignment_strategy"] = [assignors[s] for s in c["strategies"]]
        if c.get("instance_id"):
            settings["group_instance_id"] = c["instance_id"]
        settings.update(c.get("extra") or {})
        self.consumer = kafka.KafkaConsumer(**settings)
        member = self

        class Listener(ConsumerRebalanceListener):
            def on_partitions_revoked(self, revoked):
                member.revoked((tp.topic, tp.partition) for tp in revoked)

            def on_partitions_assigned(self, assigned):
                member.assigned((tp.topic, tp.partition) for tp in assigned)

            def on_partitions_lost(self, lost):
                member.revoked(((tp.topic, tp.partition) for tp in lost), lost=True)

        self.consumer.subscribe(c["topics"], listener=Listener())

    def poll(self) -> list:
        batch = self.consumer.poll(timeout_ms=200)
        out = []
        for tp in sorted(batch):
            out += [[r.topic, r.partition, r.offset, (r.value or b"").decode()] for r in batch[tp]]
        return out

    def commit(self, offsets) -> None:
        from kafka import TopicPartition
        from kafka.structs import OffsetAndMetadata
        try:
            self.consumer.commit({TopicPartition(t, p): OffsetAndMetadata(o, m, -1)
                                  for t, p, o, m in offsets})
            emit("commit", ok=True, offsets=[list(x) for x in offsets])
        except Exception as e:  # CommitFailedError during a rebalance, say
            emit("commit", ok=False, error=repr(e), offsets=[list(x) for x in offsets])

    def close(self) -> None:
        self.consumer.close()


class ConfluentMember(Member):
    def subscribe(self) -> None:
        import confluent_kafka
        c = self.config
        settings = {
            "bootstrap.servers": c["bootstrap"],
            "group.id": c["group"],
            "client.id": c["client_id"],
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": c.get("session_timeout_ms", 6000),
            "heartbeat.interval.ms": min(1000, c.get("session_timeout_ms", 6000) // 3),
            "reconnect.backoff.max.ms": 1000,
        }
        if c.get("strategies"):
            settings["partition.assignment.strategy"] = ",".join(c["strategies"])
        if c.get("instance_id"):
            settings["group.instance.id"] = c["instance_id"]
        settings.update(c.get("extra") or {})
        self.consumer = confluent_kafka.Consumer(settings)
        self.consumer.subscribe(
            c["topics"],
            on_assign=lambda _c, parts: self.assigned((tp.topic, tp.partition) for tp in parts),
            on_revoke=lambda _c, parts: self.revoked((tp.topic, tp.partition) for tp in parts),
            on_lost=lambda _c, parts: self.revoked(((tp.topic, tp.partition) for tp in parts),
                                                   lost=True))

    def poll(self) -> list:
        import confluent_kafka
        out = []
        for m in self.consumer.consume(num_messages=500, timeout=0.2):
            if m.error():
                if m.error().code() != confluent_kafka.KafkaError._PARTITION_EOF:
                    emit("error", error=str(m.error()))
                continue
            out.append([m.topic(), m.partition(), m.offset(), (m.value() or b"").decode()])
        return out

    def commit(self, offsets) -> None:
        from confluent_kafka import TopicPartition
        try:
            result = self.consumer.commit(
                # No metadata: leave it out (an empty string would be sent as "\x00").
                offsets=[TopicPartition(t, p, o, m) if m else TopicPartition(t, p, o)
                         for t, p, o, m in offsets], asynchronous=False)
            errors = [f"{tp.topic}/{tp.partition}: {tp.error}" for tp in result or [] if tp.error]
            if errors:
                emit("commit", ok=False, error="; ".join(errors), offsets=[list(x) for x in offsets])
            else:
                emit("commit", ok=True, offsets=[list(x) for x in offsets])
        except Exception as e:  # KafkaException(REBALANCE_IN_PROGRESS), say
            emit("commit", ok=False, error=repr(e), offsets=[list(x) for x in offsets])

    def close(self) -> None:
        self.consumer.close()


def main() -> None:
    config = json.loads(sys.argv[1])
    member = {"kp": KafkaPythonMember, "ck": ConfluentMember}[config["client"]](config)
    try:
        member.run(read_commands())
    except Exception:
        emit("crashed", error=traceback.format_exc())
        raise


if __name__ == "__main__":
    main()
