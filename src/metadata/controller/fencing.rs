//! Broker liveness (Kafka's BrokerHeartbeatManager): brokers heartbeat to
//! the active controller; one silent for `broker.session.timeout.ms`, or one
//! that says it is shutting down, is fenced — out of every ISR, and leaders
//! elsewhere for the partitions it led. A fenced broker that heartbeats
//! again is unfenced and leads the partitions left without a leader.

use super::{Controller, ControllerError, ControllerResult};
use crate::metadata::image::MetadataImage;
use crate::metadata::records::MetadataRecord;
use crate::quorum::rpc::ControllerOp;
use std::collections::{HashMap, HashSet};
use std::time::Duration;
use tokio::time::Instant;
use tracing::info;

/// When each broker was last heard from, as the active controller saw it.
#[derive(Default)]
pub struct Heartbeats {
    last: HashMap<i32, Instant>,
    /// Since when this node has been the active controller: everyone gets
    /// a full session from then before being fenced.
    active_since: Option<Instant>,
    /// `broker.session.timeout.ms`, once the fencing task has run here.
    session: Option<Duration>,
    /// Brokers fenced in a controlled shutdown: a heartbeat sent before it
    /// began (still in flight) must not unfence them; registering again does.
    shutting_down: HashSet<i32>,
}

/// The records that fence `broker`: its registration, and every partition
/// whose ISR holds it (a new leader from the ISR when it led).
fn fence(image: &MetadataImage, broker: i32, unclean: &dyn Fn(&str) -> bool) -> Vec<MetadataRecord> {
    let Some(registration) = image.brokers.get(&broker) else {
        return Vec::new();
    };
    // The registration last: records past 10,000 go in more than one batch,
    // and a controller that fails between them leaves the broker unfenced,
    // so the next controller fences it again and finishes the job.
    let mut records = leave_isrs(image, broker, unclean);
    records.push(MetadataRecord::RegisterBroker({
        let mut r = registration.clone();
        r.fenced = true;
        r
    }));
    records
}

/// Whether a topic allows unclean leader election
/// (`unclean.leader.election.enable`: the topic's, else the brokers' default).
pub(super) fn unclean_allowed<'a>(
    image: &'a MetadataImage,
    config: &'a super::ControllerConfig,
) -> impl Fn(&str) -> bool + 'a {
    let default = config
        .topic_defaults(image)
        .ok()
        .and_then(|d| d.get(UNCLEAN).map(|(v, _)| v.eq_ignore_ascii_case("true")))
        .unwrap_or(false);
    move |topic: &str| {
        image
            .topic_configs(topic)
            .get(UNCLEAN)
            .map_or(default, |v| v.eq_ignore_ascii_case("true"))
    }
}

const UNCLEAN: &str = "unclean.leader.election.enable";

/// The partition records that take `broker` out of every ISR and give the
/// partitions it led a leader from the rest of their ISR (fencing and
/// unregistering both do this).
pub(super) fn leave_isrs(image: &MetadataImage, broker: i32, unclean: &dyn Fn(&str) -> bool) -> Vec<MetadataRecord> {
    leave_isrs_of(image, broker, unclean, &|_, _| true)
}

/// As `leave_isrs`, for the partitions `which` (topic id, index) accepts.
pub(super) fn leave_isrs_of(
    image: &MetadataImage,
    broker: i32,
    unclean: &dyn Fn(&str) -> bool,
    which: &dyn Fn(uuid::Uuid, i32) -> bool,
) -> Vec<MetadataRecord> {
    let fenced = |id: i32| id == broker || image.brokers.get(&id).is_none_or(|b| b.fenced);
    let mut records = Vec::new();
    for topic in image.topics.iter() {
        for (index, p) in topic.partitions.iter().enumerate() {
            if !p.isr.contains(&broker) && p.leader != broker {
                continue;
            }
            if !which(topic.id, index as i32) {
                continue;
            }
            // Kafka keeps the last ISR member even when it is gone (no unclean election).
            let mut isr: Vec<i32> = p.isr.iter().copied().filter(|r| *r != broker).collect();
            if isr.is_empty() {
                isr = p.isr.clone();
            }
            let mut leader = if p.leader == broker || p.leader < 0 {
                p.replicas
                    .iter()
                    .copied()
                    .find(|r| isr.contains(r) && !fenced(*r))
                    .unwrap_or(-1)
            } else {
                p.leader
            };
            // No in-sync replica left: a live one outside the ISR leads only
            // when the topic allows an unclean election (it may lack records).
            if leader < 0 && unclean(&topic.name) {
                if let Some(r) = p.replicas.iter().copied().find(|r| !fenced(*r)) {
                    info!(topic = %topic.name, partition = index, leader = r, "unclean leader election");
                    leader = r;
                    isr = vec![r];
                }
            }
            let leader_changed = leader != p.leader;
            let mut record = p.to_record(topic.id, index as i32);
            record.isr = isr;
            record.leader = leader;
            record.leader_epoch = p.leader_epoch + i32::from(leader_changed);
            record.partition_epoch = p.partition_epoch + 1;
            // Leaving the ISR may be what a reassignment waited for (a leaving replica went).
            super::reassignments::complete_if_ready(&mut record, p, &|id| !fenced(id));
            records.push(MetadataRecord::Partition(record));
        }
    }
    records
}

