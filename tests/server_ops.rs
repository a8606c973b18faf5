//! ServerOps blocks and models' atomic blocks against the real server: every operation, Python's
//! slice assignment, all-or-nothing failures, conditionals and concurrency.

mod common;

use std::collections::{BTreeMap, HashMap};

use common::{db, raw, stored};
use rapyer::ops::{Ops, Results};
use rapyer::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::json;

#[derive(AtomicModel, Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
#[rapyer(hash_tag = "ops")]
struct Doc {
    #[rapyer(key)]
    id: String,
    n: i64,
    small: i8,
    f: f64,
    name: String,
    flag: bool,
    items: Vec<String>,
    nums: Vec<i64>,
    prefs: HashMap<String, String>,
    counts: BTreeMap<String, i64>,
    inner: Inner,
    maybe: Option<String>,
}

#[derive(AtomicModel, Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
struct Inner {
    city: String,
    zip: i64,
}

fn doc(id: &str) -> Doc {
    Doc {
        id: id.into(),
        n: 10,
        small: 100,
        f: 1.5,
        name: "ann".into(),
        flag: false,
        items: vec!["a".into(), "b".into(), "c".into()],
        nums: vec![1, 2, 3, 4, 5],
        prefs: HashMap::from([("theme".into(), "dark".into())]),
        counts: BTreeMap::from([("x".into(), 1)]),
        inner: Inner {
            city: "Paris".into(),
            zip: 75000,
        },
        maybe: None,
    }
}

/// `JSON.GET key $` of every key, to compare before and after a failed block.
/// `DUMP` of every key (the exact stored bytes), to compare before and after a failed block.
async fn snapshot(
    raw: &mut redis::aio::MultiplexedConnection,
    keys: &[String],
) -> Vec<Option<Vec<u8>>> {
    let mut out = Vec::new();
    for k in keys {
        out.push(
            redis::cmd("DUMP")
                .arg(k)
                .query_async(raw)
                .await
                .expect("DUMP"),
        );
    }
    out
}

// Python's list slicing, written from the language reference, to compare the server with.

/// `slice.indices(len)`: start, stop, step, and the slice's length.
fn py_indices(len: i64, [start, stop, step]: [Option<i64>; 3]) -> (i64, i64, i64, i64) {
    let step = step.unwrap_or(1);
    assert_ne!(step, 0);
    let adjust = |x: Option<i64>, default: i64| match x {
        None => default,
        Some(x) if x < 0 => {
            let x = x + len;
            if x < 0 {
                if step < 0 { -1 } else { 0 }
            } else {
                x
            }
        }
        Some(x) if x >= len => {
            if step < 0 {
                len - 1
            } else {
                len
            }
        }
        Some(x) => x,
    };
    let start = adjust(start, if step < 0 { len - 1 } else { 0 });
    let stop = adjust(stop, if step < 0 { -1 } else { len });
    let count = if step < 0 {
        if stop < start {
            (start - stop - 1) / -step + 1
        } else {
            0
        }
    } else if start < stop {
        (stop - start - 1) / step + 1
    } else {
        0
    };
    (start, stop, step, count)
}

fn py_get<T: Clone>(list: &[T], s: [Option<i64>; 3]) -> Vec<T> {
    let (start, _, step, count) = py_indices(list.len() as i64, s);
    (0..count)
        .map(|i| list[(start + i * step) as usize].clone())
        .collect()
}

/// `list[s] = values`, or Python's ValueError text.
fn py_assign<T: Clone>(list: &[T], s: [Option<i64>; 3], values: &[T]) -> Result<Vec<T>, String> {
    if s[2] == Some(0) {
        return Err("slice step cannot be zero".into());
    }
    let (start, stop, step, count) = py_indices(list.len() as i64, s);
    let mut out = list.to_vec();
    if step == 1 {
        let stop = stop.max(start);
        out.splice(start as usize..stop as usize, values.iter().cloned());
        return Ok(out);
    }
    if values.len() as i64 != count {
        return Err(format!(
            "attempt to assign sequence of size {} to extended slice of size {count}",
            values.len()
        ));
    }
    for (i, v) in values.iter().enumerate() {
        out[(start + i as i64 * step) as usize] = v.clone();
    }
    Ok(out)
}

fn nums(list: &[i64]) -> Vec<i64> {
    list.to_vec()
}

/// Sets `a.nums` to `list`, runs `a.nums[target] = b.nums[source]` on the server, and
/// compares with Python.
async fn check_slice(
    db: &Db,
    raw: &mut redis::aio::MultiplexedConnection,
    list: &[i64],
    target: [Option<i64>; 3],
    other: &[i64],
    source: [Option<i64>; 3],
) {
    check_slice_of(db, raw, list, target, other, source, false).await;
    check_slice_of(db, raw, list, target, other, source, true).await;
}

/// A string standing for `x`: plain words, and words with commas, brackets, quotes,
/// escapes and emoji, so both the fast and the general list scanning are exercised.
fn word(x: i64) -> String {
    const POOL: [&str; 8] = ["w", "v", "a,b", "[x]", "q\"", "😀", "{", "t\n"];
    if x >= 100 {
        return format!("{}{x}", POOL[(x % 8) as usize]);
    }
    format!("w{x}")
}

/// `check_slice` on the integer list `nums`, or (with `strings`) on the string list
/// `items` holding the words of the same numbers.
async fn check_slice_of(
    db: &Db,
    raw: &mut redis::aio::MultiplexedConnection,
    list: &[i64],
    target: [Option<i64>; 3],
    other: &[i64],
    source: [Option<i64>; 3],
    strings: bool,
) {
    let mut a = doc("sa");
    let mut b = doc("sb");
    let field = if strings { "items" } else { "nums" };
    let as_json = |l: &[i64]| -> serde_json::Value {
        if strings {
            json!(l.iter().map(|x| word(*x)).collect::<Vec<_>>())
        } else {
            json!(l)
        }
    };
    if strings {
        a.items = list.iter().map(|x| word(*x)).collect();
        b.items = other.iter().map(|x| word(*x)).collect();
    } else {
        a.nums = nums(list);
        b.nums = nums(other);
    }
    a.save(db).await.expect("save");
    b.save(db).await.expect("save");
    let values = py_get(other, source);
    let expected = py_assign(list, target, &values);
    let before = snapshot(raw, &[db.key(&a.key()), db.key(&b.key())]).await;
    let (ra, rb) = (a.server_ref(), b.server_ref());
    let (src, dst) = (
        (source[0], source[1], source[2]),
        (target[0], target[1], target[2]),
    );
    let got = ServerOps::scope(db, |ops| {
        if strings {
            ops.assign(rb.items().slice(src), ra.items().slice(dst))
        } else {
            ops.assign(rb.nums().slice(src), ra.nums().slice(dst))
        }
    })
    .await;
    let case = format!("{field}: {list:?}[{target:?}] = {other:?}[{source:?}]");
    match (expected, got) {
        (Ok(want), Ok(Some(()))) => {
            let now = stored(raw, &db.key(&a.key())).await;
            assert_eq!(now[field], as_json(&want), "{case}");
            assert_eq!(
                stored(raw, &db.key(&b.key())).await[field],
                as_json(other),
                "{case}"
            );
        }
        (Err(why), Err(Error::Block { op: 0, source })) => {
            match *source {
                Error::InvalidOp { message, path, .. } => {
                    assert_eq!(message, why, "{case}");
                    assert!(path.starts_with(&format!("$.{field}[")), "{case}: {path}");
                }
                other => panic!("{case}: {other}"),
            }
            assert_eq!(
                snapshot(raw, &[db.key(&a.key()), db.key(&b.key())]).await,
                before,
                "{case}: a failed block changed a key"
            );
        }
        (want, got) => panic!("{case}: expected {want:?}, got {got:?}"),
    }
}

#[tokio::test]
async fn slice_assignment_follows_python() {
    let db = db().await;
    let mut raw = raw().await;
    let l = [0, 1, 2, 3, 4, 5];
    let o = [10, 11, 12];
    let all = [None, None, None];
    #[rustfmt::skip]
    type Bounds = [Option<i64>; 3];
    let cases: &[(Bounds, Bounds)] = &[
        // Resizing slices (no step or step 1).
        ([Some(0), Some(0), None], all), // insert at the front
        ([Some(6), None, None], all),    // append
        ([Some(1), Some(3), None], all), // replace 2 with 3
        ([Some(1), Some(5), None], [Some(0), Some(1), None]), // shrink
        ([None, None, None], [Some(0), Some(0), None]), // clear
        ([None, None, None], all),       // replace everything
        ([Some(-2), None, None], all),   // negative start
        ([None, Some(-2), None], all),   // negative stop
        ([Some(-100), Some(100), None], all), // clamped bounds
        ([Some(4), Some(2), None], all), // stop before start: insert at 4
        ([Some(100), Some(200), None], all), // past the end: append
        ([Some(-100), Some(-50), None], all), // before the start: prepend
        ([Some(2), Some(4), Some(1)], all), // explicit step 1 still resizes
        ([Some(3), Some(3), None], [Some(1), None, None]),
        ([Some(0), Some(6), None], [None, None, Some(-1)]), // reversed source
        ([Some(1), Some(2), None], [None, None, Some(2)]),  // stepped source
        // Extended slices: equal lengths only.
        ([None, None, Some(2)], all),                            // 3 = 3
        ([Some(1), None, Some(2)], all),                         // 3 = 3
        ([None, None, Some(-2)], all),                           // 5, 3, 1
        ([Some(-1), Some(-4), Some(-1)], all),                   // 5, 4, 3
        ([None, None, Some(-1)], [None, None, None]),            // 6 vs 3: error
        ([None, None, Some(3)], [Some(0), Some(2), None]),       // 2 = 2
        ([None, None, Some(2)], [Some(0), Some(2), None]),       // 3 vs 2: error
        ([Some(5), Some(0), Some(-2)], all),                     // 5, 3, 1
        ([Some(10), None, Some(2)], [Some(0), Some(0), None]),   // empty = empty
        ([Some(0), Some(1), Some(5)], [Some(2), None, None]),    // one element
        ([None, None, Some(7)], [Some(0), Some(1), None]),       // one element, big step
        ([None, None, Some(-7)], [Some(-1), None, None]),        // last element, backwards
        ([Some(-3), None, Some(-1)], [None, None, Some(-1)]),    // 3, 2, 1, 0 vs 3: error
        ([None, None, Some(0)], all),                            // step 0: error
        ([Some(1), Some(1), Some(2)], [Some(0), Some(0), None]), // empty extended slice
        ([None, None, Some(-1)], [Some(0), Some(6), None]),      // only 3 in source: error
    ];
    assert!(cases.len() >= 30);
    for (target, source) in cases {
        check_slice(&db, &mut raw, &l, *target, &o, *source).await;
    }
    // The source and the target may be the same list.
    let mut a = doc("self");
    a.nums = vec![1, 2, 3];
    a.save(&db).await.unwrap();
    let r = a.server_ref();
    ServerOps::scope(&db, |ops| {
        ops.assign(r.nums().slice(..), r.nums().slice(1..1))
    })
    .await
    .unwrap();
    assert_eq!(
        stored(&mut raw, &db.key(&a.key())).await["nums"],
        json!([1, 1, 2, 3, 2, 3])
    );
}

