//! The sealed key space: no id, prefix or namespace reaches another model's, another tenant's
//! or rapyer's own keys, and a document whose key field disagrees with its key never loads.

mod common;

use std::collections::HashMap;

use common::{cluster_slot, db, raw};
use rapyer::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(AtomicModel, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[rapyer(prefix = "User")]
struct User {
    #[rapyer(key)]
    id: String,
    #[rapyer(index)]
    name: String,
    score: i64,
}

/// A model whose prefix starts like `User`'s: once `User:Admin` was allowed and lived inside
/// `User`'s key space; now a prefix is one segment, and this is the closest a prefix gets.
#[derive(AtomicModel, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[rapyer(prefix = "User.Admin")]
struct Admin {
    #[rapyer(key)]
    id: String,
    #[rapyer(index)]
    name: String,
    score: i64,
}

#[derive(AtomicModel, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[rapyer(prefix = "Wallet", hash_tag = "bank")]
struct Wallet {
    #[rapyer(key)]
    id: String,
    balance: i64,
}

#[derive(AtomicModel, Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Cart {
    #[rapyer(key, hash_tag)]
    id: String,
    items: Vec<String>,
    prefs: HashMap<String, String>,
}

fn user(id: &str, name: &str) -> User {
    User {
        id: id.into(),
        name: name.into(),
        score: 0,
    }
}

fn sorted_ids<M: AtomicModel>(models: &[M]) -> Vec<String> {
    let mut ids: Vec<String> = models.iter().map(AtomicModel::model_id).collect();
    ids.sort();
    ids
}

/// Ids that look like keys, globs, hash tags, lock keys and index names, and the extremes.
fn hostile_ids() -> Vec<String> {
    vec![
        String::new(),
        ":".into(),
        "a:b:c".into(),
        "User:x".into(),
        "{x}".into(),
        "}{".into(),
        "{}".into(),
        "*".into(),
        "?".into(),
        "[a-z]".into(),
        "\\".into(),
        "line\nbreak".into(),
        " padded ".into(),
        "a/b/".into(),
        "_rapyer:lock:{0}:User:victim".into(),
        "victim:lock{User:victim}".into(),
        "é🎉".into(),
        "x".repeat(1 << 20),
    ]
}

async fn get_text(key: &str) -> Option<String> {
    redis::cmd("GET")
        .arg(key)
        .query_async(&mut raw().await)
        .await
        .expect("GET")
}

#[tokio::test]
async fn no_id_reaches_another_models_lock() {
    let db = db().await;
    user("victim", "v").save(&db).await.expect("save victim");
    let mut guard = User::lock(&db, "victim", LockOptions::default())
        .await
        .expect("lock victim");
    let lock_key = guard.lock_key().to_string();
    assert!(
        lock_key.starts_with(&format!("{}_rapyer:lock:", db.namespace())),
        "{lock_key}"
    );
    let token = get_text(&lock_key).await.expect("the lock is held");

    // Every id built from the lock key: the old layout's attack, the lock key itself without
    // its namespace, and its tail. Saving and deleting them leaves the lock alone.
    let mut ids = hostile_ids();
    ids.push(lock_key[db.namespace().len()..].to_string());
    ids.push(lock_key.clone());
    ids.push(format!("victim:lock{{{}User:victim}}", db.namespace()));
    for id in &ids {
        user(id, "attacker").save(&db).await.expect("save attacker");
        assert_ne!(db.key(&User::key_of(id)), lock_key);
    }
    assert_eq!(get_text(&lock_key).await.as_deref(), Some(token.as_str()));
    for id in &ids {
        assert!(User::delete_by_id(&db, id).await.expect("delete attacker"));
    }
    assert_eq!(get_text(&lock_key).await.as_deref(), Some(token.as_str()));

    // Nobody else gets the lock while the victim holds it.
    let second = User::lock(
        &db,
        "victim",
        LockOptions::default().timeout(std::time::Duration::from_millis(100)),
    )
    .await;
    assert!(
        matches!(second, Err(Error::LockTimeout { .. })),
        "{second:?}"
    );
    guard.save().await.expect("the holder still saves");
    guard.release().await.expect("release");
}

