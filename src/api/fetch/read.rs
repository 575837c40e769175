//! Fetch's reads: each wanted partition's batches found from their headers
//! (off the async threads), the part of `max_bytes` each may take, record
//! sets of SPLICE_MIN or more left in their files for the socket, and the
//! read-committed view.

use super::super::{leader_epoch_error, log_error_code};
use super::{diverging, Wanted};
use crate::fetch_session::{Answer, Told};
use crate::protocol::response::{FileChunk, Splice, SPLICE_MIN};
use crate::protocol::stand_in::stand_in;
use crate::storage::log::RecordRegion;
use crate::storage::{blocking, LogError, Partition};
use bytes::Bytes;
use kafka_protocol::messages::fetch_response::{AbortedTransaction, EpochEndOffset, PartitionData};
use kafka_protocol::messages::{BrokerId, ProducerId};
use kafka_protocol::ResponseError;
use std::sync::Arc;

/// `read_all` off the async threads, in one call: reads are file I/O.
pub(super) async fn read_all_blocking(
    wanted: &Arc<Vec<Wanted>>,
    max_bytes: usize,
    read_committed: bool,
    hold_throttled: bool,
) -> (Vec<Fetched>, usize, bool) {
    let work = wanted.clone();
    match blocking(move || read_all(&work, max_bytes, read_committed, hold_throttled)).await {
        Ok(read) => read,
        Err(_) => {
            let code = ResponseError::KafkaStorageError.code();
            let failed = wanted.iter().map(|w| empty(w.partition_index, code, -1, -1, -1));
            (failed.collect(), 0, true)
        }
    }
}

/// One partition's answer, kept small until it is known to be sent: an
/// incremental fetch of thousands of quiet partitions answers few of them.
pub(super) struct Fetched {
    index: i32,
    error: i16,
    high_watermark: i64,
    last_stable_offset: i64,
    log_start_offset: i64,
    /// The record set (or its stand-in); empty for none.
    records: Bytes,
    /// The records of its record set, from the batch headers.
    pub(super) record_count: u64,
    /// What few answers carry, boxed so that the common answer stays small.
    rare: Option<Box<Rare>>,
}

#[derive(Default)]
struct Rare {
    /// The record set's stand-in and file, when it is sent from the file.
    file: Option<Splice>,
    diverging: Option<(i32, i64)>,
    preferred_read_replica: Option<i32>,
    /// read_committed: the aborted transactions among the returned batches.
    aborted: Vec<(i64, i64)>,
}

impl Rare {
    /// A diverging epoch or a preferred read replica: the fetcher is sent
    /// elsewhere, with no records.
    fn redirects(&self) -> bool {
        self.diverging.is_some() || self.preferred_read_replica.is_some()
    }
}

impl Fetched {
    pub(super) fn record_bytes(&self) -> usize {
        self.records.len()
    }

    /// What this answer tells an incremental session.
    pub(super) fn session_answer(&self) -> Answer {
        let rare = self.rare.as_deref();
        Answer {
            told: Told {
                high_watermark: self.high_watermark,
                log_start_offset: self.log_start_offset,
            },
            has_records: !self.records.is_empty(),
            error: self.error != 0,
            redirect: rare.is_some_and(Rare::redirects),
        }
    }

    /// The answer as sent, and the file its records go from (if any).
    /// read_committed answers carry their aborted transactions (maybe none).
    pub(super) fn into_data(self, read_committed: bool) -> (PartitionData, Option<Splice>) {
        let rare = self.rare.map(|r| *r).unwrap_or_default();
        let mut data = PartitionData::default()
            .with_partition_index(self.index)
            .with_error_code(self.error)
            .with_high_watermark(self.high_watermark)
            .with_last_stable_offset(self.last_stable_offset)
            .with_log_start_offset(self.log_start_offset)
            .with_preferred_read_replica(BrokerId(rare.preferred_read_replica.unwrap_or(-1)))
            .with_records(Some(self.records));
        if let Some((epoch, end_offset)) = rare.diverging {
            data.diverging_epoch = EpochEndOffset::default().with_epoch(epoch).with_end_offset(end_offset);
        }
        if read_committed && self.error == 0 && !rare.redirects() {
            let aborted = rare.aborted.into_iter().map(|(pid, first)| {
                AbortedTransaction::default()
                    .with_producer_id(ProducerId(pid))
                    .with_first_offset(first)
            });
            data.aborted_transactions = Some(aborted.collect());
        }
        (data, rare.file)
    }

    fn rare(&mut self) -> &mut Rare {
        self.rare.get_or_insert_with(Box::default)
    }
}

