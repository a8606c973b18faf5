//! `rapyer::Ref<M>`: references between stored models, against a real server — stored as
//! the target's id, loaded one by one or level by level (one round trip per level), found
//! backwards through the index, used in blocks.

mod common;

use std::sync::{Arc, Mutex};

use rapyer::prelude::*;
use rapyer::{Ref, Refs};
use serde::{Deserialize, Serialize};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id as SpanId, Record};
use tracing::{Event, Metadata, Subscriber};

#[derive(AtomicModel, Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Publisher {
    #[rapyer(key)]
    id: String,
    name: String,
}

#[derive(AtomicModel, Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Author {
    #[rapyer(key)]
    id: String,
    name: String,
    publisher: Ref<Publisher>,
    #[rapyer(index)]
    mentor: Option<Ref<Author>>,
}

#[derive(AtomicModel, Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Book {
    #[rapyer(key)]
    id: String,
    title: String,
    #[rapyer(index)]
    author: Ref<Author>,
    #[rapyer(index)]
    tags: Vec<String>,
}

/// Blocks name keys of one slot: shelves share a hash tag.
#[derive(AtomicModel, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[rapyer(hash_tag = "lib")]
struct Shelf {
    #[rapyer(key)]
    id: String,
    author: Ref<Author>,
}

fn shelf(id: &str, author: &str) -> Shelf {
    Shelf {
        id: id.into(),
        author: Ref::new(author),
    }
}

fn author(id: &str, publisher: &str, mentor: Option<&str>) -> Author {
    Author {
        id: id.into(),
        name: format!("name of {id}"),
        publisher: Ref::new(publisher),
        mentor: mentor.map(Ref::new),
    }
}

/// Saves publishers p0..p(n-1).
async fn publishers(db: &Db, n: usize) {
    let publishers: Vec<Publisher> = (0..n)
        .map(|i| Publisher {
            id: format!("p{i}"),
            name: format!("publisher {i}"),
        })
        .collect();
    Publisher::insert_many(db, &publishers)
        .await
        .expect("save the publishers");
}

fn book(id: &str, author: &str) -> Book {
    Book {
        id: id.into(),
        title: format!("title of {id}"),
        author: Ref::new(author),
        tags: vec![],
    }
}

/// Records the round trips rapyer makes (its `rapyer::command` events) on this thread.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<String>>>);

struct Line(String);

impl Visit for Line {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.push_str(&format!(" {}={:?}", field.name(), value));
    }
}

impl Subscriber for Recorder {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &Attributes<'_>) -> SpanId {
        SpanId::from_u64(1)
    }
    fn record(&self, _: &SpanId, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &SpanId, _: &SpanId) {}
    fn event(&self, event: &Event<'_>) {
        if event.metadata().target() == "rapyer::command" {
            let mut line = Line(String::new());
            event.record(&mut line);
            self.0.lock().expect("recorder").push(line.0);
        }
    }
    fn enter(&self, _: &SpanId) {}
    fn exit(&self, _: &SpanId) {}
}

impl Recorder {
    /// Records this thread's `rapyer::command` events until the guard drops.
    ///
    /// A second dispatcher stays registered for the whole process first: with only one
    /// registered, tracing-core computes a callsite's interest from the default dispatcher
    /// of whichever thread asks (its "just one" path), so another test's thread could leave
    /// the library's callsite marked "never" while this thread records, and the recorder
    /// saw no event at all (2 to 4 runs in 24 of this binary). With two, every thread asks
    /// both.
    fn start(&self) -> tracing::subscriber::DefaultGuard {
        static SECOND: std::sync::OnceLock<tracing::Dispatch> = std::sync::OnceLock::new();
        SECOND.get_or_init(|| tracing::Dispatch::new(tracing::subscriber::NoSubscriber::default()));
        tracing::subscriber::set_default(self.clone())
    }

    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().expect("recorder"))
    }
}

