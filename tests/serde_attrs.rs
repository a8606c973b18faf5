//! serde's attributes honoured exactly, against the real server: every `rename_all` rule
//! names fields as serde does (ASCII and non-ASCII names), handles and queries reach them;
//! an atomic block writes back only the fields its block changed; fields serde skips when
//! empty (`skip_serializing_if`) work while absent; fields serde (de)serializes `with`
//! functions of its own keep working through `save`/`get`; and a model declared inside a
//! `macro_rules!` works like any other.
//!
//! Its models hold date-times (serde's own `with` forms among them), so these tests need the
//! `chrono` feature.

// Field names in every case style are what the rename tests are about.
#![allow(non_snake_case)]
#![cfg(feature = "chrono")]

mod common;

use std::collections::BTreeMap;

use chrono::{DateTime, TimeZone, Utc};
use rapyer::Error;
use rapyer::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::json;

use common::{db, raw, stored};

/// One model per `rename_all` rule, all fields indexed integers, so the schema lists every
/// field's JSON name. Declared through `macro_rules!` with `$field:ident` names, which is
/// also the hygiene case of a model whose field names come from a macro.
macro_rules! rule_model {
    ($name:ident, $rule:literal, $prefix:literal, { $($field:ident),* $(,)? }) => {
        #[derive(AtomicModel, Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
        #[serde(rename_all = $rule)]
        #[rapyer(prefix = $prefix)]
        #[allow(non_snake_case)] // the names are the point
        struct $name {
            #[rapyer(key)]
            id: String,
            $(
                #[rapyer(index)]
                $field: i64,
            )*
        }

        impl $name {
            /// A model whose fields hold 1, 2, 3, … in declaration order.
            fn numbered(id: &str) -> $name {
                let mut m = $name { id: id.into(), ..$name::default() };
                let mut n = 0;
                $(
                    n += 1;
                    m.$field = n;
                )*
                m
            }

            /// Adds 10 to every field through its handle.
            async fn bump_each(&mut self, db: &Db) {
                $(
                    self.$field().incr(db, 10).await.expect(stringify!($field));
                )*
            }

            /// The ids found by an equality query on each field with its local value.
            async fn find_by_each(&self, db: &Db) -> Vec<Vec<String>> {
                let f = $name::fields();
                let mut out = Vec::new();
                $(
                    let found = $name::find(db, f.$field.eq(self.$field))
                        .all()
                        .await
                        .expect(stringify!($field));
                    out.push(found.into_iter().map(|m| m.id).collect());
                )*
                out
            }
        }
    };
}

rule_model!(Lower, "lowercase", "RuleLower", {
    user_name, ärger_wert, x_ärger, x2_y, r#type, _lead, trail_, a__b, HTTPServer
});
rule_model!(Upper, "UPPERCASE", "RuleUpper", {
    user_name, ärger_wert, x_ärger, x2_y, r#type, _lead, trail_, a__b, HTTPServer
});
rule_model!(Pascal, "PascalCase", "RulePascal", {
    user_name, ärger_wert, x_ärger, x2_y, r#type, _lead, trail_, a__b, HTTPServer
});
// serde's camelCase lower-cases the first *byte* of the PascalCase name, so it rejects a
// field that starts with a non-ASCII letter; `x_ärger` covers non-ASCII after a `_`.
rule_model!(Camel, "camelCase", "RuleCamel", {
    user_name, x_ärger, x2_y, r#type, _lead, trail_, a__b, HTTPServer
});
rule_model!(Snake, "snake_case", "RuleSnake", {
    user_name, ärger_wert, x_ärger, x2_y, r#type, _lead, trail_, a__b, HTTPServer
});
rule_model!(Screaming, "SCREAMING_SNAKE_CASE", "RuleScreaming", {
    user_name, ärger_wert, x_ärger, x2_y, r#type, _lead, trail_, a__b, HTTPServer
});
rule_model!(Kebab, "kebab-case", "RuleKebab", {
    user_name, ärger_wert, x_ärger, x2_y, r#type, _lead, trail_, a__b, HTTPServer
});
rule_model!(ScreamingKebab, "SCREAMING-KEBAB-CASE", "RuleScreamingKebab", {
    user_name, ärger_wert, x_ärger, x2_y, r#type, _lead, trail_, a__b, HTTPServer
});