#[tokio::test]
async fn hostile_ids_round_trip_on_every_key_form_and_lock() {
    let db = db().await;
    let mut raw = raw().await;
    for id in hostile_ids() {
        let u = user(&id, "n");
        u.save(&db).await.expect("save");
        assert_eq!(User::get(&db, &id).await.expect("get"), u);
        let w = Wallet {
            id: id.clone(),
            balance: 1,
        };
        w.save(&db).await.expect("save wallet");
        assert_eq!(Wallet::get(&db, &id).await.expect("get wallet"), w);
        let c = Cart {
            id: id.clone(),
            items: vec![id.clone()],
            prefs: HashMap::from([(id.clone(), id.clone())]),
        };
        c.save(&db).await.expect("save cart");
        assert_eq!(Cart::get(&db, &id).await.expect("get cart"), c);

        let mut guard = Wallet::lock(&db, &id, LockOptions::default())
            .await
            .expect("lock");
        assert_eq!(
            cluster_slot(guard.lock_key()),
            cluster_slot(&db.key(&Wallet::key_of(&id)))
        );
        guard.balance += 1;
        guard.save().await.expect("locked save");
        let lock_key = guard.lock_key().to_string();
        guard.release().await.expect("release");
        let left: bool = redis::cmd("EXISTS")
            .arg(&lock_key)
            .query_async(&mut raw)
            .await
            .expect("EXISTS");
        assert!(!left, "the lock is gone after release");
        assert_eq!(Wallet::get(&db, &id).await.expect("get").balance, 2);
    }
    let ids = hostile_ids();
    assert_eq!(
        sorted_ids(&User::all(&db).await.expect("all")),
        sorted_ids(&ids.iter().map(|id| user(id, "n")).collect::<Vec<_>>())
    );
    assert_eq!(
        Wallet::all(&db).await.expect("all wallets").len(),
        ids.len()
    );
    assert_eq!(Cart::all(&db).await.expect("all carts").len(), ids.len());
    assert_eq!(
        User::delete_many(&db, &ids).await.expect("delete_many"),
        ids.len()
    );
    assert!(User::all(&db).await.expect("all").is_empty());
    assert_eq!(
        Wallet::all(&db).await.expect("wallets stay").len(),
        ids.len()
    );
}

#[tokio::test]
async fn models_whose_prefixes_share_a_start_never_see_each_other() {
    let db = db().await;
    db.init::<User>().await.expect("init user");
    db.init::<Admin>().await.expect("init admin");
    // Ids chosen to look like the other model's keys.
    let users = vec![
        user("Admin:1", "same"),
        user("u", "same"),
        user(".Admin:2", "same"),
    ];
    let admins = vec![
        Admin {
            id: "User:1".into(),
            name: "same".into(),
            score: 0,
        },
        Admin {
            id: "a".into(),
            name: "same".into(),
            score: 0,
        },
    ];
    User::insert_many(&db, &users).await.expect("users");
    Admin::insert_many(&db, &admins).await.expect("admins");

    assert_eq!(
        sorted_ids(&User::all(&db).await.expect("all")),
        sorted_ids(&users)
    );
    assert_eq!(
        sorted_ids(&Admin::all(&db).await.expect("all")),
        sorted_ids(&admins)
    );
    let f = User::fields();
    assert_eq!(
        sorted_ids(
            &User::find(&db, f.name.eq("same"))
                .all()
                .await
                .expect("find")
        ),
        sorted_ids(&users)
    );
    assert_eq!(
        User::find(&db, f.name.eq("same"))
            .delete()
            .await
            .expect("delete"),
        3
    );
    // Deleting every matching User left every Admin in place.
    assert_eq!(
        sorted_ids(&Admin::all(&db).await.expect("all")),
        sorted_ids(&admins)
    );
    let g = Admin::fields();
    assert_eq!(
        Admin::find(&db, g.name.eq("same"))
            .count()
            .await
            .expect("count"),
        2
    );
    assert!(matches!(
        User::get(&db, ".Admin:1").await,
        Err(Error::NotFound { .. })
    ));
}