#[tokio::test]
async fn slice_assignment_property() {
    let db = db().await;
    let mut raw = raw().await;
    let mut rng = common::Rng(0x5eed_51ce);
    let bound = |rng: &mut common::Rng, len: i64| -> Option<i64> {
        match rng.below(4) {
            0 => None,
            _ => Some(rng.below((2 * len + 5) as u64) as i64 - len - 2),
        }
    };
    for _ in 0..300 {
        let len = rng.below(9) as i64;
        let list: Vec<i64> = (0..len).collect();
        let olen = rng.below(9) as i64;
        let other: Vec<i64> = (100..100 + olen).collect();
        let step = |rng: &mut common::Rng| match rng.below(5) {
            0 => None,
            1 => Some(1),
            2 => Some(-1),
            _ => Some(rng.below(7) as i64 - 3),
        };
        let target = [bound(&mut rng, len), bound(&mut rng, len), step(&mut rng)];
        let source = [
            bound(&mut rng, olen),
            bound(&mut rng, olen),
            step(&mut rng).filter(|s| *s != 0),
        ];
        check_slice(&db, &mut raw, &list, target, &other, source).await;
    }
}

const HOSTILE: &[&str] = &[
    "a'] or 1==1 --",
    "\"",
    "\\",
    "{",
    "|",
    "@",
    "line\nbreak",
    "emoji 🎉",
    "]) redis.call('FLUSHALL') --",
    "",
    " padded ",
    "a.b[0]$*",
];

