//! Typed queries over RediSearch against the real server: exact TAG matching of hostile
//! values, numeric ranges, nested and array fields, full text, sorting, paging past the
//! server's page size, counting, deleting, and re-indexing when the schema changes.

mod common;

use rapyer::prelude::*;
use serde::{Deserialize, Serialize};

use common::{Rng, db, raw};

#[derive(AtomicModel, Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Place {
    #[rapyer(index)]
    city: String,
    zip: i64,
}

#[derive(AtomicModel, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[rapyer(prefix = "Member")]
struct Member {
    #[rapyer(key)]
    id: String,
    #[rapyer(index)]
    name: String,
    #[rapyer(index(sortable))]
    age: i64,
    #[rapyer(index)]
    score: f64,
    #[rapyer(index(text))]
    bio: String,
    #[rapyer(index)]
    active: bool,
    #[rapyer(index)]
    tags: Vec<String>,
    #[rapyer(index)]
    place: Place,
    #[rapyer(index(case_insensitive))]
    nick: String,
}

fn member(id: usize, name: &str, age: i64) -> Member {
    Member {
        id: format!("m{id}"),
        name: name.to_string(),
        age,
        score: age as f64 / 2.0,
        bio: format!("likes rust and {name}"),
        active: id.is_multiple_of(2),
        tags: vec![format!("t{}", id % 3), "all".into()],
        place: Place {
            city: if id.is_multiple_of(2) {
                "New York".into()
            } else {
                "Paris".into()
            },
            zip: id as i64,
        },
        nick: name.to_uppercase(),
    }
}