/// The records that unfence `broker`: its registration, and the leadership
/// of partitions without a leader that it can lead (it is in their ISR).
fn unfence(image: &MetadataImage, broker: i32, unclean: &dyn Fn(&str) -> bool) -> Vec<MetadataRecord> {
    let Some(registration) = image.brokers.get(&broker) else {
        return Vec::new();
    };
    let mut records = Vec::new();
    for topic in image.topics.iter() {
        for (index, p) in topic.partitions.iter().enumerate() {
            if p.leader >= 0 || !p.replicas.contains(&broker) {
                continue;
            }
            // Out of the ISR, it may lead only by an unclean election.
            let isr = if p.isr.contains(&broker) {
                p.isr.clone()
            } else if unclean(&topic.name) {
                info!(topic = %topic.name, partition = index, leader = broker, "unclean leader election");
                vec![broker]
            } else {
                continue;
            };
            let mut record = p.to_record(topic.id, index as i32);
            record.isr = isr;
            record.leader = broker;
            record.leader_epoch = p.leader_epoch + 1;
            record.partition_epoch = p.partition_epoch + 1;
            records.push(MetadataRecord::Partition(record));
        }
    }
    // The registration last, as in `fence`: an interrupted unfencing is done again.
    records.push(MetadataRecord::RegisterBroker({
        let mut r = registration.clone();
        r.fenced = false;
        r
    }));
    records
}

impl Controller {
    /// Tells the active controller which of this broker's replicas are in
    /// a failed log directory (sent with every heartbeat while there are any).
    pub async fn replicas_offline(
        &self,
        broker_id: i32,
        partitions: Vec<(uuid::Uuid, i32)>,
    ) -> Result<(), ControllerError> {
        self.run(ControllerOp::ReplicasOffline { broker_id, partitions })
            .await
            .map(|_| ())
    }

    /// As the active controller: takes `broker` out of the ISRs of those
    /// partitions and moves their leadership (nothing when done already).
    pub(super) async fn replicas_offline_here(
        &self,
        broker: i32,
        partitions: Vec<(uuid::Uuid, i32)>,
    ) -> Result<(), ControllerError> {
        let offline: std::collections::HashSet<(uuid::Uuid, i32)> = partitions.into_iter().collect();
        self.write(move |image, config| {
            let unclean = unclean_allowed(image, config);
            let records = leave_isrs_of(image, broker, &unclean, &|id, index| offline.contains(&(id, index)));
            if !records.is_empty() {
                info!(
                    broker,
                    partitions = records.len(),
                    "replicas in a failed log directory leave their ISRs"
                );
            }
            ControllerResult::non_atomic(records, ())
        })
        .await
    }

    pub(super) fn forget_heartbeats_of(&self, broker: i32) {
        let mut beats = self.heartbeats();
        beats.last.remove(&broker);
        beats.shutting_down.remove(&broker);
    }

    /// Whether `broker`'s last heartbeat (or this controller's takeover)
    /// is within the session timeout. Unknown (just became active): yes.
    pub(super) fn has_valid_session(&self, broker: i32) -> bool {
        let beats = self.heartbeats();
        let (Some(session), Some(since)) = (beats.session, beats.active_since) else {
            return true;
        };
        let last = beats.last.get(&broker).copied().unwrap_or(since).max(since);
        Instant::now().duration_since(last) <= session
    }

    /// A broker registers (again): it is no longer shutting down.
    pub(super) fn registered(&self, broker: i32) {
        self.heartbeats().shutting_down.remove(&broker);
    }

    /// A registration was taken: the broker's session starts now (a broker
    /// new to the registry is unfenced at once, and must not be fenced for a
    /// silence from before it registered). Not on a refused one, which
    /// would keep an old incarnation's session alive.
    pub(super) fn session_started(&self, broker: i32) {
        self.heartbeats().last.insert(broker, Instant::now());
    }

