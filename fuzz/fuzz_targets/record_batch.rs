//! A Produce request's record set as the produce path takes it: LogValidator
//! (framing, CRC, codec, compacted keys, recompression to the topic's
//! compression.type, size and timestamps), the records walked in every codec,
//! then the batch appended to a fresh log and read back.
//!
//! First byte: the topic and request shape. bits 0-2: compression.type
//! (0 producer, 1-5 codec 0-4); bit 3 compacted; bit 4 LogAppendTime; bit 5
//! fix the length and CRC (else mutations rarely get past the CRC); bit 6
//! Produce v3 (no zstd) instead of v13; bit 7 append and read back.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use sluice::config::topic::LogConfig;
use sluice::storage::batch::{BatchHeader, BATCH_HEADER_LEN};
use sluice::storage::log::Log;
use sluice::storage::record_stream::stream_records;
use sluice::storage::records::control_type;
use sluice::storage::validator::LogValidator;

const NOW: i64 = 1_700_000_000_000;

fn fix_length_and_crc(batch: &mut [u8]) {
    if batch.len() < BATCH_HEADER_LEN {
        return;
    }
    let len = (batch.len() - 12) as i32;
    batch[8..12].copy_from_slice(&len.to_be_bytes());
    let crc = crc32c::crc32c(&batch[21..]);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else { return };
    let mut batch = rest.to_vec();
    if flags & 0x20 != 0 {
        fix_length_and_crc(&mut batch);
    }
    let mut config = LogConfig::default();
    config.compression = match flags & 0x07 {
        0 | 6 | 7 => None,
        n => Some(n as i16 - 1),
    };
    config.compact = flags & 0x08 != 0;
    config.log_append_time = flags & 0x10 != 0;
    let validator = LogValidator {
        config: &config,
        api_version: if flags & 0x40 != 0 { 3 } else { 13 },
        now_ms: NOW,
    };
    let records = Bytes::from(batch);
    // The records of whatever parses, valid or not (fetch, cleaner, markers).
    if let Ok(header) = BatchHeader::parse(&records) {
        if let Ok(mut stream) = stream_records(&records, &header) {
            while let Some(Ok(_)) = stream.next_record(|key, len| {
                let mut bytes = Vec::new();
                std::io::Read::read_to_end(&mut std::io::Read::take(key, len as u64), &mut bytes).map(|_| bytes)
            }) {}
        }
        let _ = control_type(&records);
    }
    let Ok(mut valid) = validator.validate(&records) else { return };
    if flags & 0x80 == 0 {
        return;
    }
    let dir = tempfile::Builder::new().prefix("fuzz-batch").tempdir_in(scratch()).expect("tempdir");
    let mut log = Log::create(dir.path(), config, NOW).expect("log");
    if log.append_pending(&mut valid.batch, NOW).is_ok() {
        let end = log.log_end_offset();
        if let Ok(Some(plan)) = log.plan_read(0, end) {
            let stored = plan.read(usize::MAX, true).expect("read back");
            let header = BatchHeader::parse_and_verify(&stored).expect("the stored batch parses");
            assert_eq!(header.records_count, valid.header.records_count);
        }
    }
});

/// tmpfs when there is one: the log's files cost no disk I/O.
fn scratch() -> std::path::PathBuf {
    let shm = std::path::Path::new("/dev/shm");
    if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    }
}
