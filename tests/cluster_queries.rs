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
    let primaries: Vec<_> = cluster
        .nodes()
        .expect("nodes")
        .into_iter()
        .filter(|n| n.primary && !n.failed)
        .collect();
    let (from, to) = (&primaries[0], &primaries[1]);
    let lowest = from
        .slots
        .iter()
        .map(|&(start, _)| start)
        .min()
        .expect("a slot");
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