#[tokio::test]
async fn nested_tenants_and_the_root_are_separate_key_spaces() {
    let base = db().await;
    let ns = base.namespace().to_string();
    // `a/` beside `a/User/`, and a tenant named like a model (`User/`) beside the root of
    // this test (the test's own namespace stands for the root: the same rules hold below it).
    let a = base.with_namespace(format!("{ns}a/")).expect("a/");
    let a_user = base
        .with_namespace(format!("{ns}a/User/"))
        .expect("a/User/");
    let tenant_user = base.with_namespace(format!("{ns}User/")).expect("User/");
    let spaces = [
        ("base", &base),
        ("a", &a),
        ("a/User", &a_user),
        ("User", &tenant_user),
    ];
    for (name, db) in spaces {
        db.init::<User>().await.expect("init");
        // Each space holds `x` and an id spelling another space's key tail.
        User::insert_many(db, &[user("x", name), user("User:x", name)])
            .await
            .expect("insert");
    }
    for (name, db) in spaces {
        let all = User::all(db).await.expect("all");
        assert_eq!(all.len(), 2, "{name}: {all:?}");
        assert!(all.iter().all(|u| u.name == name), "{name}: {all:?}");
        assert_eq!(User::get(db, "x").await.expect("get").name, name);
        assert_eq!(User::get(db, "User:x").await.expect("get").name, name);
        let f = User::fields();
        let found = User::find(db, f.name.eq(name)).all().await.expect("find");
        assert_eq!(found.len(), 2, "{name}");
        for (other, other_db) in spaces {
            if other != name {
                assert_eq!(
                    User::find(other_db, f.name.eq(name))
                        .count()
                        .await
                        .expect("count"),
                    0,
                    "{other} sees {name}"
                );
            }
        }
    }
    // Deleting everything in `a/` leaves `a/User/` whole, and the other way round.
    let f = User::fields();
    assert_eq!(
        User::find(&a, f.name.eq("a"))
            .delete()
            .await
            .expect("delete"),
        2
    );
    assert_eq!(User::all(&a_user).await.expect("all").len(), 2);
    assert_eq!(
        User::delete_many(&a_user, ["x", "User:x"])
            .await
            .expect("del"),
        2
    );
    assert_eq!(User::all(&base).await.expect("all").len(), 2);
    assert_eq!(User::all(&tenant_user).await.expect("all").len(), 2);
}

#[tokio::test]
async fn namespaces_that_could_overlap_are_refused() {
    let db = db().await;
    for bad in [
        "a:",
        "a:b/",
        "/",
        "a//",
        "/a",
        "{a}/",
        "a}/",
        "*/",
        "a?/",
        "[a]/",
        "a\\/",
        "a b/",
        "a\n/",
        "a\t/",
        "\u{0}/",
        "\u{3000}/",
    ] {
        match db.with_namespace(bad) {
            Err(Error::InvalidNamespace { namespace, message }) => {
                assert_eq!(namespace, bad);
                assert!(!message.is_empty());
            }
            other => panic!("{bad:?} was not refused: {other:?}"),
        }
    }
    assert_eq!(db.with_namespace("").expect("root").namespace(), "");
    assert_eq!(
        db.with_namespace("tenant-a").expect("tenant").namespace(),
        "tenant-a/"
    );
    assert_eq!(
        db.with_namespace("app/eu/").expect("nested").namespace(),
        "app/eu/"
    );
}

#[derive(AtomicModel, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[rapyer(prefix = "Item")]
struct Item {
    #[rapyer(key)]
    id: String,
    #[rapyer(index)]
    tag: String,
    #[rapyer(index)]
    n: i64,
}