fn ids(found: &[Member]) -> Vec<String> {
    let mut ids: Vec<String> = found.iter().map(|m| m.id.clone()).collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn exact_matching_ranges_nested_arrays_and_text() {
    let db = db().await;
    db.init::<Member>().await.expect("init");
    let members = vec![
        member(0, "bob", 30),
        member(1, "bob smith", 40),
        member(2, "a-b\"c/d@e|f{g} h", 50),
        member(3, "Bob", 60),
        member(4, "émoji 🎉 中", 17),
    ];
    Member::insert_many(&db, &members).await.expect("insert");
    db.init::<Member>().await.expect("init again is free");
    let f = Member::fields();

    let found = Member::find(&db, f.name.eq("bob")).all().await.expect("eq");
    assert_eq!(ids(&found), ["m0"], "exact and case-sensitive");
    for m in &members {
        let found = Member::find(&db, f.name.eq(&m.name))
            .all()
            .await
            .expect("eq");
        assert_eq!(found, vec![m.clone()], "{:?}", m.name);
    }
    let found = Member::find(&db, f.nick.eq("bob")).all().await.expect("ci");
    assert_eq!(ids(&found), ["m0", "m3"], "case_insensitive");
    let found = Member::find(&db, f.name.starts_with("bob"))
        .all()
        .await
        .expect("prefix");
    assert_eq!(ids(&found), ["m0", "m1"]);
    let found = Member::find(&db, f.name.one_of(["bob", "Bob"]))
        .all()
        .await
        .expect("one_of");
    assert_eq!(ids(&found), ["m0", "m3"]);
    let found = Member::find(&db, f.name.ne("bob")).all().await.expect("ne");
    assert_eq!(ids(&found), ["m1", "m2", "m3", "m4"]);

    assert_eq!(
        ids(&Member::find(&db, f.age.gt(40)).all().await.expect("gt")),
        ["m2", "m3"]
    );
    assert_eq!(
        ids(&Member::find(&db, f.age.ge(40)).all().await.expect("ge")),
        ["m1", "m2", "m3"]
    );
    assert_eq!(
        ids(&Member::find(&db, f.age.lt(30)).all().await.expect("lt")),
        ["m4"]
    );
    assert_eq!(
        ids(&Member::find(&db, f.age.le(30)).all().await.expect("le")),
        ["m0", "m4"]
    );
    assert_eq!(
        ids(&Member::find(&db, f.age.between(30, 50))
            .all()
            .await
            .expect("between")),
        ["m0", "m1", "m2"]
    );
    assert_eq!(
        ids(&Member::find(&db, f.age.one_of([17, 60]))
            .all()
            .await
            .expect("one_of")),
        ["m3", "m4"]
    );
    assert_eq!(
        ids(&Member::find(&db, f.score.gt(24.5))
            .all()
            .await
            .expect("float")),
        ["m2", "m3"]
    );
    assert!(
        Member::find(&db, f.age.one_of([]))
            .all()
            .await
            .expect("nothing")
            .is_empty()
    );

    assert_eq!(
        ids(&Member::find(&db, f.active.eq(true))
            .all()
            .await
            .expect("bool")),
        ["m0", "m2", "m4"]
    );
    assert_eq!(
        ids(&Member::find(&db, f.place.city.eq("New York"))
            .all()
            .await
            .expect("nested")),
        ["m0", "m2", "m4"]
    );
    assert_eq!(
        ids(&Member::find(&db, f.tags.contains("t1"))
            .all()
            .await
            .expect("tags")),
        ["m1", "m4"]
    );
    assert_eq!(
        ids(&Member::find(&db, f.tags.any_of(["t0", "t2"]))
            .all()
            .await
            .expect("any_of")),
        ["m0", "m2", "m3"]
    );
    assert_eq!(
        ids(&Member::find(&db, f.bio.contains("rust"))
            .all()
            .await
            .expect("text"))
        .len(),
        5
    );
    assert_eq!(
        ids(&Member::find(&db, f.bio.matches("likes smith"))
            .all()
            .await
            .expect("text")),
        ["m1"]
    );

    let q = (f.age.ge(30) & f.active.eq(false)) | !f.place.city.eq("Paris");
    assert_eq!(
        ids(&Member::find(&db, q).all().await.expect("combined")),
        ["m0", "m1", "m2", "m3", "m4"]
    );
    let q = f.age.ge(30) & !(f.name.eq("bob") | f.name.eq("Bob"));
    assert_eq!(
        ids(&Member::find(&db, q).all().await.expect("combined")),
        ["m1", "m2"]
    );
}

/// An index over 30 stored members, `n0` to `n29`, whose ages are 0 to 29 in another order.
async fn thirty_members(db: &Db) -> Vec<Member> {
    db.init::<Member>().await.expect("init");
    let members: Vec<Member> = (0..30)
        .map(|i| member(i, &format!("n{i}"), (i * 7 % 30) as i64))
        .collect();
    Member::insert_many(db, &members).await.expect("insert");
    members
}

#[tokio::test]
async fn sort_by_takes_any_indexed_field_not_only_sortable_ones() {
    let db = db().await;
    let members = thirty_members(&db).await;
    let f = Member::fields();
    let all = || Member::find(&db, f.tags.contains("all"));

    // `score` is a NUMERIC field without `sortable`.
    let by_score = all()
        .sort_by(&f.score, Order::Asc)
        .limit(5, 10)
        .all()
        .await
        .expect("sorted by score");
    let scores: Vec<f64> = by_score.iter().map(|m| m.score).collect();
    let expected: Vec<f64> = (5..15).map(|age| age as f64 / 2.0).collect();
    assert_eq!(scores, expected);

    // `name` is a TAG field and `bio` a TEXT field, neither `sortable`: sorted as text
    // ("n10" before "n2").
    let name = |m: &Member| m.name.clone();
    sorted_as_text(&db, &members, &f.name, name, Order::Desc, (3, 4)).await;
    sorted_as_text(&db, &members, &f.bio, |m| m.bio.clone(), Order::Asc, (0, 5)).await;

    // A name that is not an indexed field is refused before anything is sent.
    struct NotIndexed;
    impl rapyer::query::FieldName for NotIndexed {
        fn field_name(&self) -> &str {
            "nickname"
        }
    }
    match all().sort_by(&NotIndexed, Order::Asc).all().await {
        Err(Error::InvalidQuery { message }) => {
            assert!(message.contains("not an indexed field"), "{message}")
        }
        other => panic!("expected InvalidQuery, got {other:?}"),
    }
}

/// Checks that `find(..).sort_by(field, order).limit(offset, n)` returns the members whose
/// `text` comes at those places when every member's text is sorted here.
async fn sorted_as_text(
    db: &Db,
    members: &[Member],
    field: &impl rapyer::query::FieldName,
    text: fn(&Member) -> String,
    order: Order,
    (offset, n): (usize, usize),
) {
    let mut texts: Vec<String> = members.iter().map(text).collect();
    texts.sort();
    if order == Order::Desc {
        texts.reverse();
    }
    let found = Member::find(db, Member::fields().tags.contains("all"))
        .sort_by(field, order)
        .limit(offset, n)
        .all()
        .await
        .expect("sorted");
    let got: Vec<String> = found.iter().map(text).collect();
    assert_eq!(got, texts[offset..offset + n]);
}

#[tokio::test]
async fn sorting_limits_counting_first_and_delete() {
    let db = db().await;
    thirty_members(&db).await;
    let f = Member::fields();

    let sorted = Member::find(&db, f.tags.contains("all"))
        .sort_by(&f.age, Order::Desc)
        .limit(5, 10)
        .all()
        .await
        .expect("sorted");
    let ages: Vec<i64> = sorted.iter().map(|m| m.age).collect();
    assert_eq!(ages, (15..25).rev().collect::<Vec<i64>>());
    let oldest = Member::find(&db, f.tags.contains("all"))
        .sort_by(&f.age, Order::Desc)
        .first()
        .await
        .expect("first");
    assert_eq!(oldest.map(|m| m.age), Some(29));
    assert_eq!(
        Member::find(&db, f.age.lt(10))
            .count()
            .await
            .expect("count"),
        10
    );
    assert_eq!(
        Member::find(&db, f.age.lt(10))
            .delete()
            .await
            .expect("delete"),
        10
    );
    assert_eq!(
        Member::find(&db, f.age.lt(10))
            .count()
            .await
            .expect("count"),
        0
    );
    assert_eq!(Member::all(&db).await.expect("all").len(), 20);
}

#[tokio::test]
async fn every_match_is_returned_past_the_page_size() {
    let db = db().await;
    db.init::<Member>().await.expect("init");
    let members: Vec<Member> = (0..12_000)
        .map(|i| member(i, "many", (i % 100) as i64))
        .collect();
    for chunk in members.chunks(2_000) {
        Member::insert_many(&db, chunk).await.expect("insert");
    }
    let f = Member::fields();
    let found = Member::find(&db, f.name.eq("many"))
        .all()
        .await
        .expect("all");
    assert_eq!(found.len(), 12_000);
    let mut seen: Vec<String> = found.into_iter().map(|m| m.id).collect();
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 12_000, "no duplicates");
    let window = Member::find(&db, f.name.eq("many"))
        .limit(11_990, 50)
        .all()
        .await
        .expect("limit");
    assert_eq!(window.len(), 10);
    assert_eq!(
        Member::find(&db, f.name.eq("many"))
            .limit(100, 2_500)
            .keys()
            .await
            .expect("keys")
            .len(),
        2_500
    );
}

#[tokio::test]
async fn a_broken_document_is_reported_not_skipped() {
    let db = db().await;
    let mut raw = raw().await;
    db.init::<Member>().await.expect("init");
    Member::insert_many(&db, &[member(0, "ok", 1), member(1, "ok", 2)])
        .await
        .expect("insert");
    // Indexed fields intact, but `zip` holds text: indexed, and does not decode.
    let _: () = redis::cmd("JSON.SET")
        .arg(db.key("Member:m1"))
        .arg("$.place.zip")
        .arg("\"zip?\"")
        .query_async(&mut raw)
        .await
        .expect("JSON.SET");
    let f = Member::fields();
    match Member::find(&db, f.name.eq("ok")).all().await {
        Err(Error::Deserialize { key, path, .. }) => {
            assert_eq!(key, db.key("Member:m1"));
            assert_eq!(path, "place.zip");
        }
        other => panic!("expected Deserialize, got {other:?}"),
    }
}

