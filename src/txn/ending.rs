//! Ending a transaction: EndTxn's decision, the coordinator's aborts
//! (timeout, a new producer's InitProducerId) and completion after the
//! markers. Two protocols, chosen by the client's EndTxn version as Kafka
//! 4.4 does: transaction version 1 ends with the producer's epoch; version 2
//! (KIP-890, EndTxn v5) bumps the epoch at every end — the markers carry
//! the new epoch, the client gets it in the answer, and a used-up epoch
//! moves the producer to a new id when the transaction completes.

use super::coordinator::{Transactions, EPOCH_EXHAUSTED};
use super::records::{TransactionVersion, TxnMetadata, TxnState, TV_2};
use kafka_protocol::ResponseError as E;

/// What EndTxn must do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndPlan {
    /// Nothing to write (a retry of an end already made): answer with this
    /// producer id and epoch.
    Done(i64, i16),
    /// Persist and apply this Prepare state, write the markers, complete.
    Markers(TxnMetadata),
}

/// The Prepare state of a transaction version 2 end: the epoch bumped
/// (kept at the maximum for an abort, where Kafka logs and goes on), and a
/// new producer id reserved for completion when the epoch is used up.
pub(super) fn prepare_end_bumped(
    current: &TxnMetadata,
    state: TxnState,
    nothing_added: bool,
    now: i64,
    new_producer_id: &mut dyn FnMut() -> Result<i64, i16>,
) -> Result<TxnMetadata, i16> {
    let mut next = current.clone();
    next.next_producer_id = if current.producer_epoch >= EPOCH_EXHAUSTED {
        new_producer_id()?
    } else {
        -1
    };
    next.producer_epoch = match current.producer_epoch.checked_add(1) {
        Some(epoch) => epoch,
        None if state == TxnState::PrepareAbort => current.producer_epoch,
        None => return Err(E::InvalidTxnState.code()),
    };
    next.state = state;
    next.client_version = TV_2;
    next.last_update_ms = now;
    if nothing_added {
        // Kafka's empty abort: a transaction that began and ended now.
        next.partitions.clear();
        next.start_ms = now;
    }
    Ok(next)
}

/// An EndTxn request as the coordinator takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EndTxn {
    pub producer_id: i64,
    pub epoch: i16,
    pub commit: bool,
    /// The client's protocol (EndTxn v5 and later: 2).
    pub client_version: TransactionVersion,
}

fn invalid_transition() -> Result<EndPlan, i16> {
    Err(E::InvalidTxnState.code())
}

impl Transactions {
    /// EndTxn: commit or abort the open transaction.
    pub fn prepare_end(
        &self,
        id: &str,
        end: EndTxn,
        now: i64,
        new_producer_id: &mut dyn FnMut() -> Result<i64, i16>,
    ) -> Result<EndPlan, i16> {
        if end.client_version >= TV_2 {
            return self.prepare_end_v2(id, end, now, new_producer_id);
        }
        let commit = end.commit;
        let current = self.check_producer(id, end.producer_id, end.epoch)?;
        let done = EndPlan::Done(current.producer_id, current.producer_epoch);
        match (current.state, commit) {
            (TxnState::Ongoing, _) => {
                let mut next = current.clone();
                next.state = if commit {
                    TxnState::PrepareCommit
                } else {
                    TxnState::PrepareAbort
                };
                next.last_update_ms = now;
                next.next_producer_id = -1;
                next.client_version = super::records::TV_0;
                Ok(EndPlan::Markers(next))
            }
            (TxnState::CompleteCommit, true) | (TxnState::CompleteAbort, false) => Ok(done),
            (TxnState::PrepareCommit, true) | (TxnState::PrepareAbort, false) => Err(E::ConcurrentTransactions.code()),
            _ => invalid_transition(),
        }
    }

