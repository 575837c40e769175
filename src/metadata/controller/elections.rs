//! Leader elections asked for by operators (Kafka's ElectLeaders, run by the
//! active controller): PREFERRED gives a partition back to its first replica
//! when it is in the ISR and unfenced (`kafka-leader-election`, and the
//! periodic rebalance of `auto.leader.rebalance.enable`); UNCLEAN gives a
//! partition without a leader to any live replica, in the ISR or not — the
//! records it lacks are lost, which is why it is asked for by name.

use super::{Controller, ControllerError, ControllerResult};
use crate::metadata::image::{MetadataImage, PartitionRegistration};
use crate::metadata::records::MetadataRecord;
use kafka_protocol::ResponseError as E;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElectionType {
    Preferred,
    Unclean,
}

impl ElectionType {
    /// ElectLeaders' election_type (0 preferred, 1 unclean).
    pub fn from_code(code: i8) -> Option<ElectionType> {
        match code {
            0 => Some(ElectionType::Preferred),
            1 => Some(ElectionType::Unclean),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            ElectionType::Preferred => "PREFERRED",
            ElectionType::Unclean => "UNCLEAN",
        }
    }
}

/// One partition's outcome: 0, or an error code with Kafka's message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Elected {
    pub topic: String,
    pub partition: i32,
    pub error: Option<(i16, String)>,
}

/// The leader `election` gives `p`, or the error it answers.
fn elect(image: &MetadataImage, p: &PartitionRegistration, election: ElectionType) -> Result<(i32, Vec<i32>), i16> {
    let live = |id: i32| image.brokers.get(&id).is_some_and(|b| !b.fenced);
    match election {
        ElectionType::Preferred => {
            let preferred = p.replicas.first().copied().unwrap_or(-1);
            if p.leader == preferred {
                Err(E::ElectionNotNeeded.code())
            } else if p.isr.contains(&preferred) && live(preferred) {
                Ok((preferred, p.isr.clone()))
            } else {
                Err(E::PreferredLeaderNotAvailable.code())
            }
        }
        ElectionType::Unclean => {
            if p.leader >= 0 && live(p.leader) {
                return Err(E::ElectionNotNeeded.code());
            }
            if let Some(r) = p.replicas.iter().copied().find(|r| p.isr.contains(r) && live(*r)) {
                return Ok((r, p.isr.clone()));
            }
            match p.replicas.iter().copied().find(|r| live(*r)) {
                Some(r) => Ok((r, vec![r])),
                None => Err(E::EligibleLeadersNotAvailable.code()),
            }
        }
    }
}

impl Controller {
    /// Runs an election on the given partitions (None: every partition,
    /// answering only for those whose leader changed, as Kafka does).
    pub async fn elect_leaders(
        &self,
        election: ElectionType,
        wanted: Option<Vec<(String, Vec<i32>)>>,
    ) -> Result<Vec<Elected>, ControllerError> {
        self.write(move |image, _| {
            let all = wanted.is_none();
            let wanted = wanted.unwrap_or_else(|| {
                image
                    .topics
                    .iter()
                    .map(|t| (t.name.clone(), (0..t.partitions.len() as i32).collect()))
                    .collect()
            });
            let mut records = Vec::new();
            let mut results = Vec::new();
            for (name, partitions) in wanted {
                let topic = image.topics.get(&name);
                for index in partitions {
                    let Some((topic, p)) = topic.and_then(|t| t.partition(index).map(|p| (t, p))) else {
                        results.push(Elected {
                            topic: name.clone(),
                            partition: index,
                            error: Some((
                                E::UnknownTopicOrPartition.code(),
                                "The partition does not exist.".into(),
                            )),
                        });
                        continue;
                    };
                    let error = match elect(image, p, election) {
                        Ok((leader, isr)) => {
                            let mut record = p.to_record(topic.id, index);
                            record.leader = leader;
                            record.isr = isr;
                            record.leader_epoch = p.leader_epoch + 1;
                            record.partition_epoch = p.partition_epoch + 1;
                            records.push(MetadataRecord::Partition(record));
                            None
                        }
                        Err(code) if all => {
                            let _ = code;
                            continue;
                        }
                        Err(code) if code == E::ElectionNotNeeded.code() => {
                            Some((code, "Leader election not needed for topic partition.".into()))
                        }
                        Err(code) => Some((
                            code,
                            format!(
                                "Failed to elect leader for partition {name}-{index} under strategy {}",
                                election.name()
                            ),
                        )),
                    };
                    results.push(Elected {
                        topic: name.clone(),
                        partition: index,
                        error,
                    });
                }
            }
            ControllerResult::non_atomic(records, results)
        })
        .await
    }
}