/// Reads every partition once. Returns the partition answers, the bytes of
/// records they carry, and whether any carries an error.
fn read_all(
    wanted: &[Wanted],
    max_bytes: usize,
    read_committed: bool,
    hold_throttled: bool,
) -> (Vec<Fetched>, usize, bool) {
    let mut total = 0usize;
    let mut any_error = false;
    let mut out = Vec::with_capacity(wanted.len());
    for w in wanted {
        let fetched = match &w.target {
            Err(code) => {
                any_error = true;
                empty(w.partition_index, *code, -1, -1, -1)
            }
            Ok(partition) => {
                // The first partition with data may exceed the limits by one
                // batch, so that a large batch never blocks a consumer.
                let held = hold_throttled && w.throttled;
                let min_one = total == 0 && !held;
                let limit = if held {
                    0
                } else {
                    w.max_bytes.min(max_bytes.saturating_sub(total))
                };
                // `total` places the stand-ins of one response apart.
                let fetched = read_partition(partition, w, limit, min_one, read_committed, total);
                // Errors, and consumers sent elsewhere, are answered at once.
                let sent_elsewhere = fetched
                    .rare
                    .as_ref()
                    .is_some_and(|r| r.preferred_read_replica.is_some());
                if fetched.error != 0 || sent_elsewhere {
                    any_error = true;
                }
                total += fetched.record_bytes();
                fetched
            }
        };
        out.push(fetched);
    }
    (out, total, any_error)
}

fn empty(index: i32, code: i16, hw: i64, lso: i64, log_start: i64) -> Fetched {
    Fetched {
        index,
        error: code,
        high_watermark: hw,
        last_stable_offset: lso,
        log_start_offset: log_start,
        records: Bytes::new(),
        record_count: 0,
        rare: None,
    }
}

fn read_partition(
    partition: &Partition,
    w: &Wanted,
    limit: usize,
    min_one: bool,
    read_committed: bool,
    stand_in_at: usize,
) -> Fetched {
    let (plan, offsets) = {
        let mut log = partition.log();
        let offsets = (
            log.high_watermark(),
            log.last_stable_offset(),
            log.log_start_offset(),
            log.leader_epoch(),
        );
        let current_epoch = w.followed_epoch.unwrap_or(offsets.3);
        if let Some(code) = leader_epoch_error(w.leader_epoch, current_epoch) {
            return empty(w.partition_index, code, offsets.0, offsets.1, offsets.2);
        }
        if let Some(id) = w.preferred_read_replica {
            let mut answer = empty(w.partition_index, 0, offsets.0, offsets.1, offsets.2);
            answer.rare().preferred_read_replica = Some(id);
            return answer;
        }
        // Followers and consumers alike (KIP-320): a fetcher whose last
        // fetched epoch ends here before its offset was truncated elsewhere.
        if let Some(diverging) = diverging(&log, w) {
            let mut answer = empty(w.partition_index, 0, offsets.0, offsets.1, offsets.2);
            answer.rare().diverging = Some(diverging);
            return answer;
        }
        // A follower reads to the log end; a consumer to what is committed.
        let max_offset = if w.replica.is_some() {
            log.log_end_offset()
        } else if read_committed {
            offsets.1
        } else {
            offsets.0
        };
        (log.plan_read(w.fetch_offset, max_offset), offsets)
    };
    let (hw, lso, log_start, _) = offsets;
    let mut answer = empty(w.partition_index, 0, hw, lso, log_start);
    let io_error = |e| log_error_code(&LogError::Io(e));
    let region = match plan {
        Ok(None) => return answer,
        Ok(Some(_)) if limit == 0 && !min_one => return answer,
        Ok(Some(plan)) => match plan.region(limit, min_one) {
            Ok(Some(region)) => region,
            Ok(None) => return answer,
            Err(e) => return empty(w.partition_index, io_error(e), hw, lso, log_start),
        },
        Err(e) => return empty(w.partition_index, log_error_code(&e), hw, lso, log_start),
    };
    // read_committed: the aborted transactions among the returned batches,
    // which the client skips.
    if read_committed {
        let aborted = partition.log().aborted_transactions(w.fetch_offset, region.next_offset);
        if !aborted.is_empty() {
            answer.rare().aborted = aborted;
        }
    }
    match lazily(&region, stand_in_at) {
        Some((stand_in, splice)) => {
            answer.records = stand_in;
            answer.rare().file = Some(splice);
        }
        None => match region.read() {
            Ok(bytes) => answer.records = bytes,
            Err(e) => return empty(w.partition_index, io_error(e), hw, lso, log_start),
        },
    }
    answer.record_count = region.records;
    answer
}

/// A record set large enough to be sent from its file as the socket takes
/// it: its stand-in in the response, and the file bytes it stands for.
fn lazily(region: &RecordRegion, stand_in_at: usize) -> Option<(Bytes, Splice)> {
    if region.len < SPLICE_MIN {
        return None;
    }
    let stand_in = stand_in(stand_in_at, region.len)?;
    let chunk = FileChunk {
        file: region.file.clone(),
        position: region.position,
        len: region.len,
    };
    Some((stand_in.clone(), Splice::File { stand_in, chunk }))
}
