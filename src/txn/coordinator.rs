//! The transaction coordinator's state machine: one `TxnMetadata` per
//! transactional id, moved along Kafka's states (Empty → Ongoing →
//! PrepareCommit/PrepareAbort → CompleteCommit/CompleteAbort). Synchronous,
//! clock passed in. As in Kafka, a change is first prepared (a new metadata
//! value, nothing mutated), then persisted by the caller, then applied.
//! Ending a transaction is in `ending`.

use super::ending::prepare_end_bumped;
use super::records::{self, TransactionVersion, TxnMetadata, TxnState};
use crate::coordinator::{Shard, TxnProducer};
use bytes::Bytes;
use kafka_protocol::ResponseError as E;
use std::collections::HashMap;

/// A record of `__transaction_state`: a transactional id's metadata, or its
/// tombstone (None) once the id expires.
#[derive(Debug, Clone, PartialEq)]
pub struct TxnRecord {
    pub transactional_id: String,
    pub metadata: Option<TxnMetadata>,
}

/// What InitProducerId must do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InitPlan {
    /// Persist and apply this metadata; answer with its producer id and epoch.
    Ready(TxnMetadata),
    /// The producer's previous attempt already got this id and epoch.
    Repeat(i64, i16),
    /// A transaction is open: persist and apply this PrepareAbort (epoch
    /// bumped, fencing the old producer), write abort markers, complete it,
    /// then plan again.
    AbortFirst(TxnMetadata),
}

#[derive(Debug, Default)]
pub struct Transactions {
    txns: HashMap<String, TxnMetadata>,
    /// (producer id, epoch) each id had before its last InitProducerId, to
    /// recognise a retried InitProducerId (KIP-360). Not persisted.
    previous: HashMap<String, (i64, i16)>,
    max_timeout_ms: i32,
}

/// A producer epoch this close to the limit means a new producer id.
pub(super) const EPOCH_EXHAUSTED: i16 = i16::MAX - 1;

impl Transactions {
    pub fn new(max_timeout_ms: i32) -> Transactions {
        Transactions {
            max_timeout_ms,
            ..Transactions::default()
        }
    }

    pub fn get(&self, id: &str) -> Option<&TxnMetadata> {
        self.txns.get(id)
    }

    pub fn all(&self) -> impl Iterator<Item = (&String, &TxnMetadata)> {
        self.txns.iter()
    }

    pub fn apply(&mut self, id: &str, metadata: TxnMetadata) {
        self.txns.insert(id.to_string(), metadata);
    }

    pub fn remove(&mut self, id: &str) {
        self.txns.remove(id);
        self.previous.remove(id);
    }

    /// InitProducerId with a transactional id. `new_producer_id` hands out a
    /// fresh id when one is needed.
    pub fn prepare_init(
        &self,
        id: &str,
        timeout_ms: i32,
        expected: Option<(i64, i16)>,
        now: i64,
        new_producer_id: &mut dyn FnMut() -> Result<i64, i16>,
    ) -> Result<InitPlan, i16> {
        if id.is_empty() {
            return Err(E::InvalidRequest.code());
        }
        if timeout_ms <= 0 || timeout_ms > self.max_timeout_ms {
            return Err(E::InvalidTransactionTimeout.code());
        }
        let Some(current) = self.txns.get(id) else {
            return Ok(InitPlan::Ready(TxnMetadata::new(
                new_producer_id()?,
                0,
                timeout_ms,
                now,
            )));
        };
        if let Some(pid_epoch) = expected {
            let is_current = pid_epoch == (current.producer_id, current.producer_epoch);
            if !is_current {
                return match self.previous.get(id) {
                    // The answer to this producer's last attempt was lost: repeat it.
                    Some(previous) if *previous == pid_epoch && current.state == TxnState::Empty => {
                        Ok(InitPlan::Repeat(current.producer_id, current.producer_epoch))
                    }
                    _ => Err(E::ProducerFenced.code()),
                };
            }
        }
        match current.state {
            TxnState::PrepareCommit | TxnState::PrepareAbort | TxnState::PrepareEpochFence => {
                Err(E::ConcurrentTransactions.code())
            }
            // Fenced and aborted as Kafka does with transaction.version 2.
            TxnState::Ongoing => Ok(InitPlan::AbortFirst(prepare_end_bumped(
                current,
                TxnState::PrepareAbort,
                false,
                now,
                new_producer_id,
            )?)),
            TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort | TxnState::Dead => {
                let mut next = bumped(current, new_producer_id)?;
                next.state = TxnState::Empty;
                next.timeout_ms = timeout_ms;
                next.partitions.clear();
                next.last_update_ms = now;
                next.start_ms = -1;
                Ok(InitPlan::Ready(next))
            }
        }
    }