/// `rename_all(serialize = …, deserialize = …)`: the document holds the serialize names.
#[derive(AtomicModel, Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
#[serde(rename_all(
    serialize = "SCREAMING-KEBAB-CASE",
    deserialize = "SCREAMING-KEBAB-CASE"
))]
#[rapyer(prefix = "RuleSplit")]
struct Split {
    #[rapyer(key)]
    id: String,
    #[rapyer(index)]
    user_name: i64,
    #[serde(rename(serialize = "Other", deserialize = "Other"), alias = "old")]
    #[rapyer(index)]
    other_name: i64,
}

/// The JSON names the derive gives the fields (from the index schema, which lists every
/// field here, and the key field's name) and the keys serde writes.
fn names<M: AtomicModel + Default>(sample: M) -> (Vec<String>, Vec<String>) {
    let mut derived: Vec<String> = rapyer::query::schema::<M>()
        .into_iter()
        .map(|f| f.name)
        .collect();
    let (key, _) = M::id_member("x").expect("a String key takes any id");
    derived.push(key.to_string());
    let serde_json::Value::Object(map) = serde_json::to_value(&sample).expect("to_value") else {
        panic!("a model serializes as an object");
    };
    let mut serde: Vec<String> = map.keys().cloned().collect();
    derived.sort();
    serde.sort();
    (derived, serde)
}

#[test]
fn every_rename_all_rule_names_fields_exactly_as_serde_does() {
    let cases = [
        ("lowercase", names(Lower::default())),
        ("UPPERCASE", names(Upper::default())),
        ("PascalCase", names(Pascal::default())),
        ("camelCase", names(Camel::default())),
        ("snake_case", names(Snake::default())),
        ("SCREAMING_SNAKE_CASE", names(Screaming::default())),
        ("kebab-case", names(Kebab::default())),
        ("SCREAMING-KEBAB-CASE", names(ScreamingKebab::default())),
        (
            "rename_all(serialize, deserialize)",
            names(Split::default()),
        ),
    ];
    for (rule, (derived, serde)) in cases {
        assert_eq!(derived, serde, "{rule}");
    }
    // The cases the old rules got wrong, spelled out.
    assert!(names(Lower::default()).0.contains(&"user_name".to_string()));
    assert!(
        names(Lower::default())
            .0
            .contains(&"HTTPServer".to_string())
    );
    assert!(
        names(Pascal::default())
            .0
            .contains(&"ärgerWert".to_string())
    );
    assert!(names(Pascal::default()).0.contains(&"Xärger".to_string()));
    assert!(
        names(Upper::default())
            .0
            .contains(&"äRGER_WERT".to_string())
    );
}

/// Saves a numbered model, bumps every field through its handle, compares the document
/// with serde's form of the local model, and finds the model by each field.
macro_rules! check_rule {
    ($db:expr, $raw:expr, $ty:ident) => {{
        let db = $db;
        db.init::<$ty>().await.expect("init");
        let mut m = $ty::numbered("m1");
        m.save(db).await.expect("save");
        $ty::numbered("other").save(db).await.expect("save other");
        m.bump_each(db).await;
        assert_eq!(
            stored($raw, &db.key(&m.key())).await,
            serde_json::to_value(&m).expect("to_value"),
            "{}: the handles wrote the fields' serde paths",
            stringify!($ty)
        );
        assert_eq!($ty::get(db, "m1").await.expect("get"), m);
        for found in m.find_by_each(db).await {
            assert_eq!(found, vec!["m1".to_string()], "{}", stringify!($ty));
        }
    }};
}

