"""Feature levels (KIP-584) with kafka-features: describe reads them (ApiVersions),
upgrade / downgrade change them (UpdateFeatures). transaction.version is the level
Sluice honours: downgraded to 1, Kafka 4.4's Java producer stops using transaction
version 2 (no epoch bump at each end), and uses it again once upgraded back.

group.version, share.version and streams.version switch the consumer (KIP-848), share
(KIP-932) and streams (KIP-1071) group protocols: at level 0 their heartbeats are answered
UNSUPPORTED_VERSION, as Kafka 4.4 answers them (it still advertises the APIs), and they
work again once upgraded.

Apache Kafka 4.4 lists more features (metadata.version, kraft.version,
eligible.leader.replicas.version); these cases look at the ones both serve alike. The
shared broker ends each case at the default levels again.
"""

from __future__ import annotations

import re
import uuid

import pytest

import clients
import kafka_tools
from test_tools import create
from test_transaction_version_2_producer import steps, steps_classes  # noqa: F401 (fixtures)
from test_transactions import txn_name
from kafka44 import (ConsumerGroupHeartbeatRequest, ShareGroupHeartbeatRequest,
                     StreamsGroupHeartbeatRequest)

pytestmark = pytest.mark.skipif(not kafka_tools.jars_present(), reason="Kafka jars not fetched")

TV = "transaction.version"
LINE = re.compile(r"Feature: (\S+)\s+SupportedMinVersion: (\S+)\s+SupportedMaxVersion: (\S+)\s+"
                  r"FinalizedVersionLevel: (\S+)\s+Epoch: (\S+)")


def features(broker) -> dict[str, tuple[str, str, str]]:
    """kafka-features describe: name -> (supported min, supported max, finalized level)."""
    r = kafka_tools.run("kafka-features", "--bootstrap-server", broker.bootstrap, "describe")
    assert r.code == 0, str(r)
    return {m.group(1): m.group(2, 3, 4) for m in map(LINE.match, r.stdout.splitlines()) if m}


def feature_command(broker, *args: str) -> kafka_tools.Result:
    return kafka_tools.run("kafka-features", "--bootstrap-server", broker.bootstrap, *args)


def wait_level(broker, level: str) -> None:
    clients.wait_until(lambda: features(broker)[TV][2] == level, f"{TV} finalized at {level}", 30)


def epochs_over_two_transactions(steps, broker, topic: str) -> tuple[bool, list[int]]:
    """A Java transactional producer commits twice: whether it used transaction version 2,
    and its epoch after init and after each commit."""
    run = steps(broker, txn_name("features"), "init", "state",
                "begin", f"send:{topic}:0:a", "commit", "state",
                "begin", f"send:{topic}:0:b", "commit", "state")
    outcomes = run.finish()
    assert not [o for o in outcomes if o.startswith("ERROR")], run.lines
    states = run.states()
    (tv2,) = {t for t, _, _ in states}
    return tv2, [e - states[0][2] for _, _, e in states]


def test_transaction_version_down_and_up_again(broker, tool_topic, steps):  # noqa: F811
    assert features(broker)[TV] == ("0", "2", "2")
    create(broker, tool_topic, 1)
    try:
        dry = feature_command(broker, "downgrade", "--feature", f"{TV}=1", "--dry-run")
        assert dry.code == 0 and f"{TV} can be downgraded to 1." in dry.stdout, str(dry)
        assert features(broker)[TV][2] == "2", "a dry run changes nothing"

        down = feature_command(broker, "downgrade", "--feature", f"{TV}=1")
        assert down.code == 0 and f"{TV} was downgraded to 1." in down.stdout, str(down)
        wait_level(broker, "1")
        assert epochs_over_two_transactions(steps, broker, tool_topic) == (False, [0, 0, 0])

        off = feature_command(broker, "disable", "--feature", TV)
        assert off.code == 0 and f"{TV} was disabled." in off.stdout, str(off)
        wait_level(broker, "0")
    finally:
        up = feature_command(broker, "upgrade", "--feature", f"{TV}=2")
    assert up.code == 0 and f"{TV} was upgraded to 2." in up.stdout, str(up)
    wait_level(broker, "2")
    assert epochs_over_two_transactions(steps, broker, tool_topic) == (True, [0, 1, 2])


