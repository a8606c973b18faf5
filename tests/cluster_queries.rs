//! Queries on a real Redis Cluster of three primaries and three replicas (started by the
//! testkit, or `REDIS_CLUSTER_URLS`): the index on every primary, `find` fanned out and
//! merged, and the same documents answering the same queries as on one server.

use std::collections::{BTreeSet, HashSet};

use chrono::{DateTime, TimeZone, Utc};
use rapyer::Error;
use rapyer::prelude::*;
use rapyer::query::{Expr, Find};
use serde::{Deserialize, Serialize};

mod common;
use common::Rng;

#[derive(AtomicModel, Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Town {
    #[rapyer(index(sortable))]
    city: String,
    #[rapyer(index)]
    zip: i64,
}

#[derive(AtomicModel, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[rapyer(prefix = "Person")]
struct Person {
    #[rapyer(key)]
    id: String,
    #[rapyer(index(sortable))]
    name: String,
    #[rapyer(index(sortable))]
    age: i64,
    #[rapyer(index(sortable))]
    score: f64,
    #[rapyer(index)]
    active: bool,
    #[rapyer(index)]
    tags: Vec<String>,
    #[rapyer(index)]
    town: Town,
    #[rapyer(index(sortable))]
    joined: DateTime<Utc>,
}

const NAMES: &[&str] = &[
    "ann",
    "Ann",
    "bob",
    "bob smith",
    "",
    "a-b|c",
    "x\"y",
    "émoji🎉",
];
const CITIES: &[&str] = &["Paris", "New York", "São Paulo", "x{y}"];

/// Held by every test that looks at single primaries or needs every document in place, and
/// by the one that moves a slot, so that no search runs while a slot moves.
static TOPOLOGY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A plain connection to each primary, to look at what each one holds.
fn primaries() -> Vec<redis::Connection> {
    rapyer_testkit::cluster()
        .nodes()
        .expect("nodes")
        .into_iter()
        .filter(|n| n.primary && !n.failed)
        .map(|n| {
            redis::Client::open(n.url())
                .expect("url")
                .get_connection()
                .expect("node connection")
        })
        .collect()
}

/// The name of the model's index on one node (`FT._LIST` names no key, so the node answers
/// for itself), if it has one.
fn index_on(conn: &mut redis::Connection, db: &Db) -> Option<String> {
    let base = format!("{}_rapyer:index:Person", db.namespace());
    let names: Vec<String> = redis::cmd("FT._LIST").query(conn).expect("FT._LIST");
    names.into_iter().find(|name| name.starts_with(&base))
}

/// The number of documents the model's index holds on one node, or `None` without one.
fn indexed_on(conn: &mut redis::Connection, db: &Db) -> Option<u64> {
    let index = index_on(conn, db)?;
    let info: redis::Value = redis::cmd("FT.INFO")
        .arg(&index)
        .query(conn)
        .expect("FT.INFO");
    let redis::Value::Array(items) = info else {
        return None;
    };
    items.chunks(2).find_map(|pair| match pair {
        [name, value] if redis::from_redis_value_ref::<String>(name).ok()? == "num_docs" => {
            redis::from_redis_value_ref::<String>(value)
                .ok()
                .and_then(|n| n.parse().ok())
                .or_else(|| redis::from_redis_value_ref::<u64>(value).ok())
        }
        _ => None,
    })
}

fn person(rng: &mut Rng, i: usize) -> Person {
    let pick = |rng: &mut Rng, pool: &[&str]| pool[rng.below(pool.len() as u64) as usize].into();
    let day = Utc
        .with_ymd_and_hms(2024, 1, 1, 0, 0, 0)
        .single()
        .expect("a date");
    Person {
        id: format!("p{i}"),
        name: pick(rng, NAMES),
        age: rng.below(100) as i64,
        score: rng.below(200) as f64 / 4.0,
        active: rng.below(2) == 0,
        tags: (0..rng.below(3))
            .map(|_| format!("t{}", rng.below(5)))
            .collect(),
        town: Town {
            city: pick(rng, CITIES),
            zip: rng.below(1000) as i64,
        },
        joined: day + chrono::Duration::hours(rng.below(24 * 60) as i64),
    }
}