#[tokio::test]
async fn init_rebuilds_a_live_index_that_is_not_its_own() {
    let db = db().await;
    let mut raw = raw().await;
    let items: Vec<Item> = (0..20)
        .map(|i| Item {
            id: format!("i{i}"),
            tag: if i % 2 == 0 { "even" } else { "odd" }.into(),
            n: i,
        })
        .collect();
    Item::insert_many(&db, &items).await.expect("insert");
    // Someone else took our index name first, over another prefix and with another schema
    // (case-insensitive tags, no `n`), and wrote our fingerprint marker as ours would be.
    let index = format!("{}_rapyer:index:Item", db.namespace());
    let _: () = redis::cmd("FT.CREATE")
        .arg(&index)
        .arg(&["ON", "JSON", "PREFIX", "1"])
        .arg(format!("{}It", db.namespace()))
        .arg(&["SCHEMA", "$.tag", "AS", "tag", "TAG"])
        .query_async(&mut raw)
        .await
        .expect("foreign FT.CREATE");
    db.init::<Item>().await.expect("init");
    let marker = format!("{}_rapyer:index-schema:Item", db.namespace());
    let fingerprint = get_text(&marker).await.expect("init writes its marker");

    let f = Item::fields();
    assert_eq!(
        Item::find(&db, f.tag.eq("even"))
            .count()
            .await
            .expect("count"),
        10
    );
    assert_eq!(
        Item::find(&db, f.tag.eq("EVEN"))
            .count()
            .await
            .expect("count"),
        0
    );
    assert_eq!(Item::find(&db, f.n.lt(5)).count().await.expect("count"), 5);

    // The marker is trusted no more than that: another index under the name, with the
    // marker left as it was, is found and rebuilt too.
    let _: () = redis::cmd("FT.DROPINDEX")
        .arg(&index)
        .query_async(&mut raw)
        .await
        .expect("drop");
    let _: () = redis::cmd("FT.CREATE")
        .arg(&index)
        .arg(&["ON", "JSON", "PREFIX", "1"])
        .arg(format!("{}Item:", db.namespace()))
        .arg(&[
            "SCHEMA", "$.tag", "AS", "tag", "TAG", "$.n", "AS", "n", "TAG",
        ])
        .query_async(&mut raw)
        .await
        .expect("foreign FT.CREATE");
    assert_eq!(
        get_text(&marker).await.as_deref(),
        Some(fingerprint.as_str())
    );
    db.init::<Item>().await.expect("init again");
    assert_eq!(
        Item::find(&db, f.n.between(2, 4))
            .count()
            .await
            .expect("count"),
        3
    );
    assert_eq!(Item::all(&db).await.expect("documents kept").len(), 20);

    // Another library's `idx:Item` (rapyer for Python names its indexes so) is not ours.
    let foreign = format!("idx:{}Item", db.namespace());
    let _: () = redis::cmd("FT.CREATE")
        .arg(&foreign)
        .arg(&["ON", "JSON", "PREFIX", "1"])
        .arg(format!("{}Item:", db.namespace()))
        .arg(&["SCHEMA", "$.tag", "AS", "tag", "TEXT"])
        .query_async(&mut raw)
        .await
        .expect("foreign FT.CREATE");
    db.init::<Item>().await.expect("init beside it");
    assert_eq!(
        Item::find(&db, f.tag.eq("odd"))
            .count()
            .await
            .expect("count"),
        10
    );
    let _: () = redis::cmd("FT.DROPINDEX")
        .arg(&foreign)
        .query_async(&mut raw)
        .await
        .expect("drop foreign");
}