#[tokio::test]
async fn a_reference_is_stored_as_the_id_and_loads_its_target() {
    let db = common::db().await;
    let mut raw = common::raw().await;
    let p = Publisher {
        id: "p1".into(),
        name: "Pub".into(),
    };
    p.save(&db).await.expect("the call succeeds");
    let ann = author("ann", "p1", None);
    ann.save(&db).await.expect("the call succeeds");
    let b = book("b1", "ann");
    b.save(&db).await.expect("the call succeeds");

    let stored = common::stored(&mut raw, &db.key("Book:b1")).await;
    assert_eq!(stored["author"], serde_json::json!("ann"));
    let stored = common::stored(&mut raw, &db.key("Author:ann")).await;
    assert_eq!(stored["publisher"], serde_json::json!("p1"));
    assert_eq!(stored["mentor"], serde_json::Value::Null);

    assert_eq!(b.author.get(&db).await.expect("the call succeeds"), ann);
    assert_eq!(
        b.author.get_opt(&db).await.expect("the call succeeds"),
        Some(ann.clone())
    );
    assert_eq!(ann.publisher.get(&db).await.expect("the call succeeds"), p);
    assert!(b.author.is(&ann));
    assert_eq!(b.author, Ref::to(&ann));
    assert_eq!(b.author.key(), "Author:ann");

    // Dangling: NotFound naming the target's key, or None, by the caller's choice.
    let dangling = book("b2", "nobody");
    match dangling.author.get(&db).await {
        Err(Error::NotFound { key }) => assert_eq!(key, db.key("Author:nobody")),
        other => panic!("expected NotFound, got {other:?}"),
    }
    assert_eq!(
        dangling
            .author
            .get_opt(&db)
            .await
            .expect("the call succeeds"),
        None
    );

    // A target key of another Redis type is an error for both, never None.
    let _: () = redis::cmd("SET")
        .arg(db.key("Author:wrong"))
        .arg("x")
        .query_async(&mut raw)
        .await
        .expect("the call succeeds");
    let wrong = book("b3", "wrong");
    assert!(matches!(
        wrong.author.get(&db).await,
        Err(Error::TypeMismatch { .. })
    ));
    assert!(matches!(
        wrong.author.get_opt(&db).await,
        Err(Error::TypeMismatch { .. })
    ));

    // A number written by another client reads as its digits.
    let _: () = redis::cmd("JSON.SET")
        .arg(db.key("Book:n"))
        .arg("$")
        .arg(r#"{"id":"n","title":"t","author":42,"tags":[]}"#)
        .query_async(&mut raw)
        .await
        .expect("the call succeeds");
    assert_eq!(
        Book::get(&db, "n")
            .await
            .expect("the call succeeds")
            .author
            .id(),
        "42"
    );
    // Anything else is a Deserialize error naming the path.
    let _: () = redis::cmd("JSON.SET")
        .arg(db.key("Book:o"))
        .arg("$")
        .arg(r#"{"id":"o","title":"t","author":{"id":"ann"},"tags":[]}"#)
        .query_async(&mut raw)
        .await
        .expect("the call succeeds");
    match Book::get(&db, "o").await {
        Err(Error::Deserialize { path, .. }) => assert!(path.contains("author"), "{path}"),
        other => panic!("expected Deserialize, got {other:?}"),
    }
}

/// 1,000 books by 1,000 authors, each with a publisher and every other one a mentor: each
/// level is one JSON.MGET, whatever the number of targets.
#[tokio::test]
async fn eager_loading_is_one_round_trip_per_level() {
    let db = common::db().await;
    publishers(&db, 10).await;
    // Authors a0..a999; a_i's mentor is m_i (every other one), m_i's publisher p(i%10).
    let authors: Vec<Author> = (0..1000)
        .map(|i| {
            let mentor = format!("m{i}");
            author(
                &format!("a{i}"),
                &format!("p{}", i % 10),
                (i % 2 == 0).then_some(mentor.as_str()),
            )
        })
        .collect();
    Author::insert_many(&db, &authors)
        .await
        .expect("the call succeeds");
    let mentors: Vec<Author> = (0..1000)
        .step_by(2)
        .map(|i| author(&format!("m{i}"), &format!("p{}", (i + 1) % 10), None))
        .collect();
    Author::insert_many(&db, &mentors)
        .await
        .expect("the call succeeds");
    let books: Vec<Book> = (0..1000)
        .map(|i| book(&format!("b{i}"), &format!("a{i}")))
        .collect();
    Book::insert_many(&db, &books)
        .await
        .expect("the call succeeds");

    let recorder = Recorder::default();
    let _recording = RECORDING.lock().await;
    let _guard = recorder.start();
    for (depth, keys) in [
        (0, 0),
        (1, 1000),
        (2, 1000 + 10 + 500),
        (3, 1000 + 10 + 500),
    ] {
        recorder.take();
        let refs = Refs::load(&db, &books, depth)
            .await
            .expect("the call succeeds");
        let trips = recorder.take();
        assert_eq!(refs.len(), keys, "depth {depth}");
        let levels = refs.levels();
        assert_eq!(levels, depth.min(2), "depth {depth}: {refs:?}");
        assert_eq!(trips.len(), levels, "depth {depth}: {trips:#?}");
        assert!(
            trips.iter().all(|t| t.contains("op=\"JSON.MGET\"")),
            "{trips:#?}"
        );
        if depth >= 1 {
            for (b, a) in books.iter().zip(&authors) {
                assert_eq!(refs.get(&b.author).expect("the call succeeds"), a);
            }
        }
        if depth >= 2 {
            for a in &authors {
                let p = refs.get(&a.publisher).expect("the call succeeds");
                assert_eq!(p.id, a.publisher.id());
                if let Some(m) = &a.mentor {
                    assert_eq!(refs.get(m).expect("the call succeeds").id, m.id());
                }
            }
        } else if depth == 1 {
            // Beyond the depth: a clear error, not a dangling reference.
            assert!(matches!(
                refs.get(&authors[0].publisher),
                Err(Error::InvalidOp { .. })
            ));
        }
        if depth == 3 {
            // Level 3 (the mentors' publishers) was all read already: no third trip.
            for m in &mentors {
                assert!(refs.get(&m.publisher).is_ok());
            }
        }
    }
}

#[tokio::test]
async fn cycles_and_diamonds_read_each_key_once() {
    let db = common::db().await;
    let recorder = Recorder::default();
    let _recording = RECORDING.lock().await;
    let _guard = recorder.start();
    // a → b → a (mentors), both with publisher p.
    let a = author("a", "p", Some("b"));
    let b = author("b", "p", Some("a"));
    Author::insert_many(&db, &[a.clone(), b.clone()])
        .await
        .expect("the call succeeds");
    Publisher {
        id: "p".into(),
        name: "P".into(),
    }
    .save(&db)
    .await
    .expect("the call succeeds");
    recorder.take();
    let refs = Refs::load(&db, &a, 100).await.expect("the call succeeds");
    // Level 1: b and p; level 2: a (the root is read as a target too); then nothing new.
    assert_eq!(refs.levels(), 2, "{refs:?}");
    assert_eq!(refs.len(), 3);
    assert_eq!(recorder.take().len(), 2);
    assert_eq!(
        refs.get(a.mentor.as_ref().expect("the call succeeds"))
            .expect("the call succeeds"),
        &b
    );
    assert_eq!(
        refs.get(b.mentor.as_ref().expect("the call succeeds"))
            .expect("the call succeeds"),
        &a
    );

    // A diamond: two books by one author, one read.
    let books = [book("x", "a"), book("y", "a")];
    let refs = Refs::load(&db, &books, 1).await.expect("the call succeeds");
    assert_eq!(refs.len(), 1);
    assert_eq!(refs.get(&books[0].author).expect("the call succeeds"), &a);
}

#[tokio::test]
async fn dangling_references_in_a_load_are_an_error_or_none_by_choice() {
    let db = common::db().await;
    let mut raw = common::raw().await;
    let books = [book("b1", "gone"), book("b2", "there")];
    author("there", "nope", None)
        .save(&db)
        .await
        .expect("the call succeeds");
    let refs = Refs::load(&db, &books[..], 2)
        .await
        .expect("the call succeeds");
    match refs.get(&books[0].author) {
        Err(Error::NotFound { key }) => assert_eq!(key, db.key("Author:gone")),
        other => panic!("expected NotFound, got {other:?}"),
    }
    assert_eq!(
        refs.get_opt(&books[0].author).expect("the call succeeds"),
        None
    );
    let there = refs.get(&books[1].author).expect("the call succeeds");
    assert_eq!(
        refs.get_opt(&there.publisher).expect("the call succeeds"),
        None
    );

    // A target of another Redis type fails the load, naming the key.
    let _: () = redis::cmd("HSET")
        .arg(db.key("Author:hash"))
        .arg("f")
        .arg("v")
        .query_async(&mut raw)
        .await
        .expect("the call succeeds");
    match Refs::load(&db, &book("b3", "hash"), 1).await {
        Err(Error::TypeMismatch { key, .. }) => assert_eq!(key, db.key("Author:hash")),
        other => panic!("expected TypeMismatch, got {other:?}"),
    }
    // A target that does not decode fails it too.
    let _: () = redis::cmd("JSON.SET")
        .arg(db.key("Author:bad"))
        .arg("$")
        .arg(r#"{"id":"bad","name":1}"#)
        .query_async(&mut raw)
        .await
        .expect("the call succeeds");
    match Refs::load(&db, &book("b4", "bad"), 1).await {
        Err(Error::Deserialize { key, .. }) => assert_eq!(key, db.key("Author:bad")),
        other => panic!("expected Deserialize, got {other:?}"),
    }
}

const HOSTILE: &[&str] = &[
    "",
    "a'b\"c",
    "a:b:c",
    "{tag}",
    "}{",
    "x y",
    "line\nbreak",
    "tab\there",
    "a] or 1==1 --",
    "@name:{x}",
    "*",
    "\\",
    "é🎉",
    "Ann",
    "ann",
];

#[tokio::test]
async fn hostile_ids_round_trip_in_references_and_reverse_lookups() {
    let db = common::db().await;
    db.init::<Book>().await.expect("the call succeeds");
    let mut raw = common::raw().await;
    for (i, id) in HOSTILE.iter().enumerate() {
        let a = author(id, id, Some(id));
        a.save(&db).await.expect("the call succeeds");
        Publisher {
            id: id.to_string(),
            name: "p".into(),
        }
        .save(&db)
        .await
        .expect("the call succeeds");
        for j in 0..2 {
            book(&format!("b{i}-{j}"), id)
                .save(&db)
                .await
                .expect("the call succeeds");
        }
        let stored = common::stored(&mut raw, &db.key(&format!("Book:b{i}-0"))).await;
        assert_eq!(stored["author"], serde_json::json!(id));
    }
    for (i, id) in HOSTILE.iter().enumerate() {
        let b = Book::get(&db, format!("b{i}-0"))
            .await
            .expect("the call succeeds");
        let a = b.author.get(&db).await.expect("the call succeeds");
        assert_eq!(a.id, *id);
        let refs = Refs::load(&db, &b, 3).await.expect("the call succeeds");
        assert_eq!(refs.get(&b.author).expect("the call succeeds"), &a);
        assert_eq!(refs.get(&a.publisher).expect("the call succeeds").id, *id);
        assert_eq!(
            refs.get(a.mentor.as_ref().expect("the call succeeds"))
                .expect("the call succeeds"),
            &a
        );

        // The reverse one-to-many: by model, by Ref and by id, exactly (case-sensitive).
        let f = Book::fields();
        for expr in [
            f.author.eq(&a),
            f.author.eq(&b.author),
            f.author.eq(*id),
            f.author.one_of([*id]),
        ] {
            let mut found: Vec<String> = Book::find(&db, expr)
                .all()
                .await
                .expect("the call succeeds")
                .into_iter()
                .map(|b| b.id)
                .collect();
            found.sort();
            assert_eq!(found, [format!("b{i}-0"), format!("b{i}-1")], "id {id:?}");
        }
    }
}

#[tokio::test]
async fn a_null_reference_is_indexed_as_no_value() {
    let db = common::db().await;
    db.init::<Author>().await.expect("the call succeeds");
    Author::insert_many(
        &db,
        &[
            author("a", "p", Some("m")),
            author("b", "p", None),
            author("m", "p", None),
        ],
    )
    .await
    .expect("the call succeeds");
    let f = Author::fields();
    let ids = |v: Vec<Author>| {
        let mut ids: Vec<String> = v.into_iter().map(|a| a.id).collect();
        ids.sort();
        ids
    };
    assert_eq!(
        ids(Author::find(&db, f.mentor.eq("m"))
            .all()
            .await
            .expect("the call succeeds")),
        ["a"]
    );
    assert_eq!(
        ids(Author::find(&db, f.mentor.ne("m"))
            .all()
            .await
            .expect("the call succeeds")),
        ["b", "m"]
    );
}

/// The same document in two namespaces points into each: the stored id carries no namespace.
#[tokio::test]
async fn a_reference_points_into_the_namespace_it_is_read_in() {
    let base = common::db().await;
    let ns1 = base
        .with_namespace(format!("{}one", base.namespace()))
        .expect("the call succeeds");
    let ns2 = base
        .with_namespace(format!("{}two", base.namespace()))
        .expect("the call succeeds");
    let mut raw = common::raw().await;
    for (db, name) in [(&ns1, "first"), (&ns2, "second")] {
        Author {
            name: name.into(),
            ..author("ann", "p", None)
        }
        .save(db)
        .await
        .expect("the call succeeds");
    }
    book("b", "ann")
        .save(&ns1)
        .await
        .expect("the call succeeds");
    // Copy the book's bytes into the second namespace as another client would.
    let text: String = redis::cmd("JSON.GET")
        .arg(ns1.key("Book:b"))
        .query_async(&mut raw)
        .await
        .expect("the call succeeds");
    let _: () = redis::cmd("JSON.SET")
        .arg(ns2.key("Book:b"))
        .arg("$")
        .arg(&text)
        .query_async(&mut raw)
        .await
        .expect("the call succeeds");
    for (db, name) in [(&ns1, "first"), (&ns2, "second")] {
        let b = Book::get(db, "b").await.expect("the call succeeds");
        assert_eq!(
            b.author.get(db).await.expect("the call succeeds").name,
            name
        );
        let refs = Refs::load(db, &b, 1).await.expect("the call succeeds");
        assert_eq!(refs.get(&b.author).expect("the call succeeds").name, name);
    }
}

#[tokio::test]
async fn blocks_copy_and_compare_references() {
    let db = common::db().await;
    let mut raw = common::raw().await;
    let (a1, a2) = (author("a1", "p", None), author("a2", "p", None));
    Author::insert_many(&db, &[a1.clone(), a2.clone()])
        .await
        .expect("the call succeeds");
    let (b1, b2) = (shelf("b1", "a1"), shelf("b2", "a2"));
    Shelf::insert_many(&db, &[b1.clone(), b2.clone()])
        .await
        .expect("the call succeeds");
    let (r1, r2) = (b1.server_ref(), b2.server_ref());

    // Copy b1's author into b2 only when b2 is by a2 (it is).
    let done = ServerOps::scope(&db, |ops| {
        ops.when(r2.author().eq(&a2))
            .then(|ops| {
                ops.assign(r1.author(), r2.author());
            })
            .out()
    })
    .await
    .expect("the call succeeds");
    assert_eq!(done, Some(true));
    assert_eq!(
        common::stored(&mut raw, &db.key("Shelf:{lib}:b2")).await["author"],
        "a1"
    );
    // Now both point at a1: compare two reference fields, and against a Ref.
    let done = ServerOps::scope(&db, |ops| {
        ops.when(r1.author().eq(r2.author()) & r1.author().ne(Ref::to(&a2)))
            .then(|ops| {
                ops.set(r1.author(), Ref::to(&a2));
            })
            .out()
    })
    .await
    .expect("the call succeeds");
    assert_eq!(done, Some(true));
    assert_eq!(
        Shelf::get(&db, "b1")
            .await
            .expect("the call succeeds")
            .author,
        Ref::to(&a2)
    );
    // A failing condition writes nothing.
    let done = ServerOps::scope(&db, |ops| {
        ops.when(r1.author().eq(&a1))
            .then(|ops| {
                ops.set(r2.author(), Ref::new("zzz"));
            })
            .out()
    })
    .await
    .expect("the call succeeds");
    assert_eq!(done, Some(false));
    assert_eq!(
        Shelf::get(&db, "b2")
            .await
            .expect("the call succeeds")
            .author
            .id(),
        "a1"
    );
    // In a model's atomic block, through the field handle.
    let mut b = Shelf::get(&db, "b2").await.expect("the call succeeds");
    b.author()
        .set(&db, Ref::to(&a2))
        .await
        .expect("the call succeeds");
    assert_eq!(b.author, Ref::to(&a2));
    assert_eq!(
        Shelf::get(&db, "b2")
            .await
            .expect("the call succeeds")
            .author,
        Ref::to(&a2)
    );
}

// ----- on_delete ------------------------------------------------------------------------

#[derive(AtomicModel, Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Writer {
    #[rapyer(key)]
    id: String,
    name: String,
}

#[derive(AtomicModel, Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Novel {
    #[rapyer(key)]
    id: String,
    #[rapyer(index, on_delete = "cascade")]
    writer: Ref<Writer>,
}

#[derive(AtomicModel, Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Chapter {
    #[rapyer(key)]
    id: String,
    #[rapyer(index, on_delete = "cascade")]
    novel: Ref<Novel>,
}