#[tokio::test]
async fn every_operation_changes_exactly_what_it_names() {
    let db = db().await;
    let mut raw = raw().await;
    let (a, mut b) = (doc("a"), doc("b"));
    b.flag = true;
    a.save(&db).await.unwrap();
    b.save(&db).await.unwrap();
    let (ra, rb) = (a.server_ref(), b.server_ref());
    let (n, f, by_field, fby, concat, appended, moved, empty_move, held, missed) =
        ServerOps::scope(&db, |ops| {
            let n = ops.incr(ra.n(), -25);
            let f = ops.incr(ra.f(), 0.25);
            ops.set(rb.name(), "bob");
            ops.set(
                rb.inner(),
                Inner {
                    city: "Oslo".into(),
                    zip: 150,
                },
            );
            ops.set(rb.prefs().entry("new"), "entry");
            ops.set(rb.items().at(-1), "z");
            ops.set(rb.maybe(), Some("here".to_string()));
            ops.set(rb.nums().slice(1..3), vec![7, 8, 9]);
            let by_field = ops.incr_by_field(rb.n(), ra.inner().zip());
            let fby = ops.incr_by_field(rb.f(), rb.small());
            ops.assign(ra.inner().city(), ra.name());
            ops.assign(rb.inner(), ra.inner());
            ops.swap(ra.flag(), rb.flag());
            ops.swap(ra.counts(), rb.counts());
            let concat = ops.concat([rb.name(), ra.name()], ra.inner().city(), "+");
            let appended = ops.append_from(rb.items(), ra.items().slice(..2));
            let moved = ops.move_item(ra.items().at(0), rb.items());
            let empty_move = ops.move_item(rb.nums().at(50), rb.nums());
            let held = ops
                .when(ra.n().lt(0) & rb.name().eq("bob") & !ra.flag().eq(false))
                .then(|ops| {
                    ops.set(ra.maybe(), Some("then".to_string()));
                })
                .otherwise(|ops| {
                    ops.set(ra.maybe(), Some("otherwise".to_string()));
                });
            let missed = ops
                .when(ra.small().gt(rb.small()) | ra.f().ge(100.0))
                .then(|ops| {
                    ops.set(ra.maybe(), Some("never".to_string()));
                });
            (
                n,
                f,
                by_field,
                fby,
                concat,
                appended,
                moved,
                empty_move,
                held,
                missed.out(),
            )
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(n, Some(-15));
    assert_eq!(f, Some(1.75));
    assert_eq!(by_field, Some(10 + 75000));
    assert_eq!(fby, Some(101.5));
    assert_eq!(concat.as_deref(), Some("bob+Paris"));
    assert_eq!(appended, Some(5));
    assert_eq!(moved, Some(Some("a".to_string())));
    assert_eq!(held, Some(true));
    assert_eq!(missed, Some(false));
    assert_eq!(empty_move, Some(None));

    let sa = stored(&mut raw, &db.key(&a.key())).await;
    let sb = stored(&mut raw, &db.key(&b.key())).await;
    assert_eq!(
        sa,
        json!({
            "id": "a", "n": -15, "small": 100, "f": 1.75, "name": "Paris", "flag": true,
            "items": ["b", "c"], "nums": [1, 2, 3, 4, 5], "prefs": {"theme": "dark"},
            "counts": {"x": 1}, "inner": {"city": "bob+Paris", "zip": 150},
            "maybe": "then"
        })
    );
    assert_eq!(
        sb,
        json!({
            "id": "b", "n": 75010, "small": 100, "f": 101.5, "name": "bob", "flag": false,
            "items": ["a", "b", "z", "a", "b", "a"], "nums": [1, 7, 8, 9, 4, 5],
            "prefs": {"theme": "dark", "new": "entry"}, "counts": {"x": 1},
            "inner": {"city": "Oslo", "zip": 150}, "maybe": "here"
        })
    );
}
type Build<'a> = Box<dyn FnOnce(&Ops) + 'a>;
type Check<'a> = Box<dyn FnOnce(&Error) -> bool + 'a>;

/// Runs a block whose operation 2 fails (after two that would succeed) and checks the
/// error and that every key is byte-identical afterwards.
async fn fails_cleanly(
    db: &Db,
    raw: &mut redis::aio::MultiplexedConnection,
    what: &str,
    failed_op: usize,
    failing: impl FnOnce(&Ops),
    check: impl FnOnce(&Error) -> bool,
) {
    let (ra, rb) = (Doc::server_ref_for("a"), Doc::server_ref_for("b"));
    let block = |ops: &Ops| {
        ops.incr(ra.n(), 1);
        ops.append_from(rb.items(), ra.items().slice(..));
        failing(ops);
        ops.set(rb.name(), "after");
    };
    fails_unchanged(db, raw, what, failed_op, block, check).await;
}

/// Runs `block`, which fails at operation `failed_op`, and checks the error and that every
/// key the tests use is byte-identical afterwards.
async fn fails_unchanged(
    db: &Db,
    raw: &mut redis::aio::MultiplexedConnection,
    what: &str,
    failed_op: usize,
    block: impl FnOnce(&Ops),
    check: impl FnOnce(&Error) -> bool,
) {
    let keys: Vec<String> = ["a", "b", "c", "d", "missing", "new"]
        .iter()
        .map(|id| db.key(&Doc::key_of(id)))
        .collect();
    let before = snapshot(raw, &keys).await;
    let got = ServerOps::scope(db, block).await;
    match got {
        Err(Error::Block { op, source }) if op == failed_op => {
            assert!(check(&source), "{what}: unexpected error {source:?}");
        }
        other => panic!("{what}: expected operation {failed_op} to fail, got {other:?}"),
    }
    assert_eq!(
        snapshot(raw, &keys).await,
        before,
        "{what}: a failed block changed a key"
    );
}

#[tokio::test]
async fn a_failing_operation_changes_nothing() {
    let db = db().await;
    let mut raw = raw().await;
    doc("a").save(&db).await.unwrap();
    doc("b").save(&db).await.unwrap();
    doc("c").save(&db).await.unwrap();
    let c = db.key(&Doc::key_of("c"));
    for (path, value) in [("$.n", "\"text\""), ("$.items", "5"), ("$.name", "7")] {
        let _: () = redis::cmd("JSON.SET")
            .arg(&c)
            .arg(path)
            .arg(value)
            .query_async(&mut raw)
            .await
            .unwrap();
    }
    let d = db.key(&Doc::key_of("d"));
    let _: () = redis::cmd("SET")
        .arg(&d)
        .arg("plain")
        .query_async(&mut raw)
        .await
        .unwrap();
    let (ra, rb, rc) = (
        Doc::server_ref_for("a"),
        Doc::server_ref_for("b"),
        Doc::server_ref_for("c"),
    );
    let (rd, missing) = (Doc::server_ref_for("d"), Doc::server_ref_for("missing"));
    let key_a = db.key(&Doc::key_of("a"));
    let key_c = c.clone();

    let key_a = key_a.as_str();
    let mismatch = |path: &'static str, found: &'static str| -> Check<'_> {
        let key_c = key_c.clone();
        Box::new(move |e: &Error| {
            matches!(e, Error::TypeMismatch { key, path: p, found: f, .. }
                if *key == key_c && p == path && f == found)
        })
    };
    let cases: Vec<(&str, usize, Build<'_>, Check<'_>)> = vec![
        (
            "incr overflow",
            2,
            Box::new(|ops| {
                ops.incr(ra.small(), 100);
            }),
            Box::new(
                move |e| matches!(e, Error::Overflow { key, path, kind } if key == key_a && path == "$.small" && *kind == "i8"),
            ),
        ),
        (
            "incr on a string",
            2,
            Box::new(|ops| {
                ops.incr(rc.n(), 1);
            }),
            mismatch("$.n", "string"),
        ),
        (
            "incr_by_field by a string",
            2,
            Box::new(|ops| {
                ops.incr_by_field(ra.n(), rc.n());
            }),
            mismatch("$.n", "string"),
        ),
        (
            "index out of range",
            2,
            Box::new(|ops| {
                ops.set(ra.items().at(10), "x");
            }),
            Box::new(
                |e| matches!(e, Error::IndexOutOfRange { index: 10, len: 3, path, .. } if path == "$.items"),
            ),
        ),
        (
            "missing document",
            2,
            Box::new(|ops| {
                ops.set(missing.name(), "x");
            }),
            Box::new(|e| matches!(e, Error::NotFound { key } if key.ends_with(":missing"))),
        ),
        (
            "not a document",
            2,
            Box::new(|ops| {
                ops.assign(rd.name(), ra.name());
            }),
            Box::new(|e| matches!(e, Error::TypeMismatch { found, .. } if found == "string")),
        ),
        (
            "extended slice size",
            2,
            Box::new(|ops| {
                ops.assign(
                    ra.items().slice(..),
                    rb.items().slice((None, None, Some(3))),
                );
            }),
            Box::new(
                |e| matches!(e, Error::InvalidOp { message, .. } if message.contains("extended slice of size")),
            ),
        ),
        (
            "slice step 0",
            2,
            Box::new(|ops| {
                ops.set(ra.nums().slice((None, None, Some(0))), Vec::<i64>::new());
            }),
            Box::new(
                |e| matches!(e, Error::InvalidOp { message, .. } if message == "slice step cannot be zero"),
            ),
        ),
        (
            "swap with a wrong type",
            2,
            Box::new(|ops| {
                ops.swap(ra.name(), rc.name());
            }),
            mismatch("$.name", "integer"),
        ),
        (
            "concat of a wrong type",
            2,
            Box::new(|ops| {
                ops.concat([ra.name(), rc.name()], rb.name(), "-");
            }),
            mismatch("$.name", "integer"),
        ),
        (
            "append_from into a non-list",
            2,
            Box::new(|ops| {
                ops.append_from(rc.items(), ra.items().slice(..));
            }),
            mismatch("$.items", "integer"),
        ),
        (
            "move_item into a non-list",
            2,
            Box::new(|ops| {
                ops.move_item(ra.items().at(0), rc.items());
            }),
            mismatch("$.items", "integer"),
        ),
        (
            "copy_model from a missing model",
            2,
            Box::new(|ops| {
                ops.copy_model(missing.clone(), "new");
            }),
            Box::new(|e| matches!(e, Error::NotFound { .. })),
        ),
        (
            "condition on a wrong type",
            2,
            Box::new(|ops| {
                ops.when(rc.n().gt(1)).then(|ops| {
                    ops.set(ra.name(), "x");
                });
            }),
            mismatch("$.n", "string"),
        ),
        (
            "missing dict entry",
            2,
            Box::new(|ops| {
                ops.incr(ra.counts().entry("nope"), 1);
            }),
            Box::new(|e| {
                matches!(e, Error::TypeMismatch { path, found, .. }
                if path == "$.counts[\"nope\"]" && found == "nothing")
            }),
        ),
        (
            "float overflow",
            3,
            Box::new(|ops| {
                ops.incr(ra.f(), f64::MAX);
                ops.incr(ra.f(), f64::MAX);
            }),
            Box::new(|e| matches!(e, Error::Overflow { .. })),
        ),
        (
            "append to a non-list the block never reads",
            2,
            Box::new(|ops| {
                ops.append(rc.items(), "x".to_string());
            }),
            mismatch("$.items", "integer"),
        ),
        (
            "extend a list of a missing document",
            2,
            Box::new(|ops| {
                ops.extend(missing.items(), ["x".to_string()]);
            }),
            Box::new(|e| matches!(e, Error::NotFound { key } if key.ends_with(":missing"))),
        ),
        (
            "append to a key that is not a document",
            2,
            Box::new(|ops| {
                ops.append(rd.items(), "x".to_string());
            }),
            Box::new(|e| matches!(e, Error::TypeMismatch { found, .. } if found == "string")),
        ),
        (
            "an operation failing after appends to lists never read",
            4,
            Box::new(|ops| {
                ops.extend(ra.items(), ["x".to_string(), "y".to_string()]);
                ops.append(ra.nums(), 6);
                ops.incr(ra.small(), 100);
            }),
            Box::new(|e| matches!(e, Error::Overflow { path, .. } if path == "$.small")),
        ),
        (
            "an index out of range in a branch",
            5,
            Box::new(|ops| {
                ops.when(ra.n().gt(-1000)).then(|ops| {
                    ops.incr(ra.n(), 1);
                    ops.set(ra.nums().slice(..), vec![0; 2]);
                    ops.set(ra.nums().at(5), 1);
                });
            }),
            Box::new(|e| matches!(e, Error::IndexOutOfRange { .. })),
        ),
    ];
    for (what, op, failing, check) in cases {
        fails_cleanly(&db, &mut raw, what, op, failing, check).await;
    }
}

#[tokio::test]
async fn one_increment_past_i64_max_is_overflow_and_leaves_the_key_byte_identical() {
    let db = db().await;
    let mut raw = raw().await;
    let mut a = doc("edge");
    a.n = i64::MAX - 1;
    a.save(&db).await.unwrap();
    let key = db.key(&a.key());
    let before = snapshot(&mut raw, std::slice::from_ref(&key)).await;
    let r = a.server_ref();
    // RedisJSON's own JSON.NUMINCRBY wraps here: a plan that sent it bare would not fail.
    let over = ServerOps::scope(&db, |ops| ops.incr(r.n(), 2)).await;
    assert!(
        matches!(&over, Err(Error::Block { op: 0, source }) if matches!(**source, Error::Overflow { ref path, kind: "i64", .. } if path == "$.n")),
        "{over:?}"
    );
    let under = ServerOps::scope(&db, |ops| ops.decr(r.n(), i64::MAX)).await;
    assert_eq!(under.unwrap(), Some(-1));
    let _: () = redis::cmd("JSON.SET")
        .arg(&key)
        .arg("$.n")
        .arg(i64::MAX - 1)
        .query_async(&mut raw)
        .await
        .unwrap();
    let before_atomic = snapshot(&mut raw, std::slice::from_ref(&key)).await;
    assert_eq!(before_atomic, before);
    let mut local = a.clone();
    let over = local.atomic(&db, |m| m.n().incr(2)).await;
    assert!(matches!(over, Err(Error::Block { op: 0, .. })), "{over:?}");
    assert_eq!(
        local.n,
        i64::MAX - 1,
        "a failed block leaves the local model"
    );
    assert_eq!(snapshot(&mut raw, std::slice::from_ref(&key)).await, before);
    let top = local.atomic(&db, |m| m.n().incr(1)).await.unwrap();
    assert_eq!((top, local.n), (Some(i64::MAX), i64::MAX));
}

#[tokio::test]
async fn lists_only_appended_to_are_appended_in_place_and_mirrored() {
    let db = db().await;
    let mut raw = raw().await;
    let mut a = doc("pushes");
    a.save(&db).await.unwrap();
    let key = db.key(&a.key());
    let r = a.server_ref();
    // Every hostile value, one at a time and all at once, ahead of an increment.
    let values: Vec<String> = HOSTILE
        .iter()
        .map(|v| v.to_string())
        .chain(["x".repeat(1 << 20)])
        .collect();
    let (one, all, n) = ServerOps::scope(&db, |ops| {
        let one = ops.append(r.items(), values[0].clone());
        let all = ops.extend(r.items(), values.clone());
        (one, all, ops.incr(r.n(), 1))
    })
    .await
    .unwrap();
    assert_eq!((one, all, n), (Some(4), Some(4 + values.len()), Some(11)));
    let now = stored(&mut raw, &key).await;
    let mut want: Vec<String> = doc("pushes").items;
    want.push(values[0].clone());
    want.extend(values.iter().cloned());
    assert_eq!(now["items"], json!(want));
    // Another client appends meanwhile: the local copy of an atomic block is the server's
    // list afterwards, not a local guess.
    let _: () = redis::cmd("JSON.ARRAPPEND")
        .arg(&key)
        .arg("$.items")
        .arg("\"theirs\"")
        .query_async(&mut raw)
        .await
        .unwrap();
    let len = a.atomic(&db, |m| m.items().append("mine")).await.unwrap();
    want.push("theirs".into());
    want.push("mine".into());
    assert_eq!(len, Some(want.len()));
    assert_eq!(a.items, want, "the local list mirrors the server's");
    assert_eq!(stored(&mut raw, &key).await["items"], json!(want));
    // An empty extend changes nothing and answers the length.
    let same = ServerOps::scope(&db, |ops| ops.extend(r.items(), Vec::<String>::new()))
        .await
        .unwrap();
    assert_eq!(same, Some(want.len()));
    // Alone in its block (each operation on a place of its own): a 1 MB element, and 10,000
    // elements in runs of 4,000.
    let big = "y".repeat(1 << 20);
    let (len, nums) = ServerOps::scope(&db, |ops| {
        (
            ops.append(r.items(), big.clone()),
            ops.extend(r.nums(), 0..10_000),
        )
    })
    .await
    .unwrap();
    want.push(big);
    assert_eq!((len, nums), (Some(want.len()), Some(10_005)));
    let now = stored(&mut raw, &key).await;
    assert_eq!(now["items"], json!(want));
    assert_eq!(now["nums"].as_array().map(Vec::len), Some(10_005));
    assert_eq!(now["nums"][10_004], json!(9_999));
    let _: () = redis::cmd("JSON.SET")
        .arg(&key)
        .arg("$.nums")
        .arg("[1,2,3,4,5]")
        .query_async(&mut raw)
        .await
        .unwrap();
    // A list that is appended to and also read in the block goes through the overlay.
    let (len, first) = ServerOps::scope(&db, |ops| {
        let len = ops.append(r.nums(), 6);
        ops.assign(r.nums().at(0), r.n());
        (len, ops.append(r.nums(), 7))
    })
    .await
    .unwrap();
    assert_eq!((len, first), (Some(6), Some(7)));
    assert_eq!(
        stored(&mut raw, &key).await["nums"],
        json!([1, 2, 3, 4, 5, 6, 7])
    );
    assert_eq!(stored(&mut raw, &key).await["n"], json!(1));
}

/// Six operations each on a place of its own (the plan that checks each with one command
/// and writes each at its own path), all of which would succeed.
fn separate_places(ops: &Ops) {
    let (ra, rb) = (Doc::server_ref_for("a"), Doc::server_ref_for("b"));
    ops.incr(ra.n(), 1);
    ops.append(ra.items(), "x".to_string());
    ops.insert(ra.prefs(), "new", "v".to_string());
    ops.set(rb.name(), "renamed");
    ops.toggle(rb.flag());
    ops.append(rb.inner().city(), "!");
}

#[tokio::test]
async fn a_block_of_separate_places_checks_everything_before_its_first_write() {
    let db = db().await;
    let mut raw = raw().await;
    for id in ["a", "b", "c"] {
        doc(id).save(&db).await.unwrap();
    }
    let c = db.key(&Doc::key_of("c"));
    for (path, value) in [
        ("$.n", "\"text\""),
        ("$.items", "5"),
        ("$.name", "7"),
        ("$.flag", "1"),
        ("$.prefs", "[]"),
        ("$.f", "1e308"),
    ] {
        let _: () = redis::cmd("JSON.SET")
            .arg(&c)
            .arg(path)
            .arg(value)
            .query_async(&mut raw)
            .await
            .unwrap();
    }
    let _: () = redis::cmd("SET")
        .arg(db.key(&Doc::key_of("d")))
        .arg("plain")
        .query_async(&mut raw)
        .await
        .unwrap();
    let (ra, rc) = (Doc::server_ref_for("a"), Doc::server_ref_for("c"));
    let (rd, missing) = (Doc::server_ref_for("d"), Doc::server_ref_for("missing"));
    let mismatch = |at: &'static str, what: &'static str| -> Check<'_> {
        Box::new(
            move |e: &Error| matches!(e, Error::TypeMismatch { path, found, .. } if path == at && found == what),
        )
    };
    let cases: Vec<(&str, Build<'_>, Check<'_>)> = vec![
        (
            "an i8 incr past its range",
            Box::new(|ops| {
                ops.incr(ra.small(), 100);
            }),
            Box::new(
                |e| matches!(e, Error::Overflow { path, kind: "i8", .. } if path == "$.small"),
            ),
        ),
        (
            "incr on a string",
            Box::new(|ops| {
                ops.incr(rc.n(), 1);
            }),
            mismatch("$.n", "string"),
        ),
        (
            "a float incr past f64",
            Box::new(|ops| {
                ops.incr(rc.f(), f64::MAX);
            }),
            Box::new(|e| matches!(e, Error::Overflow { .. })),
        ),
        (
            "append to a list that is a number",
            Box::new(|ops| {
                ops.append(rc.items(), "x".to_string());
            }),
            mismatch("$.items", "integer"),
        ),
        (
            "a string append to a number",
            Box::new(|ops| {
                ops.append(rc.name(), "x");
            }),
            mismatch("$.name", "integer"),
        ),
        (
            "toggle of a number",
            Box::new(|ops| {
                ops.toggle(rc.flag());
            }),
            mismatch("$.flag", "integer"),
        ),
        (
            "set of a string over a number",
            Box::new(|ops| {
                ops.set(rc.name(), "x");
            }),
            Box::new(|e| matches!(e, Error::TypeMismatch { path, .. } if path == "$.name")),
        ),
        (
            "a dict entry in a list",
            Box::new(|ops| {
                ops.insert(rc.prefs(), "k", "v".to_string());
            }),
            mismatch("$.prefs", "array"),
        ),
        (
            "a missing document",
            Box::new(|ops| {
                ops.toggle(missing.flag());
            }),
            Box::new(|e| matches!(e, Error::NotFound { key } if key.ends_with(":missing"))),
        ),
        (
            "a key that is not a document",
            Box::new(|ops| {
                ops.set(rd.name(), "x");
            }),
            mismatch("$", "string"),
        ),
        (
            "a list push to a key that is not a document",
            Box::new(|ops| {
                ops.extend(rd.items(), ["x".to_string()]);
            }),
            Box::new(|e| matches!(e, Error::TypeMismatch { found, .. } if found == "string")),
        ),
    ];
    // These blocks take that plan (explain shows the script a block runs).
    let shown = ServerOps::explain(|ops| {
        ops.incr(ra.n(), 1);
        ops.toggle(rc.flag());
    });
    assert!(
        shown.starts_with("-- rapyer ServerOps flat block"),
        "{shown}"
    );
    for (what, failing, check) in cases {
        let block = |ops: &Ops| {
            separate_places(ops);
            failing(ops);
        };
        fails_unchanged(&db, &mut raw, what, 6, block, check).await;
    }
    // The last operation's command is tried before its checks when it writes nothing where
    // it would fail (a toggle, a push, a dict entry): a failure still names the first
    // operation that fails.
    fails_unchanged(
        &db,
        &mut raw,
        "an overflow before a toggle that would fail",
        6,
        |ops| {
            separate_places(ops);
            ops.incr(ra.small(), 100);
            ops.toggle(rc.flag());
        },
        |e| matches!(e, Error::Overflow { path, .. } if path == "$.small"),
    )
    .await;
    // And alone in its block.
    let alone: Vec<(&str, Build<'_>, Check<'_>)> = vec![
        (
            "a toggle of a number",
            Box::new(|ops| {
                ops.toggle(rc.flag());
            }),
            mismatch("$.flag", "integer"),
        ),
        (
            "a push to a missing document",
            Box::new(|ops| {
                ops.extend(missing.items(), ["x".to_string(), "y".to_string()]);
            }),
            Box::new(|e| matches!(e, Error::NotFound { .. })),
        ),
        (
            "a dict entry in a key that is not a document",
            Box::new(|ops| {
                ops.insert(rd.prefs(), "k", "v".to_string());
            }),
            Box::new(|e| matches!(e, Error::TypeMismatch { found, .. } if found == "string")),
        ),
    ];
    for (what, block, check) in alone {
        fails_unchanged(&db, &mut raw, what, 0, block, check).await;
    }
}