#[tokio::test]
async fn a_document_whose_key_field_disagrees_with_its_key_is_an_error() {
    let db = db().await;
    db.init::<User>().await.expect("init");
    let mut raw = raw().await;
    user("fine", "n").save(&db).await.expect("save");
    let key = db.key(&User::key_of("a"));
    let _: () = redis::cmd("JSON.SET")
        .arg(&key)
        .arg("$")
        .arg(r#"{"id":"b","name":"n","score":1}"#)
        .query_async(&mut raw)
        .await
        .expect("foreign write");
    let is_mismatch =
        |e: &Error| matches!(e, Error::IdMismatch { key: k, id } if *k == key && id == "b");
    let e = User::get(&db, "a").await.expect_err("get");
    assert!(is_mismatch(&e), "{e:?}");
    let e = User::get_many(&db, ["fine", "a"])
        .await
        .expect_err("get_many");
    assert!(is_mismatch(&e), "{e:?}");
    let e = User::all(&db).await.expect_err("all");
    assert!(is_mismatch(&e), "{e:?}");
    let f = User::fields();
    let e = User::find(&db, f.name.eq("n"))
        .all()
        .await
        .expect_err("find");
    assert!(is_mismatch(&e), "{e:?}");
    let e = User::lock(&db, "a", LockOptions::default())
        .await
        .expect_err("lock");
    assert!(is_mismatch(&e), "{e:?}");
    let mut fine = user("fine", "n");
    fine.id = "a".into();
    let e = fine.refresh(&db).await.expect_err("refresh");
    assert!(is_mismatch(&e), "{e:?}");
    assert_eq!(
        fine.name, "n",
        "a failed refresh leaves the model as it was"
    );
    // Nothing was written to `b`, and the lock was given back.
    assert!(!User::exists(&db, "b").await.expect("exists"));
    User::lock(&db, "fine", LockOptions::default())
        .await
        .expect("other locks work")
        .release()
        .await
        .expect("release");
}

#[tokio::test]
async fn a_user_limited_to_the_namespace_runs_every_operation() {
    let db = db().await;
    let ns = db.namespace().to_string();
    let mut raw = raw().await;
    let name = format!("acl-{}", ns.replace('/', "-").trim_end_matches('-'));
    let _: () = redis::cmd("ACL")
        .arg(&["SETUSER", &name, "reset", "on", ">s3cret"])
        .arg(format!("~{ns}*"))
        .arg(&["resetchannels", "+@all", "-@dangerous"])
        .query_async(&mut raw)
        .await
        .expect("ACL SETUSER");
    let server = rapyer_testkit::server();
    let url = server
        .url()
        .replacen("redis://", &format!("redis://{name}:s3cret@"), 1);
    let limited = Db::connect(&url)
        .await
        .expect("connect as the limited user")
        .with_namespace(&ns)
        .expect("namespace");
    // The user really is limited: a key outside the namespace is refused.
    let outside = Db::connect(&url)
        .await
        .expect("connect")
        .with_namespace("elsewhere")
        .expect("namespace");
    assert!(user("x", "n").save(&outside).await.is_err());

    let db = limited;
    db.scripts()
        .define(
            "acl_bump",
            Keys::Fixed(1),
            "return redis.call('INCRBY', KEYS[1], ARGV[1])",
        )
        .expect("define");
    db.init::<User>().await.expect("init");
    let mut u = user("u1", "ann");
    u.save(&db).await.expect("save");
    User::insert_many(&db, &[user("u2", "bob"), user("u3", "ann")])
        .await
        .expect("insert_many");
    assert_eq!(User::get(&db, "u1").await.expect("get"), u);
    assert_eq!(
        User::get_many(&db, ["u1", "zz"])
            .await
            .expect("get_many")
            .len(),
        2
    );
    assert!(User::exists(&db, "u2").await.expect("exists"));
    assert_eq!(User::all(&db).await.expect("all").len(), 3);
    let f = User::fields();
    assert_eq!(
        User::find(&db, f.name.eq("ann"))
            .count()
            .await
            .expect("count"),
        2
    );
    assert_eq!(u.score().incr(&db, 5).await.expect("incr"), 5);
    u.atomic(&db, |p| {
        p.score().incr(1);
        p.name().append("!");
    })
    .await
    .expect("atomic block");
    let wallets = [
        Wallet {
            id: "w1".into(),
            balance: 1,
        },
        Wallet {
            id: "w2".into(),
            balance: 2,
        },
    ];
    Wallet::insert_many(&db, &wallets).await.expect("wallets");
    let (a, b) = (Wallet::server_ref_for("w1"), Wallet::server_ref_for("w2"));
    ServerOps::scope(&db, |ops| ops.swap(a.balance(), b.balance()))
        .await
        .expect("ServerOps");
    assert_eq!(Wallet::get(&db, "w1").await.expect("get").balance, 2);
    let mut guard = User::lock(&db, "u2", LockOptions::default())
        .await
        .expect("lock");
    guard.score += 1;
    guard.save().await.expect("locked save");
    guard.release().await.expect("release");
    u.set_ttl(&db, std::time::Duration::from_secs(60))
        .await
        .expect("set_ttl");
    assert!(u.ttl(&db).await.expect("ttl").is_some());
    let n: i64 = db
        .run_script("acl_bump", &["counter"], &[3])
        .await
        .expect("named script");
    assert_eq!(n, 3);
    assert_eq!(
        User::find(&db, f.name.eq("bob"))
            .delete()
            .await
            .expect("find delete"),
        1
    );
    assert_eq!(
        User::delete_many(&db, ["u1", "u3"])
            .await
            .expect("delete_many"),
        2
    );
    let _: () = redis::cmd("ACL")
        .arg(&["DELUSER", &name])
        .query_async(&mut raw)
        .await
        .expect("ACL DELUSER");
}
