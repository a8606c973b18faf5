//! Merging the answers of a cluster's shards into the answer one server would give: each
//! primary indexes only its own documents (RediSearch without a coordinator), so `find`
//! asks every primary and puts their matches together here.

use std::cmp::Ordering;

use redis::Value;

/// One match of an `FT.SEARCH` page: its key and, for a sorted search on a cluster, the
/// value it was sorted by.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Hit {
    pub(crate) key: String,
    pub(crate) sort_key: SortKey,
}

/// The value a match is sorted by, as `WITHSORTKEYS` reports it: `#<number>` for a number,
/// `$<text>` for text, nil for a document without the field.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum SortKey {
    Number(f64),
    Text(Vec<u8>),
    /// The document has no value for the field: RediSearch puts it last in both orders.
    Missing,
}

impl SortKey {
    pub(crate) fn parse(value: Value) -> SortKey {
        let bytes = match value {
            Value::BulkString(bytes) => bytes,
            Value::SimpleString(text) => text.into_bytes(),
            _ => return SortKey::Missing,
        };
        match bytes.split_first() {
            Some((b'#', number)) => std::str::from_utf8(number)
                .ok()
                .and_then(|n| n.parse::<f64>().ok())
                .map_or_else(|| SortKey::Text(number.to_vec()), SortKey::Number),
            Some((b'$', text)) => SortKey::Text(text.to_vec()),
            _ => SortKey::Text(bytes),
        }
    }

    /// RediSearch's order of two present values, ascending: numbers by value, text byte by
    /// byte (verified: `C` before `b`).
    fn ascending(&self, other: &SortKey) -> Ordering {
        match (self, other) {
            (SortKey::Number(a), SortKey::Number(b)) => a.partial_cmp(b).unwrap_or(Ordering::Equal),
            (SortKey::Text(a), SortKey::Text(b)) => a.cmp(b),
            (SortKey::Number(_), _) => Ordering::Less,
            (_, SortKey::Number(_)) => Ordering::Greater,
            _ => Ordering::Equal,
        }
    }
}

/// The order of two matches in a merged sorted answer: by sort key in the asked order, a
/// missing value last in both orders (as RediSearch does), equal values by key, ascending.
///
/// One server breaks ties by its internal document id (indexing order, reversed for `Desc`),
/// which the shards of a cluster do not share, so a cluster orders ties by key instead.
pub(crate) fn compare(a: &Hit, b: &Hit, descending: bool) -> Ordering {
    let by_value = match (&a.sort_key, &b.sort_key) {
        (SortKey::Missing, SortKey::Missing) => Ordering::Equal,
        (SortKey::Missing, _) => Ordering::Greater,
        (_, SortKey::Missing) => Ordering::Less,
        (x, y) if descending => y.ascending(x),
        (x, y) => x.ascending(y),
    };
    by_value.then_with(|| a.key.cmp(&b.key))
}

/// The window `offset`, `wanted` of the shards' sorted matches merged (each shard sent its
/// first `offset + wanted`).
pub(crate) fn sorted(
    shards: Vec<(usize, Vec<Hit>)>,
    descending: bool,
    offset: usize,
    wanted: usize,
) -> Vec<String> {
    let mut hits: Vec<Hit> = shards.into_iter().flat_map(|(_, hits)| hits).collect();
    hits.sort_by(|a, b| compare(a, b, descending));
    // A document moved between two shards' answers (a slot migrating) can be in both; with
    // its one value it sorts next to itself.
    hits.dedup_by(|a, b| a.key == b.key);
    hits.into_iter()
        .skip(offset)
        .take(wanted)
        .map(|hit| hit.key)
        .collect()
}

/// Every shard's matches, shard after shard, each key once (a document moved between two
/// shards' answers can be in both).
pub(crate) fn unsorted(shards: Vec<(usize, Vec<Hit>)>) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    shards
        .into_iter()
        .flat_map(|(_, hits)| hits.into_iter().map(|hit| hit.key))
        .filter(|key| seen.insert(key.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hit(key: &str, sort_key: &[u8]) -> Hit {
        let value = if sort_key.is_empty() {
            Value::Nil
        } else {
            Value::BulkString(sort_key.to_vec())
        };
        Hit {
            key: key.into(),
            sort_key: SortKey::parse(value),
        }
    }

    #[test]
    fn shards_merge_by_value_then_key_with_missing_values_last() {
        let shards = vec![
            (3, vec![hit("d", b"#1"), hit("a", b"#5"), hit("m", b"")]),
            (2, vec![hit("b", b"#-2.5"), hit("c", b"#5")]),
        ];
        assert_eq!(
            sorted(shards.clone(), false, 0, usize::MAX),
            ["b", "d", "a", "c", "m"]
        );
        assert_eq!(
            sorted(shards.clone(), true, 0, usize::MAX),
            ["a", "c", "d", "b", "m"]
        );
        assert_eq!(sorted(shards, false, 1, 2), ["d", "a"]);
    }

    #[test]
    fn a_key_two_shards_answered_comes_once() {
        let shards = vec![
            (2, vec![hit("a", b"#1"), hit("b", b"#2")]),
            (2, vec![hit("b", b"#2"), hit("c", b"#3")]),
        ];
        assert_eq!(sorted(shards.clone(), false, 0, 10), ["a", "b", "c"]);
        assert_eq!(sorted(shards.clone(), true, 1, 10), ["b", "a"]);
        assert_eq!(unsorted(shards), ["a", "b", "c"]);
    }

    #[test]
    fn text_sorts_byte_by_byte() {
        let shards = vec![(
            3,
            vec![hit("1", b"$b"), hit("2", b"$C"), hit("3", b"$\xc3\xa9")],
        )];
        assert_eq!(sorted(shards, false, 0, 10), ["2", "1", "3"]);
    }
}
