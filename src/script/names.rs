//! Script names and bodies checked in constants, so [`script!`](crate::script!) rejects a
//! bad one at compile time; the runtime checks names it is given with the same functions.

/// The prefix of the library's own script names; user scripts cannot take it.
pub(crate) const RESERVED_PREFIX: &str = "rapyer.";

/// The longest script name accepted.
pub(crate) const MAX_NAME_LEN: usize = 128;

/// Whether `name` is a valid script name; usable in constants, so [`script!`](crate::script!)
/// rejects a bad name at compile time.
pub const fn is_valid_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    if bytes.is_empty() || bytes.len() > MAX_NAME_LEN {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let ok = b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':' | b'/');
        if !ok {
            return false;
        }
        i += 1;
    }
    true
}

/// Whether `body` has nothing but whitespace; usable in constants.
pub const fn is_blank(body: &str) -> bool {
    let bytes = body.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if !bytes[i].is_ascii_whitespace() {
            return false;
        }
        i += 1;
    }
    true
}

/// Whether `name` starts with the library's reserved prefix; usable in constants.
pub const fn is_reserved_name(name: &str) -> bool {
    let (n, p) = (name.as_bytes(), RESERVED_PREFIX.as_bytes());
    if n.len() < p.len() {
        return false;
    }
    let mut i = 0;
    while i < p.len() {
        if n[i] != p[i] {
            return false;
        }
        i += 1;
    }
    true
}