    fn heartbeats(&self) -> std::sync::MutexGuard<'_, Heartbeats> {
        self.heartbeats.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A broker's heartbeat (or its last word before a controlled shutdown).
    pub(super) async fn heartbeat_here(&self, broker: i32, shutting_down: bool) -> Result<(), ControllerError> {
        {
            let mut beats = self.heartbeats();
            if shutting_down {
                beats.last.remove(&broker);
                beats.shutting_down.insert(broker);
            } else if beats.shutting_down.contains(&broker) {
                return Ok(());
            } else {
                beats.last.insert(broker, Instant::now());
            }
        }
        self.write(move |image, config| {
            let unclean = unclean_allowed(image, config);
            if !image.brokers.contains_key(&broker) {
                // Unregistered (Kafka answers these heartbeats with an error too).
                return ControllerResult::none(Err(ControllerError::BrokerIdNotRegistered(broker)));
            }
            let records = match image.brokers.get(&broker) {
                Some(b) if shutting_down && !b.fenced => {
                    info!(broker, "fencing a broker in controlled shutdown");
                    fence(image, broker, &unclean)
                }
                Some(b) if !shutting_down && b.fenced => {
                    info!(broker, "unfencing a broker that heartbeats again");
                    unfence(image, broker, &unclean)
                }
                _ => Vec::new(),
            };
            ControllerResult::non_atomic(records, Ok(()))
        })
        .await?
    }

