//! The log cleaner: compacts `cleanup.policy=compact` partitions as Kafka's
//! LogCleaner does. The closed segments (never the active one) are rewritten
//! without the records that a later record with the same key replaces; the
//! latest record of every key stays, at its offset. Deletes (null values) stay
//! for `delete.retention.ms`, then go too.
//!
//! Closed segments never change, so the reading and rewriting happen outside
//! the partition lock; the lock is taken to plan and to swap the files in.
//! Cleaned files are written to a staging directory and fsynced, then the old
//! segment's indexes are removed, the new log renamed over the old one and the
//! new indexes moved in: a crash at any step leaves a whole segment, old or
//! new, with its indexes or none (a missing index is read as empty, so lookups
//! scan the segment).
//!
//! Transactions: only segments below the last stable offset are cleaned, so
//! every transaction in them has ended. Records of aborted transactions are
//! removed and never count as a key's latest; transaction markers are kept
//! (and the segment's aborted-transaction index with them).

use super::batch::BatchHeader;
use super::compaction::{read_records, rebuild, RecordView};
use super::segment::{file_name, LogSegment};
use super::{Log, LogError, Partition};
use bytes::Bytes;
use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where cleaned segments are written before they replace the originals
/// (inside the partition directory; removed at start-up if left over).
pub const STAGING_DIR: &str = ".cleaning";

const INDEX_SUFFIXES: [&str; 2] = [".index", ".timeindex"];

/// What one cleaning did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct CleanReport {
    pub segments_rewritten: usize,
    pub records_removed: u64,
    pub bytes_before: u64,
    pub bytes_after: u64,
}

/// A closed segment to clean, as it was when the cleaning was planned.
struct Cleanable {
    base: i64,
    file: Arc<File>,
    size: u64,
}

struct Plan {
    dir: PathBuf,
    index_interval_bytes: u64,
    delete_retention_ms: i64,
    segments: Vec<Cleanable>,
    /// Aborted transactions: (producer id, first offset, marker offset).
    aborted: Vec<(i64, i64, i64)>,
    /// The first offset not cleaned (the segment after the last cleanable one).
    end: i64,
}

/// A segment rewritten into the staging directory.
struct Staged {
    base: i64,
    old_size: u64,
    new_size: u64,
}

/// Cleans `partition` if its policy is compact and enough of it is dirty.
/// None when there was nothing to do.
pub fn clean(partition: &Partition, now_ms: i64) -> Result<Option<CleanReport>, LogError> {
    let Some(plan) = partition.log().cleaning_plan(now_ms)? else {
        return Ok(None);
    };
    let staging = plan.dir.join(STAGING_DIR);
    let report = compact(&plan, &staging, now_ms).and_then(|(staged, records_removed)| {
        let mut log = partition.log();
        log.cleaned_to = log.cleaned_to.max(plan.end);
        let installed = log.install_cleaned(&plan, &staging, &staged)?;
        Ok(Some(CleanReport {
            segments_rewritten: installed.len(),
            records_removed,
            bytes_before: installed.iter().map(|s| s.old_size).sum(),
            bytes_after: installed.iter().map(|s| s.new_size).sum(),
        }))
    });
    let _ = std::fs::remove_dir_all(&staging);
    report
}

impl Log {
    /// The closed segments old enough to clean, when the dirty share of them
    /// (written since the last cleaning) reaches min.cleanable.dirty.ratio.
    fn cleaning_plan(&mut self, now_ms: i64) -> Result<Option<Plan>, LogError> {
        if self.deleted || !self.config.compact {
            return Ok(None);
        }
        let bases: Vec<i64> = self.segments.keys().copied().collect();
        let stable = self.last_stable_offset();
        let mut segments = Vec::new();
        let mut end = None;
        for pair in bases.windows(2) {
            if pair[1] > stable {
                break;
            }
            let segment = self.segments.get_mut(&pair[0]).expect("listed above");
            let newest = segment
                .max_timestamp()?
                .map_or(segment.created_at_ms(), |m| m.timestamp);
            if now_ms - newest < self.config.min_compaction_lag_ms {
                break;
            }
            segments.push(Cleanable {
                base: pair[0],
                file: segment.file().clone(),
                size: segment.size(),
            });
            end = Some(pair[1]);
        }
        let Some(end) = end else { return Ok(None) };
        let total: u64 = segments.iter().map(|s| s.size).sum();
        let dirty: u64 = segments
            .iter()
            .filter(|s| s.base >= self.cleaned_to)
            .map(|s| s.size)
            .sum();
        if dirty == 0 || (dirty as f64) < self.config.min_cleanable_dirty_ratio * total as f64 {
            return Ok(None);
        }
        Ok(Some(Plan {
            dir: self.dir.clone(),
            index_interval_bytes: self.config.index_interval_bytes,
            delete_retention_ms: self.config.delete_retention_ms,
            segments,
            aborted: self
                .aborted
                .iter()
                .map(|a| (a.producer_id, a.first_offset, a.last_offset))
                .collect(),
            end,
        }))
    }

