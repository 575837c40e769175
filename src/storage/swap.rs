//! Replacing sealed segments with the cleaned segment made of them, safely
//! against a crash at any step, as Kafka's `replaceSegments`: the cleaned
//! files (complete and synced) are first renamed into the partition
//! directory with a `.swap` suffix, then the old segments are renamed aside
//! (`.deleted`), then the `.swap` files take their final names. Start-up
//! finishes a replacement that a crash interrupted: a `.swap` log is whole,
//! so the segments it covers go and it takes their place.

use super::batch::{BatchHeader, BATCH_HEADER_LEN};
use super::segment::{file_name, mark_deleted, remove_if_present, DeletedSegment, SUFFIXES};
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

fn swap_name(base: i64, suffix: &str) -> String {
    format!("{}.swap", file_name(base, suffix))
}

/// Puts the cleaned segment staged in `staging` (named by `old[0]`, the
/// first of the segments it replaces) in place of the segments at `old`.
/// Returns the old segments' files, renamed aside, to unlink later.
pub fn replace_segments(dir: &Path, staging: &Path, old: &[i64]) -> io::Result<Vec<DeletedSegment>> {
    let Some(&base) = old.first() else {
        return Ok(Vec::new());
    };
    // The log last: a `.swap` log has its indexes beside it.
    for suffix in SUFFIXES.iter().rev() {
        match std::fs::rename(staging.join(file_name(base, suffix)), dir.join(swap_name(base, suffix))) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    let deleted = old
        .iter()
        .map(|b| mark_deleted(dir, *b))
        .collect::<io::Result<Vec<_>>>()?;
    finish(dir, base)?;
    Ok(deleted)
}

/// Gives the `.swap` files of the segment at `base` their final names, the
/// log first (indexes left `.swap` are strays: the segment reads without).
fn finish(dir: &Path, base: i64) -> io::Result<()> {
    for suffix in SUFFIXES {
        match std::fs::rename(dir.join(swap_name(base, suffix)), dir.join(file_name(base, suffix))) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    Ok(())
}

/// Start-up: finishes every replacement that a crash interrupted. Index
/// files left `.swap` without their log were never part of one: removed.
pub fn complete_interrupted(dir: &Path) -> io::Result<()> {
    let mut swapped = Vec::new();
    let mut strays = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        let Some(stem) = name.strip_suffix(".swap") else {
            continue;
        };
        match stem.strip_suffix(".log").map(str::parse::<i64>) {
            Some(Ok(base)) => swapped.push(base),
            _ => strays.push(name),
        }
    }
    for base in swapped {
        let end = end_offset(&dir.join(swap_name(base, ".log")))?;
        for covered in segment_bases(dir)?.into_iter().filter(|b| *b >= base && *b < end) {
            mark_deleted(dir, covered)?.remove()?;
        }
        finish(dir, base)?;
    }
    for name in strays {
        let stem = name.trim_end_matches(".swap");
        let base = stem.split('.').next().and_then(|b| b.parse::<i64>().ok());
        if base.is_none_or(|b| !dir.join(swap_name(b, ".log")).exists()) {
            remove_if_present(&dir.join(&name))?;
        }
    }
    Ok(())
}

/// The offset after the last whole batch of a log file (its base when empty).
fn end_offset(path: &Path) -> io::Result<i64> {
    let file = File::open(path)?;
    let len = file.metadata()?.len();
    let mut position = 0u64;
    let mut end = path
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.split('.').next())
        .and_then(|b| b.parse().ok())
        .unwrap_or(0);
    let mut head = [0u8; BATCH_HEADER_LEN];
    while position + BATCH_HEADER_LEN as u64 <= len {
        file.read_exact_at(&mut head, position)?;
        let Ok(header) = BatchHeader::parse(&head) else { break };
        end = header.next_offset();
        position += header.total_size() as u64;
    }
    Ok(end)
}

/// Base offsets of the segments (`.log` files) in `dir`.
fn segment_bases(dir: &Path) -> io::Result<Vec<i64>> {
    let mut bases = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let name = entry?.file_name();
        if let Some(Ok(base)) = name.to_string_lossy().strip_suffix(".log").map(str::parse::<i64>) {
            bases.push(base);
        }
    }
    Ok(bases)
}