#[tokio::test]
async fn a_block_of_separate_places_writes_only_them_and_mirrors_the_server() {
    let db = db().await;
    let mut raw = raw().await;
    let mut a = doc("flat");
    a.save(&db).await.unwrap();
    let key = db.key(&a.key());
    // Another client writes beside every place the block touches: a member of the same
    // dict, the list, a sibling field. Only the block's own paths are written, and the
    // local model gets the server's values, theirs included.
    for (path, value) in [
        ("$.prefs.theirs", "\"t\""),
        ("$.maybe", "\"theirs\""),
        ("$.inner.zip", "1"),
    ] {
        let _: () = redis::cmd("JSON.SET")
            .arg(&key)
            .arg(path)
            .arg(value)
            .query_async(&mut raw)
            .await
            .unwrap();
    }
    let _: () = redis::cmd("JSON.ARRAPPEND")
        .arg(&key)
        .arg("$.items")
        .arg("\"theirs\"")
        .query_async(&mut raw)
        .await
        .unwrap();
    for v in HOSTILE {
        let before = stored(&mut raw, &key).await;
        let (n, len, flag, name, city) = a
            .atomic(&db, |m| {
                m.prefs().insert(*v, *v);
                (
                    m.n().incr(i64::MAX - 100),
                    m.items().append(*v),
                    m.flag().toggle(),
                    m.name().set(*v),
                    m.inner().city().append(v),
                )
            })
            .await
            .unwrap_or_else(|e| panic!("{v:?}: {e}"));
        let now = stored(&mut raw, &key).await;
        let local = serde_json::to_value(&a).unwrap();
        for field in ["prefs", "n", "items", "flag", "name"] {
            assert_eq!(
                local[field], now[field],
                "{v:?}: the local {field} is the server's"
            );
        }
        assert_eq!(local["inner"]["city"], now["inner"]["city"], "{v:?}");
        // What the block did not touch stays as the local copy had it.
        assert_eq!((a.maybe.as_deref(), a.inner.zip), (None, 75000));
        assert_eq!(now["prefs"][*v], json!(v), "{v:?}");
        assert_eq!(now["prefs"]["theirs"], json!("t"));
        assert_eq!(now["maybe"], json!("theirs"));
        assert_eq!(now["inner"]["zip"], json!(1));
        assert_eq!(n, Some(a.n));
        assert_eq!(len, Some(a.items.len()));
        assert_eq!(flag, Some(!before["flag"].as_bool().unwrap()));
        assert_eq!(name, Some(()));
        assert_eq!(city.as_deref(), Some(a.inner.city.as_str()), "{v:?}");
        // Back below the top for the next round.
        ServerOps::scope(&db, |ops| ops.set(a.server_ref().n(), 0))
            .await
            .unwrap();
        a.n = 0;
    }
}

#[tokio::test]
async fn hostile_values_and_dict_keys_round_trip() {
    let db = db().await;
    let mut raw = raw().await;
    let a = doc("hostile");
    a.save(&db).await.unwrap();
    let r = a.server_ref();
    for (i, v) in HOSTILE.iter().enumerate() {
        let joined = ServerOps::scope(&db, |ops| {
            ops.set(r.prefs().entry(*v), *v);
            ops.set(r.counts().entry(*v), i as i64);
            ops.incr(r.counts().entry(*v), 1);
            ops.set(r.name(), *v);
            ops.concat([r.name(), r.prefs().entry(*v)], r.inner().city(), v)
        })
        .await
        .unwrap_or_else(|e| panic!("{v:?}: {e}"));
        let want = format!("{v}{v}{v}");
        assert_eq!(joined.as_deref(), Some(want.as_str()), "{v:?}");
        let now = stored(&mut raw, &db.key(&a.key())).await;
        assert_eq!(now["prefs"][*v], json!(v), "{v:?}");
        assert_eq!(now["counts"][*v], json!(i as i64 + 1), "{v:?}");
        assert_eq!(now["name"], json!(v), "{v:?}");
        assert_eq!(
            now["inner"]["city"],
            json!(want),
            "{v:?}: no JSON quotes leak"
        );
    }
    // Conditions compare hostile strings exactly.
    let hit = ServerOps::scope(&db, |ops| {
        ops.when(r.name().eq(*HOSTILE.last().unwrap()) & r.name().ne("a.b[0]$"))
            .then(|_| {})
            .out()
    })
    .await
    .unwrap();
    assert_eq!(hit, Some(true));
    let back = Doc::get(&db, "hostile").await.unwrap();
    assert_eq!(back.prefs.len(), HOSTILE.len() + 1);
}

#[tokio::test]
async fn copy_model_carries_the_new_id_and_keeps_the_ttl_policy() {
    let db = db().await;
    let mut raw = raw().await;
    let a = doc("orig");
    a.save(&db).await.unwrap();
    ServerOps::scope(&db, |ops| ops.copy_model(a.server_ref(), "copy"))
        .await
        .unwrap();
    let copy = Doc::get(&db, "copy").await.unwrap();
    assert_eq!(
        copy,
        Doc {
            id: "copy".into(),
            ..a.clone()
        }
    );
    // Over an existing model the copy replaces it, keeping the target's id.
    let mut b = doc("other");
    b.n = 99;
    b.save(&db).await.unwrap();
    ServerOps::scope(&db, |ops| {
        ops.assign(b.server_ref(), Doc::server_ref_for("copy"))
    })
    .await
    .unwrap();
    assert_eq!(
        stored(&mut raw, &db.key(&Doc::key_of("copy"))).await["id"],
        json!("copy")
    );
    assert_eq!(Doc::get(&db, "copy").await.unwrap().n, 99);
    // Whole models swap, each keeping its id.
    ServerOps::scope(&db, |ops| ops.swap(a.server_ref(), b.server_ref()))
        .await
        .unwrap();
    assert_eq!(
        Doc::get(&db, "orig").await.unwrap(),
        Doc {
            id: "orig".into(),
            ..b.clone()
        }
    );
    assert_eq!(
        Doc::get(&db, "other").await.unwrap(),
        Doc {
            id: "other".into(),
            ..a.clone()
        }
    );
}

#[derive(AtomicModel, Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
#[rapyer(hash_tag = "ops", ttl = 300)]
struct Session {
    #[rapyer(key)]
    id: u32,
    hits: u64,
    log: Vec<String>,
}

#[tokio::test]
async fn writes_rearm_the_expiry_and_integer_ids_copy_exactly() {
    let db = db().await;
    let mut raw = raw().await;
    let s = Session {
        id: 7,
        hits: u64::MAX - 1,
        log: vec![],
    };
    s.save(&db).await.unwrap();
    let key = db.key(&s.key());
    let _: () = redis::cmd("PEXPIRE")
        .arg(&key)
        .arg(1000)
        .query_async(&mut raw)
        .await
        .unwrap();
    let hits = ServerOps::scope(&db, |ops| ops.incr(s.server_ref().hits(), 1))
        .await
        .unwrap();
    assert_eq!(hits, Some(u64::MAX), "exact beyond 2^53");
    assert!(
        common::pttl(&mut raw, &key).await > 200_000,
        "a write re-arms the ttl"
    );
    // So does an append to a list the block never reads (no JSON.MSET of it).
    let _: () = redis::cmd("PEXPIRE")
        .arg(&key)
        .arg(1000)
        .query_async(&mut raw)
        .await
        .unwrap();
    let logged = ServerOps::scope(&db, |ops| ops.append(s.server_ref().log(), "x"))
        .await
        .unwrap();
    assert_eq!(logged, Some(1));
    assert!(
        common::pttl(&mut raw, &key).await > 200_000,
        "an append re-arms the ttl"
    );
    let over = ServerOps::scope(&db, |ops| ops.incr(s.server_ref().hits(), 1)).await;
    assert!(
        matches!(over, Err(Error::Block { op: 0, ref source }) if matches!(**source, Error::Overflow { .. }))
    );
    ServerOps::scope(&db, |ops| ops.copy_model(s.server_ref(), 8))
        .await
        .unwrap();
    assert_eq!(
        stored(&mut raw, &db.key(&Session::key_of(8))).await["id"],
        json!(8)
    );
    assert!(common::pttl(&mut raw, &db.key(&Session::key_of(8))).await > 200_000);
    // An id that is not one of the key's type is refused before anything is sent.
    let bad = ServerOps::scope(&db, |ops| ops.copy_model(s.server_ref(), "x")).await;
    assert!(
        matches!(bad, Err(Error::Block { op: 0, ref source }) if matches!(**source, Error::InvalidOp { .. })),
        "{bad:?}"
    );
}

