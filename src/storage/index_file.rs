//! A sparse index kept in memory and mirrored to a file of fixed-size entries,
//! the shape shared by Kafka's `.index` and `.timeindex` files.
//!
//! Entries of sealed segments are read from disk on first use only, so opening
//! a log costs nothing per sealed segment; an active segment's index holds a
//! file descriptor only once it has an entry.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// One fixed-size, big-endian entry of an index file.
pub trait IndexEntry: Copy {
    const SIZE: usize;
    fn encode(&self, out: &mut [u8]);
    fn decode(bytes: &[u8]) -> Self;
}

pub struct IndexFile<E: IndexEntry> {
    path: PathBuf,
    entries: Vec<E>,
    loaded: bool,
    /// Opened at the first entry written, closed at seal: an index that
    /// nothing was written to costs no file descriptor.
    writer: Option<File>,
    /// The file on disk, if any, is not this index's yet: it is created (or
    /// emptied) when the first entry is written, or at seal.
    fresh: bool,
}

impl<E: IndexEntry> IndexFile<E> {
    /// An index whose entries are read lazily from `path` (a sealed segment's).
    pub fn lazy(path: PathBuf) -> Self {
        IndexFile {
            path,
            entries: Vec::new(),
            loaded: false,
            writer: None,
            fresh: false,
        }
    }

    /// An empty index that will be appended to; any existing file is
    /// replaced, though not before the first entry (or the seal).
    pub fn create(path: PathBuf) -> Self {
        IndexFile {
            path,
            entries: Vec::new(),
            loaded: true,
            writer: None,
            fresh: true,
        }
    }

    /// Opens an existing index for appending, reading its entries now.
    pub fn open_for_append(path: PathBuf) -> io::Result<Self> {
        let mut index = IndexFile::lazy(path);
        index.ensure_loaded()?;
        Ok(index)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn ensure_loaded(&mut self) -> io::Result<()> {
        if self.loaded {
            return Ok(());
        }
        let bytes = match std::fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                self.fresh = true;
                Vec::new()
            }
            Err(e) => return Err(e),
        };
        // A trailing partial entry (torn write) is ignored.
        self.entries = bytes.chunks_exact(E::SIZE).map(E::decode).collect();
        self.loaded = true;
        Ok(())
    }

    pub fn entries(&mut self) -> io::Result<&[E]> {
        self.ensure_loaded()?;
        Ok(&self.entries)
    }

    pub fn last(&mut self) -> io::Result<Option<E>> {
        Ok(self.entries()?.last().copied())
    }

    /// The file, opened for writing: emptied first if it is not ours yet.
    fn writer(&mut self) -> io::Result<&File> {
        if self.writer.is_none() {
            let file = OpenOptions::new()
                .create(true)
                .truncate(self.fresh)
                .write(true)
                .open(&self.path)?;
            if !self.fresh {
                // Bytes past the entries known (a torn tail) are cut.
                file.set_len((self.entries.len() * E::SIZE) as u64)?;
            }
            self.fresh = false;
            self.writer = Some(file);
        }
        self.writer.as_ref().ok_or_else(|| io::Error::other("index writer"))
    }

    pub fn append(&mut self, entry: E) -> io::Result<()> {
        self.ensure_loaded()?;
        let mut buf = [0u8; 16];
        entry.encode(&mut buf[..E::SIZE]);
        let position = (self.entries.len() * E::SIZE) as u64;
        self.writer()?.write_all_at(&buf[..E::SIZE], position)?;
        self.entries.push(entry);
        Ok(())
    }

    /// Keeps only the first `count` entries, on disk too.
    pub fn truncate_to(&mut self, count: usize) -> io::Result<()> {
        self.ensure_loaded()?;
        self.entries.truncate(count);
        if self.fresh {
            return Ok(()); // nothing of ours on disk
        }
        let len = (self.entries.len() * E::SIZE) as u64;
        self.writer()?.set_len(len)
    }

    /// Stops appending: the file exists and holds the entries; it is closed.
    /// Not synced: the segment's flush does that before the recovery point
    /// passes it.
    pub fn seal(&mut self) -> io::Result<()> {
        if self.fresh {
            self.writer()?;
        }
        self.writer = None;
        Ok(())
    }

    pub fn delete(&mut self) -> io::Result<()> {
        self.writer = None;
        match std::fs::remove_file(&self.path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

/// Reads a single entry without loading the index, e.g. the last time index entry.
pub fn read_last_entry<E: IndexEntry>(path: &Path) -> io::Result<Option<E>> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let len = file.metadata()?.len() as usize;
    let count = len / E::SIZE;
    if count == 0 {
        return Ok(None);
    }
    let mut buf = [0u8; 16];
    file.read_exact_at(&mut buf[..E::SIZE], ((count - 1) * E::SIZE) as u64)?;
    Ok(Some(E::decode(&buf[..E::SIZE])))
}
