//! The parts of Kafka's flexible encoding (KIP-482) that coordinator
//! records use: unsigned varints, compact lengths and tagged fields.

use bytes::{Buf, BufMut, Bytes};

/// A record ended before what it announced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Truncated;

pub fn put_uvarint(buf: &mut impl BufMut, mut v: u32) {
    while v >= 0x80 {
        buf.put_u8((v as u8) | 0x80);
        v >>= 7;
    }
    buf.put_u8(v as u8);
}

pub fn get_uvarint(buf: &mut impl Buf) -> Result<u32, Truncated> {
    let mut value = 0u32;
    for shift in (0..35).step_by(7) {
        if !buf.has_remaining() {
            return Err(Truncated);
        }
        let b = buf.get_u8();
        value |= u32::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(Truncated)
}

/// A struct's tagged fields, in tag order.
pub fn put_tagged_fields(buf: &mut impl BufMut, fields: &[(u32, &[u8])]) {
    put_uvarint(buf, fields.len() as u32);
    for (tag, data) in fields {
        put_uvarint(buf, *tag);
        put_uvarint(buf, data.len() as u32);
        buf.put_slice(data);
    }
}

/// Reads a struct's tagged fields, handing each tag and its bytes to `field`.
pub fn get_tagged_fields<E: From<Truncated>>(
    buf: &mut impl Buf,
    mut field: impl FnMut(u32, Bytes) -> Result<(), E>,
) -> Result<(), E> {
    for _ in 0..get_uvarint(buf)? {
        let tag = get_uvarint(buf)?;
        let size = get_uvarint(buf)? as usize;
        if buf.remaining() < size {
            return Err(Truncated.into());
        }
        field(tag, buf.copy_to_bytes(size))?;
    }
    Ok(())
}

/// Fails unless `n` bytes are left.
pub fn need(b: &[u8], n: usize) -> Result<(), Truncated> {
    if b.len() < n {
        Err(Truncated)
    } else {
        Ok(())
    }
}

/// A compact array's or string's length (0 on the wire is null: None).
pub fn put_compact_len(buf: &mut impl BufMut, len: Option<usize>) {
    put_uvarint(buf, len.map_or(0, |n| n as u32 + 1));
}

/// A compact array's length, checked against what is left (each element
/// takes at least `min_size` bytes); null reads as empty.
pub fn get_compact_len(b: &mut &[u8], min_size: usize) -> Result<usize, Truncated> {
    let n = (get_uvarint(b)? as usize).saturating_sub(1);
    need(b, n.saturating_mul(min_size))?;
    Ok(n)
}

pub fn put_compact_string(buf: &mut impl BufMut, s: Option<&str>) {
    put_compact_len(buf, s.map(str::len));
    if let Some(s) = s {
        buf.put_slice(s.as_bytes());
    }
}

/// A compact nullable string; text that is not UTF-8 counts as damage.
pub fn get_compact_string(b: &mut &[u8]) -> Result<Option<String>, Truncated> {
    let Some(len) = (get_uvarint(b)? as usize).checked_sub(1) else {
        return Ok(None);
    };
    need(b, len)?;
    let s = String::from_utf8(b[..len].to_vec()).map_err(|_| Truncated)?;
    b.advance(len);
    Ok(Some(s))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;

    #[test]
    fn tagged_fields_read_back_and_truncation_is_caught() {
        let mut buf = BytesMut::new();
        put_tagged_fields(&mut buf, &[(0, &[1, 2, 3, 4]), (300, &[9])]);
        let bytes = buf.freeze();
        let mut seen = Vec::new();
        let mut read = bytes.clone();
        get_tagged_fields::<Truncated>(&mut read, |tag, data| {
            seen.push((tag, data.to_vec()));
            Ok(())
        })
        .expect("whole");
        assert_eq!(seen, vec![(0, vec![1, 2, 3, 4]), (300, vec![9])]);
        let mut short = bytes.slice(..bytes.len() - 1);
        assert_eq!(get_tagged_fields(&mut short, |_, _| Ok(())), Err(Truncated));
    }
}