#[tokio::test]
async fn an_atomic_block_updates_the_local_fields_from_the_server() {
    let db = db().await;
    let mut raw = raw().await;
    let mut a = doc("pipe");
    a.save(&db).await.unwrap();
    // Another client changes the stored model: the block's results are the server's.
    let _: () = redis::cmd("JSON.SET")
        .arg(db.key(&a.key()))
        .arg("$.n")
        .arg("100")
        .query_async(&mut raw)
        .await
        .unwrap();
    a.small = 1; // a local edit to a field the block does not touch
    let (n, len, popped, toggled, name, removed) = a
        .atomic(&db, |p| {
            (
                p.n().incr(5),
                p.items().append("d"),
                p.nums().pop_at(0),
                p.flag().toggle(),
                p.name().append("!"),
                p.prefs().remove("theme"),
            )
        })
        .await
        .unwrap();
    assert_eq!(n, Some(105));
    assert_eq!(len, Some(4));
    assert_eq!(popped, Some(1));
    assert_eq!(toggled, Some(true));
    assert_eq!(name.as_deref(), Some("ann!"));
    assert_eq!(removed, Some(Some("dark".to_string())));
    assert_eq!(a.n, 105, "the local field holds the server's value");
    assert_eq!(a.items, ["a", "b", "c", "d"]);
    assert_eq!(a.nums, [2, 3, 4, 5]);
    assert!(a.flag);
    assert_eq!(a.name, "ann!");
    assert!(a.prefs.is_empty());
    assert_eq!(
        a.small, 1,
        "fields the block did not touch keep their local value"
    );
    let now = stored(&mut raw, &db.key(&a.key())).await;
    assert_eq!(now["small"], json!(100));
    assert_eq!(now["n"], json!(105));

    a.atomic(&db, |p| {
        p.counts().update([("y", 2), ("x", 5)]);
        p.items().insert(0, "first");
        p.items().set(-1, "last");
        p.inner().set(Inner {
            city: "Rome".into(),
            zip: 1,
        });
        p.prefs().insert("k\"'", "v");
        p.n().decr(6);
    })
    .await
    .unwrap();
    assert_eq!(a.counts, BTreeMap::from([("x".into(), 5), ("y".into(), 2)]));
    assert_eq!(a.items, ["first", "a", "b", "c", "last"]);
    assert_eq!(a.inner.city, "Rome");
    assert_eq!(a.n, 99);
    assert_eq!(
        Doc::get(&db, "pipe").await.unwrap(),
        Doc {
            small: 100,
            ..a.clone()
        }
    );

    // A failing atomic block leaves both the local model and the stored one as they were.
    let local = a.clone();
    let before = snapshot(&mut raw, &[db.key(&a.key())]).await;
    let failed = a
        .atomic(&db, |p| {
            p.n().incr(1);
            p.small().incr(100);
        })
        .await;
    assert!(
        matches!(failed, Err(Error::Block { op: 1, .. })),
        "{failed:?}"
    );
    assert_eq!(a, local);
    assert_eq!(snapshot(&mut raw, &[db.key(&a.key())]).await, before);
}

#[derive(AtomicModel, Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
struct Untagged {
    #[rapyer(key)]
    id: String,
    n: i64,
}

#[tokio::test]
async fn keys_in_different_slots_are_refused_before_sending() {
    let db = db().await;
    let (a, b) = (Untagged::server_ref_for("a"), Untagged::server_ref_for("b"));
    let got = ServerOps::scope(&db, |ops| ops.incr_by_field(a.n(), b.n())).await;
    match got {
        Err(Error::CrossSlot { keys }) => assert_eq!(keys.len(), 2),
        other => panic!("expected CrossSlot, got {other:?}"),
    }
    // Tagged models share a slot, whatever their ids.
    let (x, y) = (Doc::server_ref_for("x1"), Doc::server_ref_for("y2"));
    let got = ServerOps::scope(&db, |ops| ops.incr_by_field(x.n(), y.n())).await;
    assert!(
        matches!(got, Err(Error::Block { source, .. }) if matches!(*source, Error::NotFound { .. }))
    );
}

