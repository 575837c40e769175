//! Kafka's textual form of UUIDs (topic ids, cluster ids): URL-safe base64
//! of the 16 bytes, without padding.

use uuid::Uuid;

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

pub fn topic_id_string(id: Uuid) -> String {
    base64_url(id.as_bytes())
}

/// A new random id that is never the zero UUID (Kafka's "no id").
pub fn new_uuid() -> Uuid {
    loop {
        let id = Uuid::new_v4();
        if !id.is_nil() {
            return id;
        }
    }
}

/// A new random id as Kafka's `Uuid.randomUuid()` makes cluster and
/// directory ids: never a reserved id (Kafka's directory ids reserve the
/// first 100, which covers the zero and metadata-topic ids), and never one
/// whose text starts with '-', which a command line would take for an option
/// (`format -t -abc...`).
pub fn random_kafka_uuid() -> Uuid {
    loop {
        let id = Uuid::new_v4();
        let (high, low) = id.as_u64_pair();
        let reserved = high == 0 && low < 100;
        if !reserved && !topic_id_string(id).starts_with('-') {
            return id;
        }
    }
}

fn base64_url(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        let chars = chunk.len() + 1;
        for i in 0..chars {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

pub fn parse_topic_id(text: &str) -> Option<Uuid> {
    let mut bytes = Vec::with_capacity(16);
    let mut acc = 0u32;
    let mut bits = 0;
    for c in text.bytes() {
        let v = ALPHABET.iter().position(|a| *a == c)? as u32;
        acc = acc << 6 | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            bytes.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Uuid::from_slice(&bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_kafka_encoding() {
        // Kafka: new Uuid(0x0102030405060708L, 0x090a0b0c0d0e0f10L).toString()
        let id = Uuid::from_bytes([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16]);
        assert_eq!(topic_id_string(id), "AQIDBAUGBwgJCgsMDQ4PEA");
        assert_eq!(parse_topic_id("AQIDBAUGBwgJCgsMDQ4PEA"), Some(id));
        let r = new_uuid();
        assert_eq!(parse_topic_id(&topic_id_string(r)), Some(r));
    }

    #[test]
    fn random_kafka_uuids_are_22_url_safe_characters_not_starting_with_a_dash() {
        for _ in 0..2000 {
            let text = topic_id_string(random_kafka_uuid());
            assert_eq!(text.len(), 22);
            assert!(!text.starts_with('-'), "{text}");
            assert!(text.bytes().all(|b| ALPHABET.contains(&b)), "{text}");
        }
    }
}
