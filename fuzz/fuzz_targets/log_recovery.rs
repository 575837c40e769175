//! A partition directory as found at start-up, from arbitrary bytes: the
//! files are written into a temp dir and LogLoader runs the recovery the
//! broker runs (clean start or crash: segment scan, index rebuild or use,
//! producer snapshot, transaction index, leader-epoch checkpoint), then the
//! loaded log is read the ways Fetch and ListOffsets read it. The offset
//! checkpoint files of the log dir are read too.
//!
//! Input: flags (u8: bit 0 clean shutdown), recovery point (u32 BE), log
//! start offset (u32 BE), then files: kind (u8), segment base (u32 BE),
//! length (u32 BE), bytes. Kinds, by the low 3 bits: 0 .log, 1 .index,
//! 2 .timeindex, 3 .txnindex, 4 .snapshot, 5 leader-epoch-checkpoint,
//! 6 an offset checkpoint file. See fuzz/record-corpus (pack_partition).
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice::config::topic::LogConfig;
use sluice::storage::checkpoint;
use sluice::storage::leader_epochs::LEADER_EPOCH_FILE;
use sluice::storage::loader::LogLoader;
use sluice::storage::segment::file_name;
use std::path::{Path, PathBuf};

const NOW: i64 = 1_700_000_000_000;

fn take<'a>(data: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    if data.len() < n {
        return None;
    }
    let (head, rest) = data.split_at(n);
    *data = rest;
    Some(head)
}

fn u32_of(data: &mut &[u8]) -> Option<u32> {
    take(data, 4).map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

fuzz_target!(|data: &[u8]| {
    let mut data = data;
    let (Some(flags), Some(recovery_point), Some(log_start)) = (take(&mut data, 1), u32_of(&mut data), u32_of(&mut data))
    else {
        return;
    };
    let root = tempfile::Builder::new().prefix("fuzz-log").tempdir_in(scratch()).expect("tempdir");
    let dir = root.path().join("topic-0");
    std::fs::create_dir(&dir).expect("partition dir");
    let mut checkpoint_file: Option<PathBuf> = None;
    while let (Some(kind), Some(base), Some(len)) = (take(&mut data, 1), u32_of(&mut data), u32_of(&mut data)) {
        let len = (len as usize).min(data.len());
        let bytes = take(&mut data, len).unwrap_or_default();
        let base = base as i64;
        let path = match kind[0] & 0x07 {
            0 => dir.join(file_name(base, ".log")),
            1 => dir.join(file_name(base, ".index")),
            2 => dir.join(file_name(base, ".timeindex")),
            3 => dir.join(file_name(base, ".txnindex")),
            4 => dir.join(file_name(base, ".snapshot")),
            5 => dir.join(LEADER_EPOCH_FILE),
            _ => {
                let path = root.path().join(checkpoint::RECOVERY_POINT_FILE);
                checkpoint_file = Some(path.clone());
                path
            }
        };
        std::fs::write(&path, bytes).expect("write");
    }
    if let Some(path) = checkpoint_file {
        let _ = checkpoint::read(&path);
    }
    let loader = LogLoader {
        dir: &dir,
        config: LogConfig::default(),
        clean_shutdown: flags[0] & 1 != 0,
        recovery_point: recovery_point as i64,
        log_start_offset: log_start as i64,
        now_ms: NOW,
    };
    let Ok((mut log, _report)) = loader.load() else { return };
    let (start, end) = (log.log_start_offset(), log.log_end_offset());
    assert!(start <= end, "log start {start} past log end {end}");
    // Fetch from a few offsets, as a consumer starting anywhere would.
    for offset in [start, start + (end - start) / 2, end.saturating_sub(1), end] {
        if let Ok(Some(plan)) = log.plan_read(offset, end) {
            let _ = plan.read(1 << 20, true);
        }
    }
    for timestamp in [-1, 0, NOW, i64::MAX] {
        let _ = log.offset_for_timestamp(timestamp);
    }
    let _ = log.max_timestamp_record();
    let _ = log.end_offset_for_epoch(0);
    let _ = log.aborted_transactions(start, end);
});

/// tmpfs when there is one: the files cost no disk I/O.
fn scratch() -> &'static Path {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        shm
    } else {
        Path::new("/tmp")
    }
}