#[tokio::test]
async fn explain_shows_the_shape_and_no_key_or_value() {
    let block = |a: &str, b: &str, value: &str| {
        let (ra, rb) = (Doc::server_ref_for(a), Doc::server_ref_for(b));
        let value = value.to_string();
        ServerOps::explain(move |ops| {
            ops.set(ra.prefs().entry(value.clone()), value.clone());
            ops.assign(
                ra.items().slice((1, -1)),
                rb.items().slice((None, None, Some(2))),
            );
            ops.when(ra.n().gt(41) & rb.name().eq(value.as_str()))
                .then(|ops| {
                    ops.concat([ra.name(), rb.name()], rb.name(), &value);
                });
        })
    };
    let one = block("secret-key-1", "secret-key-2", "secret value 🎉");
    let two = block("k3", "k4", "other");
    assert_eq!(one, two, "the same shape gives the same script");
    for needle in ["secret", "🎉", "Doc:", "{ops}"] {
        assert!(!one.contains(needle), "explain leaks {needle:?}");
    }
    // The block's own part (after the runtime) names no field and no number either.
    let body = one
        .split("-- The block.")
        .nth(1)
        .expect("the block follows the runtime");
    for needle in ["prefs", "items", "name", "41", "other"] {
        assert!(
            !body.contains(needle),
            "explain's block leaks {needle:?}:\n{body}"
        );
    }
    assert!(one.contains("OPS[1] = op_assign") && one.contains("local function compare("));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_transfers_conserve_the_total() {
    let flushes = common::bank::transfers(&db().await, false).await;
    assert_eq!(flushes, 0);
}

#[cfg(feature = "chrono")]
#[derive(AtomicModel, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[rapyer(hash_tag = "ops")]
struct Event {
    #[rapyer(key)]
    id: String,
    #[rapyer(index)]
    at: chrono::DateTime<chrono::Utc>,
    seen: chrono::DateTime<chrono::Utc>,
    note: Option<String>,
    tags: Vec<String>,
    labels: BTreeMap<String, i64>,
}

#[cfg(feature = "chrono")]
#[tokio::test]
async fn indexed_date_times_are_refused_and_the_rest_is_written() {
    let db = db().await;
    let mut raw = raw().await;
    let t = chrono::DateTime::parse_from_rfc3339("2026-01-02T03:04:05Z")
        .expect("time")
        .with_timezone(&chrono::Utc);
    let mut e = Event {
        id: "e".into(),
        at: t,
        seen: t,
        note: Some("n".into()),
        tags: vec!["x".into()],
        labels: BTreeMap::from([("a".into(), 1)]),
    };
    e.save(&db).await.expect("save");
    let r = e.server_ref();
    let later = t + chrono::Duration::days(1);
    // The indexed one keeps a search instant beside it, which a block does not write.
    let refused = ServerOps::scope(&db, |ops| ops.set(r.at(), later)).await;
    assert!(
        matches!(&refused, Err(Error::Block { op: 0, source })
            if matches!(**source, Error::InvalidOp { ref path, ref key, .. } if path == "$.at" && *key == db.key(&e.key()))),
        "{refused:?}"
    );
    let copied = ServerOps::scope(&db, |ops| ops.assign(r.seen(), r.at())).await;
    assert!(
        copied.is_err(),
        "assigning into an indexed date-time is refused too"
    );
    // A date-time outside the index is a plain value.
    ServerOps::scope(&db, |ops| {
        ops.set(r.seen(), later);
        ops.set(r.note(), None);
    })
    .await
    .expect("block");
    e.atomic(&db, |p| {
        p.tags().extend(["y".to_string(), "z".to_string()]);
        p.tags().clear();
        p.tags().replace(vec!["only".to_string()]);
        p.labels().clear();
        p.labels().insert("b", 2);
    })
    .await
    .expect("atomic block");
    assert_eq!(e.tags, ["only"]);
    assert_eq!(e.labels, BTreeMap::from([("b".into(), 2)]));
    let back = Event::get(&db, "e").await.expect("get");
    assert_eq!(back.seen, later);
    assert_eq!(back.note, None);
    assert_eq!(back.at, t);
    assert_eq!(back.tags, ["only"]);
    let now = stored(&mut raw, &db.key(&e.key())).await;
    assert_eq!(
        now["at__ts"],
        json!(t.timestamp_micros()),
        "the instant is untouched"
    );
}

#[tokio::test]
async fn a_block_over_many_documents_writes_every_one() {
    let db = db().await;
    let docs: Vec<Doc> = (0..700).map(|i| doc(&format!("many{i}"))).collect();
    Doc::insert_many(&db, &docs).await.expect("insert");
    let refs: Vec<_> = docs.iter().map(|d| d.server_ref()).collect();
    // 700 documents × 2 roots: the commit is split into several JSON.MSETs.
    let outs = ServerOps::scope(&db, |ops| {
        refs.iter()
            .map(|r| {
                ops.set(r.name(), "many");
                ops.incr(r.n(), 1)
            })
            .collect::<Vec<_>>()
    })
    .await
    .expect("block");
    assert!(outs.iter().all(|n| *n == Some(11)));
    let back = Doc::get_many(&db, (0..700).map(|i| format!("many{i}")))
        .await
        .expect("get_many");
    assert!(
        back.iter()
            .all(|d| d.as_ref().is_some_and(|d| d.n == 11 && d.name == "many"))
    );
}

#[tokio::test]
async fn smoke() {
    let db = db().await;
    let mut raw = raw().await;
    let (a, b) = (doc("a"), doc("b"));
    a.save(&db).await.unwrap();
    b.save(&db).await.unwrap();
    let (ra, rb) = (a.server_ref(), Doc::server_ref_for("b"));
    let results: Results = ServerOps::scope(&db, |ops: &Ops| {
        ops.incr(ra.n(), 5);
        ops.assign(ra.items().slice(0..2), rb.items().slice(0..0));
        ops.concat([ra.name(), rb.inner().city()], rb.name(), " / ");
        ops.swap(ra.n(), rb.n());
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    // A result read as the wrong type names the key of the operation that made it.
    match results.value::<bool>(2) {
        Err(Error::Deserialize { key, .. }) => assert_eq!(key, db.key(&b.key())),
        other => panic!("expected Deserialize, got {other:?}"),
    }
    let sa = stored(&mut raw, &db.key(&a.key())).await;
    let sb = stored(&mut raw, &db.key(&b.key())).await;
    println!("{sa}\n{sb}");
    assert_eq!((sa["n"].clone(), sb["n"].clone()), (json!(10), json!(15)));
}

#[derive(AtomicModel, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[rapyer(hash_tag = "ops")]
struct Meter {
    #[rapyer(key)]
    id: String,
    value: f64,
    small: f32,
    samples: Vec<f64>,
    named: HashMap<String, f64>,
}

fn meter(id: &str) -> Meter {
    Meter {
        id: id.into(),
        value: 1.5,
        small: 0.5,
        samples: vec![1.0, 2.0],
        named: HashMap::from([("a".to_string(), 1.0)]),
    }
}

/// The failed operation's index and its error, from a block's outcome.
fn block_error<T: std::fmt::Debug>(what: &str, outcome: Result<T, Error>) -> (usize, Error) {
    match outcome {
        Err(Error::Block { op, source }) => (op, *source),
        other => panic!("{what}: expected a Block error, got {other:?}"),
    }
}

#[tokio::test]
async fn non_finite_floats_are_refused_by_blocks_and_atomic_blocks_before_sending() {
    let db = db().await;
    let mut raw = raw().await;
    let mut m = meter("nf");
    m.save(&db).await.unwrap();
    let key = db.key(&m.key());
    let keys = [key.clone()];
    let before = snapshot(&mut raw, &keys).await;
    let local = m.clone();
    let r = Meter::server_ref_for("nf");
    for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        let bad32 = bad as f32;
        let mut whole = meter("nf");
        whole.samples.push(bad);
        let outcomes: Vec<(&str, &str, (usize, Error))> = vec![
            (
                "set",
                "$.value",
                block_error(
                    "set",
                    ServerOps::scope(&db, |ops| {
                        ops.incr(r.value(), 1.0);
                        ops.set(r.value(), bad);
                    })
                    .await,
                ),
            ),
            (
                "incr",
                "$.value",
                block_error(
                    "incr",
                    ServerOps::scope(&db, |ops| {
                        ops.incr(r.value(), 1.0);
                        ops.incr(r.value(), bad);
                    })
                    .await,
                ),
            ),
            (
                "f32 incr",
                "$.small",
                block_error(
                    "f32 incr",
                    ServerOps::scope(&db, |ops| {
                        ops.incr(r.value(), 1.0);
                        ops.incr(r.small(), bad32);
                    })
                    .await,
                ),
            ),
            (
                "list set",
                "$.samples[1]",
                block_error(
                    "list set",
                    ServerOps::scope(&db, |ops| {
                        ops.incr(r.value(), 1.0);
                        ops.set(r.samples(), vec![0.0, bad]);
                    })
                    .await,
                ),
            ),
            (
                "whole model set",
                "$.samples[2]",
                block_error(
                    "whole model set",
                    ServerOps::scope(&db, |ops| {
                        ops.incr(r.value(), 1.0);
                        ops.set(r.clone(), whole.clone());
                    })
                    .await,
                ),
            ),
            (
                "atomic set",
                "$.value",
                block_error(
                    "atomic set",
                    m.atomic(&db, |p| {
                        p.value().incr(1.0);
                        p.value().set(bad);
                    })
                    .await,
                ),
            ),
            (
                "atomic decr",
                "$.small",
                block_error(
                    "atomic decr",
                    m.atomic(&db, |p| {
                        p.value().incr(1.0);
                        p.small().decr(bad32);
                    })
                    .await,
                ),
            ),
            (
                "atomic append",
                "$.samples[0]",
                block_error(
                    "atomic append",
                    m.atomic(&db, |p| {
                        p.value().incr(1.0);
                        p.samples().append(bad);
                    })
                    .await,
                ),
            ),
            (
                "atomic insert",
                "$.samples[0]",
                block_error(
                    "atomic insert",
                    m.atomic(&db, |p| {
                        p.value().incr(1.0);
                        p.samples().insert(0, bad);
                    })
                    .await,
                ),
            ),
            (
                "atomic dict update",
                "$.named.z",
                block_error(
                    "atomic dict update",
                    m.atomic(&db, |p| {
                        p.value().incr(1.0);
                        p.named().update([("ok", 1.0), ("z", bad)]);
                    })
                    .await,
                ),
            ),
        ];
        for (what, path, (op, source)) in outcomes {
            assert_eq!(op, 1, "{bad} {what}: the failing operation");
            match source {
                Error::NonFinite { key: k, path: p } => {
                    assert_eq!(k, key, "{bad} {what}");
                    assert_eq!(p, path, "{bad} {what}");
                }
                other => panic!("{bad} {what}: expected NonFinite, got {other:?}"),
            }
        }
        // A dict entry's path is written the block's way; only its start is fixed.
        let (_, source) = block_error(
            "dict entry",
            m.atomic(&db, |p| {
                p.named().insert("k", bad);
            })
            .await,
        );
        assert!(
            matches!(&source, Error::NonFinite { path, .. } if path.starts_with("$.named")),
            "{bad} dict entry: {source:?}"
        );
        assert_eq!(
            snapshot(&mut raw, &keys).await,
            before,
            "{bad}: the document changed"
        );
        assert_eq!(m, local, "{bad}: the local model changed");
        assert_eq!(Meter::get(&db, "nf").await.unwrap(), local);
    }
}

#[tokio::test]
async fn float_overflow_in_blocks_and_atomic_blocks_names_the_type_and_writes_nothing() {
    let db = db().await;
    let mut raw = raw().await;
    let mut m = meter("ov");
    m.value = 1.5e308;
    m.small = 3.0e38;
    m.save(&db).await.unwrap();
    let key = db.key(&m.key());
    let keys = [key.clone()];
    let before = snapshot(&mut raw, &keys).await;
    let local = m.clone();
    let r = Meter::server_ref_for("ov");
    let outcomes: Vec<(&str, &str, &str, (usize, Error))> = vec![
        (
            "f32 incr",
            "f32",
            "$.small",
            block_error(
                "f32 incr",
                ServerOps::scope(&db, |ops| {
                    ops.incr(r.value(), -1.0);
                    ops.incr(r.small(), 1.0e38);
                })
                .await,
            ),
        ),
        (
            "f32 incr by a field",
            "f32",
            "$.small",
            block_error(
                "f32 incr by a field",
                ServerOps::scope(&db, |ops| {
                    ops.incr(r.value(), -1.0);
                    ops.incr_by_field(r.small(), r.value());
                })
                .await,
            ),
        ),
        (
            "f64 incr",
            "f64",
            "$.value",
            block_error(
                "f64 incr",
                ServerOps::scope(&db, |ops| {
                    ops.incr(r.small(), -1.0);
                    ops.incr(r.value(), 1.5e308);
                })
                .await,
            ),
        ),
        (
            "atomic f32 decr",
            "f32",
            "$.small",
            block_error(
                "atomic f32 decr",
                m.atomic(&db, |p| {
                    p.value().incr(-1.0);
                    p.small().decr(-1.0e38);
                })
                .await,
            ),
        ),
        (
            "atomic f64 incr",
            "f64",
            "$.value",
            block_error(
                "atomic f64 incr",
                m.atomic(&db, |p| {
                    p.small().incr(-1.0);
                    p.value().incr(f64::MAX);
                })
                .await,
            ),
        ),
    ];
    for (what, ty, path, (op, source)) in outcomes {
        assert_eq!(op, 1, "{what}: the failing operation");
        match source {
            Error::Overflow {
                key: k,
                path: p,
                kind,
            } => {
                assert_eq!(k, key, "{what}");
                assert_eq!(p, path, "{what}");
                assert_eq!(kind, ty, "{what}");
            }
            other => panic!("{what}: expected Overflow, got {other:?}"),
        }
    }
    assert_eq!(
        snapshot(&mut raw, &keys).await,
        before,
        "the document changed"
    );
    assert_eq!(m, local, "the local model changed");
    // Within range the same operations run.
    let small = ServerOps::scope(&db, |ops| ops.incr(r.small(), -1.0e38))
        .await
        .unwrap()
        .unwrap();
    assert!((small - 2.0e38).abs() < 1.0e32, "{small}");
}

/// Nested branches, taken and skipped, with operations after them: the program skips
/// exactly the branch not taken, at every depth, and numbers every result.
#[tokio::test]
async fn nested_branches_skip_exactly_the_branch_not_taken() {
    let db = db().await;
    let mut raw = raw().await;
    let d = doc("nest");
    d.save(&db).await.expect("save");
    let r = Doc::server_ref_for("nest");
    let (outer, inner_yes, inner_no, after) = ServerOps::scope(&db, |ops| {
        let mut inner_yes = None;
        let mut inner_no = None;
        let outer = ops
            .when(r.n().gt(5))
            .then(|ops| {
                ops.incr(r.n(), 1);
                inner_yes = Some(
                    ops.when(r.name().eq("nobody"))
                        .then(|ops| {
                            ops.set(r.name(), "wrong".to_string());
                        })
                        .otherwise(|ops| {
                            ops.set(r.name(), "then-else".to_string());
                            ops.incr(r.small(), 1);
                        }),
                );
            })
            .otherwise(|ops| {
                inner_no = Some(
                    ops.when(r.flag().eq(false))
                        .then(|ops| {
                            ops.set(r.name(), "else-then".to_string());
                        })
                        .out(),
                );
            });
        let after = ops.incr(r.inner().zip(), 5);
        (
            outer,
            inner_yes.expect("built"),
            inner_no.expect("built"),
            after,
        )
    })
    .await
    .expect("block");
    assert_eq!(outer, Some(true));
    assert_eq!(
        inner_yes,
        Some(false),
        "the inner condition of the branch taken"
    );
    assert_eq!(inner_no, None, "the condition inside the skipped branch");
    assert_eq!(after, Some(75005), "the operation after the branches");
    let stored = stored(&mut raw, &db.key(&Doc::key_of("nest"))).await;
    assert_eq!(stored["n"], 11);
    assert_eq!(stored["name"], "then-else");
    assert_eq!(stored["small"], 101);
    assert_eq!(stored["inner"]["zip"], 75005);
}

// One vocabulary: every operation of an atomic block in a ServerOps block, and every
// operation of a ServerOps block in an atomic block.

#[tokio::test]
async fn a_block_has_every_operation_of_an_atomic_block() {
    let db = db().await;
    let mut raw = raw().await;
    doc("a").save(&db).await.unwrap();
    doc("b").save(&db).await.unwrap();
    let (ra, rb) = (Doc::server_ref_for("a"), Doc::server_ref_for("b"));
    let (scalars, lists, dicts) = ServerOps::scope(&db, |ops| {
        (
            (
                ops.decr(ra.n(), 3),
                ops.toggle(ra.flag()),
                ops.append(ra.name(), "!"),
            ),
            (
                ops.append(ra.items(), "d"),
                ops.extend(ra.nums(), [6, 7]),
                ops.insert(ra.items(), 0, "first"),
                ops.pop(ra.nums()),
                ops.pop_at(ra.nums(), 0),
                ops.clear(rb.items()),
            ),
            (
                ops.insert(ra.prefs(), "k\"'", "v"),
                ops.remove(ra.prefs(), "theme"),
                ops.remove(ra.prefs(), "absent"),
                ops.update(ra.counts(), [("y", 2), ("x", 5)]),
                ops.clear(rb.prefs()),
            ),
        )
    })
    .await
    .unwrap();
    assert_eq!(
        scalars,
        (Some(7), Some(true), Some("ann!".to_string())),
        "decr, toggle, append to a string"
    );
    assert_eq!(
        lists,
        (Some(4), Some(7), Some(5), Some(7), Some(1), Some(())),
        "append, extend, insert, pop, pop_at, clear of a list"
    );
    assert_eq!(
        dicts,
        (
            Some(()),
            Some(Some("dark".to_string())),
            Some(None),
            Some(2),
            Some(())
        ),
        "insert, remove (present and absent), update, clear of a dict"
    );
    let a = stored(&mut raw, &db.key(&Doc::key_of("a"))).await;
    assert_eq!(a["n"], json!(7));
    assert_eq!(a["flag"], json!(true));
    assert_eq!(a["name"], json!("ann!"));
    assert_eq!(a["items"], json!(["first", "a", "b", "c", "d"]));
    assert_eq!(a["nums"], json!([2, 3, 4, 5, 6]));
    assert_eq!(a["prefs"], json!({"k\"'": "v"}));
    assert_eq!(a["counts"], json!({"x": 5, "y": 2}));
    let b = stored(&mut raw, &db.key(&Doc::key_of("b"))).await;
    assert_eq!(b["items"], json!([]));
    assert_eq!(b["prefs"], json!({}));
    assert_eq!(b["name"], json!("ann"), "b's other fields are untouched");
}

#[tokio::test]
async fn appends_count_the_list_as_the_block_left_it_and_sums_stay_exact() {
    let db = db().await;
    let mut raw = raw().await;
    let mut a = doc("a");
    a.n = 999_999_999_999_999;
    a.small = -99;
    a.save(&db).await.unwrap();
    let mut b = doc("b");
    b.items.clear();
    b.n = -99_999_999_999_999;
    b.save(&db).await.unwrap();
    let (ra, rb) = (Doc::server_ref_for("a"), Doc::server_ref_for("b"));
    let out = ServerOps::scope(&db, |ops| {
        (
            (
                ops.append(rb.items(), "only"),
                ops.insert(ra.items(), 0, "x"),
                ops.append(ra.items(), "y"),
                ops.append(ra.items(), "z"),
            ),
            (
                ops.extend(ra.nums(), [6]),
                ops.pop(ra.nums()),
                ops.append(ra.nums(), 9),
            ),
            (
                ops.incr(ra.n(), 1),
                ops.decr(rb.n(), 1),
                ops.incr(ra.small(), -29),
            ),
        )
    })
    .await
    .unwrap();
    assert_eq!(
        out,
        (
            (Some(1), Some(4), Some(5), Some(6)),
            (Some(6), Some(6), Some(6)),
            (
                Some(1_000_000_000_000_000),
                Some(-100_000_000_000_000),
                Some(-128)
            ),
        )
    );
    let a = stored(&mut raw, &db.key(&Doc::key_of("a"))).await;
    assert_eq!(a["items"], json!(["x", "a", "b", "c", "y", "z"]));
    assert_eq!(a["nums"], json!([1, 2, 3, 4, 5, 9]));
    assert_eq!(a["n"], json!(1_000_000_000_000_000_i64));
    let b = stored(&mut raw, &db.key(&Doc::key_of("b"))).await;
    assert_eq!(b["items"], json!(["only"]));
    assert_eq!(b["n"], json!(-100_000_000_000_000_i64));
    // One past the small type's end, in doubles too: refused.
    let refused = ServerOps::scope(&db, |ops| {
        ops.incr(ra.small(), -1);
    })
    .await;
    assert!(
        matches!(refused, Err(Error::Block { op: 0, ref source }) if matches!(**source, Error::Overflow { .. })),
        "{refused:?}"
    );
}

#[tokio::test]
async fn a_failing_atomic_block_operation_in_a_block_changes_nothing() {
    let db = db().await;
    let mut raw = raw().await;
    for id in ["a", "b"] {
        doc(id).save(&db).await.unwrap();
    }
    let (ra, missing) = (Doc::server_ref_for("a"), Doc::server_ref_for("missing"));
    // `fails_cleanly` adds two operations before these and one after.
    let cases: Vec<(&str, usize, Build<'_>, Check<'_>)> = vec![
        (
            "decr beyond i8::MAX",
            2,
            Box::new(|ops| {
                ops.decr(ra.small(), -100);
            }),
            Box::new(|e| matches!(e, Error::Overflow { kind, .. } if *kind == "i8")),
        ),
        (
            "pop of a list the block emptied",
            3,
            Box::new(|ops| {
                ops.clear(ra.nums());
                ops.pop(ra.nums());
            }),
            Box::new(|e| matches!(e, Error::IndexOutOfRange { .. })),
        ),
        (
            "toggle in a missing document",
            2,
            Box::new(|ops| {
                ops.toggle(missing.flag());
            }),
            Box::new(|e| matches!(e, Error::NotFound { .. })),
        ),
        (
            "append to a string in a missing document",
            2,
            Box::new(|ops| {
                ops.append(missing.name(), "x");
            }),
            Box::new(|e| matches!(e, Error::NotFound { .. })),
        ),
        (
            "extend a list in a missing document after an update",
            3,
            Box::new(|ops| {
                ops.update(ra.counts(), [("z", 1)]);
                ops.extend(missing.nums(), [1]);
            }),
            Box::new(|e| matches!(e, Error::NotFound { .. })),
        ),
        (
            "remove from a dict after an insert, then pop_at outside",
            4,
            Box::new(|ops| {
                ops.insert(ra.prefs(), "new", "v");
                ops.remove(ra.prefs(), "theme");
                ops.pop_at(ra.items(), 10);
            }),
            Box::new(|e| matches!(e, Error::IndexOutOfRange { .. })),
        ),
    ];
    for (what, op, failing, check) in cases {
        fails_cleanly(&db, &mut raw, what, op, failing, check).await;
    }
}

#[tokio::test]
async fn an_atomic_block_has_every_operation_of_a_block() {
    let db = db().await;
    let mut raw = raw().await;
    let mut a = doc("pipe-ops");
    a.save(&db).await.unwrap();
    let (sum, joined, len, moved, held, (assigned, swapped, copied)) = a
        .atomic(&db, |p| {
            (
                p.f().incr_by_field(p.n()),
                p.name().concat([p.inner().city(), p.name()], "-"),
                p.items().append_from(p.items().slice(0..1)),
                p.items().at(0).move_item(p.items()),
                p.when(p.n().gt(5))
                    .then(|_| {
                        p.n().incr(1);
                    })
                    .otherwise(|_| {
                        p.n().incr(100);
                    }),
                (
                    p.name().assign(p.prefs().entry("theme")),
                    p.inner().city().swap(p.prefs().entry("theme")),
                    p.copy_model("pipe-copy"),
                ),
            )
        })
        .await
        .unwrap();
    assert_eq!(sum, Some(11.5), "incr_by_field");
    assert_eq!(
        joined.as_deref(),
        Some("Paris-ann"),
        "concat into the string"
    );
    assert_eq!(len, Some(4), "append_from");
    assert_eq!(moved.flatten().as_deref(), Some("a"), "move_item");
    assert_eq!(held, Some(true), "when took the `then` branch");
    assert_eq!((assigned, swapped, copied), (Some(()), Some(()), Some(())));

    let expected = json!({
        "id": "pipe-ops",
        "n": 11,
        "small": 100,
        "f": 11.5,
        "name": "Paris-ann",
        "flag": false,
        "items": ["b", "c", "a", "a"],
        "nums": [1, 2, 3, 4, 5],
        "prefs": {"theme": "Paris"},
        "counts": {"x": 1},
        "inner": {"city": "Paris-ann", "zip": 75000},
        "maybe": null,
    });
    assert_eq!(stored(&mut raw, &db.key(&a.key())).await, expected);
    assert_eq!(
        serde_json::to_value(&a).unwrap(),
        expected,
        "the local model holds the server's values"
    );
    let mut copy = expected.clone();
    copy["id"] = json!("pipe-copy");
    assert_eq!(
        stored(&mut raw, &db.key(&Doc::key_of("pipe-copy"))).await,
        copy,
        "copy_model wrote the whole model under the new id"
    );

    // A failing block operation leaves the local model and the stored one as they were.
    let local = a.clone();
    let keys = [db.key(&a.key()), db.key(&Doc::key_of("pipe-copy"))];
    let before = snapshot(&mut raw, &keys).await;
    let failed = a
        .atomic(&db, |p| {
            p.copy_model("pipe-copy");
            p.n().set(100);
            p.small().incr_by_field(p.n())
        })
        .await;
    assert!(
        matches!(&failed, Err(Error::Block { op: 2, source }) if matches!(**source, Error::Overflow { .. })),
        "{failed:?}"
    );
    assert_eq!(a, local);
    assert_eq!(snapshot(&mut raw, &keys).await, before);
}

/// A 50,000-element slice of a 110,000-element integer list moves whole, in place and
/// appended (the element type check once cost a search to the end of the list per element:
/// 334 s of server time).
#[tokio::test]
async fn a_fifty_thousand_element_integer_slice_moves_whole() {
    let db = db().await;
    let mut raw = raw().await;
    let (mut a, mut b) = (doc("big-a"), doc("big-b"));
    a.nums = (0..110_000).collect();
    b.nums = (0..110_000).map(|x| -x).collect();
    a.save(&db).await.expect("save");
    b.save(&db).await.expect("save");
    let (ra, rb) = (a.server_ref(), b.server_ref());
    let appended = ServerOps::scope(&db, |ops| {
        ops.assign(rb.nums().slice(30_000..80_000), ra.nums().slice(10..20));
        ops.append_from(rb.nums(), ra.nums().slice(..50_000))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let mut want_a = a.nums.clone();
    want_a.splice(10..20, b.nums[30_000..80_000].iter().copied());
    let mut want_b = b.nums.clone();
    want_b.extend(&want_a[..50_000]);
    assert_eq!(appended, Some(want_b.len()));
    assert_eq!(
        stored(&mut raw, &db.key(&a.key())).await["nums"],
        json!(want_a)
    );
    assert_eq!(
        stored(&mut raw, &db.key(&b.key())).await["nums"],
        json!(want_b)
    );
}

/// Integers at both ends of i64 (beyond 2^53, where a double is not exact) keep every digit
/// when a slice of them moves: whole runs, extended slices, and appends.
#[tokio::test]
async fn integers_at_the_ends_of_i64_stay_exact_in_a_moved_slice() {
    let db = db().await;
    let mut raw = raw().await;
    let edges = vec![
        i64::MIN,
        i64::MAX,
        i64::MIN + 1,
        i64::MAX - 1,
        -(1 << 53) - 1,
        (1 << 53) + 1,
        0,
        -1,
    ];
    let (mut a, mut b) = (doc("edge-a"), doc("edge-b"));
    a.nums = edges.clone();
    b.nums = vec![7; 8];
    a.save(&db).await.expect("save");
    b.save(&db).await.expect("save");
    let (ra, rb) = (a.server_ref(), b.server_ref());
    ServerOps::scope(&db, |ops| {
        ops.assign(ra.nums().slice(1..7), rb.nums().slice(0..1));
        ops.assign(
            ra.nums().slice((None, None, Some(2))),
            rb.nums().slice((Some(-4), None, None)),
        );
        ops.append_from(rb.nums(), ra.nums().slice((Some(-1), None, Some(-1))));
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let mut want = edges[1..7].to_vec();
    want.extend(&b.nums[1..4]);
    want.extend([edges[0], edges[2], edges[4], edges[6]]);
    want.extend(edges.iter().rev());
    let text: String = redis::cmd("JSON.GET")
        .arg(db.key(&b.key()))
        .arg("$.nums")
        .query_async(&mut raw)
        .await
        .expect("JSON.GET");
    let exact = format!(
        "[[{}]]",
        want.iter()
            .map(i64::to_string)
            .collect::<Vec<_>>()
            .join(",")
    );
    assert_eq!(text, exact);
}

/// A concat of more sources than Lua can unpack at once (8,000) still runs.
#[tokio::test]
async fn a_concat_of_ten_thousand_sources_runs() {
    let db = db().await;
    let mut raw = raw().await;
    let d = doc("many-sources");
    d.save(&db).await.expect("save");
    let r = d.server_ref();
    let joined = ServerOps::scope(&db, |ops| {
        ops.concat(std::iter::repeat_n(r.inner().city(), 10_000), r.name(), ",")
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let want = vec!["Paris"; 10_000].join(",");
    assert_eq!(joined.as_deref(), Some(want.as_str()));
    assert_eq!(
        stored(&mut raw, &db.key(&d.key())).await["name"],
        json!(want)
    );
}

/// Many removals, re-insertions and appends in one block: each costs what it touches (a
/// removal once searched the whole key list, an append copied the whole list), and the
/// stored dict and list equal Python's result, every key once.
#[tokio::test]
async fn many_removals_and_appends_in_one_block_store_each_key_once() {
    let db = db().await;
    let mut raw = raw().await;
    let mut d = doc("churn");
    d.counts = (0..20_000).map(|i| (format!("k{i}"), i)).collect();
    d.nums = (0..20_000).collect();
    d.save(&db).await.expect("save");
    let (removed, missing, size) = d
        .atomic(&db, |r| {
            let mut removed = Vec::new();
            for i in (0..20_000).step_by(2) {
                removed.push(r.counts().remove(format!("k{i}")));
            }
            let missing = r.counts().remove("k0");
            r.counts().insert("k0", -1);
            let size = r.counts().update([("k2", -2), ("new", 5)]);
            r.counts().remove("k2");
            for i in 0..2_000 {
                r.nums().append(-i);
            }
            (removed, missing, size)
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(removed.len(), 10_000);
    assert!(
        removed
            .iter()
            .enumerate()
            .all(|(i, v)| *v == Some(Some(2 * i as i64)))
    );
    assert_eq!(missing, Some(None));
    assert_eq!(size, Some(10_003));
    let mut want: BTreeMap<String, i64> = (1..20_000)
        .step_by(2)
        .map(|i| (format!("k{i}"), i))
        .collect();
    want.insert("k0".into(), -1);
    want.insert("new".into(), 5);
    let text: String = redis::cmd("JSON.GET")
        .arg(db.key(&d.key()))
        .arg("$.counts")
        .query_async(&mut raw)
        .await
        .expect("JSON.GET");
    assert_eq!(text.matches("\"k0\":").count(), 1, "each key once");
    let stored_doc = stored(&mut raw, &db.key(&d.key())).await;
    assert_eq!(stored_doc["counts"], json!(want));
    let mut nums: Vec<i64> = (0..20_000).collect();
    nums.extend((0..2_000).map(|i| -i));
    assert_eq!(stored_doc["nums"], json!(nums));
    assert_eq!(d.counts, want, "the local copy mirrors the server");
    assert_eq!(d.nums, nums);
}

/// An integer list holding something else (a float, an exponent, a string, written by
/// another client) fails a slice move with `TypeMismatch` naming the element, and nothing is
/// written, wherever the element sits in a long run.
#[tokio::test]
async fn a_non_integer_element_in_a_moved_integer_slice_is_refused() {
    let db = db().await;
    let mut raw = raw().await;
    let (a, b) = (doc("odd-a"), doc("odd-b"));
    a.save(&db).await.expect("save");
    b.save(&db).await.expect("save");
    let keys = [db.key(&a.key()), db.key(&b.key())];
    for (odd, found) in [
        ("2.5", "number"),
        ("1e3", "number"),
        ("\"7\"", "string"),
        ("true", "boolean"),
    ] {
        let mut list: Vec<String> = (0..3_000).map(|i| i.to_string()).collect();
        list[2_500] = odd.to_string();
        let _: () = redis::cmd("JSON.SET")
            .arg(&keys[0])
            .arg("$.nums")
            .arg(format!("[{}]", list.join(",")))
            .query_async(&mut raw)
            .await
            .expect("JSON.SET");
        let before = snapshot(&mut raw, &keys).await;
        let (ra, rb) = (a.server_ref(), b.server_ref());
        let got = ServerOps::scope(&db, |ops| {
            ops.append_from(rb.nums(), ra.nums().slice(100..2_900));
        })
        .await;
        match got {
            Err(Error::Block { op: 0, source }) => match *source {
                Error::TypeMismatch { path, found: f, .. } => {
                    assert_eq!(
                        (path.as_str(), f.as_str()),
                        ("$.nums[2500]", found),
                        "{odd}"
                    );
                }
                other => panic!("{odd}: {other:?}"),
            },
            other => panic!("{odd}: expected a failed block, got {other:?}"),
        }
        assert_eq!(snapshot(&mut raw, &keys).await, before, "{odd}");
    }
}

#[derive(AtomicModel, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[rapyer(hash_tag = "ops")]
struct Nest {
    #[rapyer(key)]
    id: String,
    items: Vec<serde_json::Value>,
    map: HashMap<String, serde_json::Value>,
}

/// A value that would nest the document deeper than RedisJSON or serde_json parse (127
/// levels) is refused by every block operation that writes one, before anything is sent
/// (it was an untyped script error, and 126 levels under `$.items` were stored, after which
/// the document no longer loaded); 125 there is written and reads back.
#[tokio::test]
async fn values_nested_too_deep_are_refused_by_blocks_before_sending() {
    let db = db().await;
    let mut raw = raw().await;
    let mut n = Nest {
        id: "deep".into(),
        items: vec![json!(1)],
        map: HashMap::new(),
    };
    n.save(&db).await.expect("save");
    let keys = [db.key(&n.key())];
    let before = snapshot(&mut raw, &keys).await;
    let r = n.server_ref();
    let cases: Vec<(&str, Build)> = vec![
        (
            "set an element",
            Box::new(|ops| {
                ops.set(r.items().at(0), common::nested(126));
            }),
        ),
        (
            "set a slice",
            Box::new(|ops| {
                ops.set(r.items().slice(0..0), vec![common::nested(126)]);
            }),
        ),
        (
            "set a dict entry",
            Box::new(|ops| {
                ops.set(r.map().entry("k"), common::nested(126));
            }),
        ),
        (
            "set the list",
            Box::new(|ops| {
                ops.set(r.items(), vec![common::nested(126)]);
            }),
        ),
    ];
    for (what, build) in cases {
        match ServerOps::scope(&db, |ops| build(ops)).await {
            Err(Error::Block { op: 0, source }) => {
                assert!(
                    matches!(*source, Error::InvalidOp { .. }),
                    "{what}: {source:?}"
                );
            }
            other => panic!("{what}: expected InvalidOp, got {other:?}"),
        }
    }
    let piped = n
        .atomic(&db, |p| {
            p.items().append(json!(2));
            p.items().extend([common::nested(126)]);
        })
        .await;
    assert!(
        matches!(&piped, Err(Error::Block { op: 1, source }) if matches!(**source, Error::InvalidOp { .. })),
        "{piped:?}"
    );
    for (what, piped) in [
        (
            "insert",
            n.atomic(&db, |p| {
                p.items().insert(0, common::nested(126));
            })
            .await,
        ),
        (
            "dict insert",
            n.atomic(&db, |p| {
                p.map().insert("k", common::nested(126));
            })
            .await,
        ),
        (
            "dict update",
            n.atomic(&db, |p| {
                p.map().update([("k", common::nested(126))]);
            })
            .await,
        ),
    ] {
        assert!(
            matches!(&piped, Err(Error::Block { op: 0, source }) if matches!(**source, Error::InvalidOp { .. })),
            "{what}: {piped:?}"
        );
    }
    assert_eq!(snapshot(&mut raw, &keys).await, before, "nothing written");
    n.atomic(&db, |p| {
        p.items().append(common::nested(125));
        p.map().insert("k", common::nested(125));
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(Nest::get(&db, "deep").await.expect("get"), n);
}

/// A field handle and a block report the same failure in the same words: both scripts reply
/// with one typed-failure shape (`lua/lib/failure.lua`), read by one decoder.
#[tokio::test]
async fn field_handles_and_blocks_word_a_failure_alike() {
    let db = db().await;
    let mut raw = raw().await;
    let mut d = doc("alike");
    d.save(&db).await.expect("save");
    let r = Doc::server_ref_for("alike");
    let key = db.key(&Doc::key_of("alike"));
    let block = |e: Error| match e {
        Error::Block { source, .. } => *source,
        other => panic!("expected Block, got {other:?}"),
    };

    // The field holds a string where an integer is wanted.
    redis::cmd("JSON.SET")
        .arg(&key)
        .arg("$.n")
        .arg("\"ten\"")
        .query_async::<()>(&mut raw)
        .await
        .expect("JSON.SET");
    let from_field = d
        .n()
        .incr(&db, 1)
        .await
        .expect_err("a string is no integer");
    let from_block = block(
        ServerOps::scope(&db, |ops| {
            ops.incr(r.n(), 1);
        })
        .await
        .expect_err("a string is no integer"),
    );
    assert!(
        matches!(&from_field, Error::TypeMismatch { path, expected, found, .. }
            if path == "$.n" && expected == "an integer" && found == "string"),
        "{from_field:?}"
    );
    assert_eq!(from_field.to_string(), from_block.to_string());

    // An index outside the list.
    let from_field = d
        .items()
        .set(&db, 10, "x")
        .await
        .expect_err("no element 10");
    let from_block = block(
        ServerOps::scope(&db, |ops| {
            ops.set(r.items().at(10), "x");
        })
        .await
        .expect_err("no element 10"),
    );
    assert!(
        matches!(
            &from_field,
            Error::IndexOutOfRange {
                index: 10,
                len: 3,
                ..
            }
        ),
        "{from_field:?}"
    );
    assert_eq!(from_field.to_string(), from_block.to_string());

    // A key of another Redis type.
    redis::cmd("SET")
        .arg(&key)
        .arg("plain")
        .query_async::<()>(&mut raw)
        .await
        .expect("SET");
    let from_field = d.flag().toggle(&db).await.expect_err("not a document");
    let from_block = block(
        ServerOps::scope(&db, |ops| {
            ops.toggle(r.flag());
        })
        .await
        .expect_err("not a document"),
    );
    assert!(
        matches!(&from_field, Error::TypeMismatch { path, found, .. } if path == "$" && found == "string"),
        "{from_field:?}"
    );
    assert_eq!(from_field.to_string(), from_block.to_string());

    // No document at all.
    let mut gone = doc("alike-gone");
    let r_gone = Doc::server_ref_for("alike-gone");
    let from_field = gone.n().incr(&db, 1).await.expect_err("no document");
    let from_block = block(
        ServerOps::scope(&db, |ops| {
            ops.incr(r_gone.n(), 1);
        })
        .await
        .expect_err("no document"),
    );
    assert!(
        matches!(&from_field, Error::NotFound { .. }),
        "{from_field:?}"
    );
    assert_eq!(from_field.to_string(), from_block.to_string());
}
