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
    p.save(&db).await.unwrap();
    let ann = author("ann", "p1", None);
    ann.save(&db).await.unwrap();
    let b = book("b1", "ann");
    b.save(&db).await.unwrap();

    let stored = common::stored(&mut raw, &db.key("Book:b1")).await;
    assert_eq!(stored["author"], serde_json::json!("ann"));
    let stored = common::stored(&mut raw, &db.key("Author:ann")).await;
    assert_eq!(stored["publisher"], serde_json::json!("p1"));
    assert_eq!(stored["mentor"], serde_json::Value::Null);

    assert_eq!(b.author.get(&db).await.unwrap(), ann);
    assert_eq!(b.author.get_opt(&db).await.unwrap(), Some(ann.clone()));
    assert_eq!(ann.publisher.get(&db).await.unwrap(), p);
    assert!(b.author.is(&ann));
    assert_eq!(b.author, Ref::to(&ann));
    assert_eq!(b.author.key(), "Author:ann");

    // Dangling: NotFound naming the target's key, or None, by the caller's choice.
    let dangling = book("b2", "nobody");
    match dangling.author.get(&db).await {
        Err(Error::NotFound { key }) => assert_eq!(key, db.key("Author:nobody")),
        other => panic!("expected NotFound, got {other:?}"),
    }
    assert_eq!(dangling.author.get_opt(&db).await.unwrap(), None);

    // A target key of another Redis type is an error for both, never None.
    let _: () = redis::cmd("SET")
        .arg(db.key("Author:wrong"))
        .arg("x")
        .query_async(&mut raw)
        .await
        .unwrap();
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
        .unwrap();
    assert_eq!(Book::get(&db, "n").await.unwrap().author.id(), "42");
    // Anything else is a Deserialize error naming the path.
    let _: () = redis::cmd("JSON.SET")
        .arg(db.key("Book:o"))
        .arg("$")
        .arg(r#"{"id":"o","title":"t","author":{"id":"ann"},"tags":[]}"#)
        .query_async(&mut raw)
        .await
        .unwrap();
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
    let publishers: Vec<Publisher> = (0..10)
        .map(|i| Publisher {
            id: format!("p{i}"),
            name: format!("publisher {i}"),
        })
        .collect();
    Publisher::insert_many(&db, &publishers).await.unwrap();
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
    Author::insert_many(&db, &authors).await.unwrap();
    let mentors: Vec<Author> = (0..1000)
        .step_by(2)
        .map(|i| author(&format!("m{i}"), &format!("p{}", (i + 1) % 10), None))
        .collect();
    Author::insert_many(&db, &mentors).await.unwrap();
    let books: Vec<Book> = (0..1000)
        .map(|i| book(&format!("b{i}"), &format!("a{i}")))
        .collect();
    Book::insert_many(&db, &books).await.unwrap();

    let recorder = Recorder::default();
    let _guard = tracing::subscriber::set_default(recorder.clone());
    for (depth, keys) in [
        (0, 0),
        (1, 1000),
        (2, 1000 + 10 + 500),
        (3, 1000 + 10 + 500),
    ] {
        recorder.take();
        let refs = Refs::load(&db, &books, depth).await.unwrap();
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
                assert_eq!(refs.get(&b.author).unwrap(), a);
            }
        }
        if depth >= 2 {
            for a in &authors {
                let p = refs.get(&a.publisher).unwrap();
                assert_eq!(p.id, a.publisher.id());
                if let Some(m) = &a.mentor {
                    assert_eq!(refs.get(m).unwrap().id, m.id());
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
    let _guard = tracing::subscriber::set_default(recorder.clone());
    // a → b → a (mentors), both with publisher p.
    let a = author("a", "p", Some("b"));
    let b = author("b", "p", Some("a"));
    Author::insert_many(&db, &[a.clone(), b.clone()])
        .await
        .unwrap();
    Publisher {
        id: "p".into(),
        name: "P".into(),
    }
    .save(&db)
    .await
    .unwrap();
    recorder.take();
    let refs = Refs::load(&db, &a, 100).await.unwrap();
    // Level 1: b and p; level 2: a (the root is read as a target too); then nothing new.
    assert_eq!(refs.levels(), 2, "{refs:?}");
    assert_eq!(refs.len(), 3);
    assert_eq!(recorder.take().len(), 2);
    assert_eq!(refs.get(a.mentor.as_ref().unwrap()).unwrap(), &b);
    assert_eq!(refs.get(b.mentor.as_ref().unwrap()).unwrap(), &a);

    // A diamond: two books by one author, one read.
    let books = [book("x", "a"), book("y", "a")];
    let refs = Refs::load(&db, &books, 1).await.unwrap();
    assert_eq!(refs.len(), 1);
    assert_eq!(refs.get(&books[0].author).unwrap(), &a);
}

#[tokio::test]
async fn dangling_references_in_a_load_are_an_error_or_none_by_choice() {
    let db = common::db().await;
    let mut raw = common::raw().await;
    let books = [book("b1", "gone"), book("b2", "there")];
    author("there", "nope", None).save(&db).await.unwrap();
    let refs = Refs::load(&db, &books[..], 2).await.unwrap();
    match refs.get(&books[0].author) {
        Err(Error::NotFound { key }) => assert_eq!(key, db.key("Author:gone")),
        other => panic!("expected NotFound, got {other:?}"),
    }
    assert_eq!(refs.get_opt(&books[0].author).unwrap(), None);
    let there = refs.get(&books[1].author).unwrap();
    assert_eq!(refs.get_opt(&there.publisher).unwrap(), None);

    // A target of another Redis type fails the load, naming the key.
    let _: () = redis::cmd("HSET")
        .arg(db.key("Author:hash"))
        .arg("f")
        .arg("v")
        .query_async(&mut raw)
        .await
        .unwrap();
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
        .unwrap();
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
    db.init::<Book>().await.unwrap();
    let mut raw = common::raw().await;
    for (i, id) in HOSTILE.iter().enumerate() {
        let a = author(id, id, Some(id));
        a.save(&db).await.unwrap();
        Publisher {
            id: id.to_string(),
            name: "p".into(),
        }
        .save(&db)
        .await
        .unwrap();
        for j in 0..2 {
            book(&format!("b{i}-{j}"), id).save(&db).await.unwrap();
        }
        let stored = common::stored(&mut raw, &db.key(&format!("Book:b{i}-0"))).await;
        assert_eq!(stored["author"], serde_json::json!(id));
    }
    for (i, id) in HOSTILE.iter().enumerate() {
        let b = Book::get(&db, format!("b{i}-0")).await.unwrap();
        let a = b.author.get(&db).await.unwrap();
        assert_eq!(a.id, *id);
        let refs = Refs::load(&db, &b, 3).await.unwrap();
        assert_eq!(refs.get(&b.author).unwrap(), &a);
        assert_eq!(refs.get(&a.publisher).unwrap().id, *id);
        assert_eq!(refs.get(a.mentor.as_ref().unwrap()).unwrap(), &a);

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
                .unwrap()
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
    db.init::<Author>().await.unwrap();
    Author::insert_many(
        &db,
        &[
            author("a", "p", Some("m")),
            author("b", "p", None),
            author("m", "p", None),
        ],
    )
    .await
    .unwrap();
    let f = Author::fields();
    let ids = |v: Vec<Author>| {
        let mut ids: Vec<String> = v.into_iter().map(|a| a.id).collect();
        ids.sort();
        ids
    };
    assert_eq!(
        ids(Author::find(&db, f.mentor.eq("m")).all().await.unwrap()),
        ["a"]
    );
    assert_eq!(
        ids(Author::find(&db, f.mentor.ne("m")).all().await.unwrap()),
        ["b", "m"]
    );
}

/// The same document in two namespaces points into each: the stored id carries no namespace.
#[tokio::test]
async fn a_reference_points_into_the_namespace_it_is_read_in() {
    let base = common::db().await;
    let ns1 = base
        .with_namespace(format!("{}one", base.namespace()))
        .unwrap();
    let ns2 = base
        .with_namespace(format!("{}two", base.namespace()))
        .unwrap();
    let mut raw = common::raw().await;
    for (db, name) in [(&ns1, "first"), (&ns2, "second")] {
        Author {
            name: name.into(),
            ..author("ann", "p", None)
        }
        .save(db)
        .await
        .unwrap();
    }
    book("b", "ann").save(&ns1).await.unwrap();
    // Copy the book's bytes into the second namespace as another client would.
    let text: String = redis::cmd("JSON.GET")
        .arg(ns1.key("Book:b"))
        .query_async(&mut raw)
        .await
        .unwrap();
    let _: () = redis::cmd("JSON.SET")
        .arg(ns2.key("Book:b"))
        .arg("$")
        .arg(&text)
        .query_async(&mut raw)
        .await
        .unwrap();
    for (db, name) in [(&ns1, "first"), (&ns2, "second")] {
        let b = Book::get(db, "b").await.unwrap();
        assert_eq!(b.author.get(db).await.unwrap().name, name);
        let refs = Refs::load(db, &b, 1).await.unwrap();
        assert_eq!(refs.get(&b.author).unwrap().name, name);
    }
}

#[tokio::test]
async fn blocks_copy_and_compare_references() {
    let db = common::db().await;
    let mut raw = common::raw().await;
    let (a1, a2) = (author("a1", "p", None), author("a2", "p", None));
    Author::insert_many(&db, &[a1.clone(), a2.clone()])
        .await
        .unwrap();
    let (b1, b2) = (shelf("b1", "a1"), shelf("b2", "a2"));
    Shelf::insert_many(&db, &[b1.clone(), b2.clone()])
        .await
        .unwrap();
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
    .unwrap();
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
    .unwrap();
    assert_eq!(done, Some(true));
    assert_eq!(Shelf::get(&db, "b1").await.unwrap().author, Ref::to(&a2));
    // A failing condition writes nothing.
    let done = ServerOps::scope(&db, |ops| {
        ops.when(r1.author().eq(&a1))
            .then(|ops| {
                ops.set(r2.author(), Ref::new("zzz"));
            })
            .out()
    })
    .await
    .unwrap();
    assert_eq!(done, Some(false));
    assert_eq!(Shelf::get(&db, "b2").await.unwrap().author.id(), "a1");
    // In a model's atomic block, through the field handle.
    let mut b = Shelf::get(&db, "b2").await.unwrap();
    b.author().set(&db, Ref::to(&a2)).await.unwrap();
    assert_eq!(b.author, Ref::to(&a2));
    assert_eq!(Shelf::get(&db, "b2").await.unwrap().author, Ref::to(&a2));
}