/// The same documents as `Member`, indexed differently: a schema change.
#[derive(AtomicModel, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[rapyer(prefix = "Member")]
struct MemberV2 {
    #[rapyer(key)]
    id: String,
    #[rapyer(index)]
    name: String,
    #[rapyer(index(sortable))]
    age: i64,
    score: f64,
    bio: String,
    active: bool,
    tags: Vec<String>,
    #[rapyer(index)]
    place: PlaceV2,
    nick: String,
}

#[derive(AtomicModel, Serialize, Deserialize, Debug, Clone, PartialEq)]
struct PlaceV2 {
    city: String,
    #[rapyer(index)]
    zip: i64,
}

async fn index_uses(db: &Db) -> i64 {
    let info: Vec<redis::Value> = redis::cmd("FT.INFO")
        .arg(format!("{}_rapyer:index:Member", db.namespace()))
        .query_async(&mut raw().await)
        .await
        .expect("FT.INFO");
    let at = info
        .iter()
        .position(|v| matches!(v, redis::Value::SimpleString(s) if s == "number_of_uses"))
        .or_else(|| {
            info.iter()
                .position(|v| matches!(v, redis::Value::BulkString(b) if b == b"number_of_uses"))
        })
        .expect("number_of_uses in FT.INFO");
    match &info[at + 1] {
        redis::Value::Int(n) => *n,
        other => panic!("number_of_uses: {other:?}"),
    }
}

#[tokio::test]
async fn a_schema_change_is_found_by_the_next_init() {
    let db = db().await;
    db.init::<Member>().await.expect("init");
    let members: Vec<Member> = (0..50).map(|i| member(i, "v", i as i64)).collect();
    Member::insert_many(&db, &members).await.expect("insert");
    let f = Member::fields();
    for _ in 0..30 {
        assert_eq!(
            Member::find(&db, f.name.eq("v"))
                .count()
                .await
                .expect("count"),
            50
        );
    }
    let uses = index_uses(&db).await;
    assert!(uses >= 30, "{uses} uses");
    db.init::<Member>().await.expect("unchanged");
    let kept = index_uses(&db).await;
    assert!(
        kept > uses,
        "an unchanged schema keeps the index ({uses} -> {kept} uses)"
    );

    // The new schema indexes place.zip: the next init re-creates the index over the
    // existing documents, with no manual step.
    db.init::<MemberV2>().await.expect("migrate");
    let g = MemberV2::fields();
    let found = MemberV2::find(&db, g.place.zip.lt(10))
        .sort_by(&g.age, Order::Asc)
        .all()
        .await
        .expect("new field");
    assert_eq!(found.len(), 10);
    assert!(found.iter().all(|m| m.name == "v"));
    let ages: Vec<i64> = found.iter().map(|m| m.age).collect();
    assert_eq!(ages, (0..10).collect::<Vec<i64>>());
    let fresh = index_uses(&db).await;
    assert!(
        fresh < uses,
        "the index was re-created ({kept} -> {fresh} uses)"
    );
    assert_eq!(MemberV2::all(&db).await.expect("documents kept").len(), 50);
}

#[tokio::test]
async fn hostile_values_match_exactly_the_documents_that_hold_them() {
    let db = db().await;
    db.init::<Member>().await.expect("init");
    let punctuation: Vec<char> = (0x21u8..0x7f)
        .map(char::from)
        .filter(|c| c.is_ascii_punctuation())
        .collect();
    let unicode = [
        'é', '中', '🎉', 'ß', 'Ω', ' ', '\t', '\n', '\r', '\u{1}', '\u{7f}', '\u{a0}', '\u{3000}',
    ];
    let mut rng = Rng(0x1234_5678_9ABC_DEF1);
    let mut values: Vec<String> = punctuation.iter().map(|c| format!("a{c}b")).collect();
    values.extend(["", " ", "a b", "bob", "bob smith", "BOB"].map(String::from));
    for _ in 0..150 {
        let len = 1 + rng.below(8) as usize;
        values.push(
            (0..len)
                .map(|_| match rng.below(3) {
                    0 => punctuation[rng.below(punctuation.len() as u64) as usize],
                    1 => unicode[rng.below(unicode.len() as u64) as usize],
                    _ => char::from(b'a' + rng.below(3) as u8),
                })
                .collect(),
        );
    }
    let members: Vec<Member> = values
        .iter()
        .enumerate()
        .map(|(i, v)| member(i, v, 1))
        .collect();
    Member::insert_many(&db, &members).await.expect("insert");
    let f = Member::fields();
    for value in &values {
        let mut expected: Vec<String> = members
            .iter()
            .filter(|m| &m.name == value)
            .map(|m| m.id.clone())
            .collect();
        expected.sort();
        let found = Member::find(&db, f.name.eq(value)).all().await.expect("eq");
        assert_eq!(ids(&found), expected, "{value:?}");
    }
}

/// A query kept twice: as the library's expression and as a Rust predicate, so the server's
/// answer can be checked against evaluating the predicate over the inserted data.
enum Q {
    NameEq(String),
    NameNe(String),
    NameOneOf(Vec<String>),
    NamePrefix(String),
    AgeEq(i64),
    AgeNe(i64),
    AgeGt(i64),
    AgeGe(i64),
    AgeLt(i64),
    AgeLe(i64),
    AgeBetween(i64, i64),
    AgeOneOf(Vec<i64>),
    ScoreGt(f64),
    Active(bool),
    City(String),
    Tag(String),
    TagAny(Vec<String>),
    And(Box<Q>, Box<Q>),
    Or(Box<Q>, Box<Q>),
    Not(Box<Q>),
}

const NAMES: &[&str] = &[
    "bob",
    "bob smith",
    "Bob",
    "a-b",
    "x\"y",
    "",
    "a b|c",
    "émoji🎉",
];
const CITIES: &[&str] = &["Paris", "New York", "São Paulo", "x{y}"];