    /// As the active controller: fences brokers silent for longer than
    /// `session`. Called periodically on every controller.
    pub async fn fence_silent_brokers(&self, session: Duration) -> Result<(), ControllerError> {
        if !self.is_active() {
            self.heartbeats().active_since = None;
            return Ok(());
        }
        let now = Instant::now();
        let silent: Vec<i32> = {
            let image = self.image().await;
            let mut beats = self.heartbeats();
            beats.session = Some(session);
            let since = *beats.active_since.get_or_insert(now);
            image
                .brokers
                .values()
                .filter(|b| !b.fenced)
                .map(|b| b.broker_id)
                .filter(|id| {
                    let last = beats.last.get(id).copied().unwrap_or(since).max(since);
                    now.duration_since(last) > session
                })
                .collect()
        };
        for broker in silent {
            self.write(move |image, config| {
                let unclean = unclean_allowed(image, config);
                let still_live = image.brokers.get(&broker).is_some_and(|b| !b.fenced);
                if still_live {
                    info!(broker, "fencing a broker whose session expired");
                }
                ControllerResult::non_atomic(
                    if still_live {
                        fence(image, broker, &unclean)
                    } else {
                        Vec::new()
                    },
                    (),
                )
            })
            .await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::delta::MetadataDelta;
    use crate::metadata::records::{BrokerRegistration, PartitionRecord};
    use uuid::Uuid;

    fn broker(id: i32, fenced: bool) -> MetadataRecord {
        MetadataRecord::RegisterBroker(BrokerRegistration {
            broker_id: id,
            epoch: 0,
            incarnation_id: Uuid::nil(),
            endpoints: Vec::new(),
            rack: None,
            fenced,
            directory_id: None,
        })
    }

    fn partition(topic_id: Uuid, partition: i32, replicas: &[i32], isr: &[i32], leader: i32) -> MetadataRecord {
        MetadataRecord::Partition(PartitionRecord {
            topic_id,
            partition,
            replicas: replicas.to_vec(),
            isr: isr.to_vec(),
            leader,
            leader_epoch: 5,
            partition_epoch: 7,
            ..Default::default()
        })
    }

    fn image_of(records: &[MetadataRecord]) -> MetadataImage {
        let mut delta = MetadataDelta::new(&MetadataImage::default());
        delta.replay_all(0, records);
        delta.apply().0
    }

    fn apply(image: &MetadataImage, records: &[MetadataRecord]) -> MetadataImage {
        let mut delta = MetadataDelta::new(image);
        delta.replay_all(image.offset + 1, records);
        delta.apply().0
    }

    fn state(image: &MetadataImage, partition: i32) -> (i32, Vec<i32>, i32, i32) {
        let p = image
            .topics
            .get("t")
            .and_then(|t| t.partition(partition))
            .expect("partition")
            .clone();
        (p.leader, p.isr, p.leader_epoch, p.partition_epoch)
    }

    #[test]
    fn fencing_a_leader_moves_leadership_to_the_isr_and_back_when_it_returns() {
        let id = Uuid::new_v4();
        let image = image_of(&[
            broker(1, false),
            broker(2, false),
            broker(3, false),
            MetadataRecord::Topic {
                name: "t".into(),
                topic_id: id,
            },
            partition(id, 0, &[1, 2, 3], &[1, 2, 3], 1),
            partition(id, 1, &[2, 1, 3], &[2, 1, 3], 2),
            partition(id, 2, &[1], &[1], 1),
        ]);
        let fenced = apply(&image, &fence(&image, 1, &|_| false));
        assert!(fenced.brokers[&1].fenced);
        // It led: the next replica in the ISR leads, a new leader epoch.
        assert_eq!(state(&fenced, 0), (2, vec![2, 3], 6, 8));
        // A follower: out of the ISR, the leader and its epoch stay.
        assert_eq!(state(&fenced, 1), (2, vec![2, 3], 5, 8));
        // Its only replica: no leader, and the ISR keeps it (no unclean election).
        assert_eq!(state(&fenced, 2), (-1, vec![1], 6, 8));

        let back = apply(&fenced, &unfence(&fenced, 1, &|_| false));
        assert!(!back.brokers[&1].fenced);
        assert_eq!(state(&back, 2), (1, vec![1], 7, 9));
        // It does not rejoin ISRs by itself: that takes catching up.
        assert_eq!(state(&back, 0), (2, vec![2, 3], 6, 8));
    }

    #[test]
    fn an_unclean_election_happens_only_where_the_topic_allows_it() {
        let id = Uuid::new_v4();
        // Leader 1 alone in the ISR; 2 is a live replica that fell out of it.
        let image = image_of(&[
            broker(1, false),
            broker(2, false),
            MetadataRecord::Topic {
                name: "t".into(),
                topic_id: id,
            },
            partition(id, 0, &[1, 2], &[1], 1),
        ]);
        let clean = apply(&image, &fence(&image, 1, &|_| false));
        assert_eq!(
            state(&clean, 0),
            (-1, vec![1], 6, 8),
            "no leader rather than lost records"
        );
        let unclean = apply(&image, &fence(&image, 1, &|t| t == "t"));
        assert_eq!(
            state(&unclean, 0),
            (2, vec![2], 6, 8),
            "the live replica leads, alone in the ISR"
        );
        // A replica outside the ISR coming back to a leaderless partition: the same rule.
        let two_fenced = apply(&clean, &fence(&clean, 2, &|_| false));
        assert_eq!(
            state(&apply(&two_fenced, &unfence(&two_fenced, 2, &|_| false)), 0).0,
            -1
        );
        assert_eq!(state(&apply(&two_fenced, &unfence(&two_fenced, 2, &|_| true)), 0).0, 2);
    }

    #[test]
    fn a_fenced_broker_is_never_chosen_as_leader() {
        let id = Uuid::new_v4();
        let image = image_of(&[
            broker(1, false),
            broker(2, true),
            broker(3, false),
            MetadataRecord::Topic {
                name: "t".into(),
                topic_id: id,
            },
            partition(id, 0, &[1, 2, 3], &[1, 2, 3], 1),
        ]);
        let fenced = apply(&image, &fence(&image, 1, &|_| false));
        assert_eq!(state(&fenced, 0).0, 3);
    }

    #[test]
    fn a_restarted_broker_waits_for_its_old_session_then_loses_its_leaderships() {
        use super::super::brokers::{registration, Registering};
        let id = Uuid::new_v4();
        let image = image_of(&[
            broker(1, false),
            broker(2, false),
            MetadataRecord::Topic {
                name: "t".into(),
                topic_id: id,
            },
            partition(id, 0, &[1, 2], &[1, 2], 1),
        ]);
        let config = super::super::ControllerConfig {
            node_id: 1,
            delete_topic_enable: true,
            default_partitions: 1,
            default_replication_factor: 1,
            static_configs: Default::default(),
        };
        let new_process = Uuid::new_v4();
        let register = |session_valid| {
            let r = Registering {
                broker_id: 1,
                endpoints: Vec::new(),
                rack: None,
                directory_id: None,
                incarnation_id: Some(new_process),
            };
            registration(&image, &config, r, session_valid)
        };
        // Its old session is alive: refused, nothing written.
        let refused = register(Some(true));
        assert!(refused.records.is_empty());
        assert!(matches!(
            refused.response,
            Err(ControllerError::DuplicateBrokerRegistration)
        ));
        // Expired: the old incarnation leaves the ISR and leadership moves
        // (a new leader epoch); the new one is registered fenced.
        let accepted = register(Some(false));
        assert!(accepted.response.is_ok());
        let after = apply(&image, &accepted.records);
        assert_eq!(state(&after, 0), (2, vec![2], 6, 8));
        assert!(after.brokers[&1].fenced);
        assert_eq!(after.brokers[&1].incarnation_id, new_process);
        // A single node (no sessions): registered as before, leadership kept.
        let single = apply(&image, &register(None).records);
        assert_eq!(state(&single, 0), (1, vec![1, 2], 5, 7));
        assert!(!single.brokers[&1].fenced);
    }
}
