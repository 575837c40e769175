//! `OffsetMap`: the cleaner's map from key to latest offset in fixed memory,
//! as Kafka's SkimpyOffsetMap. A 128-bit hash stands for each key (two keys
//! sharing one is less likely than the disk flipping a bit), in an
//! open-addressing table of 24-byte slots filled to at most 90%: when it is
//! full, a new key does not go in, and the cleaner cleans what it mapped so
//! far and maps the rest next round.

use std::collections::hash_map::{DefaultHasher, RandomState};
use std::hash::{BuildHasher, Hasher};
use std::io::{self, Read};

/// Bytes of one slot: the key's hash (16) and an offset (8).
pub const SLOT_BYTES: usize = 24;
/// Kafka's log.cleaner.io.buffer.load.factor.
const LOAD_FACTOR: f64 = 0.9;
/// Marks an empty slot (offsets are never negative).
const EMPTY: i64 = -1;

/// The bytes hashed at a time: keys read from a stream are hashed in the
/// same pieces as keys in memory, so both give the same hash.
const HASH_CHUNK: usize = 4096;

/// A key as the map knows it: its 128-bit hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyHash([u64; 2]);

#[derive(Clone, Copy)]
struct Slot {
    hash: [u64; 2],
    offset: i64,
}

pub struct OffsetMap {
    slots: Vec<Slot>,
    entries: usize,
    max_entries: usize,
    /// Two independently keyed hashers give the 128 bits.
    hashers: [RandomState; 2],
}

impl OffsetMap {
    /// A map in at most `memory` bytes, smaller when `keys` (an upper bound
    /// of the keys to map) needs less.
    pub fn new(memory: usize, keys: usize) -> OffsetMap {
        let wanted = (keys as f64 / LOAD_FACTOR) as usize + 1;
        let slots = (memory / SLOT_BYTES).min(wanted).max(1);
        OffsetMap {
            slots: vec![
                Slot {
                    hash: [0; 2],
                    offset: EMPTY
                };
                slots
            ],
            entries: 0,
            max_entries: ((slots as f64 * LOAD_FACTOR) as usize).max(1),
            hashers: [RandomState::new(), RandomState::new()],
        }
    }

    fn hashers(&self, len: usize) -> [DefaultHasher; 2] {
        self.hashers.each_ref().map(|state| {
            let mut hasher = state.build_hasher();
            hasher.write_usize(len);
            hasher
        })
    }

    fn hash(&self, key: &[u8]) -> KeyHash {
        let mut hashers = self.hashers(key.len());
        for chunk in key.chunks(HASH_CHUNK) {
            hashers.iter_mut().for_each(|h| h.write(chunk));
        }
        KeyHash(hashers.map(|h| h.finish()))
    }

    /// The hash of the `len` bytes of a key read from `key` (a record
    /// streamed out of its batch): the key is never held whole.
    pub fn hash_key(&self, key: &mut dyn Read, len: usize) -> io::Result<KeyHash> {
        let mut hashers = self.hashers(len);
        let mut chunk = [0u8; HASH_CHUNK];
        let mut left = len;
        while left > 0 {
            let n = left.min(HASH_CHUNK);
            key.read_exact(&mut chunk[..n])?;
            hashers.iter_mut().for_each(|h| h.write(&chunk[..n]));
            left -= n;
        }
        Ok(KeyHash(hashers.map(|h| h.finish())))
    }

    /// Where `hash` is, or the empty slot where it would go (None: the
    /// table is full and it is not there).
    fn position(&self, hash: [u64; 2]) -> Option<usize> {
        let n = self.slots.len();
        let mut i = (hash[0] % n as u64) as usize;
        for _ in 0..n {
            let slot = &self.slots[i];
            if slot.offset == EMPTY || slot.hash == hash {
                return Some(i);
            }
            i = if i + 1 == n { 0 } else { i + 1 };
        }
        None
    }

    /// Records `offset` as the latest of `key`. False, and nothing changed,
    /// when the key is new and the map is full.
    pub fn put(&mut self, key: &[u8], offset: i64) -> bool {
        self.put_hash(self.hash(key), offset)
    }

    /// As `put`, by the key's hash.
    pub fn put_hash(&mut self, KeyHash(hash): KeyHash, offset: i64) -> bool {
        let Some(i) = self.position(hash) else {
            return false;
        };
        if self.slots[i].offset == EMPTY {
            if self.entries >= self.max_entries {
                return false;
            }
            self.entries += 1;
        }
        self.slots[i] = Slot { hash, offset };
        true
    }

    /// The latest offset recorded for `key`.
    pub fn get(&self, key: &[u8]) -> Option<i64> {
        self.get_hash(self.hash(key))
    }

    /// As `get`, by the key's hash.
    pub fn get_hash(&self, KeyHash(hash): KeyHash) -> Option<i64> {
        let i = self.position(hash)?;
        let offset = self.slots[i].offset;
        (offset != EMPTY).then_some(offset)
    }

    /// Keys mapped.
    pub fn len(&self) -> usize {
        self.entries
    }

    pub fn is_empty(&self) -> bool {
        self.entries == 0
    }

    /// Keys the map can hold.
    pub fn capacity(&self) -> usize {
        self.max_entries
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_streamed_key_hashes_as_the_same_key_in_memory() {
        let map = OffsetMap::new(1 << 10, 10);
        for len in [0, 1, HASH_CHUNK - 1, HASH_CHUNK, 3 * HASH_CHUNK + 17] {
            let key: Vec<u8> = (0..len).map(|i| (i % 253) as u8).collect();
            // A reader that hands out a few bytes at a time.
            let mut trickle = io::BufReader::with_capacity(7, &key[..]);
            assert_eq!(map.hash_key(&mut trickle, len).expect("reads"), map.hash(&key), "{len}");
        }
        assert!(map.hash_key(&mut &b"short"[..], 6).is_err());
        assert_ne!(map.hash(b"ab"), map.hash(b"ba"));
    }

    #[test]
    fn keeps_the_latest_offset_of_each_key() {
        let mut map = OffsetMap::new(1 << 20, 1000);
        for i in 0..1000i64 {
            assert!(map.put(format!("key-{}", i % 300).as_bytes(), i));
        }
        assert_eq!(map.len(), 300);
        assert_eq!(map.get(b"key-0"), Some(900));
        assert_eq!(map.get(b"key-299"), Some(899));
        assert_eq!(map.get(b"other"), None);
    }

    #[test]
    fn fills_to_its_memory_and_refuses_new_keys_only() {
        // 100 slots, 90 keys at most, whatever the keys to come.
        let mut map = OffsetMap::new(100 * SLOT_BYTES, 1_000_000);
        assert_eq!(map.capacity(), 90);
        for i in 0..90 {
            assert!(map.put(&i.to_string().into_bytes(), i as i64), "key {i}");
        }
        assert!(!map.put(b"one too many", 90));
        assert_eq!(map.get(b"one too many"), None);
        // A key already there still moves on.
        assert!(map.put(b"5", 91));
        assert_eq!((map.get(b"5"), map.len()), (Some(91), 90));
    }

    #[test]
    fn sized_down_for_few_keys_and_never_empty() {
        assert_eq!(OffsetMap::new(128 << 20, 10).slots.len(), 12);
        let mut tiny = OffsetMap::new(0, 0);
        assert!(tiny.put(b"a", 0) && !tiny.put(b"b", 1));
        assert_eq!((tiny.get(b"a"), tiny.get(b"b")), (Some(0), None));
    }
}