    /// Swaps the staged segments in for the ones they were cleaned from, unless
    /// those changed meanwhile (deleted by retention, DeleteRecords or the topic).
    fn install_cleaned<'a>(
        &mut self,
        plan: &Plan,
        staging: &Path,
        staged: &'a [Staged],
    ) -> Result<Vec<&'a Staged>, LogError> {
        let mut installed = Vec::new();
        if self.deleted {
            return Ok(installed);
        }
        let active = self.segments.keys().next_back().copied();
        for s in staged {
            let unchanged = self.segments.get(&s.base).is_some_and(|seg| seg.size() == s.old_size);
            if !unchanged || Some(s.base) == active {
                continue;
            }
            for suffix in INDEX_SUFFIXES {
                remove_if_present(&self.dir.join(file_name(s.base, suffix)))?;
            }
            std::fs::rename(
                staging.join(file_name(s.base, ".log")),
                self.dir.join(file_name(s.base, ".log")),
            )?;
            for suffix in INDEX_SUFFIXES {
                let name = file_name(s.base, suffix);
                std::fs::rename(staging.join(&name), self.dir.join(&name))?;
            }
            let segment = LogSegment::open(&self.dir, s.base, plan.index_interval_bytes)?;
            self.segments.insert(s.base, segment);
            installed.push(s);
        }
        if let Ok(dir) = File::open(&self.dir) {
            let _ = dir.sync_all();
        }
        Ok(installed)
    }
}

/// Rewrites the plan's segments into `staging`: the ones that lose records.
fn compact(plan: &Plan, staging: &Path, now_ms: i64) -> Result<(Vec<Staged>, u64), LogError> {
    let aborted = |h: &BatchHeader| {
        h.is_transactional()
            && !h.is_control()
            && plan
                .aborted
                .iter()
                .any(|&(pid, first, last)| pid == h.producer_id && first <= h.base_offset && h.base_offset <= last)
    };
    // Pass 1: the offset of every key's latest record.
    let mut latest: HashMap<Bytes, i64> = HashMap::new();
    for segment in &plan.segments {
        for_each_batch(segment, |batch, header| {
            if header.is_control() || aborted(header) {
                return Ok(true);
            }
            // A batch whose records cannot be read is kept whole (pass 2 does the same).
            if let Ok(read) = read_records(batch, header) {
                for record in read.records {
                    if let Some(key) = record.key {
                        latest.insert(key, record.offset);
                    }
                }
            }
            Ok(true)
        })?;
    }

    // Pass 2: each segment without the records replaced later.
    std::fs::create_dir_all(staging)?;
    let tombstone_horizon = now_ms.saturating_sub(plan.delete_retention_ms);
    let keep = |r: &RecordView, header: &BatchHeader| match &r.key {
        None => true,
        Some(key) => latest.get(key) == Some(&r.offset) && !(r.tombstone && header.max_timestamp < tombstone_horizon),
    };
    let mut staged = Vec::new();
    let mut removed_total = 0u64;
    for segment in &plan.segments {
        let mut out = LogSegment::create(staging, segment.base, plan.index_interval_bytes, now_ms)?;
        let mut removed = 0u64;
        let whole = for_each_batch(segment, |batch, header| {
            if header.is_control() {
                out.append(batch, header)?;
                return Ok(true);
            }
            if aborted(header) {
                removed += header.records_count.max(0) as u64;
                return Ok(true);
            }
            let Ok(read) = read_records(batch, header) else {
                out.append(batch, header)?;
                return Ok(true);
            };
            let kept: Vec<&RecordView> = read.records.iter().filter(|r| keep(r, header)).collect();
            removed += (read.records.len() - kept.len()) as u64;
            if kept.len() == read.records.len() {
                out.append(batch, header)?;
            } else if !kept.is_empty() {
                match rebuild(batch, header, &read, &kept) {
                    Ok(rebuilt) => {
                        let new_header = BatchHeader::parse(&rebuilt).map_err(io::Error::other)?;
                        out.append(&rebuilt, &new_header)?;
                    }
                    Err(_) => {
                        removed -= (read.records.len() - kept.len()) as u64;
                        out.append(batch, header)?;
                    }
                }
            }
            Ok(true)
        })?;
        // Only a segment read to its end may replace the original.
        if removed == 0 || !whole {
            out.delete()?;
            continue;
        }
        out.seal()?;
        out.flush()?;
        removed_total += removed;
        staged.push(Staged {
            base: segment.base,
            old_size: segment.size,
            new_size: out.size(),
        });
    }
    Ok((staged, removed_total))
}

