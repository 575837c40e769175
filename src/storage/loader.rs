//! `LogLoader`: opens a partition directory at start-up. Sealed segments are
//! only listed; the segments past the recovery point are scanned batch by
//! batch (CRC checked) after a crash, and a torn tail is cut off, so start-up
//! costs time in proportion to the active segments, not to the whole log.

use super::batch::control_type;
use super::log::{list_snapshots, Log, LogError, Transactions};
use super::producer_state::ProducerState;
use super::segment::{file_name, LogSegment};
use super::txn_index;
use crate::config::topic::LogConfig;
use std::collections::BTreeMap;
use std::path::Path;

/// What loading found, for the start-up log line.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct LoadReport {
    pub segments: usize,
    pub recovered_segments: usize,
    /// Bytes cut from the end because they did not hold whole, valid batches.
    pub truncated_bytes: u64,
    pub truncation_reason: Option<String>,
}

pub struct LogLoader<'a> {
    pub dir: &'a Path,
    pub config: LogConfig,
    /// The previous run shut down cleanly: indexes and snapshot are complete.
    pub clean_shutdown: bool,
    pub recovery_point: i64,
    pub log_start_offset: i64,
    pub now_ms: i64,
}

impl LogLoader<'_> {
    pub fn load(self) -> Result<(Log, LoadReport), LogError> {
        let dir = self.dir;
        std::fs::create_dir_all(dir)?;
        // A cleaning interrupted by a crash: its files never replaced any.
        let _ = std::fs::remove_dir_all(dir.join(super::cleaner::STAGING_DIR));
        let bases = self.list_segments()?;
        let mut report = LoadReport::default();
        if bases.is_empty() {
            let mut log = Log::create(dir, self.config, self.now_ms)?;
            if self.log_start_offset > 0 {
                // Every segment was deleted by retention: restart numbering where it stood.
                log.segments.clear();
                let seg = LogSegment::create(dir, self.log_start_offset, log.config.index_interval_bytes, self.now_ms)?;
                log.segments.insert(self.log_start_offset, seg);
                log.log_start_offset = self.log_start_offset;
                log.next_offset = self.log_start_offset;
                log.high_watermark = self.log_start_offset;
                log.recovery_point = self.log_start_offset;
            }
            return Ok((log, report));
        }
        let interval = self.config.index_interval_bytes;
        let mut segments = BTreeMap::new();
        for base in &bases {
            segments.insert(*base, LogSegment::open(dir, *base, interval)?);
        }
        report.segments = segments.len();

        let next_offset = if self.clean_shutdown {
            let active = segments.values_mut().next_back().expect("non-empty");
            active.reopen_for_append()?;
            let base = active.base_offset();
            active.scan_tail()?.unwrap_or(base)
        } else {
            self.recover(&mut segments, &mut report)?
        };

        let first_base = *segments.keys().next().expect("non-empty");
        let log_start_offset = self.log_start_offset.max(first_base).min(next_offset);
        let mut log = Log {
            dir: dir.to_path_buf(),
            config: self.config,
            segments,
            log_start_offset,
            next_offset,
            high_watermark: next_offset,
            producers: ProducerState::default(),
            recovery_point: if self.clean_shutdown {
                next_offset
            } else {
                self.recovery_point.min(next_offset)
            },
            unflushed_messages: 0,
            last_flush_ms: self.now_ms,
            leader_epoch: 0,
            deleted: false,
            aborted: Vec::new(),
            cleaned_to: 0,
        };
        load_aborted_transactions(&mut log)?;
        load_producer_state(&mut log)?;
        Ok((log, report))
    }

    fn list_segments(&self) -> Result<Vec<i64>, LogError> {
        let mut bases = Vec::new();
        for entry in std::fs::read_dir(self.dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            // Leftovers of interrupted renames or writes are not part of the log.
            if name.ends_with(".deleted")
                || name.ends_with(".cleaned")
                || name.ends_with(".swap")
                || name.ends_with(".tmp")
            {
                let _ = std::fs::remove_file(entry.path());
                continue;
            }
            if let Some(stem) = name.strip_suffix(".log") {
                if let Ok(base) = stem.parse::<i64>() {
                    bases.push(base);
                }
            }
        }
        bases.sort_unstable();
        Ok(bases)
    }

    /// Scans every segment from the one holding the recovery point onwards,
    /// rebuilding indexes, and cuts the log at the first invalid batch.
    fn recover(&self, segments: &mut BTreeMap<i64, LogSegment>, report: &mut LoadReport) -> Result<i64, LogError> {
        let first = *segments.keys().next().expect("non-empty");
        let start = segments
            .range(..=self.recovery_point.max(first))
            .next_back()
            .map(|(b, _)| *b)
            .unwrap_or(first);
        let to_scan: Vec<i64> = segments.range(start..).map(|(b, _)| *b).collect();
        let mut next_offset = start;
        let mut cut_after: Option<i64> = None;
        for base in &to_scan {
            let segment = segments.get_mut(base).expect("listed above");
            segment.reopen_for_append()?;
            let outcome = segment.scan(usize::MAX, true)?;
            report.recovered_segments += 1;
            if let Some(n) = outcome.next_offset {
                next_offset = n;
            } else {
                next_offset = next_offset.max(*base);
            }
            if outcome.stopped_by.is_some() {
                report.truncated_bytes += segment.size() - outcome.valid_bytes;
                report.truncation_reason = outcome.stopped_by.clone();
                segment.truncate_to(outcome.valid_bytes, next_offset)?;
                cut_after = Some(*base);
                break;
            }
        }
        if let Some(cut) = cut_after {
            // Everything after a torn batch is unreachable: drop later segments.
            let later: Vec<i64> = segments.range(cut + 1..).map(|(b, _)| *b).collect();
            for base in later {
                if let Some(seg) = segments.remove(&base) {
                    report.truncated_bytes += seg.size();
                    seg.delete()?;
                }
            }
        }
        // Segments scanned before the active one are complete again: seal them.
        let last = *segments.keys().next_back().expect("non-empty");
        for (base, segment) in segments.range_mut(start..last) {
            let _ = base;
            segment.seal()?;
        }
        Ok(next_offset)
    }
}