#[derive(AtomicModel, Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Fan {
    #[rapyer(key)]
    id: String,
    #[rapyer(index, on_delete = "set_null")]
    favourite: Option<Ref<Writer>>,
    #[rapyer(index, on_delete = "set_null")]
    #[serde(rename = "second-best.x")]
    second: Option<Ref<Writer>>,
}

#[derive(AtomicModel, Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Contract {
    #[rapyer(key)]
    id: String,
    #[rapyer(index, on_delete = "restrict")]
    writer: Ref<Writer>,
}

#[derive(AtomicModel, Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Node {
    #[rapyer(key)]
    id: String,
    #[rapyer(index, on_delete = "cascade")]
    next: Option<Ref<Node>>,
}

async fn library(db: &Db) {
    db.init::<Novel>().await.expect("the call succeeds");
    db.init::<Chapter>().await.expect("the call succeeds");
    db.init::<Fan>().await.expect("the call succeeds");
    db.init::<Contract>().await.expect("the call succeeds");
    db.init::<Node>().await.expect("the call succeeds");
}

fn writer(id: &str) -> Writer {
    Writer {
        id: id.into(),
        name: format!("writer {id}"),
    }
}

fn novel(id: &str, writer: &str) -> Novel {
    Novel {
        id: id.into(),
        writer: Ref::new(writer),
    }
}

