//! `LogLoader`: opens a partition directory at start-up. Sealed segments are
//! only listed; the segments past the recovery point are scanned batch by
//! batch (CRC checked) after a crash, and a torn tail is cut off, so start-up
//! costs time in proportion to the active segments, not to the whole log.

use super::leader_epochs::LeaderEpochCache;
use super::log::{LoadedLog, Log, LogError};
use super::producer_snapshot;
use super::producer_state::ProducerState;
use super::records::control_type;
use super::segment::LogSegment;
use super::segments::LogSegments;
use super::txn_index::AbortedTxns;
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
        // A cleaning interrupted by a crash: staged files never replaced any;
        // a replacement under way is finished.
        let _ = std::fs::remove_dir_all(dir.join(super::cleaner::STAGING_DIR));
        super::swap::complete_interrupted(dir)?;
        let bases = self.list_segments()?;
        let mut report = LoadReport::default();
        if bases.is_empty() {
            // Every segment was deleted by retention: numbering restarts where it stood.
            let log = Log::create_at(dir, self.config, self.log_start_offset.max(0), self.now_ms)?;
            return Ok((log, report));
        }
        let interval = self.config.index_interval_bytes;
        let mut segments = BTreeMap::new();
        for base in &bases {
            segments.insert(*base, LogSegment::open(dir, *base, interval)?);
        }
        report.segments = segments.len();

        let next_offset = if self.clean_shutdown {
            let Some(active) = segments.values_mut().next_back() else {
                return Err(LogError::Io(std::io::Error::other("no segment to append to")));
            };
            active.reopen_for_append()?;
            let base = active.base_offset();
            active.scan_tail()?.unwrap_or(base)
        } else {
            self.recover(&mut segments, &mut report)?
        };
        let Some(mut segments) = LogSegments::from_segments(segments.into_values()) else {
            return Err(LogError::Io(std::io::Error::other("no segment to append to")));
        };
        let log_start_offset = self.log_start_offset.max(segments.first_base()).min(next_offset);
        let mut aborted = AbortedTxns::load(dir, segments.bases(), next_offset)?;
        let producers = load_producer_state(dir, &mut segments, &mut aborted, log_start_offset, next_offset)?;
        // Epochs of what recovery cut off, or of what retention removed, go too.
        let mut epochs = LeaderEpochCache::open(dir)?;
        epochs.truncate_from_end(next_offset)?;
        epochs.truncate_from_start(log_start_offset)?;
        let log = Log::from_loaded(LoadedLog {
            dir: dir.to_path_buf(),
            config: self.config,
            segments,
            log_start_offset,
            next_offset,
            recovery_point: if self.clean_shutdown {
                next_offset
            } else {
                self.recovery_point.min(next_offset)
            },
            producers,
            aborted,
            epochs,
            now_ms: self.now_ms,
        });
        Ok((log, report))
    }

    fn list_segments(&self) -> Result<Vec<i64>, LogError> {
        let mut bases = Vec::new();
        for entry in std::fs::read_dir(self.dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            // Leftovers of interrupted renames or writes are not part of the log.
            if name.ends_with(".deleted") || name.ends_with(".cleaned") || name.ends_with(".tmp") {
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
        let first = segments.keys().next().copied().unwrap_or(0);
        let start = segments
            .range(..=self.recovery_point.max(first))
            .next_back()
            .map_or(first, |(b, _)| *b);
        let mut next_offset = start;
        let mut cut_after: Option<i64> = None;
        for (base, segment) in segments.range_mut(start..) {
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
        let last = segments.keys().next_back().copied().unwrap_or(start);
        for (_, segment) in segments.range_mut(start..last) {
            segment.seal()?;
        }
        Ok(next_offset)
    }
}

/// Loads the newest producer snapshot at or below the log end and replays
/// the batch headers written after it, completing transactions whose
/// markers come after it.
pub(super) fn load_producer_state(
    dir: &Path,
    segments: &mut LogSegments,
    aborted: &mut AbortedTxns,
    log_start_offset: i64,
    next_offset: i64,
) -> Result<ProducerState, LogError> {
    let (from, mut producers) = match producer_snapshot::load_latest(dir, next_offset)? {
        Some((offset, state)) => (offset, state),
        None => (log_start_offset, ProducerState::default()),
    };
    if from >= next_offset {
        return Ok(producers);
    }
    for segment in segments.from_offset_mut(from) {
        let (base, end) = (segment.base_offset(), segment.size());
        let mut position = 0u64;
        while let Some(header) = segment.read_header_at(position, end)? {
            if header.base_offset >= from {
                producers.record(&header);
                if header.is_control() {
                    // Markers are rare and small: read the whole batch for its type.
                    let batch = LogSegment::read_at(segment.file(), position, header.total_size())?;
                    aborted.complete(&mut producers, base, &header, control_type(&batch), next_offset)?;
                }
            }
            position += header.total_size() as u64;
        }
    }
    Ok(producers)
}
