//! Share sessions (KIP-932): per member, the partitions its ShareFetch
//! requests read, so that each request names only what changed. Epoch 0
//! opens a session, -1 closes it, and each request in between carries the
//! next epoch (ShareFetch and ShareAcknowledge alike).

use std::collections::HashMap;
use uuid::Uuid;

pub type TopicPartition = (Uuid, i32);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionError {
    NotFound,
    InvalidEpoch,
}

#[derive(Debug, Default)]
struct Session {
    /// The epoch the next request must carry.
    next_epoch: i32,
    partitions: Vec<TopicPartition>,
}

/// What a request may read, once its epoch is accepted.
#[derive(Debug, PartialEq, Eq)]
pub struct SessionView {
    pub partitions: Vec<TopicPartition>,
    /// A new session is answered in full; later ones with what changed.
    pub full: bool,
    /// The session ended with this request: the member's records go back.
    pub closed: bool,
}

#[derive(Debug, Default)]
pub struct ShareSessions {
    sessions: HashMap<(String, String), Session>,
}

fn next(epoch: i32) -> i32 {
    if epoch == i32::MAX {
        1
    } else {
        epoch + 1
    }
}

impl ShareSessions {
    /// A ShareFetch's epoch and partition changes.
    pub fn fetch(
        &mut self,
        group: &str,
        member: &str,
        epoch: i32,
        added: &[TopicPartition],
        forgotten: &[TopicPartition],
    ) -> Result<SessionView, SessionError> {
        let key = (group.to_string(), member.to_string());
        match epoch {
            0 => {
                let mut partitions = Vec::new();
                for tp in added {
                    if !partitions.contains(tp) {
                        partitions.push(*tp);
                    }
                }
                self.sessions.insert(
                    key,
                    Session {
                        next_epoch: 1,
                        partitions: partitions.clone(),
                    },
                );
                Ok(SessionView {
                    partitions,
                    full: true,
                    closed: false,
                })
            }
            -1 => {
                let session = self.sessions.remove(&key).ok_or(SessionError::NotFound)?;
                Ok(SessionView {
                    partitions: session.partitions,
                    full: false,
                    closed: true,
                })
            }
            e => {
                let session = self.sessions.get_mut(&key).ok_or(SessionError::NotFound)?;
                if e != session.next_epoch {
                    return Err(SessionError::InvalidEpoch);
                }
                session.next_epoch = next(e);
                session.partitions.retain(|tp| !forgotten.contains(tp));
                for tp in added {
                    if !session.partitions.contains(tp) {
                        session.partitions.push(*tp);
                    }
                }
                Ok(SessionView {
                    partitions: session.partitions.clone(),
                    full: false,
                    closed: false,
                })
            }
        }
    }

    /// A ShareAcknowledge's epoch: it may not open a session.
    pub fn acknowledge(&mut self, group: &str, member: &str, epoch: i32) -> Result<SessionView, SessionError> {
        if epoch == 0 {
            return Err(SessionError::InvalidEpoch);
        }
        self.fetch(group, member, epoch, &[], &[])
    }

    /// Whether any session of the group reads the partition.
    pub fn reads(&self, group: &str, tp: TopicPartition) -> bool {
        self.sessions
            .iter()
            .any(|((g, _), s)| g == group && s.partitions.contains(&tp))
    }

    /// Every session of a group's member (it left the group).
    pub fn drop_member(&mut self, group: &str, member: &str) {
        self.sessions.remove(&(group.to_string(), member.to_string()));
    }

    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epochs_follow_one_another() {
        let t = Uuid::from_u128(1);
        let mut s = ShareSessions::default();
        assert_eq!(s.fetch("g", "m", 1, &[], &[]), Err(SessionError::NotFound));
        let v = s.fetch("g", "m", 0, &[(t, 0), (t, 1)], &[]).unwrap();
        assert!(v.full);
        assert_eq!(s.fetch("g", "m", 2, &[], &[]), Err(SessionError::InvalidEpoch));
        let v = s.fetch("g", "m", 1, &[(t, 2)], &[(t, 0)]).unwrap();
        assert_eq!(v.partitions, vec![(t, 1), (t, 2)]);
        assert!(s.acknowledge("g", "m", 2).is_ok());
        let v = s.fetch("g", "m", -1, &[], &[]).unwrap();
        assert!(v.closed);
        assert!(s.is_empty());
    }
}