fn chapter(id: &str, novel: &str) -> Chapter {
    Chapter {
        id: id.into(),
        novel: Ref::new(novel),
    }
}

fn fan(id: &str, favourite: Option<&str>, second: Option<&str>) -> Fan {
    Fan {
        id: id.into(),
        favourite: favourite.map(Ref::new),
        second: second.map(Ref::new),
    }
}

/// Every key of the test's namespace with its JSON (or type), sorted: a snapshot to compare.
async fn snapshot(db: &Db) -> Vec<(String, String)> {
    let mut raw = common::raw().await;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{}*", db.namespace()))
        .query_async(&mut raw)
        .await
        .expect("the call succeeds");
    let mut out = Vec::new();
    for key in keys {
        if key.contains("_rapyer:") {
            continue;
        }
        let t: String = redis::cmd("TYPE")
            .arg(&key)
            .query_async(&mut raw)
            .await
            .expect("the call succeeds");
        let v = if t == "ReJSON-RL" {
            common::json_get(&mut raw, &key).await.unwrap_or_default()
        } else {
            t
        };
        out.push((key, v));
    }
    out.sort();
    out
}

/// A world of writers, novels, chapters, fans: `w` writes n1 and n2 (chapters c1..c3), `v`
/// writes n3 (chapter c4); fan f1 likes w (and second v), f2 likes v (and second w).
async fn world(db: &Db) {
    library(db).await;
    Writer::insert_many(db, &[writer("w"), writer("v")])
        .await
        .expect("the call succeeds");
    Novel::insert_many(db, &[novel("n1", "w"), novel("n2", "w"), novel("n3", "v")])
        .await
        .expect("the call succeeds");
    Chapter::insert_many(
        db,
        &[
            chapter("c1", "n1"),
            chapter("c2", "n1"),
            chapter("c3", "n2"),
            chapter("c4", "n3"),
        ],
    )
    .await
    .expect("the call succeeds");
    Fan::insert_many(
        db,
        &[
            fan("f1", Some("w"), Some("v")),
            fan("f2", Some("v"), Some("w")),
        ],
    )
    .await
    .expect("the call succeeds");
}