impl Q {
    fn random(rng: &mut Rng, depth: u32) -> Q {
        let pick =
            |rng: &mut Rng, pool: &[&str]| pool[rng.below(pool.len() as u64) as usize].to_string();
        if depth > 0 && rng.below(3) > 0 {
            return match rng.below(3) {
                0 => Q::And(
                    Box::new(Q::random(rng, depth - 1)),
                    Box::new(Q::random(rng, depth - 1)),
                ),
                1 => Q::Or(
                    Box::new(Q::random(rng, depth - 1)),
                    Box::new(Q::random(rng, depth - 1)),
                ),
                _ => Q::Not(Box::new(Q::random(rng, depth - 1))),
            };
        }
        let age = rng.below(110) as i64 - 5;
        match rng.below(17) {
            0 => Q::NameEq(pick(rng, NAMES)),
            1 => Q::NameNe(pick(rng, NAMES)),
            2 => Q::NameOneOf((0..rng.below(3)).map(|_| pick(rng, NAMES)).collect()),
            3 => Q::NamePrefix(["bo", "a-", "x\"", "ém"][rng.below(4) as usize].to_string()),
            4 => Q::AgeEq(age),
            5 => Q::AgeNe(age),
            6 => Q::AgeGt(age),
            7 => Q::AgeGe(age),
            8 => Q::AgeLt(age),
            9 => Q::AgeLe(age),
            10 => Q::AgeBetween(age, age + rng.below(30) as i64),
            11 => Q::AgeOneOf((0..rng.below(4)).map(|_| rng.below(100) as i64).collect()),
            12 => Q::ScoreGt(rng.below(100) as f64 / 2.0 + 0.25),
            13 => Q::Active(rng.below(2) == 0),
            14 => Q::City(pick(rng, CITIES)),
            15 => Q::Tag(format!("t{}", rng.below(5))),
            _ => Q::TagAny(
                (0..rng.below(3))
                    .map(|_| format!("t{}", rng.below(5)))
                    .collect(),
            ),
        }
    }

    fn holds(&self, m: &Member) -> bool {
        match self {
            Q::NameEq(v) => &m.name == v,
            Q::NameNe(v) => &m.name != v,
            Q::NameOneOf(vs) => vs.contains(&m.name),
            Q::NamePrefix(p) => m.name.starts_with(p.as_str()),
            Q::AgeEq(v) => m.age == *v,
            Q::AgeNe(v) => m.age != *v,
            Q::AgeGt(v) => m.age > *v,
            Q::AgeGe(v) => m.age >= *v,
            Q::AgeLt(v) => m.age < *v,
            Q::AgeLe(v) => m.age <= *v,
            Q::AgeBetween(a, b) => (*a..=*b).contains(&m.age),
            Q::AgeOneOf(vs) => vs.contains(&m.age),
            Q::ScoreGt(v) => m.score > *v,
            Q::Active(v) => m.active == *v,
            Q::City(v) => &m.place.city == v,
            Q::Tag(v) => m.tags.contains(v),
            Q::TagAny(vs) => vs.iter().any(|v| m.tags.contains(v)),
            Q::And(a, b) => a.holds(m) && b.holds(m),
            Q::Or(a, b) => a.holds(m) || b.holds(m),
            Q::Not(a) => !a.holds(m),
        }
    }

    fn expr(&self, f: &MemberFields) -> rapyer::query::Expr {
        match self {
            Q::NameEq(v) => f.name.eq(v),
            Q::NameNe(v) => f.name.ne(v),
            Q::NameOneOf(vs) => f.name.one_of(vs.iter().map(String::as_str)),
            Q::NamePrefix(p) => f.name.starts_with(p),
            Q::AgeEq(v) => f.age.eq(*v),
            Q::AgeNe(v) => f.age.ne(*v),
            Q::AgeGt(v) => f.age.gt(*v),
            Q::AgeGe(v) => f.age.ge(*v),
            Q::AgeLt(v) => f.age.lt(*v),
            Q::AgeLe(v) => f.age.le(*v),
            Q::AgeBetween(a, b) => f.age.between(*a, *b),
            Q::AgeOneOf(vs) => f.age.one_of(vs.iter().copied()),
            Q::ScoreGt(v) => f.score.gt(*v),
            Q::Active(v) => f.active.eq(*v),
            Q::City(v) => f.place.city.eq(v),
            Q::Tag(v) => f.tags.contains(v),
            Q::TagAny(vs) => f.tags.any_of(vs.iter().map(String::as_str)),
            Q::And(a, b) => a.expr(f) & b.expr(f),
            Q::Or(a, b) => a.expr(f) | b.expr(f),
            Q::Not(a) => !a.expr(f),
        }
    }
}

#[tokio::test]
async fn random_queries_find_exactly_what_the_predicate_selects() {
    let db = db().await;
    db.init::<Member>().await.expect("init");
    let mut rng = Rng(0xA076_1D64_78BD_642F);
    let members: Vec<Member> = (0..3_000)
        .map(|i| {
            let mut m = member(
                i,
                NAMES[rng.below(NAMES.len() as u64) as usize],
                rng.below(100) as i64,
            );
            m.score = rng.below(200) as f64 / 4.0;
            m.active = rng.below(2) == 0;
            m.place.city = CITIES[rng.below(CITIES.len() as u64) as usize].to_string();
            m.tags = (0..rng.below(3))
                .map(|_| format!("t{}", rng.below(5)))
                .collect();
            m
        })
        .collect();
    for chunk in members.chunks(1_000) {
        Member::insert_many(&db, chunk).await.expect("insert");
    }
    let f = Member::fields();
    for round in 0..300 {
        let q = Q::random(&mut rng, 3);
        let expr = q.expr(&f);
        let text = expr.to_query().expect("query text");
        let mut expected: Vec<String> = members
            .iter()
            .filter(|m| q.holds(m))
            .map(|m| db.key(&m.key()))
            .collect();
        expected.sort();
        let mut found = Member::find(&db, expr).keys().await.expect("query");
        found.sort();
        assert_eq!(found.len(), expected.len(), "round {round}: {text}");
        assert_eq!(found, expected, "round {round}: {text}");
    }
}