def test_feature_updates_that_are_refused(broker):
    def refused(*args: str) -> str:
        r = feature_command(broker, *args)
        assert r.code != 0, str(r)
        return (r.stdout + r.stderr).strip()

    out = refused("upgrade", "--feature", f"{TV}=3")
    assert out.startswith(
        f"Could not upgrade {TV} to 3. The update failed for all features since the following feature had an "
        f"error: Invalid update version 3 for feature {TV}. Local controller 1 only supports versions 0-2"), out
    out = refused("upgrade", "--feature", f"{TV}=1")
    assert (f"Invalid update version 1 for feature {TV}. Can't downgrade the version of this feature without "
            "setting the upgrade type to either safe or unsafe downgrade." in out), out
    out = refused("upgrade", "--feature", "no.such.version=1")
    assert ("Invalid update version 1 for feature no.such.version. Local controller 1 does not support this "
            "feature." in out), out
    assert features(broker)[TV] == ("0", "2", "2")


# Kafka 4.4's levels on a new cluster: (supported min, supported max, finalized).
GROUP_FEATURES = {"group.version": ("0", "1", "1"), "share.version": ("0", "2", "2"),
                  "streams.version": ("0", "1", "1")}
UNSUPPORTED_VERSION = 35


def heartbeat(feature: str, group: str, member: str, epoch: int):
    """A heartbeat of the protocol `feature` switches: joining (epoch 0) or leaving (-1)."""
    joining = epoch == 0
    if feature == "group.version":
        return ConsumerGroupHeartbeatRequest(
            group_id=group, member_id=member, member_epoch=epoch,
            rebalance_timeout_ms=30000 if joining else -1,
            subscribed_topic_names=["t"] if joining else None,
            topic_partitions=[] if joining else None)
    if feature == "share.version":
        return ShareGroupHeartbeatRequest(group_id=group, member_id=member, member_epoch=epoch,
                                          subscribed_topic_names=["t"] if joining else None)
    topology = StreamsGroupHeartbeatRequest.Topology(epoch=0, subtopologies=[
        StreamsGroupHeartbeatRequest.Topology.Subtopology(
            subtopology_id="0", source_topics=["t"], source_topic_regex=[],
            state_changelog_topics=[], repartition_sink_topics=[],
            repartition_source_topics=[], copartition_groups=[])])
    return StreamsGroupHeartbeatRequest(
        group_id=group, member_id=member, member_epoch=epoch, endpoint_information_epoch=-1,
        rebalance_timeout_ms=30000 if joining else -1, topology=topology if joining else None,
        active_tasks=[] if joining else None, standby_tasks=[] if joining else None,
        warmup_tasks=[] if joining else None, process_id=member if joining else None)


def heartbeat_error(broker, feature: str, group: str) -> int:
    """A new member's first heartbeat: its error code (the member leaves again)."""
    raw = clients.RawGroupClient(broker)
    member = uuid.uuid4().hex[:22]
    try:
        raw.find_coordinator(group)
        response = raw.call(heartbeat(feature, group, member, 0), version=1)
        if response.error_code == 0:
            raw.call(heartbeat(feature, group, member, -1), version=1)
        return response.error_code
    finally:
        raw.close()


@pytest.mark.parametrize("feature", sorted(GROUP_FEATURES))
def test_a_group_protocol_is_off_at_level_0_of_its_feature(broker, feature):
    assert {f: features(broker)[f] for f in GROUP_FEATURES} == GROUP_FEATURES
    default = GROUP_FEATURES[feature][2]
    group = f"features-{feature}-{uuid.uuid4().hex[:8]}"
    clients.wait_until(lambda: heartbeat_error(broker, feature, group) == 0,
                       f"a member joins with {feature} at {default}", 30)
    try:
        down = feature_command(broker, "downgrade", "--feature", f"{feature}=0")
        assert down.code == 0 and f"{feature} was downgraded to 0." in down.stdout, str(down)
        clients.wait_until(lambda: features(broker)[feature][2] == "0", f"{feature} at 0", 30)
        assert heartbeat_error(broker, feature, group + "-off") == UNSUPPORTED_VERSION
    finally:
        up = feature_command(broker, "upgrade", "--feature", f"{feature}={default}")
    assert up.code == 0 and f"{feature} was upgraded to {default}." in up.stdout, str(up)
    clients.wait_until(lambda: features(broker)[feature][2] == default, f"{feature} at {default}", 30)
    clients.wait_until(lambda: heartbeat_error(broker, feature, group + "-on") == 0,
                       f"members join again with {feature} at {default}", 30)