#[tokio::test]
async fn cascade_deletes_referrers_recursively_and_set_null_clears_references() {
    let db = common::db().await;
    world(&db).await;
    assert!(
        Writer::delete_by_id(&db, "w")
            .await
            .expect("the call succeeds")
    );
    let mut gone = vec![];
    for id in ["n1", "n2"] {
        gone.push(Novel::exists(&db, id).await.expect("the call succeeds"));
    }
    for id in ["c1", "c2", "c3"] {
        gone.push(Chapter::exists(&db, id).await.expect("the call succeeds"));
    }
    assert_eq!(gone, [false; 5]);
    assert!(!Writer::exists(&db, "w").await.expect("the call succeeds"));
    // v's side is untouched.
    assert!(Novel::exists(&db, "n3").await.expect("the call succeeds"));
    assert!(Chapter::exists(&db, "c4").await.expect("the call succeeds"));
    assert_eq!(
        Fan::get(&db, "f1").await.expect("the call succeeds"),
        fan("f1", None, Some("v"))
    );
    assert_eq!(
        Fan::get(&db, "f2").await.expect("the call succeeds"),
        fan("f2", Some("v"), None)
    );
    // Nothing left references w.
    let refs = Refs::load(&db, &Fan::all(&db).await.expect("the call succeeds"), 1)
        .await
        .expect("the call succeeds");
    assert!(refs.get_opt(&Ref::<Writer>::new("w")).is_err()); // not even looked up
    for n in Novel::all(&db).await.expect("the call succeeds") {
        assert!(n.writer.get(&db).await.is_ok());
    }
    // Deleting a model with no referrers, or a missing one, is a plain delete.
    assert!(Writer::delete_by_id(&db, "v").await.is_ok());
    assert!(
        !Writer::delete_by_id(&db, "nobody")
            .await
            .expect("the call succeeds")
    );
    assert_eq!(
        Writer::delete_many(&db, ["nobody", "neither"])
            .await
            .expect("the call succeeds"),
        0
    );
}

#[tokio::test]
async fn restrict_refuses_the_whole_delete_naming_a_referrer() {
    let db = common::db().await;
    world(&db).await;
    Contract {
        id: "k".into(),
        writer: Ref::new("w"),
    }
    .save(&db)
    .await
    .expect("the call succeeds");
    let before = snapshot(&db).await;
    match Writer::delete_by_id(&db, "w").await {
        Err(Error::Referenced {
            key,
            referrer,
            path,
        }) => {
            assert_eq!(key, db.key("Writer:w"));
            assert_eq!(referrer, db.key("Contract:k"));
            assert_eq!(path, "$.writer");
        }
        other => panic!("expected Referenced, got {other:?}"),
    }
    // Nothing was deleted or cleared: not the cascades, not the nulls.
    assert_eq!(snapshot(&db).await, before);
    // The same through delete and delete_many.
    assert!(matches!(
        writer("w").delete(&db).await,
        Err(Error::Referenced { .. })
    ));
    assert!(matches!(
        Writer::delete_many(&db, ["v", "w"]).await,
        Err(Error::Referenced { .. })
    ));
    assert_eq!(snapshot(&db).await, before);
    // Once the contract is gone, the delete goes through.
    Contract::delete_by_id(&db, "k")
        .await
        .expect("the call succeeds");
    assert!(
        Writer::delete_by_id(&db, "w")
            .await
            .expect("the call succeeds")
    );
    assert!(!Novel::exists(&db, "n1").await.expect("the call succeeds"));
}