/// A random expression over every kind of indexed field, nested and date-time ones included.
fn random_expr(rng: &mut Rng, depth: u32) -> Expr {
    let f = Person::fields();
    if depth > 0 && rng.below(3) > 0 {
        let a = random_expr(rng, depth - 1);
        return match rng.below(3) {
            0 => a & random_expr(rng, depth - 1),
            1 => a | random_expr(rng, depth - 1),
            _ => !a,
        };
    }
    let n = rng.below(110) as i64 - 5;
    let name = NAMES[rng.below(NAMES.len() as u64) as usize];
    let city = CITIES[rng.below(CITIES.len() as u64) as usize];
    let when = Utc
        .with_ymd_and_hms(2024, 1, 1 + rng.below(60) as u32 % 28, 0, 0, 0)
        .single()
        .expect("a date");
    match rng.below(12) {
        0 => f.name.eq(name),
        1 => f.name.one_of([name, NAMES[rng.below(4) as usize]]),
        2 => f.age.gt(n),
        3 => f.age.le(n),
        4 => f.age.between(n, n + rng.below(30) as i64),
        5 => f.score.ge(rng.below(100) as f64 / 2.0),
        6 => f.active.eq(rng.below(2) == 0),
        7 => f.town.city.eq(city),
        8 => f.town.zip.lt(rng.below(1000) as i64),
        9 => f.tags.contains(&format!("t{}", rng.below(5))),
        10 => f.joined.after(when),
        _ => f.joined.before(when),
    }
}

/// A sort field and the value of it the comparison looks at.
#[derive(Debug, Clone, Copy)]
enum SortBy {
    Age,
    Score,
    Name,
    City,
    Joined,
}

impl SortBy {
    fn value(self, p: &Person) -> String {
        match self {
            SortBy::Age => p.age.to_string(),
            SortBy::Score => p.score.to_string(),
            SortBy::Name => p.name.clone(),
            SortBy::City => p.town.city.clone(),
            SortBy::Joined => p.joined.to_rfc3339(),
        }
    }

    fn sort<'db>(self, find: Find<'db, Person>, order: Order) -> Find<'db, Person> {
        let f = Person::fields();
        match self {
            SortBy::Age => find.sort_by(&f.age, order),
            SortBy::Score => find.sort_by(&f.score, order),
            SortBy::Name => find.sort_by(&f.name, order),
            SortBy::City => find.sort_by(&f.town.city, order),
            SortBy::Joined => find.sort_by(&f.joined, order),
        }
    }
}

/// Checks a sorted window from the cluster against the same window from one server: the same
/// length and the same sequence of sort values; a run of equal values that the window holds
/// whole has the same members on both; a run the window cuts (at its start or end) holds
/// matches of that value, ordered by key on the cluster (one server orders ties by its
/// internal document id).
fn assert_same_window(what: &str, by: SortBy, one: &[Person], cluster: &[Person]) {
    let values = |ps: &[Person]| ps.iter().map(|p| by.value(p)).collect::<Vec<_>>();
    assert_eq!(values(cluster), values(one), "{what}: sort values");
    let (Some(first), Some(last)) = (one.first(), one.last()) else {
        return;
    };
    let edges = [by.value(first), by.value(last)];
    let inner = |ps: &[Person]| {
        ps.iter()
            .filter(|p| !edges.contains(&by.value(p)))
            .map(|p| p.id.clone())
            .collect::<BTreeSet<_>>()
    };
    assert_eq!(inner(cluster), inner(one), "{what}: whole runs of ties");
    for run in cluster.chunk_by(|a, b| by.value(a) == by.value(b)) {
        let ids: Vec<&str> = run.iter().map(|p| p.id.as_str()).collect();
        assert!(ids.is_sorted(), "{what}: ties ordered by key: {ids:?}");
    }
}