    /// Remembers what a producer had before InitProducerId gave it `next`.
    pub fn note_previous(&mut self, id: &str) {
        if let Some(current) = self.txns.get(id) {
            self.previous
                .insert(id.to_string(), (current.producer_id, current.producer_epoch));
        }
    }

    pub(super) fn check_producer(&self, id: &str, producer_id: i64, epoch: i16) -> Result<&TxnMetadata, i16> {
        let current = self.txns.get(id).ok_or(E::InvalidProducerIdMapping.code())?;
        if current.producer_id != producer_id {
            return Err(E::InvalidProducerIdMapping.code());
        }
        if current.producer_epoch != epoch {
            return Err(E::ProducerFenced.code());
        }
        Ok(current)
    }

    /// AddPartitionsToTxn (and AddOffsetsToTxn, with the group's
    /// `__consumer_offsets` partition; and a TV2 client's first write to a
    /// partition, added by its leader). None when nothing changes.
    pub fn prepare_add_partitions(
        &self,
        id: &str,
        producer_id: i64,
        epoch: i16,
        partitions: &[(String, i32)],
        client_version: TransactionVersion,
        now: i64,
    ) -> Result<Option<TxnMetadata>, i16> {
        let current = self.check_producer(id, producer_id, epoch)?;
        match current.state {
            TxnState::PrepareCommit | TxnState::PrepareAbort | TxnState::PrepareEpochFence => {
                return Err(E::ConcurrentTransactions.code())
            }
            TxnState::Dead => return Err(E::InvalidTxnState.code()),
            TxnState::Ongoing if partitions.iter().all(|p| current.partitions.contains(p)) => return Ok(None),
            _ => {}
        }
        let mut next = current.clone();
        if next.state != TxnState::Ongoing {
            next.partitions.clear();
            next.start_ms = now;
        }
        next.state = TxnState::Ongoing;
        next.partitions.extend(partitions.iter().cloned());
        next.last_update_ms = now;
        next.client_version = client_version;
        Ok(Some(next))
    }