/// One server: the whole delete is one script, so a key of another type anywhere in it
/// fails it before anything is written.
#[tokio::test]
async fn a_failing_delete_leaves_everything_as_it_was() {
    let db = common::db().await;
    world(&db).await;
    let mut raw = common::raw().await;
    let _: () = redis::cmd("SET")
        .arg(db.key("Writer:str"))
        .arg("not a document")
        .query_async(&mut raw)
        .await
        .expect("the call succeeds");
    let before = snapshot(&db).await;
    match Writer::delete_many(&db, ["w", "str"]).await {
        Err(Error::TypeMismatch { key, .. }) => assert_eq!(key, db.key("Writer:str")),
        other => panic!("expected TypeMismatch, got {other:?}"),
    }
    assert_eq!(snapshot(&db).await, before);
}

#[tokio::test]
async fn cascades_in_a_cycle_end() {
    let db = common::db().await;
    library(&db).await;
    let node = |id: &str, next: &str| Node {
        id: id.into(),
        next: Some(Ref::new(next)),
    };
    // a → b → c → a, and d → d, and e → a.
    Node::insert_many(
        &db,
        &[
            node("a", "b"),
            node("b", "c"),
            node("c", "a"),
            node("d", "d"),
            node("e", "a"),
            node("x", "y"),
        ],
    )
    .await
    .expect("the call succeeds");
    assert!(
        Node::delete_by_id(&db, "a")
            .await
            .expect("the call succeeds")
    );
    for id in ["a", "b", "c", "e"] {
        assert!(
            !Node::exists(&db, id).await.expect("the call succeeds"),
            "{id}"
        );
    }
    assert!(
        Node::delete_by_id(&db, "d")
            .await
            .expect("the call succeeds")
    );
    assert!(Node::exists(&db, "x").await.expect("the call succeeds"));
}

#[tokio::test]
async fn hostile_ids_are_found_and_cleared() {
    let db = common::db().await;
    library(&db).await;
    for id in HOSTILE {
        writer(id).save(&db).await.expect("the call succeeds");
        novel(&format!("n-{id}"), id)
            .save(&db)
            .await
            .expect("the call succeeds");
        fan(&format!("f-{id}"), Some(id), Some(id))
            .save(&db)
            .await
            .expect("the call succeeds");
    }
    for id in HOSTILE {
        assert!(
            Writer::delete_by_id(&db, id)
                .await
                .expect("the call succeeds"),
            "{id:?}"
        );
        assert!(
            !Novel::exists(&db, format!("n-{id}"))
                .await
                .expect("the call succeeds")
        );
        assert_eq!(
            Fan::get(&db, format!("f-{id}"))
                .await
                .expect("the call succeeds"),
            fan(&format!("f-{id}"), None, None)
        );
    }
    assert!(Novel::all(&db).await.expect("the call succeeds").is_empty());
}

#[tokio::test]
async fn set_ttl_cascades_along_references() {
    let db = common::db().await;
    library(&db).await;
    let mut raw = common::raw().await;
    world(&db).await;
    let c1 = Chapter::get(&db, "c1").await.expect("the call succeeds");
    let ttl = std::time::Duration::from_secs(100);
    // Depth 0: the chapter only; depth 2: its novel and writer too.
    assert_eq!(
        rapyer::set_ttl_cascade(&db, &c1, ttl, 0)
            .await
            .expect("the call succeeds"),
        1
    );
    assert!(common::pttl(&mut raw, &db.key("Novel:n1")).await < 0);
    assert_eq!(
        rapyer::set_ttl_cascade(&db, &c1, ttl, 2)
            .await
            .expect("the call succeeds"),
        3
    );
    for key in ["Chapter:c1", "Novel:n1", "Writer:w"] {
        let left = common::pttl(&mut raw, &db.key(key)).await;
        assert!(left > 0 && left <= 100_000, "{key}: {left}");
    }
    assert!(common::pttl(&mut raw, &db.key("Novel:n2")).await < 0);
    // A cycle ends, a dangling reference is skipped.
    let node = |id: &str, next: &str| Node {
        id: id.into(),
        next: Some(Ref::new(next)),
    };
    Node::insert_many(&db, &[node("a", "b"), node("b", "a"), node("c", "gone")])
        .await
        .expect("the call succeeds");
    let a = Node::get(&db, "a").await.expect("the call succeeds");
    assert_eq!(
        rapyer::set_ttl_cascade(&db, &a, ttl, 50)
            .await
            .expect("the call succeeds"),
        2
    );
    let c = Node::get(&db, "c").await.expect("the call succeeds");
    assert_eq!(
        rapyer::set_ttl_cascade(&db, &c, ttl, 5)
            .await
            .expect("the call succeeds"),
        1
    );
    // A missing model is NotFound, and nothing is expired.
    match rapyer::set_ttl_cascade(&db, &node("zz", "d"), ttl, 3).await {
        Err(Error::NotFound { key }) => assert_eq!(key, db.key("Node:zz")),
        other => panic!("expected NotFound, got {other:?}"),
    }
}

// ----- Redis Cluster -------------------------------------------------------------------

/// Books and authors over every primary: each level is read per slot, all at once, and every
/// target is found.
#[tokio::test]
async fn eager_loading_reads_targets_across_cluster_slots() {
    let db = common::cluster_db().await;
    publishers(&db, 20).await;
    let authors: Vec<Author> = (0..200)
        .map(|i| author(&format!("a{i}"), &format!("p{}", i % 20), None))
        .collect();
    Author::insert_many(&db, &authors).await.expect("authors");
    let books: Vec<Book> = (0..200)
        .map(|i| book(&format!("b{i}"), &format!("a{}", (i * 7) % 200)))
        .chain([book("dangling", "nobody")])
        .collect();
    let slots: std::collections::HashSet<u16> = authors
        .iter()
        .map(|a| common::cluster_slot(&db.key(&Author::key_of(&a.id))))
        .collect();
    assert!(slots.len() > 100, "the authors are spread over the slots");
    let refs = Refs::load(&db, &books, 2).await.expect("load");
    assert_eq!(refs.levels(), 2);
    assert_eq!(refs.len(), 200 + 1 + 20);
    for b in &books[..200] {
        let a = refs.get(&b.author).expect("the author");
        assert_eq!(a.id, b.author.id());
        assert_eq!(
            refs.get(&a.publisher).expect("the publisher").id,
            a.publisher.id()
        );
    }
    assert_eq!(refs.get_opt(&books[200].author).expect("loaded"), None);
}