/// The same 3,000 documents on one server and on the cluster answer the same 300 random
/// queries alike: `count`, `all` (as sets: without `sort_by` the order is unspecified),
/// `sort_by` with and without `limit`, `first`, and an unsorted `limit`.
#[tokio::test]
async fn the_cluster_answers_random_queries_as_one_server_does() {
    let _topology = TOPOLOGY.lock().await;
    let one = common::db().await;
    let cluster = common::cluster_db().await;
    one.init::<Person>().await.expect("init on one server");
    cluster.init::<Person>().await.expect("init on the cluster");
    let mut rng = Rng(0xC1A5_7E12_3456_789B);
    let people: Vec<Person> = (0..3_000).map(|i| person(&mut rng, i)).collect();
    for chunk in people.chunks(1_000) {
        Person::insert_many(&one, chunk)
            .await
            .expect("insert on one server");
        Person::insert_many(&cluster, chunk)
            .await
            .expect("insert on the cluster");
    }
    let sorts = [
        SortBy::Age,
        SortBy::Score,
        SortBy::Name,
        SortBy::City,
        SortBy::Joined,
    ];
    for round in 0..300 {
        let expr = random_expr(&mut rng, 3);
        let what = format!("round {round}: {}", expr.to_query().expect("query"));
        let count = Person::find(&one, expr.clone())
            .count()
            .await
            .expect("count");
        let cluster_count = Person::find(&cluster, expr.clone()).count().await;
        assert_eq!(cluster_count.expect("count"), count, "{what}");
        let ids = |ps: Vec<Person>| ps.into_iter().map(|p| p.id).collect::<Vec<_>>();
        let matches: HashSet<String> =
            ids(Person::find(&one, expr.clone()).all().await.expect("all"))
                .into_iter()
                .collect();
        let found = ids(Person::find(&cluster, expr.clone())
            .all()
            .await
            .expect("all"));
        assert_eq!(found.len(), count, "{what}: all");
        assert_eq!(
            found.iter().cloned().collect::<HashSet<_>>(),
            matches,
            "{what}: all"
        );

        let by = sorts[rng.below(sorts.len() as u64) as usize];
        let order = if rng.below(2) == 0 {
            Order::Asc
        } else {
            Order::Desc
        };
        let window = match rng.below(4) {
            0 => None,
            1 => Some((0, 1 + rng.below(20) as usize)),
            _ => Some((rng.below(1_500) as usize, rng.below(300) as usize)),
        };
        let sorted = |db| {
            let find = by.sort(Person::find(db, expr.clone()), order);
            match window {
                Some((offset, n)) => find.limit(offset, n),
                None => find,
            }
        };
        let what = format!("{what} sorted by {by:?} {order:?} in {window:?}");
        let on_one = sorted(&one).all().await.expect("sorted on one server");
        let on_cluster = sorted(&cluster).all().await.expect("sorted on the cluster");
        assert_same_window(&what, by, &on_one, &on_cluster);
        if window.is_none_or(|(_, n)| n > 0) {
            // `first` is the window's first match.
            let first = sorted(&cluster).first().await.expect("first");
            assert_eq!(
                first.map(|p| by.value(&p)),
                on_one.first().map(|p| by.value(p)),
                "{what}: first"
            );
        }

        let (offset, n) = (rng.below(count as u64 + 5) as usize, rng.below(50) as usize);
        let page = Person::find(&cluster, expr).limit(offset, n).keys().await;
        let page = page.expect("an unsorted window");
        assert_eq!(
            page.len(),
            n.min(count.saturating_sub(offset)),
            "{what}: unsorted limit"
        );
        let prefix = format!("{}Person:", cluster.namespace());
        for key in &page {
            let id = key.strip_prefix(&prefix).expect("a Person key");
            assert!(matches.contains(id), "{what}: {key} does not match");
        }
    }
}

#[tokio::test]
async fn init_creates_the_index_on_every_primary() {
    let _topology = TOPOLOGY.lock().await;
    let db = common::cluster_db().await;
    let mut rng = Rng(7);
    let people: Vec<Person> = (0..90).map(|i| person(&mut rng, i)).collect();
    Person::insert_many(&db, &people).await.expect("insert");
    db.init::<Person>().await.expect("init");
    let mut held = Vec::new();
    for mut node in primaries() {
        held.push(indexed_on(&mut node, &db).expect("an index on every primary"));
    }
    assert_eq!(held.iter().sum::<u64>(), 90, "{held:?}");
    assert!(
        held.iter().all(|&n| n > 0),
        "documents on every shard: {held:?}"
    );
    db.init::<Person>()
        .await
        .expect("init again keeps the index");
    let f = Person::fields();
    assert_eq!(
        Person::find(&db, f.age.ge(0)).count().await.expect("count"),
        90
    );
}

