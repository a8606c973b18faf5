//! ServerOps blocks and model pipelines against the real server: every operation, Python's
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
    println!("{results:?}");
    let sa = stored(&mut raw, &db.key(&a.key())).await;
    let sb = stored(&mut raw, &db.key(&b.key())).await;
    println!("{sa}\n{sb}");
    assert_eq!((sa["n"].clone(), sb["n"].clone()), (json!(10), json!(15)));
}
