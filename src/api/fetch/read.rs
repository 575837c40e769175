//! Fetch's reads: each wanted partition's batches found from their headers
//! (off the async threads), the part of `max_bytes` each may take, record
//! sets of SPLICE_MIN or more left in their files for the socket, and the
//! read-committed view.

use super::super::{leader_epoch_error, log_error_code};
use super::{diverging, Wanted};
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
            let failed = wanted.iter().map(|w| empty(w.partition_index, code, -1, -1, -1).into());
            (failed.collect(), 0, true)
        }
    }
}

/// One partition's answer, and how its records go out.
pub(super) struct Fetched {
    pub(super) data: PartitionData,
    /// Its record set's stand-in and file, when it is sent from the file.
    pub(super) file: Option<Splice>,
    /// The records of its record set, from the batch headers.
    pub(super) records: u64,
}

impl From<PartitionData> for Fetched {
    fn from(data: PartitionData) -> Fetched {
        Fetched {
            data,
            file: None,
            records: 0,
        }
    }
}

impl Fetched {
    pub(super) fn record_bytes(&self) -> usize {
        self.data.records.as_ref().map_or(0, Bytes::len)
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
                empty(w.partition_index, *code, -1, -1, -1).into()
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
                if fetched.data.error_code != 0 || fetched.data.preferred_read_replica.0 >= 0 {
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

fn empty(index: i32, code: i16, hw: i64, lso: i64, log_start: i64) -> PartitionData {
    PartitionData::default()
        .with_partition_index(index)
        .with_error_code(code)
        .with_high_watermark(hw)
        .with_last_stable_offset(lso)
        .with_log_start_offset(log_start)
        .with_preferred_read_replica((-1).into())
        .with_records(Some(Bytes::new()))
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
            return empty(w.partition_index, code, offsets.0, offsets.1, offsets.2).into();
        }
        if let Some(id) = w.preferred_read_replica {
            return empty(w.partition_index, 0, offsets.0, offsets.1, offsets.2)
                .with_preferred_read_replica(BrokerId(id))
                .into();
        }
        // Followers and consumers alike (KIP-320): a fetcher whose last
        // fetched epoch ends here before its offset was truncated elsewhere.
        if let Some((epoch, end_offset)) = diverging(&log, w) {
            return empty(w.partition_index, 0, offsets.0, offsets.1, offsets.2)
                .with_diverging_epoch(EpochEndOffset::default().with_epoch(epoch).with_end_offset(end_offset))
                .into();
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
    let data = empty(w.partition_index, 0, hw, lso, log_start);
    let region = match plan {
        Ok(None) => return committed_view(data, read_committed, Vec::new()).into(),
        Ok(Some(_)) if limit == 0 && !min_one => return committed_view(data, read_committed, Vec::new()).into(),
        Ok(Some(plan)) => match plan.region(limit, min_one) {
            Ok(Some(region)) => region,
            Ok(None) => return committed_view(data, read_committed, Vec::new()).into(),
            Err(e) => return data.with_error_code(log_error_code(&LogError::Io(e))).into(),
        },
        Err(e) => return data.with_error_code(log_error_code(&e)).into(),
    };
    // read_committed: the aborted transactions among the returned batches,
    // which the client skips.
    let aborted = match read_committed {
        true => partition.log().aborted_transactions(w.fetch_offset, region.next_offset),
        false => Vec::new(),
    };
    let (records, file) = match lazily(&region, stand_in_at) {
        Some((stand_in, splice)) => (stand_in, Some(splice)),
        None => match region.read() {
            Ok(bytes) => (bytes, None),
            Err(e) => return data.with_error_code(log_error_code(&LogError::Io(e))).into(),
        },
    };
    Fetched {
        data: committed_view(data.with_records(Some(records)), read_committed, aborted),
        file,
        records: region.records,
    }
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

fn committed_view(data: PartitionData, read_committed: bool, aborted: Vec<(i64, i64)>) -> PartitionData {
    if !read_committed {
        return data;
    }
    let aborted = aborted
        .into_iter()
        .map(|(pid, first)| {
            AbortedTransaction::default()
                .with_producer_id(ProducerId(pid))
                .with_first_offset(first)
        })
        .collect();
    data.with_aborted_transactions(Some(aborted))
}
