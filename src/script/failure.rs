//! The one decoder of typed failures: every library script that reports one (the field
//! script, every block script) replies with the error `RAPYER [code, operation, key, path,
//! a, b]` made by `failure` in `lua/lib/failure.lua`, read here into a [`rapyer::Error`]
//! variant, worded the same whichever script reported it.
//!
//! [`rapyer::Error`]: crate::Error

use crate::error::Error;

/// The start of a typed failure's error reply.
const MARK: &str = "RAPYER ";

/// A typed failure a library script reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Failure {
    /// The script that reported it.
    script: String,
    /// What failed: `notfound`, `wrongtype`, `type`, `index`, `overflow`, `slice`, `script`.
    code: String,
    /// The operation's number in a block, from 1; 0 outside a block.
    op: usize,
    /// The key's number in `KEYS`, from 1; 0 when it names none.
    key: usize,
    /// The JSONPath it is about.
    path: String,
    /// The details, by code (see `lua/lib/failure.lua`).
    a: String,
    b: String,
}

impl Failure {
    /// The typed failure `e` carries, or `None` for any other error.
    pub(crate) fn read(e: &Error) -> Option<Failure> {
        let Error::Script { name, message } = e else {
            return None;
        };
        let json = message.strip_prefix(MARK)?;
        let (code, op, key, path, a, b) = serde_json::from_str(json).ok()?;
        Some(Failure {
            script: name.clone(),
            code,
            op,
            key,
            path,
            a,
            b,
        })
    }

    /// The operation's number in a block, from 1; 0 outside a block.
    pub(crate) fn op(&self) -> usize {
        self.op
    }

    /// The error, naming the key of `keys` (the script's `KEYS`, full keys) it is about.
    pub(crate) fn into_error(self, keys: &[String]) -> Error {
        let key = self
            .key
            .checked_sub(1)
            .and_then(|k| keys.get(k))
            .cloned()
            .unwrap_or_default();
        self.naming(key)
    }

    /// The error, naming `key` (a full key).
    fn naming(self, key: String) -> Error {
        let Failure {
            script, path, a, b, ..
        } = self;
        match self.code.as_str() {
            "notfound" => Error::NotFound { key },
            "wrongtype" => Error::TypeMismatch {
                key,
                path,
                expected: "a JSON document".into(),
                found: a,
            },
            "type" => Error::TypeMismatch {
                key,
                path,
                expected: expected(&a).into(),
                found: b,
            },
            "index" => Error::IndexOutOfRange {
                key,
                path,
                index: a.parse().unwrap_or_default(),
                len: b.parse().unwrap_or_default(),
            },
            "overflow" => Error::Overflow {
                key,
                path,
                kind: number_kind(&a, &b),
            },
            "slice" => Error::InvalidOp {
                key,
                path,
                message: a,
            },
            _ => Error::Script {
                name: script,
                message: a,
            },
        }
    }
}

/// The error of a library script that works on one document, `key` (a full key): its typed
/// failure, always about that document, and an out-of-memory refusal naming it (a lock
/// script's first key is the lock's, not the model's); any other error as it is.
pub(crate) fn document_error(e: Error, key: &str) -> Error {
    if let Error::OutOfMemory { .. } = e {
        return Error::OutOfMemory {
            key: key.to_string(),
        };
    }
    match Failure::read(&e) {
        Some(failure) => failure.naming(key.to_string()),
        None => e,
    }
}

/// The error of a library script over the documents `keys` (full keys, in `KEYS` order):
/// its typed failure naming the key it is about; any other error as it is.
pub(crate) fn keyed_error(e: Error, keys: &[String]) -> Error {
    match Failure::read(&e) {
        Some(failure) => failure.into_error(keys),
        None => e,
    }
}

/// What an operation wanting the JSON types `types` (as the scripts name them:
/// comma-separated, or `*` for any) expected, in an error's words.
pub(crate) fn expected(types: &str) -> &'static str {
    match types {
        "*" => "any value",
        "integer" => "an integer",
        "number" | "number,integer" => "a number",
        "string" => "a string",
        "boolean" => "a boolean",
        "array" => "a list",
        "object" => "a dict or a model",
        "bloom" => "a Bloom filter",
        "sketch" => "a count-min sketch",
        "limiter" => "a rate limiter's state (a hash)",
        "set" => "a Redis set",
        "zset" => "a Redis sorted set",
        "hash" => "a Redis hash",
        _ => "another JSON type",
    }
}

/// The Rust number type whose range a script checked, from the bounds it was given (the
/// lowest and highest value as decimal text, both empty for an `f64`, which only must stay
/// finite); `number` when the bounds are no type's.
fn number_kind(lo: &str, hi: &str) -> &'static str {
    if lo.is_empty() && hi.is_empty() {
        return "f64";
    }
    macro_rules! kinds {
        ($($ty:ty),*) => {
            $(
                if lo == <$ty>::MIN.to_string() && hi == <$ty>::MAX.to_string() {
                    return stringify!($ty);
                }
            )*
        };
    }
    kinds!(i8, i16, i32, i64, u8, u16, u32, u64);
    if lo == format!("{:?}", f32::MIN as f64) && hi == format!("{:?}", f32::MAX as f64) {
        return "f32";
    }
    "number"
}

#[cfg(test)]
mod tests {
    use super::{Failure, expected, number_kind};
    use crate::error::Error;

    fn script(message: &str) -> Error {
        Error::Script {
            name: "rapyer.field".into(),
            message: message.into(),
        }
    }

    #[test]
    fn a_failure_reads_into_the_variant_its_code_names() {
        let keys = ["ns:User:a".to_string(), "ns:User:b".to_string()];
        let read = |m: &str| Failure::read(&script(m)).map(|f| f.into_error(&keys));
        assert!(matches!(
            read(r#"RAPYER ["type",0,2,"$.age","integer","string"]"#),
            Some(Error::TypeMismatch { key, path, expected, found })
                if key == "ns:User:b" && path == "$.age" && expected == "an integer"
                    && found == "string"
        ));
        assert!(matches!(
            read(r#"RAPYER ["index",3,1,"$.items","-4","3"]"#),
            Some(Error::IndexOutOfRange {
                index: -4,
                len: 3,
                ..
            })
        ));
        assert!(matches!(
            read(r#"RAPYER ["overflow",0,1,"$.n","0","255"]"#),
            Some(Error::Overflow { kind: "u8", .. })
        ));
        assert!(matches!(
            read(r#"RAPYER ["notfound",0,1,"$",""," "]"#),
            Some(Error::NotFound { key }) if key == "ns:User:a"
        ));
        // Other script errors are not typed failures.
        assert!(read("ERR unknown field operation x").is_none());
        assert!(read("RAPYER not json").is_none());
    }

    #[test]
    fn the_wording_is_one_for_every_script() {
        assert_eq!(expected("number,integer"), expected("number"));
        assert_eq!(expected("array"), "a list");
        assert_eq!(number_kind("", ""), "f64");
        assert_eq!(
            number_kind(&i64::MIN.to_string(), &i64::MAX.to_string()),
            "i64"
        );
        assert_eq!(
            number_kind(
                &format!("{:?}", f32::MIN as f64),
                &format!("{:?}", f32::MAX as f64)
            ),
            "f32"
        );
    }
}