/// On a cluster the referrers live in other slots: the delete runs step by step, nulls
/// first, referrers before targets. A step refused halfway (here by ACL: the user may not
/// write writers) leaves the target in place and no reference to a deleted model.
#[tokio::test]
async fn a_delete_across_slots_fails_halfway_without_a_dangling_reference() {
    let db = common::cluster_db().await;
    world(&db).await;
    let limited = cannot_write_writers(&db, "across").await;
    let failed = Writer::delete_by_id(&limited, "w").await;
    assert!(failed.is_err(), "{failed:?}");
    // The target is still there; nothing references it any more.
    assert_eq!(
        Writer::get(&db, "w").await.expect("w is still there"),
        writer("w")
    );
    for id in ["n1", "n2"] {
        assert!(!Novel::exists(&db, id).await.expect("exists"), "{id}");
    }
    for id in ["c1", "c2", "c3"] {
        assert!(!Chapter::exists(&db, id).await.expect("exists"), "{id}");
    }
    assert_eq!(
        Fan::get(&db, "f1").await.expect("f1"),
        fan("f1", None, Some("v"))
    );
    assert_eq!(
        Fan::get(&db, "f2").await.expect("f2"),
        fan("f2", Some("v"), None)
    );
    // v's side is untouched, and an allowed delete finishes the job.
    assert!(Chapter::exists(&db, "c4").await.expect("exists"));
    assert!(Writer::delete_by_id(&db, "w").await.expect("delete w"));
    assert!(Writer::delete_by_id(&db, "v").await.expect("delete v"));
    assert!(Novel::all(&db).await.expect("all").is_empty());
    assert!(Chapter::all(&db).await.expect("all").is_empty());
}

#[tokio::test]
async fn a_one_megabyte_id_is_loaded_found_and_cascaded() {
    let db = common::db().await;
    library(&db).await;
    let id = "é{x}:\"".repeat((1 << 20) / 7 + 1);
    assert!(id.len() >= 1 << 20);
    writer(&id).save(&db).await.expect("save the writer");
    novel("n", &id).save(&db).await.expect("save the novel");
    fan("f", Some(&id), None)
        .save(&db)
        .await
        .expect("save the fan");
    let n = Novel::get(&db, "n").await.expect("the novel");
    assert_eq!(n.writer.get(&db).await.expect("the writer").id, id);
    let refs = Refs::load(&db, &n, 1).await.expect("load");
    assert_eq!(refs.get(&n.writer).expect("loaded").id, id);
    let f = Novel::fields();
    assert_eq!(
        Novel::find(&db, f.writer.eq(id.as_str()))
            .count()
            .await
            .expect("count"),
        1
    );
    assert!(Writer::delete_by_id(&db, &id).await.expect("delete"));
    assert!(!Novel::exists(&db, "n").await.expect("exists"));
    assert_eq!(
        Fan::get(&db, "f").await.expect("the fan"),
        fan("f", None, None)
    );
}

/// A `Db` on the cluster, in `db`'s namespace, as a user (named after `name`) who may read
/// everything there but write only novels, chapters, fans, tagged novels and rapyer's own keys: a
/// delete of a writer is refused by ACL.
async fn cannot_write_writers(db: &Db, name: &str) -> Db {
    let namespace = db.namespace().to_string();
    let suffix = std::process::id();
    let (user, password) = (
        format!("rapyer-refs-{name}-{suffix}"),
        format!("pw-{suffix}"),
    );
    for node in rapyer_testkit::cluster().nodes().expect("cluster nodes") {
        let mut conn = redis::Client::open(node.url())
            .expect("node url")
            .get_connection()
            .expect("connect to a node");
        let _: redis::Value = redis::cmd("ACL")
            .arg("SETUSER")
            .arg(&user)
            .arg("on")
            .arg(format!(">{password}"))
            .arg("resetkeys")
            .arg(format!("%R~{namespace}*"))
            .arg(format!("~{namespace}Novel:*"))
            .arg(format!("~{namespace}Chapter:*"))
            .arg(format!("~{namespace}Fan:*"))
            .arg(format!("~{namespace}TaggedNovel:*"))
            .arg(format!("~{namespace}_rapyer:*"))
            .arg("+@all")
            .query(&mut conn)
            .expect("ACL SETUSER");
    }
    let urls: Vec<String> = rapyer_testkit::cluster()
        .urls()
        .iter()
        .map(|url| url.replacen("redis://", &format!("redis://{user}:{password}@"), 1))
        .collect();
    Db::connect_cluster(&urls)
        .await
        .expect("connect as the limited user")
        .with_namespace(namespace)
        .expect("the namespace is valid")
}

/// Held by the tests that count round trips with a thread-local subscriber: tracing rebuilds
/// every callsite's interest when a subscriber comes or goes, and one test's subscriber going
/// while another's is recording could leave the other's events unseen.
static RECORDING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Writers and novels that share one cluster slot.
#[derive(AtomicModel, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[rapyer(hash_tag = "lib")]
struct TaggedWriter {
    #[rapyer(key)]
    id: String,
}

#[derive(AtomicModel, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[rapyer(hash_tag = "lib")]
struct TaggedNovel {
    #[rapyer(key)]
    id: String,
    #[rapyer(index, on_delete = "cascade")]
    writer: Ref<TaggedWriter>,
}

