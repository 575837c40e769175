"""Kafka 4.4 messages that kafka-python does not define yet, built by kafka-python's own
machinery from Kafka's message definitions (the JSON files here are copied unchanged
from kafka-clients-4.4.0.jar, common/message/). For raw requests in the compat cases:

    from kafka44 import ConsumerGroupHeartbeatRequest
    raw = clients.RawGroupClient(broker)
    raw.call(ConsumerGroupHeartbeatRequest(group_id=..., ...), version=1)
"""

import sys

from kafka.protocol.api_message import ApiMessage

_HERE = sys.modules[__name__]


class ConsumerGroupHeartbeatRequest(ApiMessage, load_json=_HERE): pass
class ConsumerGroupHeartbeatResponse(ApiMessage, load_json=_HERE): pass
# v6 names topics by id (KIP-1319); kafka-python stops at v5.
class TxnOffsetCommitRequest(ApiMessage, load_json=_HERE): pass
class TxnOffsetCommitResponse(ApiMessage, load_json=_HERE): pass

# The share coordinator's (KIP-932), which brokers send one another.
class InitializeShareGroupStateRequest(ApiMessage, load_json=_HERE): pass
class InitializeShareGroupStateResponse(ApiMessage, load_json=_HERE): pass
class ReadShareGroupStateRequest(ApiMessage, load_json=_HERE): pass
class ReadShareGroupStateResponse(ApiMessage, load_json=_HERE): pass
class WriteShareGroupStateRequest(ApiMessage, load_json=_HERE): pass
class WriteShareGroupStateResponse(ApiMessage, load_json=_HERE): pass
class DeleteShareGroupStateRequest(ApiMessage, load_json=_HERE): pass
class DeleteShareGroupStateResponse(ApiMessage, load_json=_HERE): pass
class ReadShareGroupStateSummaryRequest(ApiMessage, load_json=_HERE): pass
class ReadShareGroupStateSummaryResponse(ApiMessage, load_json=_HERE): pass
# Share and streams group heartbeats (KIP-932, KIP-1071).
class ShareGroupHeartbeatRequest(ApiMessage, load_json=_HERE): pass
class ShareGroupHeartbeatResponse(ApiMessage, load_json=_HERE): pass
class StreamsGroupHeartbeatRequest(ApiMessage, load_json=_HERE): pass
class StreamsGroupHeartbeatResponse(ApiMessage, load_json=_HERE): pass
class StreamsGroupTopologyDescriptionUpdateRequest(ApiMessage, load_json=_HERE): pass
class StreamsGroupTopologyDescriptionUpdateResponse(ApiMessage, load_json=_HERE): pass
# Delegation tokens (KIP-48).
class CreateDelegationTokenRequest(ApiMessage, load_json=_HERE): pass
class CreateDelegationTokenResponse(ApiMessage, load_json=_HERE): pass
class RenewDelegationTokenRequest(ApiMessage, load_json=_HERE): pass
class RenewDelegationTokenResponse(ApiMessage, load_json=_HERE): pass
class ExpireDelegationTokenRequest(ApiMessage, load_json=_HERE): pass
class ExpireDelegationTokenResponse(ApiMessage, load_json=_HERE): pass
class DescribeDelegationTokenRequest(ApiMessage, load_json=_HERE): pass
class DescribeDelegationTokenResponse(ApiMessage, load_json=_HERE): pass


__all__ = ["ShareGroupHeartbeatRequest", "ShareGroupHeartbeatResponse",
           "StreamsGroupHeartbeatRequest", "StreamsGroupHeartbeatResponse",
           "StreamsGroupTopologyDescriptionUpdateRequest", "StreamsGroupTopologyDescriptionUpdateResponse",
           "ConsumerGroupHeartbeatRequest", "ConsumerGroupHeartbeatResponse",
           "TxnOffsetCommitRequest", "TxnOffsetCommitResponse",
           "InitializeShareGroupStateRequest", "InitializeShareGroupStateResponse", "ReadShareGroupStateRequest", "ReadShareGroupStateResponse", "WriteShareGroupStateRequest", "WriteShareGroupStateResponse", "DeleteShareGroupStateRequest", "DeleteShareGroupStateResponse", "ReadShareGroupStateSummaryRequest", "ReadShareGroupStateSummaryResponse",
           "CreateDelegationTokenRequest", "CreateDelegationTokenResponse",
           "RenewDelegationTokenRequest", "RenewDelegationTokenResponse",
           "ExpireDelegationTokenRequest", "ExpireDelegationTokenResponse",
           "DescribeDelegationTokenRequest", "DescribeDelegationTokenResponse"]