#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq)]
enum Plan {
    Free,
    Pro,
    #[serde(rename = "team plus")]
    TeamPlus,
}

rapyer::index_as_tag!(Plan);

#[derive(AtomicModel, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[rapyer(prefix = "Account")]
struct Account {
    #[rapyer(key)]
    id: String,
    #[rapyer(index, value)]
    plan: Plan,
}

#[tokio::test]
async fn unit_enums_are_tags() {
    let db = db().await;
    db.init::<Account>().await.expect("init");
    let plans = [Plan::Free, Plan::Pro, Plan::TeamPlus, Plan::Pro];
    let accounts: Vec<Account> = plans
        .iter()
        .enumerate()
        .map(|(i, plan)| Account {
            id: format!("a{i}"),
            plan: *plan,
        })
        .collect();
    Account::insert_many(&db, &accounts).await.expect("insert");
    let f = Account::fields();
    let ids = |found: Vec<Account>| {
        let mut ids: Vec<String> = found.into_iter().map(|a| a.id).collect();
        ids.sort();
        ids
    };
    assert_eq!(
        ids(Account::find(&db, f.plan.eq(Plan::Pro))
            .all()
            .await
            .expect("eq")),
        ["a1", "a3"]
    );
    assert_eq!(
        ids(Account::find(&db, f.plan.eq(Plan::TeamPlus))
            .all()
            .await
            .expect("eq")),
        ["a2"]
    );
    assert_eq!(
        ids(
            Account::find(&db, f.plan.one_of([Plan::Free, Plan::TeamPlus]))
                .all()
                .await
                .expect("one_of")
        ),
        ["a0", "a2"]
    );
    assert_eq!(
        ids(Account::find(&db, f.plan.ne(Plan::Pro))
            .all()
            .await
            .expect("ne")),
        ["a0", "a2"]
    );
}

#[cfg(feature = "chrono")]
#[derive(AtomicModel, Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Venue {
    name: String,
    #[rapyer(index)]
    opened: chrono::DateTime<chrono::Utc>,
}

#[cfg(feature = "chrono")]
#[derive(AtomicModel, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[rapyer(prefix = "Show")]
struct Show {
    #[rapyer(key)]
    id: String,
    #[rapyer(index(sortable))]
    starts: chrono::DateTime<chrono::FixedOffset>,
    #[rapyer(index)]
    venue: Venue,
}

#[cfg(feature = "chrono")]
#[tokio::test]
async fn date_times_are_indexed_by_their_instant() {
    use chrono::{Duration as Span, FixedOffset, TimeZone, Utc};
    let db = db().await;
    let mut raw = raw().await;
    db.init::<Show>().await.expect("init");
    let tokyo = FixedOffset::east_opt(9 * 3600).expect("offset");
    let lima = FixedOffset::west_opt(5 * 3600).expect("offset");
    let base = Utc
        .with_ymd_and_hms(2025, 3, 1, 12, 0, 0)
        .single()
        .expect("date");
    // The same instant written in different offsets, and neighbours a microsecond apart.
    let shows: Vec<Show> = (0..6)
        .map(|i| Show {
            id: format!("s{i}"),
            starts: match i % 2 {
                0 => (base + Span::hours(i)).with_timezone(&tokyo),
                _ => (base + Span::hours(i)).with_timezone(&lima),
            } + Span::microseconds(i),
            venue: Venue {
                name: format!("v{i}"),
                opened: base - Span::days(365 * i),
            },
        })
        .collect();
    Show::insert_many(&db, &shows).await.expect("insert");
    // The document keeps the RFC 3339 text; the instant sits beside it.
    let doc = common::stored(&mut raw, &db.key("Show:s1")).await;
    assert_eq!(
        doc["starts"],
        serde_json::json!("2025-03-01T08:00:00.000001-05:00")
    );
    assert_eq!(Show::get(&db, "s1").await.expect("get"), shows[1]);

    let f = Show::fields();
    let ids = |found: Vec<Show>| found.into_iter().map(|s| s.id).collect::<Vec<_>>();
    let sorted = |q| Show::find(&db, q).sort_by(&f.starts, Order::Asc);
    assert_eq!(
        ids(sorted(f.starts.after(base + Span::hours(2)))
            .all()
            .await
            .expect("after")),
        ["s2", "s3", "s4", "s5"],
        "after is strict, at microsecond precision"
    );
    assert_eq!(
        ids(sorted(
            f.starts
                .before((base + Span::hours(2)).with_timezone(&tokyo))
        )
        .all()
        .await
        .expect("before")),
        ["s0", "s1"]
    );
    assert_eq!(
        ids(sorted(f.starts.between(
            base + Span::hours(1),
            base + Span::hours(3) + Span::microseconds(3)
        ))
        .all()
        .await
        .expect("between")),
        ["s1", "s2", "s3"]
    );
    assert_eq!(
        ids(sorted(f.venue.opened.before(base - Span::days(365 * 3)))
            .all()
            .await
            .expect("nested")),
        ["s4", "s5"]
    );

    // Handles keep the instant in step: add, set, and a nested set.
    let mut s0 = shows[0].clone();
    s0.starts()
        .add(&db, std::time::Duration::from_secs(10 * 3600))
        .await
        .expect("add");
    assert_eq!(
        ids(sorted(f.starts.after(base + Span::hours(9)))
            .all()
            .await
            .expect("after add")),
        ["s0"]
    );
    s0.starts()
        .set(&db, (base - Span::hours(1)).with_timezone(&lima))
        .await
        .expect("set");
    assert_eq!(
        ids(sorted(f.starts.before(base))
            .all()
            .await
            .expect("after set")),
        ["s0"]
    );
    let mut s5 = shows[5].clone();
    s5.venue()
        .set(
            &db,
            Venue {
                name: "new".into(),
                opened: base + Span::days(1),
            },
        )
        .await
        .expect("nested set");
    assert_eq!(
        ids(sorted(f.venue.opened.after(base))
            .all()
            .await
            .expect("after nested set")),
        ["s5"]
    );
    // A lock's save writes the instant too.
    let mut guard = Show::lock(&db, "s3", LockOptions::default())
        .await
        .expect("lock");
    guard.starts = (base + Span::days(30)).with_timezone(&tokyo);
    guard.save().await.expect("save");
    guard.release().await.expect("release");
    assert_eq!(
        ids(sorted(f.starts.after(base + Span::days(29)))
            .all()
            .await
            .expect("after lock save")),
        ["s3"]
    );
}