/// Loads the newest producer snapshot at or below the log end and replays
/// the batch headers written after it.
fn load_producer_state(log: &mut Log) -> Result<(), LogError> {
    let mut snapshots = list_snapshots(&log.dir)?;
    snapshots.sort_unstable();
    for stale in snapshots.iter().filter(|s| **s > log.next_offset) {
        let _ = std::fs::remove_file(log.dir.join(file_name(*stale, ".snapshot")));
    }
    let mut from = log.log_start_offset;
    for candidate in snapshots.iter().rev().filter(|s| **s <= log.next_offset) {
        let path = log.dir.join(file_name(*candidate, ".snapshot"));
        if let Some(state) = std::fs::read(&path)
            .ok()
            .and_then(|b| ProducerState::decode_snapshot(&b))
        {
            log.producers = state;
            from = *candidate;
            break;
        }
    }
    if from >= log.next_offset {
        return Ok(());
    }
    let start = log.segments.range(..=from).next_back().map(|(b, _)| *b).unwrap_or(from);
    let mut txns = Transactions {
        producers: &mut log.producers,
        aborted: &mut log.aborted,
        dir: &log.dir,
        high_watermark: log.next_offset,
    };
    for (base, segment) in log.segments.range_mut(start..) {
        let end = segment.size();
        let mut position = 0u64;
        while let Some(header) = segment.read_header_at(position, end)? {
            if header.base_offset >= from {
                txns.producers.record(&header);
                if header.is_control() {
                    // Markers are rare and small: read the whole batch for its type.
                    let batch = LogSegment::read_at(segment.file(), position, header.total_size())?;
                    txns.complete(*base, &header, control_type(&batch))?;
                }
            }
            position += header.total_size() as u64;
        }
    }
    Ok(())
}

/// Reads the aborted-transaction index of every segment.
fn load_aborted_transactions(log: &mut Log) -> Result<(), LogError> {
    let mut aborted = Vec::new();
    for base in log.segments.keys() {
        aborted.extend(txn_index::read(&log.dir, *base)?);
    }
    aborted.retain(|a| a.last_offset < log.next_offset);
    aborted.sort_by_key(|a| a.last_offset);
    log.aborted = aborted;
    Ok(())
}