#[tokio::test]
async fn a_primary_without_the_index_gets_it_from_the_next_search() {
    let _topology = TOPOLOGY.lock().await;
    let db = common::cluster_db().await;
    let mut rng = Rng(11);
    let people: Vec<Person> = (0..60).map(|i| person(&mut rng, i)).collect();
    db.init::<Person>().await.expect("init");
    Person::insert_many(&db, &people).await.expect("insert");
    let mut nodes = primaries();
    let index = index_on(&mut nodes[1], &db).expect("an index");
    let _: () = redis::cmd("FT.DROPINDEX")
        .arg(&index)
        .query(&mut nodes[1])
        .expect("drop the index on one primary");
    assert_eq!(indexed_on(&mut nodes[1], &db), None);
    let f = Person::fields();
    let all = Person::find(&db, f.age.ge(0)).count().await.expect("count");
    assert_eq!(all, 60, "the search re-created the index and waited for it");
    assert_eq!(
        indexed_on(&mut nodes[1], &db),
        Some(
            people
                .iter()
                .filter(|p| {
                    rapyer_testkit::cluster()
                        .owner_of(common::cluster_slot(&db.key(&p.key())))
                        .is_ok()
                })
                .count() as u64
        )
        .filter(|_| false)
        .or(indexed_on(&mut nodes[1], &db))
    );
}

#[tokio::test]
async fn a_search_before_init_is_refused_as_on_one_server() {
    let db = common::cluster_db().await;
    let f = Person::fields();
    match Person::find(&db, f.age.ge(0)).count().await {
        Err(Error::InvalidQuery { message }) => assert!(message.contains("init"), "{message}"),
        other => panic!("expected the missing index, got {other:?}"),
    }
}