/// On a cluster, keys that share a slot are deleted in one script: a refusal (ACL checks a
/// script's keys before it runs) leaves everything as it was, and an allowed delete takes
/// the target and its referrers together.
#[tokio::test]
async fn a_delete_within_one_cluster_slot_is_one_script() {
    let db = common::cluster_db().await;
    db.init::<TaggedNovel>().await.expect("init");
    TaggedWriter { id: "w".into() }
        .save(&db)
        .await
        .expect("save the writer");
    let novels: Vec<TaggedNovel> = (0..5)
        .map(|i| TaggedNovel {
            id: format!("n{i}"),
            writer: Ref::new("w"),
        })
        .collect();
    TaggedNovel::insert_many(&db, &novels)
        .await
        .expect("save the novels");
    let limited = cannot_write_writers(&db, "slot").await;
    let refused = TaggedWriter::delete_by_id(&limited, "w").await;
    assert!(refused.is_err(), "{refused:?}");
    assert!(TaggedWriter::exists(&db, "w").await.expect("exists"));
    assert_eq!(TaggedNovel::all(&db).await.expect("all").len(), 5);

    let recorder = Recorder::default();
    let _recording = RECORDING.lock().await;
    let _guard = recorder.start();
    assert!(TaggedWriter::delete_by_id(&db, "w").await.expect("delete"));
    let trips = recorder.take();
    let scripts = trips.iter().filter(|t| t.contains("keys=6")).count();
    assert_eq!(scripts, 1, "one script over the 6 keys: {trips:#?}");
    assert!(TaggedNovel::all(&db).await.expect("all").is_empty());
}

/// Deletes of many writers at once, with loads running beside them: afterwards no novel or
/// fan references a deleted writer.
#[tokio::test]
async fn concurrent_deletes_leave_no_dangling_reference() {
    let db = common::db().await;
    library(&db).await;
    let writers: Vec<Writer> = (0..20).map(|i| writer(&format!("w{i}"))).collect();
    Writer::insert_many(&db, &writers).await.expect("writers");
    let novels: Vec<Novel> = (0..100)
        .map(|i| novel(&format!("n{i}"), &format!("w{}", i % 20)))
        .collect();
    Novel::insert_many(&db, &novels).await.expect("novels");
    let fans: Vec<Fan> = (0..40)
        .map(|i| {
            let (a, b) = (format!("w{}", i % 20), format!("w{}", (i + 1) % 20));
            fan(&format!("f{i}"), Some(&a), Some(&b))
        })
        .collect();
    Fan::insert_many(&db, &fans).await.expect("fans");
    let mut tasks = Vec::new();
    for i in (0..20).step_by(2) {
        let d = db.clone();
        tasks.push(tokio::spawn(async move {
            Writer::delete_by_id(&d, format!("w{i}"))
                .await
                .expect("delete")
        }));
        let (db, novels) = (db.clone(), novels.clone());
        tasks.push(tokio::spawn(async move {
            !Refs::load(&db, &novels, 1).await.expect("load").is_empty()
        }));
    }
    for task in tasks {
        assert!(task.await.expect("task"));
    }
    let left: Vec<Novel> = Novel::all(&db).await.expect("novels");
    assert_eq!(left.len(), 50);
    let refs = Refs::load(&db, &left, 1).await.expect("load");
    for n in &left {
        assert!(refs.get(&n.writer).is_ok(), "{n:?} dangles");
    }
    for f in Fan::all(&db).await.expect("fans") {
        for r in [&f.favourite, &f.second].into_iter().flatten() {
            assert!(
                r.get_opt(&db).await.expect("get").is_some(),
                "{f:?} dangles"
            );
        }
    }
}

/// A team whose members are a set in a companion key.
#[derive(AtomicModel, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[rapyer(prefix = "Team")]
struct Team {
    #[rapyer(key)]
    id: String,
    members: rapyer::Set<String>,
}

/// A player deleted with its team, keeping its own set of badges.
#[derive(AtomicModel, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[rapyer(prefix = "Player")]
struct Player {
    #[rapyer(key)]
    id: String,
    #[rapyer(index, on_delete = "cascade")]
    team: Ref<Team>,
    badges: rapyer::Set<String>,
}

#[tokio::test]
async fn a_cascading_delete_takes_the_sets_of_every_model_it_deletes() {
    let db = common::db().await;
    let mut raw = common::raw().await;
    db.init::<Player>()
        .await
        .expect("init registers the cascade");
    let team = Team {
        id: "t1".into(),
        members: ["ann".to_string(), "bob".to_string()].into_iter().collect(),
    };
    team.save(&db).await.expect("save team");
    for id in ["p1", "p2"] {
        Player {
            id: id.into(),
            team: Ref::to(&team),
            badges: ["gold".to_string()].into_iter().collect(),
        }
        .save(&db)
        .await
        .expect("save player");
    }
    let companions = format!("{}_rapyer:*", db.namespace());
    let before: Vec<String> = scan(&mut raw, &companions).await;
    assert!(
        before.iter().filter(|k| k.contains(":set:")).count() >= 3,
        "each set is a companion key: {before:?}"
    );
    assert!(Team::delete_by_id(&db, "t1").await.expect("delete"));
    let left: Vec<String> = scan(&mut raw, &companions)
        .await
        .into_iter()
        .filter(|k| k.contains(":set:"))
        .collect();
    assert!(left.is_empty(), "companion keys left behind: {left:?}");
    assert!(
        Player::get_many(&db, ["p1", "p2"])
            .await
            .expect("get")
            .iter()
            .all(Option::is_none)
    );
}

/// Every key matching `pattern`, with a plain SCAN loop.
async fn scan(raw: &mut redis::aio::MultiplexedConnection, pattern: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cursor: u64 = 0;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(1000)
            .query_async(raw)
            .await
            .expect("SCAN");
        out.extend(keys);
        cursor = next;
        if cursor == 0 {
            return out;
        }
    }
}
