//! A crash in the middle of swapping cleaned segments in: start-up finishes
//! the swap, and the log reads as cleaned.

use super::*;

fn files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn load(dir: &Path) -> Log {
    LogLoader {
        dir,
        config: config(),
        clean_shutdown: true,
        recovery_point: 0,
        log_start_offset: 0,
        now_ms: NOW,
    }
    .load()
    .expect("load")
    .0
}

fn copy_dir(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).expect("dir") {
        let entry = entry.expect("entry");
        if entry.file_type().expect("type").is_file() {
            std::fs::copy(entry.path(), to.join(entry.file_name())).expect("copy");
        }
    }
}

#[test]
fn a_swap_interrupted_at_any_step_is_finished_at_start_up() {
    // Segments 0 (0..4) and 4 (4..6), active 6; cleaned, they are one segment.
    let original = tempfile::tempdir().expect("tempdir");
    let mut log = Log::create(original.path(), config(), NOW).expect("log");
    append(
        &mut log,
        &[("a", Some("a1")), ("b", Some("b1"))],
        NOW,
        Compression::None,
    );
    append(
        &mut log,
        &[("a", Some("a2")), ("c", Some("c1"))],
        NOW,
        Compression::None,
    );
    log.roll(NOW).expect("roll");
    append(&mut log, &[("b", Some("b2")), ("c", None)], NOW, Compression::None);
    log.roll(NOW).expect("roll");
    append(&mut log, &[("a", Some("a3"))], NOW, Compression::None);
    log.close().expect("close");
    drop(log);
    let cleaned = tempfile::tempdir().expect("tempdir");
    copy_dir(original.path(), cleaned.path());
    let p = partition(load(cleaned.path()));
    clean(&p, NOW + 1).expect("clean").expect("work done");
    let want = seen(&p);
    p.log().close().expect("close");
    drop(p);

    let swap = |name: &str| format!("{name}.swap");
    // The crash came after the cleaned files were renamed `.swap`: with the
    // old segments all there, with the first renamed aside, with both.
    for old_gone in [vec![], vec![0], vec![0, 4]] {
        let dir = tempfile::tempdir().expect("tempdir");
        copy_dir(original.path(), dir.path());
        for suffix in [".log", ".index", ".timeindex"] {
            let name = file_name(0, suffix);
            std::fs::copy(cleaned.path().join(&name), dir.path().join(swap(&name))).expect("copy");
        }
        for base in &old_gone {
            crate::storage::segment::mark_deleted(dir.path(), *base).expect("aside");
        }
        // An index swap of a swap that never got as far as its log: a stray.
        std::fs::write(dir.path().join(swap(&file_name(6, ".index"))), b"").expect("write");
        let mut log = load(dir.path());
        assert_eq!(read_all(&mut log), want, "{old_gone:?}");
        assert_eq!(log.segment_base_offsets(), vec![0, 6]);
        let names = files(dir.path());
        assert!(
            names.iter().all(|n| !n.ends_with(".swap") && !n.ends_with(".deleted")),
            "{names:?}"
        );
    }
}