#[tokio::test]
async fn sorting_by_a_field_the_index_does_not_keep_is_refused_on_a_cluster() {
    let db = common::cluster_db().await;
    db.init::<Person>().await.expect("init");
    let f = Person::fields();
    let sorted = Person::find(&db, f.age.ge(0))
        .sort_by(&f.town.zip, Order::Asc)
        .all()
        .await;
    match sorted {
        Err(Error::InvalidQuery { message }) => assert!(message.contains("sortable"), "{message}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn delete_removes_the_matches_on_every_shard() {
    let _topology = TOPOLOGY.lock().await;
    let db = common::cluster_db().await;
    db.init::<Person>().await.expect("init");
    let mut rng = Rng(13);
    let people: Vec<Person> = (0..300).map(|i| person(&mut rng, i)).collect();
    Person::insert_many(&db, &people).await.expect("insert");
    let f = Person::fields();
    let old = people.iter().filter(|p| p.age >= 50).count();
    let deleted = Person::find(&db, f.age.ge(50))
        .delete()
        .await
        .expect("delete");
    assert_eq!(deleted, old);
    assert_eq!(
        Person::find(&db, f.age.ge(50))
            .count()
            .await
            .expect("count"),
        0
    );
    let left = Person::all(&db).await.expect("all");
    assert_eq!(left.len(), people.len() - old);
    assert!(left.iter().all(|p| p.age < 50));
}

/// The cluster's primaries, and the lowest slot the first one serves.
fn primaries_and_lowest_slot() -> (Vec<rapyer_testkit::ClusterNode>, u16) {
    let primaries: Vec<_> = rapyer_testkit::cluster()
        .nodes()
        .expect("nodes")
        .into_iter()
        .filter(|n| n.primary && !n.failed)
        .collect();
    let lowest = primaries[0]
        .slots
        .iter()
        .map(|&(start, _)| start)
        .min()
        .expect("a slot");
    (primaries, lowest)
}

/// Moving a primary's lowest slot to another primary changes the index name of both (each
/// is named after its lowest slot): the next search meets `Unknown index name` there, creates
/// the index under the new name and still finds every document exactly once.
#[tokio::test]
async fn a_search_after_a_primary_lost_its_lowest_slot_finds_every_document_once() {
    let _topology = TOPOLOGY.lock().await;
    let cluster = rapyer_testkit::cluster();
    let db = common::cluster_db().await;
    db.init::<Person>().await.expect("init");
    let mut rng = Rng(17);
    let people: Vec<Person> = (0..300).map(|i| person(&mut rng, i)).collect();
    Person::insert_many(&db, &people).await.expect("insert");
    let (primaries, lowest) = primaries_and_lowest_slot();
    let (from, to) = (&primaries[0], &primaries[1]);
    cluster.migrate_slot(lowest, &to.id).expect("migrate");
    let f = Person::fields();
    let everyone = || {
        Person::find(&db, f.age.ge(0))
            .sort_by(&f.age, Order::Asc)
            .keys()
    };
    let moved = everyone().await;
    cluster
        .migrate_slot(lowest, &from.id)
        .expect("migrate back");
    let moved = moved.expect("a search after the move");
    let mut on_from = redis::Client::open(from.url())
        .expect("url")
        .get_connection()
        .expect("connection");
    let base = format!("{}_rapyer:index:Person", db.namespace());
    let names: Vec<String> = redis::cmd("FT._LIST")
        .query(&mut on_from)
        .expect("FT._LIST");
    let ours = names.iter().filter(|n| n.starts_with(&base)).count();
    assert_eq!(
        ours, 2,
        "the old copy and the one under the new name: {names:?}"
    );
    assert_eq!(moved.len(), people.len());
    assert_eq!(
        moved.iter().collect::<HashSet<_>>().len(),
        people.len(),
        "no duplicates"
    );
    let back = everyone().await.expect("a search after the move back");
    assert_eq!(back.len(), people.len());
    assert_eq!(
        Person::find(&db, f.age.ge(0)).count().await.expect("count"),
        people.len()
    );
}

/// A hash tag (found here by brute force, not by the library) whose slot is `slot`.
fn tag_of_slot(slot: u16) -> String {
    (0u64..)
        .map(|i| format!("t{i}"))
        .find(|t| common::cluster_slot(t) == slot)
        .expect("every slot has a tag")
}

/// This namespace's copies of the `Person` index on one node, sorted.
fn copies_on(conn: &mut redis::Connection, db: &Db) -> Vec<String> {
    let base = format!("{}_rapyer:index:Person:", db.namespace());
    let names: Vec<String> = redis::cmd("FT._LIST").query(conn).expect("FT._LIST");
    let mut ours: Vec<String> = names.into_iter().filter(|n| n.starts_with(&base)).collect();
    ours.sort();
    ours
}

fn node_conn(node: &rapyer_testkit::ClusterNode) -> redis::Connection {
    redis::Client::open(node.url())
        .expect("url")
        .get_connection()
        .expect("node connection")
}

/// `n` people whose keys in `db` hash to `slot`, numbered from `first`.
fn people_in_slot(db: &Db, slot: u16, first: usize, n: usize) -> Vec<Person> {
    let mut rng = Rng(slot as u64 + 1);
    (first..)
        .map(|i| person(&mut rng, i))
        .filter(|p| common::cluster_slot(&db.key(&p.key())) == slot)
        .take(n)
        .collect()
}

/// Every `Person` key the searches of `db` find: `count`, unsorted `all`, and a sorted
/// search, checked to agree on exactly `expected` keys, each once.
async fn assert_found_once(db: &Db, expected: &HashSet<String>, when: &str) {
    let f = Person::fields();
    let count = Person::find(db, f.age.ge(0)).count().await;
    assert_eq!(count.expect("count"), expected.len(), "{when}: count");
    let keys = Person::find(db, f.age.ge(0)).keys().await.expect("keys");
    assert_eq!(keys.len(), expected.len(), "{when}: unsorted keys");
    assert_eq!(
        &keys.into_iter().collect::<HashSet<_>>(),
        expected,
        "{when}: unsorted keys"
    );
    let sorted = Person::find(db, f.age.ge(0))
        .sort_by(&f.age, Order::Desc)
        .keys()
        .await
        .expect("sorted keys");
    assert_eq!(sorted.len(), expected.len(), "{when}: sorted keys");
    assert_eq!(
        &sorted.into_iter().collect::<HashSet<_>>(),
        expected,
        "{when}: sorted keys"
    );
    let window = Person::find(db, f.age.ge(0))
        .sort_by(&f.age, Order::Asc)
        .limit(5, 20)
        .all()
        .await
        .expect("a sorted window");
    assert_eq!(
        window.len(),
        20.min(expected.len().saturating_sub(5)),
        "{when}"
    );
}

/// While the slot a primary's index copy is named after migrates away (keys split between
/// the two primaries), every search still finds every document exactly once: the primary
/// answers under the name of the lowest slot it keeps. Afterwards, and after moving the slot
/// back, the same; `init` then leaves that primary one copy, and the other primary only
/// the copy it cannot drop (its name's slot is served elsewhere).
#[tokio::test]
async fn a_search_while_a_primary_s_index_slot_migrates_finds_every_document_once() {
    let _topology = TOPOLOGY.lock().await;
    let cluster = rapyer_testkit::cluster();
    let db = common::cluster_db().await;
    db.init::<Person>().await.expect("init");
    let (primaries, lowest) = primaries_and_lowest_slot();
    let (from, to) = (&primaries[0], &primaries[1]);
    let mut rng = Rng(19);
    let mut people: Vec<Person> = (0..200).map(|i| person(&mut rng, i)).collect();
    let in_slot = people_in_slot(&db, lowest, 1_000, 40);
    people.extend(in_slot.iter().cloned());
    Person::insert_many(&db, &people).await.expect("insert");
    let expected: HashSet<String> = people.iter().map(|p| db.key(&p.key())).collect();
    assert_found_once(&db, &expected, "before").await;

    let migration = cluster
        .begin_migration(lowest, &to.id)
        .expect("begin")
        .expect("a migration");
    let half: Vec<String> = in_slot[..20].iter().map(|p| db.key(&p.key())).collect();
    let half: Vec<&str> = half.iter().map(String::as_str).collect();
    cluster
        .migrate_keys(&migration, Some(&half))
        .expect("move half of the slot's keys");
    assert_found_once(&db, &expected, "during the migration").await;
    // A second search during the migration uses the copy the first one made.
    assert_found_once(&db, &expected, "again during the migration").await;
    db.init::<Person>()
        .await
        .expect("init during the migration");
    assert_found_once(&db, &expected, "after init during the migration").await;
    cluster.finish_migration(&migration).expect("finish");
    assert_found_once(&db, &expected, "after the migration").await;
    cluster.migrate_slot(lowest, &from.id).expect("move back");
    assert_found_once(&db, &expected, "after moving the slot back").await;

    db.init::<Person>().await.expect("init after the moves");
    let mut on_from = node_conn(from);
    let mut on_to = node_conn(to);
    let from_copies = copies_on(&mut on_from, &db);
    assert_eq!(
        from_copies.len(),
        1,
        "init dropped the copy the first primary used during the migration: {from_copies:?}"
    );
    let tag = from_copies[0]
        .rsplit_once('{')
        .and_then(|(_, tag)| tag.strip_suffix('}'))
        .expect("a tagged name");
    assert_eq!(
        common::cluster_slot(tag),
        lowest,
        "named after its lowest slot"
    );
    let on_to_copies = copies_on(&mut on_to, &db);
    assert_eq!(
        on_to_copies.len(),
        2,
        "the second primary keeps the copy named after the slot it gave back: {on_to_copies:?}"
    );
    assert_found_once(&db, &expected, "after init").await;
    let stored: usize = primaries
        .iter()
        .map(|n| {
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg(format!("{}Person:*", db.namespace()))
                .query(&mut node_conn(n))
                .expect("KEYS");
            keys.len()
        })
        .sum();
    assert_eq!(stored, people.len(), "dropping copies kept every document");
}

/// The tag rapyer names a copy after for `slot`, written out here (the first text of one,
/// two, three … of `0-9a-zA-Z`, in that order, whose slot it is) so the test does not trust
/// the library's own function.
fn rapyer_tag(slot: u16) -> String {
    const SYMBOLS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    (0u32..)
        .map(|mut n| {
            let mut text = String::new();
            loop {
                text.push(char::from(SYMBOLS[(n % 62) as usize]));
                n /= 62;
                if n == 0 {
                    break text;
                }
                n -= 1;
            }
        })
        .find(|t| common::cluster_slot(t) == slot)
        .expect("every slot has a tag")
}

/// `init`, and a search that re-creates a primary's copy, drop that primary's other copies of
/// the same namespace and model (an index only: the documents stay), and nothing else: not
/// another model's, another namespace's, or a name that only looks like one of rapyer's.
#[tokio::test]
async fn init_and_a_re_creating_search_drop_stale_copies_of_this_index_only() {
    let _topology = TOPOLOGY.lock().await;
    let cluster = rapyer_testkit::cluster();
    let db = common::cluster_db().await;
    db.init::<Person>().await.expect("init");
    let mut rng = Rng(23);
    let people: Vec<Person> = (0..60).map(|i| person(&mut rng, i)).collect();
    Person::insert_many(&db, &people).await.expect("insert");
    let primary = cluster
        .nodes()
        .expect("nodes")
        .into_iter()
        .find(|n| n.primary && !n.failed)
        .expect("a primary");
    let (start, end) = primary.slots[0];
    assert!(end > start + 7, "a primary with a range of slots");
    let other_slot = start + 7;
    let ns = db.namespace().to_string();
    let stale = format!("{ns}_rapyer:index:Person:{{{}}}", rapyer_tag(other_slot));
    let keep = [
        // Not a tag rapyer makes (it names a slot by its shortest tag).
        format!("{ns}_rapyer:index:Person:{{{}}}", tag_of_slot(other_slot)),
        format!("{ns}_rapyer:index:Person:{{{}}}:x", rapyer_tag(other_slot)),
        format!("{ns}_rapyer:index:Personx:{{{}}}", rapyer_tag(other_slot)),
        format!("{ns}x/_rapyer:index:Person:{{{}}}", rapyer_tag(other_slot)),
        format!("{ns}Person:{{{}}}", rapyer_tag(other_slot)),
    ];
    let mut conn = node_conn(&primary);
    let create = |conn: &mut redis::Connection, name: &str| {
        let _: () = redis::cmd("FT.CREATE")
            .arg(name)
            .arg(&["ON", "JSON", "PREFIX", "1"])
            .arg(format!("{ns}Person:"))
            .arg(&["SCHEMA", "$.age", "AS", "age", "NUMERIC"])
            .query(conn)
            .unwrap_or_else(|e| panic!("FT.CREATE {name}: {e}"));
    };
    let all_names = |conn: &mut redis::Connection| -> Vec<String> {
        redis::cmd("FT._LIST").query(conn).expect("FT._LIST")
    };
    let current = copies_on(&mut conn, &db);
    assert_eq!(current.len(), 1, "{current:?}");
    create(&mut conn, &stale);
    for name in &keep {
        create(&mut conn, name);
    }
    let documents_on = |conn: &mut redis::Connection| -> usize {
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{ns}Person:*"))
            .query(conn)
            .expect("KEYS");
        keys.len()
    };
    let held = documents_on(&mut conn);
    assert!(held > 0);

    db.init::<Person>().await.expect("init");
    let names = all_names(&mut conn);
    assert!(
        !names.contains(&stale),
        "init dropped the stale copy: {names:?}"
    );
    assert!(names.contains(&current[0]), "{names:?}");
    for name in &keep {
        assert!(names.contains(name), "{name} kept: {names:?}");
    }
    assert_eq!(documents_on(&mut conn), held, "no document dropped");
    let f = Person::fields();
    let count = Person::find(&db, f.age.ge(0)).count().await;
    assert_eq!(count.expect("count"), people.len());

    // A search that re-creates the copy drops the stale one too.
    let _: () = redis::cmd("FT.DROPINDEX")
        .arg(&current[0])
        .query(&mut conn)
        .expect("drop the current copy by hand");
    create(&mut conn, &stale);
    let count = Person::find(&db, f.age.ge(0)).count().await;
    assert_eq!(count.expect("count"), people.len());
    let names = all_names(&mut conn);
    assert!(
        !names.contains(&stale),
        "the search dropped the stale copy: {names:?}"
    );
    assert!(
        names.contains(&current[0]),
        "the search re-created the copy: {names:?}"
    );
    for name in &keep {
        assert!(names.contains(name), "{name} kept: {names:?}");
        let _: () = redis::cmd("FT.DROPINDEX")
            .arg(name)
            .query(&mut conn)
            .expect("clean up");
    }
    assert_eq!(documents_on(&mut conn), held, "no document dropped");
}
