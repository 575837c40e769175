//! Share-group acknowledgements (KIP-932), as ShareFetch and
//! ShareAcknowledge both carry them: applied to the share-partition, then
//! written to the share coordinator before they are answered, as Kafka does.

use super::share_groups::initial_offset;
use crate::broker::Broker;
use crate::share::partition::{AckError, ShareLimits};
use crate::share::sessions::SessionView;
use crate::share::{durable, ShareKey, ShareManager, ShareSettings};
use crate::storage::{now_ms, Partition};
use kafka_protocol::ResponseError as E;

/// One acknowledgement batch as both requests carry it.
pub struct Ack {
    first: i64,
    last: i64,
    types: Vec<i8>,
}

impl Ack {
    pub fn new(first: i64, last: i64, types: Vec<i8>) -> Ack {
        Ack { first, last, types }
    }
}

fn ack_error_code(e: AckError) -> i16 {
    match e {
        AckError::InvalidRecordState => E::InvalidRecordState.code(),
        AckError::InvalidRequest => E::InvalidRequest.code(),
    }
}

/// Loads a share-partition's written state here before it is first used.
pub async fn load(broker: &Broker, key: &ShareKey, partition: &Partition, settings: &ShareSettings) -> Result<(), i16> {
    let leader_epoch = partition.log().leader_epoch();
    durable::ensure_loaded(&broker.shares, &broker.persister(), key, leader_epoch, || {
        initial_offset(partition, &settings.auto_offset_reset)
    })
    .await
}

/// Applies a partition's acknowledgements; the first refusal is its answer.
fn acknowledge(shares: &ShareManager, key: &ShareKey, member: &str, acks: &[Ack], limits: &ShareLimits) -> i16 {
    let now = now_ms();
    let mut code = 0;
    for ack in acks {
        let result = shares
            .with(key, |p| {
                p.acknowledge(member, ack.first, ack.last, &ack.types, limits, now)
            })
            .unwrap_or(Err(AckError::InvalidRecordState));
        if let Err(e) = result {
            if code == 0 {
                code = ack_error_code(e);
            }
        }
    }
    code
}

/// Applies acknowledgements and writes the state they leave before they
/// are answered, as Kafka does.
pub async fn acknowledge_durably(
    broker: &Broker,
    key: &ShareKey,
    partition: &Partition,
    member: &str,
    acks: &[Ack],
    settings: &ShareSettings,
) -> i16 {
    if let Err(code) = load(broker, key, partition, settings).await {
        return code;
    }
    let code = acknowledge(&broker.shares, key, member, acks, &settings.limits);
    let written = durable::persist(&broker.shares, &broker.persister(), key).await;
    if code == 0 {
        written
    } else {
        code
    }
}

/// A member that closed its share session gives back what it held.
pub async fn release_held(broker: &Broker, group: &str, member: &str, view: &SessionView, settings: &ShareSettings) {
    let persister = broker.persister();
    durable::release_member(
        &broker.shares,
        &persister,
        group,
        member,
        &view.partitions,
        &settings.limits,
    )
    .await;
}