#[tokio::test]
async fn delete_removes_every_match_and_nothing_else() {
    let db = db().await;
    let mut raw = raw().await;
    db.init::<Member>().await.expect("init");
    let members: Vec<Member> = (0..3_000)
        .map(|i| member(i, if i.is_multiple_of(6) { "keep" } else { "drop" }, 1))
        .collect();
    for chunk in members.chunks(1_000) {
        Member::insert_many(&db, chunk).await.expect("insert");
    }
    let f = Member::fields();
    assert_eq!(
        Member::find(&db, f.name.eq("drop"))
            .delete()
            .await
            .expect("delete"),
        2_500
    );
    let kept = Member::all(&db).await.expect("all");
    assert_eq!(kept.len(), 500);
    assert!(kept.iter().all(|m| m.name == "keep"));
    let left: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{}Member:*", db.namespace()))
        .query_async(&mut raw)
        .await
        .expect("KEYS");
    assert_eq!(left.len(), 500, "exactly the matching keys are gone");
    assert_eq!(
        Member::find(&db, f.name.eq("drop"))
            .count()
            .await
            .expect("count"),
        0
    );
}

/// The control characters and every character Rust or RediSearch may treat as whitespace.
fn separators() -> Vec<char> {
    let mut chars: Vec<char> = (0x01u8..0x20).chain([0x20, 0x7f]).map(char::from).collect();
    chars.extend(
        (0x80u32..=0x3000)
            .filter_map(char::from_u32)
            .filter(|c| c.is_whitespace()),
    );
    chars.extend(['\u{200b}', '\u{feff}']);
    chars
}

/// The error of a query that must be refused before anything is sent.
fn refusal<T: std::fmt::Debug>(result: rapyer::Result<T>) -> String {
    match result {
        Err(Error::InvalidQuery { message }) => message,
        other => panic!("expected InvalidQuery, got {other:?}"),
    }
}

async fn member_keys(db: &Db) -> Vec<String> {
    let mut keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{}Member:*", db.namespace()))
        .query_async(&mut raw().await)
        .await
        .expect("KEYS");
    keys.sort();
    keys
}

#[tokio::test]
async fn every_control_and_whitespace_character_matches_exactly_in_a_tag() {
    let db = db().await;
    db.init::<Member>().await.expect("init");
    let mut values: Vec<String> = vec!["ab".into(), "a".into(), "b".into()];
    for c in separators() {
        values.extend([
            format!("a{c}b"),
            format!("{c}ab"),
            format!("ab{c}"),
            format!("{c}"),
            format!("{c}{c}"),
        ]);
    }
    let members: Vec<Member> = values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let mut m = member(i, v, 1);
            m.tags = vec![v.clone()];
            m
        })
        .collect();
    Member::insert_many(&db, &members).await.expect("insert");
    let f = Member::fields();
    for (i, value) in values.iter().enumerate() {
        let expected = [format!("m{i}")];
        let found = Member::find(&db, f.name.eq(value)).all().await.expect("eq");
        assert_eq!(ids(&found), expected, "eq {value:?}");
        let found = Member::find(&db, f.tags.contains(value))
            .all()
            .await
            .expect("contains");
        assert_eq!(ids(&found), expected, "tags {value:?}");
        let count = Member::find(&db, f.name.ne(value))
            .count()
            .await
            .expect("ne");
        assert_eq!(count, values.len() - 1, "ne {value:?}");
    }
    // A prefix holding a separator reaches exactly the values that start with it.
    for c in separators() {
        let prefix = format!("a{c}");
        let mut expected: Vec<String> = members
            .iter()
            .filter(|m| m.name.starts_with(&prefix))
            .map(|m| m.id.clone())
            .collect();
        expected.sort();
        let found = Member::find(&db, f.name.starts_with(&prefix))
            .all()
            .await
            .expect("starts_with");
        assert_eq!(ids(&found), expected, "starts_with {prefix:?}");
    }
}

#[tokio::test]
async fn a_b_and_a_tab_b_are_each_found_by_their_own_value() {
    let db = db().await;
    db.init::<Member>().await.expect("init");
    let values = [
        "a b", "a\tb", "a\nb", "a\rb", "a\u{b}b", "a\u{c}b", "a\u{a0}b", "ab",
    ];
    let members: Vec<Member> = values
        .iter()
        .enumerate()
        .map(|(i, v)| member(i, v, 1))
        .collect();
    Member::insert_many(&db, &members).await.expect("insert");
    let f = Member::fields();
    for (i, value) in values.iter().enumerate() {
        let found = Member::find(&db, f.name.eq(value)).all().await.expect("eq");
        assert_eq!(found, vec![members[i].clone()], "{value:?}");
    }
    let found = Member::find(&db, f.name.one_of(["a\tb", "a b"]))
        .all()
        .await
        .expect("one_of");
    assert_eq!(ids(&found), ["m0", "m1"]);
}