    /// Open transactions past their timeout.
    pub fn timed_out(&self, now: i64) -> Vec<String> {
        self.txns
            .iter()
            .filter(|(_, m)| m.state == TxnState::Ongoing && m.start_ms + m.timeout_ms as i64 <= now)
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Ids without an open transaction, idle for longer than `expiration_ms`.
    pub fn expired(&self, now: i64, expiration_ms: i64) -> Vec<String> {
        self.txns
            .iter()
            .filter(|(_, m)| {
                matches!(
                    m.state,
                    TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort
                ) && m.last_update_ms + expiration_ms <= now
            })
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Whether these partitions are in the producer's open transaction, as
    /// Kafka's coordinator answers a partition leader's check
    /// (AddPartitionsToTxn with verifyOnly): an error for the whole request,
    /// or per partition none or TRANSACTION_ABORTABLE (not added).
    pub fn verify_partitions(
        &self,
        id: &str,
        producer_id: i64,
        epoch: i16,
        partitions: &[(String, i32)],
    ) -> Result<Vec<i16>, i16> {
        let current = self.txns.get(id).ok_or(E::InvalidProducerIdMapping.code())?;
        if current.producer_id != producer_id {
            return Err(E::InvalidProducerIdMapping.code());
        }
        if current.producer_epoch != epoch {
            return Err(E::ProducerFenced.code());
        }
        if matches!(current.state, TxnState::PrepareCommit | TxnState::PrepareAbort) {
            return Err(E::ConcurrentTransactions.code());
        }
        Ok(partitions
            .iter()
            .map(|p| {
                if current.partitions.contains(p) {
                    0
                } else {
                    E::TransactionAbortable.code()
                }
            })
            .collect())
    }
}

impl Shard for Transactions {
    type Record = TxnRecord;

    fn replay(&mut self, record: &TxnRecord, _producer: Option<TxnProducer>, _now: i64) {
        match &record.metadata {
            Some(m) => self.apply(&record.transactional_id, m.clone()),
            None => self.remove(&record.transactional_id),
        }
    }

    /// `__transaction_state` holds no transactional records.
    fn replay_marker(&mut self, _producer_id: i64, _commit: bool, _now: i64) {}

    fn encode(record: &TxnRecord) -> (Bytes, Option<Bytes>) {
        (
            records::encode_key(&record.transactional_id),
            record.metadata.as_ref().map(records::encode_value),
        )
    }

    fn decode(key: &[u8], value: Option<&[u8]>) -> Result<TxnRecord, String> {
        let transactional_id = records::decode_key(key).map_err(|e| e.to_string())?;
        let metadata = value
            .map(records::decode_value)
            .transpose()
            .map_err(|e| e.to_string())?;
        Ok(TxnRecord {
            transactional_id,
            metadata,
        })
    }
}

/// The metadata with the next epoch, or a new producer id when the epoch is
/// used up (InitProducerId).
fn bumped(current: &TxnMetadata, new_producer_id: &mut dyn FnMut() -> Result<i64, i16>) -> Result<TxnMetadata, i16> {
    let mut next = current.clone();
    if current.producer_epoch >= EPOCH_EXHAUSTED {
        next.previous_producer_id = current.producer_id;
        next.producer_id = new_producer_id()?;
        next.producer_epoch = 0;
    } else {
        next.producer_epoch = current.producer_epoch + 1;
    }
    Ok(next)
}

#[cfg(test)]
mod tests {
    use super::super::ending::{EndPlan, EndTxn};
    use super::super::records::TV_0;
    use super::*;

    fn ids() -> impl FnMut() -> Result<i64, i16> {
        let mut next = 100;
        move || {
            next += 1;
            Ok(next)
        }
    }

    fn init(t: &mut Transactions, id: &str, expected: Option<(i64, i16)>, now: i64) -> Result<(i64, i16), i16> {
        let mut alloc = ids();
        loop {
            match t.prepare_init(id, 60_000, expected, now, &mut alloc)? {
                InitPlan::Ready(m) => {
                    t.note_previous(id);
                    let answer = (m.producer_id, m.producer_epoch);
                    t.apply(id, m);
                    return Ok(answer);
                }
                InitPlan::Repeat(pid, epoch) => return Ok((pid, epoch)),
                InitPlan::AbortFirst(m) => {
                    t.apply(id, m);
                    let done = t.prepare_complete(id, now).unwrap();
                    assert_eq!(done.state, TxnState::CompleteAbort);
                    t.apply(id, done);
                }
            }
        }
    }

    fn add(t: &mut Transactions, id: &str, pid: i64, epoch: i16, tp: (&str, i32), now: i64) -> Result<(), i16> {
        if let Some(m) = t.prepare_add_partitions(id, pid, epoch, &[(tp.0.to_string(), tp.1)], TV_0, now)? {
            t.apply(id, m);
        }
        Ok(())
    }

    fn end(t: &mut Transactions, id: &str, pid: i64, epoch: i16, commit: bool, now: i64) -> Result<(), i16> {
        let req = EndTxn {
            producer_id: pid,
            epoch,
            commit,
            client_version: TV_0,
        };
        match t.prepare_end(id, req, now, &mut ids())? {
            EndPlan::Done(..) => Ok(()),
            EndPlan::Markers(m) => {
                t.apply(id, m);
                let done = t.prepare_complete(id, now).unwrap();
                t.apply(id, done);
                Ok(())
            }
        }
    }

    #[test]
    fn a_transaction_goes_through_its_states() {
        let mut t = Transactions::new(900_000);
        let (pid, epoch) = init(&mut t, "tx", None, 0).unwrap();
        assert_eq!((pid, epoch), (101, 0));
        assert_eq!(t.get("tx").unwrap().state, TxnState::Empty);
        // Producing before adding the partition is refused.
        let a0 = [("a".to_string(), 0)];
        let a1 = [("a".to_string(), 1)];
        assert_eq!(
            t.verify_partitions("tx", pid, epoch, &a0),
            Ok(vec![E::TransactionAbortable.code()])
        );
        add(&mut t, "tx", pid, epoch, ("a", 0), 10).unwrap();
        add(&mut t, "tx", pid, epoch, ("a", 1), 11).unwrap();
        let m = t.get("tx").unwrap();
        assert_eq!((m.state, m.start_ms, m.partitions.len()), (TxnState::Ongoing, 10, 2));
        assert_eq!(t.verify_partitions("tx", pid, epoch, &a1), Ok(vec![0]));
        end(&mut t, "tx", pid, epoch, true, 20).unwrap();
        let m = t.get("tx").unwrap();
        assert_eq!(
            (m.state, m.partitions.len(), m.start_ms),
            (TxnState::CompleteCommit, 0, -1)
        );
        // A retried commit is fine; an abort now is not.
        assert_eq!(end(&mut t, "tx", pid, epoch, true, 21), Ok(()));
        assert_eq!(end(&mut t, "tx", pid, epoch, false, 21), Err(E::InvalidTxnState.code()));
        // Ending with nothing open is an error too.
        let (pid, epoch) = init(&mut t, "tx", None, 30).unwrap();
        assert_eq!(epoch, 1, "a new session bumps the epoch");
        assert_eq!(end(&mut t, "tx", pid, epoch, true, 31), Err(E::InvalidTxnState.code()));
    }

    #[test]
    fn a_second_producer_fences_the_first_and_aborts_its_transaction() {
        let mut t = Transactions::new(900_000);
        let (pid, first) = init(&mut t, "tx", None, 0).unwrap();
        add(&mut t, "tx", pid, first, ("a", 0), 1).unwrap();
        let (same_pid, second) = init(&mut t, "tx", None, 2).unwrap();
        assert_eq!(same_pid, pid);
        // Aborted with a fencing epoch, then bumped again for the new producer.
        assert_eq!(second, first + 2);
        assert_eq!(t.get("tx").unwrap().state, TxnState::Empty);
        assert_eq!(
            add(&mut t, "tx", pid, first, ("a", 0), 3),
            Err(E::ProducerFenced.code())
        );
        assert_eq!(end(&mut t, "tx", pid, first, true, 3), Err(E::ProducerFenced.code()));
        let a0 = [("a".to_string(), 0)];
        assert_eq!(
            t.verify_partitions("tx", pid, first, &a0),
            Err(E::ProducerFenced.code())
        );
        assert_eq!(
            t.verify_partitions("tx", 999, second, &a0),
            Err(E::InvalidProducerIdMapping.code())
        );
        assert_eq!(
            add(&mut t, "tx", 999, second, ("a", 0), 3),
            Err(E::InvalidProducerIdMapping.code())
        );
    }

    #[test]
    fn init_with_the_known_producer_retries_safely() {
        let mut t = Transactions::new(900_000);
        let (pid, epoch) = init(&mut t, "tx", None, 0).unwrap();
        let again = init(&mut t, "tx", Some((pid, epoch)), 1).unwrap();
        assert_eq!(again, (pid, epoch + 1));
        // The same request again (its answer was lost): the same answer.
        assert_eq!(init(&mut t, "tx", Some((pid, epoch)), 2).unwrap(), again);
        assert_eq!(init(&mut t, "tx", Some((pid, 77)), 3), Err(E::ProducerFenced.code()));
    }

    #[test]
    fn timeouts_and_limits() {
        let mut t = Transactions::new(60_000);
        let mut alloc = ids();
        assert_eq!(
            t.prepare_init("tx", 60_001, None, 0, &mut alloc),
            Err(E::InvalidTransactionTimeout.code())
        );
        assert_eq!(
            t.prepare_init("", 1000, None, 0, &mut alloc),
            Err(E::InvalidRequest.code())
        );
        let (pid, epoch) = init(&mut t, "tx", None, 0).unwrap();
        add(&mut t, "tx", pid, epoch, ("a", 0), 1_000).unwrap();
        assert!(t.timed_out(60_999).is_empty());
        assert_eq!(t.timed_out(61_000), vec!["tx".to_string()]);
        let abort = t.prepare_timeout_abort("tx", 61_000, &mut alloc).unwrap().unwrap();
        assert_eq!((abort.state, abort.producer_epoch), (TxnState::PrepareAbort, epoch + 1));
        t.apply("tx", abort);
        assert_eq!(
            t.prepare_add_partitions("tx", pid, epoch + 1, &[("a".into(), 0)], TV_0, 61_001),
            Err(E::ConcurrentTransactions.code())
        );
        let done = t.prepare_complete("tx", 61_001).unwrap();
        t.apply("tx", done);
        assert!(t.expired(61_001 + 10, 100).is_empty());
        assert_eq!(t.expired(61_001 + 100, 100), vec!["tx".to_string()]);
    }
}
