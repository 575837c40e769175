//! Stand-ins for record sets that a response sends from files: a `Bytes` of
//! the right length, so the response's sizes are right, that the encoder
//! knows by its address (`Splice::File`) and replaces with the file's bytes.
//! They are cut from one large read-only mapping of zero pages that nothing
//! writes or reads, so they cost address space, not memory.

use bytes::Bytes;
use std::sync::OnceLock;

/// Address space for the stand-ins of one response: more than any response
/// (its size is an i32) can hold.
const SIZE: usize = 1 << 32;

fn region() -> Option<&'static [u8]> {
    static REGION: OnceLock<Option<&'static [u8]>> = OnceLock::new();
    *REGION.get_or_init(|| {
        // SAFETY: a fresh private anonymous mapping, never unmapped; read-only,
        // so the slice over it is never written through.
        unsafe {
            let at = libc::mmap(
                std::ptr::null_mut(),
                SIZE,
                libc::PROT_READ,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            );
            (at != libc::MAP_FAILED).then(|| std::slice::from_raw_parts(at as *const u8, SIZE))
        }
    })
}

/// The stand-in for `len` bytes at `offset` among one response's record sets
/// (the stand-ins of one response must not overlap, so the encoder can tell
/// them apart). None when there is no mapping (the caller reads the bytes).
pub fn stand_in(offset: usize, len: usize) -> Option<Bytes> {
    let end = offset.checked_add(len)?;
    region()?.get(offset..end).map(Bytes::from_static)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stand_ins_are_distinct_and_cost_no_memory() {
        let a = stand_in(0, 1 << 30).expect("mapped");
        let b = stand_in(1 << 30, 1 << 30).expect("mapped");
        assert_ne!(a.as_ptr(), b.as_ptr());
        assert_eq!((a.len(), b.len()), (1 << 30, 1 << 30));
        assert!(stand_in(SIZE - 10, 11).is_none());
        assert!(stand_in(usize::MAX, 2).is_none());
    }
}