    /// Kafka 4.4's EndTxn for transaction version 2: the client's epoch is
    /// the current one, or one less when it retries an end that bumped it.
    fn prepare_end_v2(
        &self,
        id: &str,
        end: EndTxn,
        now: i64,
        new_producer_id: &mut dyn FnMut() -> Result<i64, i16>,
    ) -> Result<EndPlan, i16> {
        let EndTxn {
            producer_id,
            epoch,
            commit,
            ..
        } = end;
        let current = self.get(id).ok_or(E::InvalidProducerIdMapping.code())?;
        // A retry after the epoch ran out: the producer has a new id since.
        let retry_on_overflow =
            current.previous_producer_id == producer_id && epoch == EPOCH_EXHAUSTED && current.producer_epoch == 0;
        let retry_on_bump = current.producer_epoch as i32 == epoch as i32 + 1;
        let valid_epoch = match current.state {
            TxnState::Ongoing | TxnState::Empty | TxnState::Dead | TxnState::PrepareEpochFence => {
                epoch == current.producer_epoch
            }
            TxnState::PrepareCommit | TxnState::PrepareAbort => retry_on_bump,
            TxnState::CompleteCommit | TxnState::CompleteAbort => {
                retry_on_bump || retry_on_overflow || epoch == current.producer_epoch
            }
        };
        let retry = retry_on_bump || retry_on_overflow;
        if current.producer_id != producer_id && !retry_on_overflow {
            return Err(E::InvalidProducerIdMapping.code());
        }
        if !valid_epoch {
            return Err(E::ProducerFenced.code());
        }
        let done = EndPlan::Done(current.producer_id, current.producer_epoch);
        let mut bump = |state: TxnState, nothing_added: bool| {
            prepare_end_bumped(current, state, nothing_added, now, new_producer_id).map(EndPlan::Markers)
        };
        match (current.state, commit) {
            (TxnState::Ongoing, true) => bump(TxnState::PrepareCommit, false),
            (TxnState::Ongoing, false) => bump(TxnState::PrepareAbort, false),
            (TxnState::CompleteCommit, true) if retry => Ok(done),
            (TxnState::CompleteCommit, false) if !retry => bump(TxnState::PrepareAbort, true),
            (TxnState::CompleteAbort, false) if retry => Ok(done),
            (TxnState::CompleteAbort, false) => bump(TxnState::PrepareAbort, true),
            // An abort with nothing open still bumps the epoch (KIP-890).
            (TxnState::Empty, false) => bump(TxnState::PrepareAbort, true),
            (TxnState::PrepareCommit, true) | (TxnState::PrepareAbort, false) => Err(E::ConcurrentTransactions.code()),
            _ => invalid_transition(),
        }
    }

    /// After the markers: PrepareCommit/PrepareAbort becomes complete; a
    /// version 2 transaction whose epoch ran out moves to its next producer id.
    pub fn prepare_complete(&self, id: &str, now: i64) -> Option<TxnMetadata> {
        let current = self.get(id)?;
        let state = match current.state {
            TxnState::PrepareCommit => TxnState::CompleteCommit,
            TxnState::PrepareAbort => TxnState::CompleteAbort,
            _ => return None,
        };
        let mut next = current.clone();
        if current.bumps_epoch() && current.next_producer_id >= 0 {
            next.previous_producer_id = current.producer_id;
            next.producer_id = current.next_producer_id;
            next.producer_epoch = 0;
        }
        next.next_producer_id = -1;
        next.state = state;
        next.partitions.clear();
        next.last_update_ms = now;
        next.start_ms = -1;
        Some(next)
    }

