//! Redis Cluster hash slots: which keys a cluster keeps on one node, so that one script or
//! transaction may touch them together.

/// The number of hash slots of a Redis Cluster.
const SLOTS: u16 = 16384;

/// The cluster slot of `key`: CRC16 (XMODEM) of its hash tag, modulo 16384.
pub(crate) fn hash_slot(key: &[u8]) -> u16 {
    crc16(hash_tag(key)) % SLOTS
}

/// The part of `key` that decides its slot: the text between the first `{` and the next
/// `}` when that is not empty, otherwise the whole key (the Redis Cluster rule).
pub(crate) fn hash_tag(key: &[u8]) -> &[u8] {
    if let Some(open) = key.iter().position(|&b| b == b'{')
        && let Some(len) = key[open + 1..].iter().position(|&b| b == b'}')
        && len > 0
    {
        return &key[open + 1..open + 1 + len];
    }
    key
}

/// A short hash tag (letters and digits, no braces) whose slot is `slot`, so that a key of
/// rapyer's holding `{tag}` lands in the slot of the key it belongs to, whatever that key's
/// own braces are. The same slot always gives the same tag.
pub(crate) fn tag_for(slot: u16) -> String {
    static TABLE: std::sync::OnceLock<Vec<u32>> = std::sync::OnceLock::new();
    let table = TABLE.get_or_init(|| {
        // The first candidate of each slot, trying every text of one, two, three … symbols in
        // order: three symbols (238,328 texts) cover all 16,384 slots (tested), in about a
        // millisecond, once per process.
        let mut table = vec![u32::MAX; usize::from(SLOTS)];
        let mut missing = usize::from(SLOTS);
        let mut candidate = 0u32;
        let mut text = Vec::with_capacity(6);
        while missing > 0 {
            tag_text(candidate, &mut text);
            let slot = usize::from(crc16(&text) % SLOTS);
            if table[slot] == u32::MAX {
                table[slot] = candidate;
                missing -= 1;
            }
            candidate += 1;
        }
        table
    });
    let mut text = Vec::with_capacity(6);
    tag_text(table[usize::from(slot % SLOTS)], &mut text);
    // The symbols are ASCII letters and digits.
    text.into_iter().map(char::from).collect()
}

/// The `n`th text over 62 symbols, shortest first (bijective base 62).
fn tag_text(mut n: u32, out: &mut Vec<u8>) {
    const SYMBOLS: &[u8; 62] = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    out.clear();
    loop {
        out.push(SYMBOLS[(n % 62) as usize]);
        n /= 62;
        if n == 0 {
            break;
        }
        n -= 1;
    }
}

fn crc16(data: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &byte in data {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_match_redis_cluster() {
        // The check value of CRC16/XMODEM, and slots documented for Redis Cluster.
        assert_eq!(crc16(b"123456789"), 0x31C3);
        assert_eq!(hash_slot(b"foo"), 12182);
        assert_eq!(hash_slot(b"bar"), 5061);
        assert_eq!(hash_slot(b"hello"), 866);
        assert_eq!(
            hash_slot(b"{user1000}.following"),
            hash_slot(b"{user1000}.followers")
        );
        assert_eq!(hash_slot(b"{user1000}.following"), hash_slot(b"user1000"));
        // An empty first tag makes the whole key count.
        assert_eq!(hash_tag(b"a{}b{c}"), b"a{}b{c}");
        assert_eq!(hash_tag(b"a{b"), b"a{b");
    }

    #[test]
    fn every_slot_has_a_short_tag_that_hashes_to_it() {
        for slot in 0..SLOTS {
            let tag = tag_for(slot);
            assert!(!tag.is_empty() && tag.len() <= 3, "{slot}: {tag}");
            assert!(tag.bytes().all(|b| b.is_ascii_alphanumeric()));
            assert_eq!(hash_slot(format!("x{{{tag}}}y").as_bytes()), slot);
        }
    }
}
