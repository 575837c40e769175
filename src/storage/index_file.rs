//! A sparse index kept in memory and mirrored to a file of fixed-size entries,
//! the shape shared by Kafka's `.index` and `.timeindex` files.
//!
//! Entries of sealed segments are read from disk on first use only, so opening
//! a log costs nothing per sealed segment.

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
    writer: Option<File>,
}

impl<E: IndexEntry> IndexFile<E> {
    /// An index whose entries are read lazily from `path` (a sealed segment's).
    pub fn lazy(path: PathBuf) -> Self {
        IndexFile {
            path,
            entries: Vec::new(),
            loaded: false,
            writer: None,
        }
    }

    /// An empty index that will be appended to; any existing file is truncated.
    pub fn create(path: PathBuf) -> io::Result<Self> {
        let writer = OpenOptions::new().create(true).write(true).truncate(true).open(&path)?;
        Ok(IndexFile {
            path,
            entries: Vec::new(),
            loaded: true,
            writer: Some(writer),
        })
    }

    /// Opens an existing index for appending, reading its entries now.
    pub fn open_for_append(path: PathBuf) -> io::Result<Self> {
        let mut index = IndexFile::lazy(path);
        index.ensure_loaded()?;
        index.writer = Some(open_existing_for_writing(&index.path)?);
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
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
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

    pub fn append(&mut self, entry: E) -> io::Result<()> {
        self.ensure_loaded()?;
        if self.writer.is_none() {
            self.writer = Some(open_existing_for_writing(&self.path)?);
        }
        let mut buf = [0u8; 16];
        entry.encode(&mut buf[..E::SIZE]);
        let position = (self.entries.len() * E::SIZE) as u64;
        if let Some(writer) = &self.writer {
            writer.write_all_at(&buf[..E::SIZE], position)?;
        }
        self.entries.push(entry);
        Ok(())
    }

    /// Keeps only the entries for which `keep` holds (a prefix), on disk too.
    pub fn truncate_to(&mut self, count: usize) -> io::Result<()> {
        self.ensure_loaded()?;
        self.entries.truncate(count);
        let file = match &self.writer {
            Some(f) => f.try_clone()?,
            None => open_existing_for_writing(&self.path)?,
        };
        file.set_len((self.entries.len() * E::SIZE) as u64)
    }

    /// Stops appending: the file is flushed and closed; entries stay cached if loaded.
    pub fn seal(&mut self) -> io::Result<()> {
        if let Some(writer) = self.writer.take() {
            writer.sync_data()?;
        }
        Ok(())
    }

    pub fn sync(&self) -> io::Result<()> {
        match &self.writer {
            Some(w) => w.sync_data(),
            None => Ok(()),
        }
    }

    /// Drops cached entries of a sealed index so memory follows what is being read.
    pub fn unload(&mut self) {
        if self.writer.is_none() {
            self.entries = Vec::new();
            self.loaded = false;
        }
    }

    pub fn delete(&mut self) -> io::Result<()> {
        self.writer = None;
        match std::fs::remove_file(&self.path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

/// Opens (creating if missing) an index file without discarding its entries.
fn open_existing_for_writing(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).truncate(false).write(true).open(path)
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