/// Calls `f` with each whole batch of the segment (as planned) and its header,
/// until it returns false. A torn or unreadable batch ends the walk. True when
/// the walk reached the segment's end.
fn for_each_batch(
    segment: &Cleanable,
    mut f: impl FnMut(&[u8], &BatchHeader) -> io::Result<bool>,
) -> Result<bool, LogError> {
    let mut position = 0u64;
    let mut buf = Vec::new();
    while position < segment.size {
        let head = LogSegment::read_at(&segment.file, position, super::batch::BATCH_HEADER_LEN)?;
        let Ok(header) = BatchHeader::parse(&head) else { break };
        let total = header.total_size();
        if position + total as u64 > segment.size {
            break;
        }
        buf.resize(total, 0);
        segment.file.read_exact_at(&mut buf, position)?;
        if !f(&buf, &header)? {
            break;
        }
        position += total as u64;
    }
    Ok(position == segment.size)
}

fn remove_if_present(path: &Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::topic::LogConfig;
    use crate::storage::batch::ControlType;
    use crate::storage::loader::LogLoader;
    use kafka_protocol::records::{Compression, Record, RecordBatchDecoder};
    use kafka_protocol::records::{TimestampType, NO_PRODUCER_EPOCH, NO_PRODUCER_ID, NO_SEQUENCE};

    const NOW: i64 = 1_700_000_000_000;

    fn config() -> LogConfig {
        LogConfig {
            segment_bytes: 1 << 30,
            index_interval_bytes: 100,
            compact: true,
            delete: false,
            min_cleanable_dirty_ratio: 0.5,
            min_compaction_lag_ms: 0,
            delete_retention_ms: 86_400_000,
            ..LogConfig::default()
        }
    }

    /// One batch of (key, value) records.
    fn append(log: &mut Log, records: &[(&str, Option<&str>)], ts: i64, compression: Compression) {
        append_from(log, records, ts, compression, None);
    }

    /// One batch, from transactional producer `(id, first sequence)` if given.
    fn append_from(
        log: &mut Log,
        records: &[(&str, Option<&str>)],
        ts: i64,
        compression: Compression,
        producer: Option<(i64, i32)>,
    ) {
        let (producer_id, producer_epoch, first_sequence) = match producer {
            Some((id, seq)) => (id, 0, seq),
            None => (NO_PRODUCER_ID, NO_PRODUCER_EPOCH, NO_SEQUENCE),
        };
        let records: Vec<Record> = records
            .iter()
            .enumerate()
            .map(|(i, (k, v))| Record {
                transactional: producer.is_some(),
                control: false,
                delete_horizon: false,
                partition_leader_epoch: 0,
                producer_id,
                producer_epoch,
                timestamp_type: TimestampType::Creation,
                offset: i as i64,
                sequence: first_sequence + i as i32, // one batch: offset - sequence is the same for all
                timestamp: ts,
                key: Some(Bytes::from(k.to_string())),
                value: v.map(|v| Bytes::from(v.to_string())),
                headers: Default::default(),
            })
            .collect();
        let mut batch = crate::storage::batch::tests::encode_records(&records, compression).to_vec();
        log.append(&mut batch, ts).expect("append");
    }

    fn append_marker(log: &mut Log, producer_id: i64, kind: ControlType) {
        let mut batch = crate::storage::batch::control_batch(producer_id, 0, 0, kind, NOW);
        log.append(&mut batch, NOW).expect("marker");
    }

    /// Every record from the start: (offset, key, value).
    fn read_all(log: &mut Log) -> Vec<(i64, String, Option<String>)> {
        let text = |b: Option<Bytes>| b.map(|b| String::from_utf8_lossy(&b).into_owned());
        let mut out = Vec::new();
        let mut offset = log.log_start_offset();
        while let Some(plan) = log.plan_read(offset, log.high_watermark()).expect("plan") {
            let bytes = plan.read(usize::MAX, true).expect("read");
            if bytes.is_empty() {
                break;
            }
            let mut at = 0;
            while at < bytes.len() {
                let header = BatchHeader::parse_and_verify(&bytes[at..]).expect("valid batch");
                let mut batch = bytes.slice(at..at + header.total_size());
                let records = if header.is_control() {
                    vec![]
                } else {
                    RecordBatchDecoder::decode(&mut batch).expect("decode").records
                };
                for r in records {
                    out.push((r.offset, text(r.key).unwrap_or_default(), text(r.value)));
                }
                offset = header.next_offset();
                at += header.total_size();
            }
        }
        out
    }

    fn partition(log: Log) -> Partition {
        Partition::new("t", 0, log, Arc::new(tokio::sync::Notify::new()))
    }

    fn seen(p: &Partition) -> Vec<(i64, String, Option<String>)> {
        read_all(&mut p.log())
    }

    #[test]
    fn keeps_the_latest_record_of_each_key_at_its_offset() {
        for compression in [Compression::None, Compression::Gzip, Compression::Zstd] {
            let dir = tempfile::tempdir().expect("tempdir");
            let mut log = Log::create(dir.path(), config(), NOW).expect("log");
            append(&mut log, &[("a", Some("a1")), ("b", Some("b1"))], NOW, compression); // 0, 1
            append(&mut log, &[("a", Some("a2")), ("c", Some("c1"))], NOW, compression); // 2, 3
            log.roll(NOW).expect("roll");
            append(&mut log, &[("b", Some("b2")), ("c", None)], NOW, compression); // 4, 5
            log.roll(NOW).expect("roll");
            append(&mut log, &[("a", Some("a3"))], NOW, compression); // 6: active, not cleaned
            let p = partition(log);

            let report = clean(&p, NOW + 1).expect("clean").expect("work done");
            assert_eq!((report.segments_rewritten, report.records_removed), (1, 3));
            assert!(report.bytes_after < report.bytes_before);
            assert_eq!(
                seen(&p),
                vec![
                    (2, "a".into(), Some("a2".into())),
                    (4, "b".into(), Some("b2".into())),
                    (5, "c".into(), None),
                    (6, "a".into(), Some("a3".into())),
                ],
                "{compression:?}"
            );
            // Nothing new is dirty: nothing to do.
            assert_eq!(clean(&p, NOW + 2).expect("clean"), None);
            assert_eq!(p.log().log_end_offset(), 7);

            // Kept across a restart on the files, indexes included.
            p.log().close().expect("close");
            drop(p);
            let (mut log, _) = LogLoader {
                dir: dir.path(),
                config: config(),
                clean_shutdown: false,
                recovery_point: 0,
                log_start_offset: 0,
                now_ms: NOW,
            }
            .load()
            .expect("load");
            assert_eq!(read_all(&mut log).len(), 4);
            assert_eq!(log.log_end_offset(), 7);
            assert!(!dir.path().join(STAGING_DIR).exists());
        }
    }

    #[test]
    fn deletes_go_after_delete_retention() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = Log::create(
            dir.path(),
            LogConfig {
                delete_retention_ms: 1000,
                ..config()
            },
            NOW,
        )
        .expect("log");
        append(
            &mut log,
            &[("a", Some("a1")), ("b", Some("b1"))],
            NOW,
            Compression::None,
        );
        append(&mut log, &[("a", None)], NOW, Compression::None);
        log.roll(NOW).expect("roll");
        append(&mut log, &[("z", Some("z1"))], NOW, Compression::None);
        let p = partition(log);
        clean(&p, NOW + 10).expect("clean");
        assert_eq!(
            seen(&p),
            vec![
                (1, "b".into(), Some("b1".into())),
                (2, "a".into(), None),
                (3, "z".into(), Some("z1".into()))
            ]
        );
        p.log().cleaned_to = 0; // as after a restart: look again
        clean(&p, NOW + 5000).expect("clean");
        assert_eq!(
            seen(&p),
            vec![(1, "b".into(), Some("b1".into())), (3, "z".into(), Some("z1".into()))]
        );
    }

    #[test]
    fn only_compacted_logs_old_enough_and_dirty_enough_are_cleaned() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = Log::create(
            dir.path(),
            LogConfig {
                compact: false,
                delete: true,
                ..config()
            },
            NOW,
        )
        .expect("log");
        append(
            &mut log,
            &[("a", Some("a1")), ("a", Some("a2"))],
            NOW,
            Compression::None,
        );
        log.roll(NOW).expect("roll");
        let p = partition(log);
        assert_eq!(clean(&p, NOW).expect("clean"), None, "delete policy");
        p.log().set_config(LogConfig {
            min_compaction_lag_ms: 60_000,
            ..config()
        });
        assert_eq!(clean(&p, NOW + 1000).expect("clean"), None, "younger than the lag");
        p.log().set_config(config());
        assert_eq!(
            clean(&p, NOW + 1000).expect("clean").map(|r| r.records_removed),
            Some(1)
        );
        assert_eq!(seen(&p), vec![(1, "a".into(), Some("a2".into()))]);
    }

    #[test]
    fn a_crash_between_the_renames_leaves_a_readable_log() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = Log::create(dir.path(), config(), NOW).expect("log");
        for i in 0..50 {
            append(
                &mut log,
                &[("a", Some(&format!("a{i}"))), ("b", Some("b"))],
                NOW + i,
                Compression::None,
            );
        }
        log.roll(NOW + 100).expect("roll");
        append(&mut log, &[("z", Some("z"))], NOW + 100, Compression::None);
        let p = partition(log);
        clean(&p, NOW + 200).expect("clean").expect("work done");
        p.log().close().expect("close");
        drop(p);
        // As if the crash came after the new log was renamed in, before its indexes were;
        // and with a staging directory left behind.
        for suffix in INDEX_SUFFIXES {
            std::fs::remove_file(dir.path().join(file_name(0, suffix))).expect("index there");
        }
        std::fs::create_dir_all(dir.path().join(STAGING_DIR)).expect("mkdir");
        std::fs::write(dir.path().join(STAGING_DIR).join(file_name(0, ".log")), b"partial").expect("write");
        let (mut log, _) = LogLoader {
            dir: dir.path(),
            config: config(),
            clean_shutdown: true,
            recovery_point: 101,
            log_start_offset: 0,
            now_ms: NOW,
        }
        .load()
        .expect("load");
        assert!(!dir.path().join(STAGING_DIR).exists());
        assert_eq!(
            read_all(&mut log),
            vec![
                (98, "a".into(), Some("a49".into())),
                (99, "b".into(), Some("b".into())),
                (100, "z".into(), Some("z".into()))
            ]
        );
        assert_eq!(
            log.offset_for_timestamp(NOW + 49).expect("lookup").map(|(o, _)| o),
            Some(98)
        );
    }

    #[test]
    fn aborted_records_go_committed_ones_count_and_open_transactions_wait() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = Log::create(dir.path(), config(), NOW).expect("log");
        append(
            &mut log,
            &[("a", Some("a0")), ("b", Some("b0"))],
            NOW,
            Compression::None,
        ); // 0, 1
        append_from(&mut log, &[("a", Some("aborted"))], NOW, Compression::Lz4, Some((9, 0))); // 2
        append_marker(&mut log, 9, ControlType::Abort); // 3
        append_from(
            &mut log,
            &[("b", Some("committed")), ("c", Some("c0"))],
            NOW,
            Compression::None,
            Some((9, 1)),
        ); // 4, 5
        append_marker(&mut log, 9, ControlType::Commit); // 6
        log.roll(NOW).expect("roll");
        append_from(&mut log, &[("c", Some("open"))], NOW, Compression::None, Some((10, 0))); // 7
        log.roll(NOW).expect("roll");
        append(&mut log, &[("z", Some("z"))], NOW, Compression::None); // 8
        let p = partition(log);
        assert_eq!(p.log().last_stable_offset(), 7);

        let report = clean(&p, NOW + 1).expect("clean").expect("work done");
        // The segment holding the open transaction is past the last stable offset: not cleaned.
        assert_eq!((report.segments_rewritten, report.records_removed), (1, 2));
        assert_eq!(
            seen(&p),
            vec![
                (0, "a".into(), Some("a0".into())),
                (4, "b".into(), Some("committed".into())),
                (5, "c".into(), Some("c0".into())),
                (7, "c".into(), Some("open".into())),
                (8, "z".into(), Some("z".into())),
            ]
        );
        // The markers stay, so read_committed readers and producer state still see them.
        let markers: Vec<i64> = {
            let mut log = p.log();
            let plan = log.plan_read(0, 7).expect("plan").expect("data");
            let bytes = plan.read(usize::MAX, true).expect("read");
            let mut at = 0;
            let mut found = vec![];
            while at < bytes.len() {
                let h = BatchHeader::parse(&bytes[at..]).expect("batch");
                if h.is_control() {
                    found.push(h.base_offset);
                }
                at += h.total_size();
            }
            found
        };
        assert_eq!(markers, vec![3, 6]);
    }
}
