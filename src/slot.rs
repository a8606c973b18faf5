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

/// The key of the lock on `model_key`: it starts with the model key (so it stays in the
/// same namespace) and hashes to the same cluster slot, so a script may touch both.
pub(crate) fn lock_key(model_key: &str) -> String {
    let bytes = model_key.as_bytes();
    if hash_tag(bytes).len() != bytes.len() {
        // The model key has a hash tag of its own; a suffix keeps it.
        return format!("{model_key}:lock");
    }
    if !model_key.is_empty() && !model_key.contains(['{', '}']) {
        // The appended `{…}` is the first brace pair, so the whole model key is the tag.
        return format!("{model_key}:lock{{{model_key}}}");
    }
    // Braces that make no tag (`{}`, a lone `{` or `}`): search for a numbered suffix that
    // lands on the same slot (about 16,384 tries on average; such keys are rare).
    let slot = hash_slot(bytes);
    (0u32..)
        .map(|n| format!("{model_key}:lock:{n}"))
        .find(|candidate| hash_slot(candidate.as_bytes()) == slot)
        .unwrap_or_else(|| format!("{model_key}:lock"))
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
    fn lock_keys_share_the_model_keys_slot_and_namespace() {
        for key in [
            "ns:User:u1",
            "ns:User:{tag}:x",
            "ns:{tenant}:User:u1",
            "ns:User:a}b",
            "ns:User:{}x",
            "ns:User:x{",
            "ns:User:{",
            "ns:User:}",
            "ns:User:é🎉",
            "",
        ] {
            let lock = lock_key(key);
            assert!(lock.starts_with(key), "{lock} does not start with {key}");
            assert_ne!(lock, key);
            assert_eq!(
                hash_slot(lock.as_bytes()),
                hash_slot(key.as_bytes()),
                "{key} -> {lock}"
            );
        }
    }
}