    /// Aborting a timed-out transaction bumps the epoch, fencing its
    /// producer, as Kafka 4.4 does (through its transaction version 2 path,
    /// the cluster's finalized version): a TV2 client that retries its
    /// abort with the old epoch learns the new one. None: nothing open.
    pub fn prepare_timeout_abort(
        &self,
        id: &str,
        now: i64,
        new_producer_id: &mut dyn FnMut() -> Result<i64, i16>,
    ) -> Result<Option<TxnMetadata>, i16> {
        let Some(current) = self.get(id).filter(|m| m.state == TxnState::Ongoing) else {
            return Ok(None);
        };
        prepare_end_bumped(current, TxnState::PrepareAbort, false, now, new_producer_id).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::super::records::TV_0;
    use super::*;

    fn ids() -> impl FnMut() -> Result<i64, i16> {
        let mut next = 500;
        move || {
            next += 1;
            Ok(next)
        }
    }

    fn req(producer_id: i64, epoch: i16, commit: bool, client_version: TransactionVersion) -> EndTxn {
        EndTxn {
            producer_id,
            epoch,
            commit,
            client_version,
        }
    }

    /// A transactional id with an open transaction on "a"-0.
    fn ongoing(epoch: i16) -> Transactions {
        let mut t = Transactions::new(900_000);
        let mut m = TxnMetadata::new(7, epoch, 60_000, 0);
        m.state = TxnState::Ongoing;
        m.partitions.insert(("a".into(), 0));
        m.start_ms = 1;
        t.apply("tx", m);
        t
    }

    /// Runs an end through markers to completion; the answer EndTxn gives.
    fn end(
        t: &mut Transactions,
        pid: i64,
        epoch: i16,
        commit: bool,
        tv: TransactionVersion,
    ) -> Result<(i64, i16), i16> {
        match t.prepare_end("tx", req(pid, epoch, commit, tv), 10, &mut ids())? {
            EndPlan::Done(pid, epoch) => Ok((pid, epoch)),
            EndPlan::Markers(prepared) => {
                t.apply("tx", prepared);
                let done = t.prepare_complete("tx", 11).unwrap();
                let answer = (done.producer_id, done.producer_epoch);
                t.apply("tx", done);
                Ok(answer)
            }
        }
    }

    #[test]
    fn version_1_ends_with_the_same_epoch() {
        let mut t = ongoing(3);
        match t.prepare_end("tx", req(7, 3, true, TV_0), 10, &mut ids()).unwrap() {
            EndPlan::Markers(m) => assert_eq!((m.producer_epoch, m.state), (3, TxnState::PrepareCommit)),
            other => panic!("{other:?}"),
        }
        assert_eq!(end(&mut t, 7, 3, true, TV_0), Ok((7, 3)));
        assert_eq!(end(&mut t, 7, 3, true, TV_0), Ok((7, 3)), "a retried commit");
        assert_eq!(end(&mut t, 7, 2, true, TV_0), Err(E::ProducerFenced.code()));
        assert_eq!(end(&mut t, 7, 3, false, TV_0), Err(E::InvalidTxnState.code()));
        assert_eq!(end(&mut t, 8, 3, true, TV_0), Err(E::InvalidProducerIdMapping.code()));
    }

    #[test]
    fn version_2_bumps_the_epoch_at_every_end_and_recognises_retries() {
        let mut t = ongoing(3);
        match t.prepare_end("tx", req(7, 3, true, TV_2), 10, &mut ids()).unwrap() {
            // The markers are written with the new epoch.
            EndPlan::Markers(m) => assert_eq!((m.producer_epoch, m.state), (4, TxnState::PrepareCommit)),
            other => panic!("{other:?}"),
        }
        assert_eq!(end(&mut t, 7, 3, true, TV_2), Ok((7, 4)));
        // The answer was lost: the retry with the old epoch gets the new one.
        assert_eq!(end(&mut t, 7, 3, true, TV_2), Ok((7, 4)));
        assert_eq!(end(&mut t, 7, 3, false, TV_2), Err(E::InvalidTxnState.code()));
        // A commit with the new epoch and nothing open: nothing to commit.
        assert_eq!(end(&mut t, 7, 4, true, TV_2), Err(E::InvalidTxnState.code()));
        // An abort with nothing open bumps the epoch all the same.
        assert_eq!(end(&mut t, 7, 4, false, TV_2), Ok((7, 5)));
        assert_eq!(end(&mut t, 7, 4, false, TV_2), Ok((7, 5)), "retried");
        assert_eq!(t.get("tx").unwrap().state, TxnState::CompleteAbort);
        // Older epochs are fenced.
        assert_eq!(end(&mut t, 7, 2, false, TV_2), Err(E::ProducerFenced.code()));
        assert_eq!(end(&mut t, 9, 5, false, TV_2), Err(E::InvalidProducerIdMapping.code()));
    }

    #[test]
    fn version_2_in_the_middle_of_an_end_is_concurrent() {
        let mut t = ongoing(3);
        let EndPlan::Markers(prepared) = t.prepare_end("tx", req(7, 3, false, TV_2), 10, &mut ids()).unwrap() else {
            panic!("markers expected");
        };
        t.apply("tx", prepared);
        let again = t.prepare_end("tx", req(7, 3, false, TV_2), 10, &mut ids());
        assert_eq!(again, Err(E::ConcurrentTransactions.code()));
        let other = t.prepare_end("tx", req(7, 3, true, TV_2), 10, &mut ids());
        assert_eq!(other, Err(E::InvalidTxnState.code()));
        assert_eq!(
            t.prepare_end("tx", req(7, 4, false, TV_2), 10, &mut ids()),
            Err(E::ProducerFenced.code()),
            "the new epoch is not the client's until the end completes"
        );
    }

    #[test]
    fn a_used_up_epoch_moves_to_a_new_producer_id_on_completion() {
        let mut t = ongoing(EPOCH_EXHAUSTED);
        let EndPlan::Markers(prepared) = t
            .prepare_end("tx", req(7, EPOCH_EXHAUSTED, true, TV_2), 10, &mut ids())
            .unwrap()
        else {
            panic!("markers expected");
        };
        // Markers still go out for the old producer id, with the last epoch.
        assert_eq!(
            (prepared.producer_id, prepared.producer_epoch, prepared.next_producer_id),
            (7, i16::MAX, 501)
        );
        t.apply("tx", prepared);
        let done = t.prepare_complete("tx", 11).unwrap();
        assert_eq!(
            (done.producer_id, done.producer_epoch, done.previous_producer_id),
            (501, 0, 7)
        );
        t.apply("tx", done);
        // The client retries with its old id and epoch: told the new ones.
        assert_eq!(end(&mut t, 7, EPOCH_EXHAUSTED, true, TV_2), Ok((501, 0)));
        assert_eq!(end(&mut t, 501, 0, false, TV_2), Ok((501, 1)));
    }

    #[test]
    fn a_timeout_abort_bumps_the_epoch_and_a_version_2_client_recovers() {
        let mut t = ongoing(3);
        let abort = t.prepare_timeout_abort("tx", 100, &mut ids()).unwrap().unwrap();
        assert_eq!(
            (abort.state, abort.producer_epoch, abort.client_version),
            (TxnState::PrepareAbort, 4, TV_2)
        );
        t.apply("tx", abort);
        let done = t.prepare_complete("tx", 101).unwrap();
        t.apply("tx", done);
        // A version 1 client is fenced; a version 2 client's abort is a retry.
        assert_eq!(end(&mut t, 7, 3, true, TV_0), Err(E::ProducerFenced.code()));
        assert_eq!(end(&mut t, 7, 3, true, TV_2), Err(E::InvalidTxnState.code()));
        assert_eq!(end(&mut t, 7, 3, false, TV_2), Ok((7, 4)));
        assert_eq!(t.prepare_timeout_abort("tx", 200, &mut ids()), Ok(None), "nothing open");
    }

    #[test]
    fn a_timeout_abort_with_a_used_up_epoch_asks_for_a_producer_id() {
        let t = ongoing(EPOCH_EXHAUSTED);
        let mut none = || Err(E::KafkaStorageError.code());
        assert_eq!(
            t.prepare_timeout_abort("tx", 100, &mut none),
            Err(E::KafkaStorageError.code())
        );
        let abort = t.prepare_timeout_abort("tx", 100, &mut ids()).unwrap().unwrap();
        assert_eq!((abort.producer_epoch, abort.next_producer_id), (i16::MAX, 501));
    }
}