#[tokio::test]
async fn text_words_with_unicode_whitespace_match_exactly_and_control_characters_are_refused() {
    let db = db().await;
    db.init::<Member>().await.expect("init");
    let mut bios: Vec<String> = vec!["w z".into(), "wz".into()];
    let wide: Vec<char> = separators().into_iter().filter(|c| !c.is_ascii()).collect();
    for c in &wide {
        bios.extend([format!("w{c}z"), format!("{c}wz"), format!("wz{c}")]);
    }
    let members: Vec<Member> = bios
        .iter()
        .enumerate()
        .map(|(i, bio)| {
            let mut m = member(i, "t", 1);
            m.bio = bio.clone();
            m
        })
        .collect();
    Member::insert_many(&db, &members).await.expect("insert");
    let f = Member::fields();
    // Unicode whitespace does not split indexed words: each word is found by itself only.
    for (i, bio) in bios.iter().enumerate().skip(1) {
        let expected = [format!("m{i}")];
        let found = Member::find(&db, f.bio.contains(bio))
            .all()
            .await
            .expect("contains");
        assert_eq!(ids(&found), expected, "contains {bio:?}");
        let found = Member::find(&db, f.bio.matches(bio))
            .all()
            .await
            .expect("matches");
        assert_eq!(ids(&found), expected, "matches {bio:?}");
    }
    // Space and tab split words on both sides.
    let found = Member::find(&db, f.bio.matches("z\tw"))
        .all()
        .await
        .expect("tab");
    assert_eq!(ids(&found), ["m0"]);
    // A control character is dropped from indexed words: such a word is refused, anywhere.
    for c in (0x01u8..0x20).chain([0x7f]).map(char::from) {
        for word in [format!("w{c}z"), format!("{c}wz"), format!("wz{c}")] {
            refusal(Member::find(&db, f.bio.contains(&word)).all().await);
            if c != '\t' {
                refusal(Member::find(&db, f.bio.matches(&word)).all().await);
                refusal(Member::find(&db, f.bio.prefix(&word)).all().await);
            }
        }
    }
}

#[tokio::test]
async fn a_nul_is_refused_and_a_refused_delete_deletes_nothing() {
    let db = db().await;
    db.init::<Member>().await.expect("init");
    let members: Vec<Member> = ["a", "a b", "b", ""]
        .iter()
        .enumerate()
        .map(|(i, v)| member(i, v, 1))
        .collect();
    Member::insert_many(&db, &members).await.expect("insert");
    let before = member_keys(&db).await;
    assert_eq!(before.len(), 4);
    let f = Member::fields();
    for value in ["\0", "a\0", "\0a", "a\0b"] {
        let message = refusal(Member::find(&db, f.name.eq(value)).all().await);
        assert!(message.contains("NUL"), "{message}");
        refusal(Member::find(&db, f.name.ne(value)).count().await);
        refusal(Member::find(&db, f.tags.contains(value)).first().await);
        refusal(Member::find(&db, f.name.one_of(["a", value])).all().await);
        refusal(Member::find(&db, f.bio.contains(value)).all().await);
        refusal(
            Member::find(&db, f.name.eq(value) | f.age.ge(0))
                .delete()
                .await,
        );
        refusal(Member::find(&db, !f.name.eq(value)).delete().await);
    }
    assert_eq!(member_keys(&db).await, before, "nothing was deleted");
}

#[tokio::test]
async fn empty_or_blank_searches_are_refused_and_delete_nothing() {
    let db = db().await;
    db.init::<Member>().await.expect("init");
    let members: Vec<Member> = (0..5).map(|i| member(i, "bob", 1)).collect();
    Member::insert_many(&db, &members).await.expect("insert");
    let before = member_keys(&db).await;
    let f = Member::fields();
    for input in [
        "",
        " ",
        "   ",
        "\t",
        "\n",
        " \t\r\n ",
        "\u{a0}",
        "\u{3000} \u{2028}",
    ] {
        let queries = [
            f.bio.matches(input),
            f.bio.contains(input),
            f.bio.prefix(input),
            f.name.starts_with(input),
            f.bio.matches(input) | f.age.ge(0),
        ];
        for q in queries {
            refusal(Member::find(&db, q.clone()).all().await);
            refusal(Member::find(&db, q.clone()).count().await);
            refusal(Member::find(&db, q.clone()).first().await);
            refusal(Member::find(&db, q).delete().await);
        }
        // What a search box hands over: a user's empty input deletes nothing.
        refusal(Member::find(&db, f.bio.matches(input)).delete().await);
    }
    // Only separators: no word at all.
    refusal(Member::find(&db, f.bio.matches("-- , !")).delete().await);
    assert_eq!(member_keys(&db).await, before, "nothing was deleted");
}

#[tokio::test]
async fn a_prefix_shorter_than_the_server_minimum_is_refused() {
    let db = db().await;
    db.init::<Member>().await.expect("init");
    let members = vec![
        member(0, "bob", 1),
        member(1, "éa", 2),
        member(2, "中文", 3),
    ];
    Member::insert_many(&db, &members).await.expect("insert");
    let f = Member::fields();
    let message = refusal(Member::find(&db, f.name.starts_with("b")).all().await);
    assert!(message.contains("MINPREFIX"), "{message}");
    let message = refusal(Member::find(&db, f.bio.prefix("l")).all().await);
    assert!(message.contains("MINPREFIX"), "{message}");
    let found = Member::find(&db, f.name.starts_with("bo"))
        .all()
        .await
        .expect("two bytes");
    assert_eq!(ids(&found), ["m0"]);
    // The server counts bytes: one two-byte or three-byte character is enough.
    let found = Member::find(&db, f.name.starts_with("é"))
        .all()
        .await
        .expect("é");
    assert_eq!(ids(&found), ["m1"]);
    let found = Member::find(&db, f.name.starts_with("中"))
        .all()
        .await
        .expect("中");
    assert_eq!(ids(&found), ["m2"]);
    let found = Member::find(&db, f.bio.prefix("li"))
        .all()
        .await
        .expect("text prefix");
    assert_eq!(found.len(), 3);
}

#[tokio::test]
async fn stopwords_are_ordinary_words() {
    let db = db().await;
    db.init::<Member>().await.expect("init");
    let mut with_the = member(0, "a", 1);
    with_the.bio = "to be or not to be, that is the question".into();
    let mut without = member(1, "b", 1);
    without.bio = "a question".into();
    Member::insert_many(&db, &[with_the, without])
        .await
        .expect("insert");
    let f = Member::fields();
    let found = Member::find(&db, f.bio.contains("the"))
        .all()
        .await
        .expect("the");
    assert_eq!(ids(&found), ["m0"]);
    let found = Member::find(&db, f.bio.matches("to be or not"))
        .all()
        .await
        .expect("stopwords");
    assert_eq!(ids(&found), ["m0"]);
    let found = Member::find(&db, f.bio.matches("a question"))
        .all()
        .await
        .expect("a");
    assert_eq!(ids(&found), ["m1"]);
}