#[tokio::test]
async fn handles_and_queries_reach_the_fields_every_rename_rule_names() {
    let db = db().await;
    let mut raw = raw().await;
    check_rule!(&db, &mut raw, Lower);
    check_rule!(&db, &mut raw, Upper);
    check_rule!(&db, &mut raw, Pascal);
    check_rule!(&db, &mut raw, Camel);
    check_rule!(&db, &mut raw, Snake);
    check_rule!(&db, &mut raw, Screaming);
    check_rule!(&db, &mut raw, Kebab);
    check_rule!(&db, &mut raw, ScreamingKebab);
}

/// A model whose field names *and* types come in through `macro_rules!` fragments
/// (`$name:ident`, `$ty:ty`: types arrive wrapped in invisible groups).
macro_rules! declare_model {
    ($(#[$attr:meta])* $vis:vis $model:ident, key $key:ident: $key_ty:ty,
     indexed { $($iname:ident: $ity:ty),* },
     text { $($tname:ident: $tty:ty),* },
     plain { $($(#[$fattr:meta])* $fvis:vis $name:ident: $ty:ty),* }) => {
        #[derive(AtomicModel, Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
        $(#[$attr])*
        $vis struct $model {
            #[rapyer(key)]
            $key: $key_ty,
            $(
                #[rapyer(index)]
                $iname: $ity,
            )*
            $(
                #[rapyer(index(text))]
                $tname: $tty,
            )*
            $($(#[$fattr])* $fvis $name: $ty,)*
        }
    };
}

declare_model!(#[rapyer(prefix = "FromMacro")] #[serde(rename_all = "camelCase")] pub(crate) FromMacro,
key id: String,
indexed { count: i64, label: String, at: DateTime<Utc>, inner: Inner },
text { about_me: String },
plain {
    nick: Option<String>,
    pub(crate) tags: Vec<String>,
    #[serde(rename = "the scores")] scores: BTreeMap<String, f64>,
    #[rapyer(value)] pair: (i64, String)
});

#[derive(AtomicModel, Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
struct Inner {
    #[rapyer(index)]
    depth: i64,
}

#[tokio::test]
async fn a_model_declared_by_a_macro_with_fragment_names_and_types_works_like_any_other() {
    let db = db().await;
    let mut raw = raw().await;
    db.init::<FromMacro>().await.expect("init");
    let at = Utc
        .with_ymd_and_hms(2024, 5, 6, 7, 8, 9)
        .single()
        .expect("a valid instant");
    let mut m = FromMacro {
        id: "m".into(),
        count: 1,
        label: "a".into(),
        at,
        ..FromMacro::default()
    };
    m.save(&db).await.expect("save");
    assert_eq!(m.count().incr(&db, 2).await.expect("incr"), 3);
    m.nick()
        .set(&db, Some("n".into()))
        .await
        .expect("option set");
    m.tags().append(&db, "t".to_string()).await.expect("append");
    m.scores().insert(&db, "s", 1.5).await.expect("insert");
    m.inner().depth().incr(&db, 4).await.expect("nested incr");
    m.pair().set(&db, (7, "x".into())).await.expect("value set");
    m.about_me()
        .set(&db, "quiet person")
        .await
        .expect("text set");
    let (label, depth) = m
        .atomic(&db, |p| (p.label().append("b"), p.inner().depth().incr(1)))
        .await
        .expect("atomic block");
    assert_eq!((label, depth), (Some("ab".to_string()), Some(5)));
    let key = db.key(&m.key());
    let doc = stored(&mut raw, &key).await;
    assert_eq!(doc["count"], json!(3));
    assert_eq!(doc["nick"], json!("n"));
    assert_eq!(doc["tags"], json!(["t"]));
    assert_eq!(doc["the scores"], json!({"s": 1.5}));
    assert_eq!(doc["pair"], json!([7, "x"]));
    assert_eq!(doc["inner"], json!({"depth": 5}));
    assert_eq!(doc["label"], json!("ab"));
    assert_eq!(FromMacro::get(&db, "m").await.expect("get"), m);
    let f = FromMacro::fields();
    for query in [
        f.count.eq(3),
        f.label.eq("ab"),
        f.at.between(at, at),
        f.inner.depth.eq(5),
        f.about_me.matches("quiet"),
    ] {
        let found = FromMacro::find(&db, query).all().await.expect("find");
        assert_eq!(found, vec![m.clone()]);
    }
}

/// Types passed as single tokens (`$ty:tt`): their spans are the caller's, not the macro's.
macro_rules! declare_tt_model {
    ($model:ident { $($name:ident: $ty:tt),* }) => {
        #[derive(AtomicModel, Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
        struct $model {
            #[rapyer(key)]
            id: String,
            $(
                #[rapyer(index)]
                $name: $ty,
            )*
        }
    };
}

declare_tt_model!(FromTokens {
    hits: i64,
    name: String,
    inner: Inner
});

#[tokio::test]
async fn a_model_whose_types_a_macro_passes_as_single_tokens_works_like_any_other() {
    let db = db().await;
    let mut raw = raw().await;
    db.init::<FromTokens>().await.expect("init");
    let mut m = FromTokens {
        id: "t".into(),
        hits: 1,
        name: "n".into(),
        inner: Inner { depth: 2 },
    };
    m.save(&db).await.expect("save");
    m.hits().incr(&db, 1).await.expect("incr");
    m.inner().depth().incr(&db, 1).await.expect("nested incr");
    let key = db.key(&m.key());
    assert_eq!(
        stored(&mut raw, &key).await,
        json!({"id": "t", "hits": 2, "name": "n", "inner": {"depth": 3}})
    );
    let f = FromTokens::fields();
    let found = FromTokens::find(&db, f.hits.eq(2) & f.inner.depth.eq(3) & f.name.eq("n"))
        .all()
        .await
        .expect("find");
    assert_eq!(found, vec![m]);
}

/// A nested model with a field serde skips.
#[derive(AtomicModel, Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
struct Place {
    city: String,
    zip: i64,
    #[serde(skip)]
    visits: u32,
}

#[derive(AtomicModel, Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
#[rapyer(prefix = "Cached")]
struct Cached {
    #[rapyer(key)]
    id: String,
    count: i64,
    untouched: i64,
    place: Place,
    #[serde(skip)]
    cache: Vec<String>,
    #[serde(skip_deserializing)]
    computed: i64,
}

fn cached(id: &str) -> Cached {
    Cached {
        id: id.into(),
        count: 1,
        untouched: 5,
        place: Place {
            city: "Oslo".into(),
            zip: 10,
            visits: 3,
        },
        cache: vec!["warm".into()],
        computed: 0,
    }
}

#[tokio::test]
async fn an_atomic_block_writes_back_only_the_fields_its_block_changed() {
    let db = db().await;
    let mut raw = raw().await;
    let mut m = cached("c");
    m.save(&db).await.expect("save");
    let key = db.key(&m.key());
    // Local-only state: skipped fields, and a field changed locally but not saved.
    m.computed = 42;
    m.untouched = 99;
    let (count, zip) = m
        .atomic(&db, |p| (p.count().incr(2), p.place().zip().incr(1)))
        .await
        .expect("atomic block");
    assert_eq!((count, zip), (Some(3), Some(11)));
    assert_eq!(m.count, 3);
    assert_eq!(m.place.zip, 11);
    assert_eq!(
        m.cache,
        vec!["warm".to_string()],
        "a skipped field was reset"
    );
    assert_eq!(m.place.visits, 3, "a nested skipped field was reset");
    assert_eq!(m.computed, 42, "a skip_deserializing field was reset");
    assert_eq!(
        m.untouched, 99,
        "a field the block did not change was overwritten"
    );
    assert_eq!(stored(&mut raw, &key).await["untouched"], json!(5));

    // Replacing a nested model or the whole model keeps the local-only fields too.
    m.atomic(&db, |p| {
        p.place().set(Place {
            city: "Rome".into(),
            zip: 1,
            visits: 0,
        })
    })
    .await
    .expect("nested set");
    assert_eq!((m.place.city.as_str(), m.place.zip), ("Rome", 1));
    assert_eq!(m.place.visits, 3, "a nested skipped field was reset by set");
    let mut other = cached("c");
    other.count = 50;
    other.cache = vec![];
    m.atomic(&db, |p| p.set(other.clone()))
        .await
        .expect("whole set");
    assert_eq!(m.count, 50);
    assert_eq!(m.untouched, 5, "the whole model came from the server");
    assert_eq!(
        m.cache,
        vec!["warm".to_string()],
        "set reset a skipped field"
    );
    assert_eq!(m.computed, 42, "set reset a skip_deserializing field");
    let mut expected = Cached::get(&db, "c").await.expect("get");
    expected.cache = m.cache.clone();
    expected.computed = 42;
    expected.place.visits = 3;
    assert_eq!(m, expected);
}

#[tokio::test]
async fn a_nested_handles_load_and_set_keep_the_fields_serde_skips() {
    let db = db().await;
    let mut raw = raw().await;
    let mut m = cached("h");
    m.save(&db).await.expect("save");
    let key = db.key(&m.key());
    m.place()
        .set(
            &db,
            Place {
                city: "Rome".into(),
                zip: 2,
                visits: 0,
            },
        )
        .await
        .expect("set");
    assert_eq!(
        stored(&mut raw, &key).await["place"],
        json!({"city": "Rome", "zip": 2})
    );
    assert_eq!(
        (m.place.city.as_str(), m.place.zip, m.place.visits),
        ("Rome", 2, 3)
    );
    m.place.zip = 0;
    m.place().load(&db).await.expect("load");
    assert_eq!(
        (m.place.city.as_str(), m.place.zip, m.place.visits),
        ("Rome", 2, 3)
    );
}

mod upper {
    //! A `serialize_with`/`deserialize_with` pair: stored upper-case, read back lower-case.
    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn ser<S: Serializer>(v: &str, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&v.to_uppercase())
    }

    pub(crate) fn de<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
        String::deserialize(d).map(|v| v.to_lowercase())
    }
}

#[derive(AtomicModel, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[rapyer(prefix = "Stamped")]
struct Stamped {
    #[rapyer(key)]
    id: String,
    #[rapyer(index)]
    count: i64,
    #[serde(with = "chrono::serde::ts_seconds")]
    created: DateTime<Utc>,
    #[serde(serialize_with = "upper::ser", deserialize_with = "upper::de")]
    shout: String,
    place: Place,
}

#[tokio::test]
async fn fields_serde_encodes_with_functions_of_their_own_keep_working_through_save_get_and_blocks()
{
    let db = db().await;
    let mut raw = raw().await;
    db.init::<Stamped>().await.expect("init");
    let created = Utc
        .with_ymd_and_hms(2024, 1, 2, 3, 4, 5)
        .single()
        .expect("instant");
    let mut m = Stamped {
        id: "s".into(),
        count: 1,
        created,
        shout: "hey".into(),
        place: Place::default(),
    };
    m.save(&db).await.expect("save");
    let key = db.key(&m.key());
    let doc = stored(&mut raw, &key).await;
    assert_eq!(doc["created"], json!(created.timestamp()));
    assert_eq!(doc["shout"], json!("HEY"));
    assert_eq!(Stamped::get(&db, "s").await.expect("get"), m);
    // Handles and atomic blocks on the other fields leave them as serde wrote them.
    m.count().incr(&db, 1).await.expect("incr");
    m.atomic(&db, |p| (p.count().incr(1), p.place().zip().incr(1)))
        .await
        .expect("atomic block");
    let ops_ref = Stamped::server_ref_for("s");
    ServerOps::scope(&db, |ops| ops.incr(ops_ref.count(), 1))
        .await
        .expect("block");
    m.count += 1;
    assert_eq!(Stamped::get(&db, "s").await.expect("get after ops"), m);
    let doc = stored(&mut raw, &key).await;
    assert_eq!(doc["created"], json!(created.timestamp()));
    assert_eq!(doc["shout"], json!("HEY"));
    let found = Stamped::find(&db, Stamped::fields().count.eq(4))
        .all()
        .await
        .expect("find");
    assert_eq!(found, vec![m]);
}

#[derive(AtomicModel, Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
#[rapyer(prefix = "Sparse")]
struct Sparse {
    #[rapyer(key)]
    id: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    nick: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    tags: Vec<String>,
    #[serde(skip_serializing_if = "is_zero", default)]
    hits: i64,
    #[serde(skip_serializing_if = "BTreeMap::is_empty", default)]
    scores: BTreeMap<String, i64>,
    #[serde(skip_serializing_if = "String::is_empty", default)]
    #[rapyer(index)]
    label: String,
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

/// The error of an operation on a field serde left out of the document.
fn assert_absent<T: std::fmt::Debug>(what: &str, outcome: rapyer::Result<T>, key: &str, at: &str) {
    let error = match outcome {
        Err(Error::Block { source, .. }) => *source,
        Err(other) => other,
        Ok(v) => panic!("{what}: expected an error on an absent field, got {v:?}"),
    };
    match error {
        Error::TypeMismatch {
            key: k,
            path,
            found,
            ..
        } => {
            assert_eq!(
                (k.as_str(), path.as_str(), found.as_str()),
                (key, at, "nothing"),
                "{what}"
            );
        }
        other => panic!("{what}: expected TypeMismatch, got {other:?}"),
    }
}

#[tokio::test]
async fn fields_serde_skips_when_empty_read_as_skipped_and_other_ops_on_them_while_absent_are_typed_errors()
 {
    let db = db().await;
    let mut raw = raw().await;
    db.init::<Sparse>().await.expect("init");
    let mut m = Sparse {
        id: "p".into(),
        ..Sparse::default()
    };
    m.save(&db).await.expect("save");
    let key = db.key(&m.key());
    let before = stored(&mut raw, &key).await;
    assert_eq!(
        before,
        json!({"id": "p"}),
        "serde's form: every skipped field absent"
    );
    // Absent reads as the value serde skipped.
    assert_eq!(Sparse::get(&db, "p").await.expect("get"), m);
    m.nick = Some("stale".into());
    assert_eq!(
        m.nick().load(&db).await.expect("load"),
        &None,
        "absent is None"
    );
    let local = m.clone();
    assert_absent("incr", m.hits().incr(&db, 1).await, &key, "$.hits");
    assert_absent(
        "append",
        m.tags().append(&db, "a".to_string()).await,
        &key,
        "$.tags",
    );
    assert_absent(
        "insert",
        m.scores().insert(&db, "k", 1).await,
        &key,
        "$.scores",
    );
    assert_absent(
        "str append",
        m.label().append(&db, "x").await,
        &key,
        "$.label",
    );
    assert_absent(
        "atomic block",
        m.atomic(&db, |p| {
            (p.nick().set(Some("n".to_string())), p.hits().incr(1))
        })
        .await,
        &key,
        "$.nick",
    );
    let r = Sparse::server_ref_for("p");
    assert_absent(
        "block",
        ServerOps::scope(&db, |ops| ops.incr(r.hits(), 1)).await,
        &key,
        "$.hits",
    );
    assert_eq!(stored(&mut raw, &key).await, before, "nothing was written");
    assert_eq!(m, local, "the local model changed");
    // An option's `set` writes the field (a whole value at a member path).
    m.nick()
        .set(&db, Some("n".into()))
        .await
        .expect("option set");
    assert_eq!(stored(&mut raw, &key).await["nick"], json!("n"));
    // Saved with values serde keeps, the fields are there, and every operation reaches them.
    m.hits = 1;
    m.label = "-".into();
    m.save(&db).await.expect("save");
    assert_eq!(m.hits().incr(&db, 1).await.expect("incr"), 2);
    m.atomic(&db, |p| p.label().append("x"))
        .await
        .expect("atomic block");
    assert_eq!(m.label, "-x");
    ServerOps::scope(&db, |ops| ops.incr(r.hits(), 1))
        .await
        .expect("block");
    m.hits = 3;
    assert_eq!(Sparse::get(&db, "p").await.expect("get"), m);
    let found = Sparse::find(&db, Sparse::fields().label.eq("-x"))
        .all()
        .await
        .expect("find");
    assert_eq!(found, vec![m]);
}