/// A random string of 1 to 6 characters from all of Unicode, leaning on the characters that
/// break naive escaping: ASCII (NUL and controls included), whitespace, quotes, backslash.
fn any_string(rng: &mut Rng, separators: &[char]) -> String {
    let len = 1 + rng.below(6) as usize;
    (0..len)
        .map(|_| match rng.below(10) {
            0..=2 => char::from(rng.below(0x80) as u8),
            3 => separators[rng.below(separators.len() as u64) as usize],
            4 => ['"', '\\', '{', '}', '|', '*', '@', '-'][rng.below(8) as usize],
            _ => loop {
                if let Some(c) = char::from_u32(rng.below(0x11_0000) as u32) {
                    break c;
                }
            },
        })
        .collect()
}

#[tokio::test]
async fn random_unicode_tag_values_find_exactly_their_documents_or_are_refused() {
    let db = db().await;
    db.init::<Member>().await.expect("init");
    let separators = separators();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let values: Vec<String> = (0..600)
        .map(|_| any_string(&mut rng, &separators))
        .collect();
    // A value with a NUL is indexed cut at the NUL by the server: it is never stored here,
    // and querying it is refused.
    let stored: Vec<&String> = values.iter().filter(|v| !v.contains('\0')).collect();
    assert!(stored.len() < values.len(), "the draw holds NULs");
    // Each stored value twice or once, so a query must find every holder.
    let members: Vec<Member> = stored
        .iter()
        .chain(stored.iter().step_by(3))
        .enumerate()
        .map(|(i, v)| member(i, v, 1))
        .collect();
    for chunk in members.chunks(500) {
        Member::insert_many(&db, chunk).await.expect("insert");
    }
    let f = Member::fields();
    for value in &values {
        if value.contains('\0') {
            let message = refusal(Member::find(&db, f.name.eq(value)).keys().await);
            assert!(message.contains("NUL"), "{message}");
            continue;
        }
        let mut expected: Vec<String> = members
            .iter()
            .filter(|m| &m.name == value)
            .map(|m| m.id.clone())
            .collect();
        expected.sort();
        let found = Member::find(&db, f.name.eq(value)).all().await.expect("eq");
        assert_eq!(ids(&found), expected, "{value:?}");
    }
}

#[derive(AtomicModel, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[rapyer(prefix = "Big")]
struct Big {
    #[rapyer(key)]
    id: String,
    #[rapyer(index)]
    n: u64,
}

#[tokio::test]
async fn numbers_beyond_two_to_the_53_compare_as_doubles() {
    let db = db().await;
    db.init::<Big>().await.expect("init");
    let exact = 1u64 << 53;
    let bigs = [
        Big {
            id: "b0".into(),
            n: exact,
        },
        Big {
            id: "b1".into(),
            n: exact + 1,
        },
    ];
    Big::insert_many(&db, &bigs).await.expect("insert");
    let f = Big::fields();
    // 2^53 + 1 has no double of its own: both documents are "equal" to either number,
    // and neither is greater than 2^53.
    assert_eq!(
        Big::find(&db, f.n.eq(exact + 1)).count().await.expect("eq"),
        2
    );
    assert_eq!(Big::find(&db, f.n.eq(exact)).count().await.expect("eq"), 2);
    assert_eq!(Big::find(&db, f.n.gt(exact)).count().await.expect("gt"), 0);
    // The documents themselves keep the exact integers.
    assert_eq!(Big::get(&db, "b1").await.expect("get").n, exact + 1);
}

#[tokio::test]
async fn a_raw_unescaped_condition_is_sent_as_written_and_combines_with_typed_ones() {
    let db = db().await;
    db.init::<Member>().await.expect("init");
    let members: Vec<Member> = (0..6)
        .map(|i| member(i, &format!("n{i}"), 20 + i as i64))
        .collect();
    Member::insert_many(&db, &members).await.expect("insert");
    let f = Member::fields();

    // The same condition, typed and raw, finds the same documents.
    let raw_query = rapyer::query::Expr::raw_unescaped("@age:[22 23]");
    assert_eq!(raw_query.to_query().expect("query"), "@age:[22 23]");
    let raw_found = Member::find(&db, raw_query).all().await.expect("raw");
    let typed_found = Member::find(&db, f.age.between(22, 23))
        .all()
        .await
        .expect("typed");
    assert_eq!(ids(&raw_found), ["m2", "m3"]);
    assert_eq!(ids(&raw_found), ids(&typed_found));

    // Combined with typed conditions by & and !, as any condition.
    let both = f.active.eq(true) & !rapyer::query::Expr::raw_unescaped("@age:[24 +inf]");
    let found = Member::find(&db, both).all().await.expect("combined");
    assert_eq!(ids(&found), ["m0", "m2"]);
}

/// Indexed fields whose JSON names hold spaces (and punctuation).
#[derive(AtomicModel, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[rapyer(prefix = "Spaced")]
struct Spaced {
    #[rapyer(key)]
    id: String,
    #[rapyer(index)]
    #[serde(rename = "second best")]
    second_best: String,
    #[rapyer(index(sortable))]
    #[serde(rename = "top speed!")]
    top_speed: i64,
}

#[tokio::test]
async fn fields_named_with_spaces_are_queried_and_sorted() {
    let db = common::db().await;
    db.init::<Spaced>().await.expect("init");
    for (id, best, speed) in [("a", "x y", 3), ("b", "z", 1), ("c", "x y", 2)] {
        Spaced {
            id: id.into(),
            second_best: best.into(),
            top_speed: speed,
        }
        .save(&db)
        .await
        .expect("save");
    }
    let f = Spaced::fields();
    let found: Vec<String> = Spaced::find(&db, f.second_best.eq("x y") & f.top_speed.ge(2))
        .sort_by(&f.top_speed, Order::Asc)
        .all()
        .await
        .expect("a query on fields named with spaces")
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(found, ["c", "a"]);
}
