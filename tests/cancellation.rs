//! Cancellation against the real server: every kind of operation dropped at random points
//! (a `timeout` at microsecond scale, or after a chosen number of polls) thousands of times.
//! What must hold whatever the moment: a block is all or nothing (two fields a block always
//! increments together stay equal, and count exactly the blocks that reported `Ok` plus some
//! of the cancelled ones), a saved document is one of the versions saved, never a mix, no
//! lock stays held past its release, and the connection keeps working.

mod common;

use std::future::Future;
use std::time::Duration;

use rapyer::prelude::*;
use rapyer::script::NONE;
use rapyer::{Keys, LockOptions};
use serde::{Deserialize, Serialize};

use common::{Rng, db, raw, stored};

#[derive(AtomicModel, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[rapyer(prefix = "Pair")]
struct Pair {
    #[rapyer(key)]
    id: String,
    /// Incremented together with `b` by every block; never alone.
    a: i64,
    b: i64,
    /// Incremented alone by a field handle.
    c: i64,
    note: String,
}

fn pair(id: &str) -> Pair {
    Pair {
        id: id.to_string(),
        a: 0,
        b: 0,
        c: 0,
        note: String::new(),
    }
}

/// Increments `$.a` and `$.b` of the document at `KEYS[1]` by one, in one script.
const BUMP_BOTH: &str = "redis.call('JSON.NUMINCRBY', KEYS[1], '$.a', 1) \
                         return redis.call('JSON.NUMINCRBY', KEYS[1], '$.b', 1)";

/// Runs `fut`, dropping it at a random point: after a random number of polls, or when a
/// timeout of a random number of microseconds fires. `None` when it was dropped.
async fn cancel_randomly<F: Future>(rng: &mut Rng, fut: F) -> Option<F::Output> {
    // A timeout below 1.5 ms, or fewer than 6 polls.
    common::cancel_randomly(rng, 1_500, 6, fut).await
}

/// What the runs of one kind of operation reported.
#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    ok: i64,
    cancelled: i64,
}

impl Tally {
    fn note<T: std::fmt::Debug>(&mut self, what: &str, outcome: Option<rapyer::Result<T>>) {
        match outcome {
            Some(Ok(_)) => self.ok += 1,
            None => self.cancelled += 1,
            Some(Err(e)) => panic!("{what} failed instead of finishing or being cancelled: {e}"),
        }
    }
}

#[tokio::test]
async fn operations_cancelled_at_random_points_leave_no_half_applied_block_and_no_lock() {
    let db = db().await;
    let mut raw = raw().await;
    let mut rng = Rng(0xc0ff_ee12);
    db.scripts()
        .define("bump_both", Keys::Fixed(1), BUMP_BOTH)
        .expect("define");
    let mut blocks = pair("blocks");
    blocks.save(&db).await.expect("save");
    let mut saved = pair("saved");
    saved.save(&db).await.expect("save");
    let locked = pair("locked");
    locked.save(&db).await.expect("save");
    let blocks_key = db.key(&blocks.key());
    let saved_key = db.key(&saved.key());
    let lock_options = LockOptions::default()
        .ttl(Duration::from_secs(30))
        .timeout(Duration::from_millis(20));

    // Blocks that add one to `a` and `b` together, whatever runs them.
    let mut both = Tally::default();
    // Field-handle increments of `c` alone.
    let mut handle = Tally::default();
    let mut saves = 0u64;
    let mut locks = Tally::default();
    let rounds = 4_800;
    for round in 0..rounds {
        match round % 8 {
            0 => {
                let run = blocks.atomic(&db, |p| {
                    p.a().incr(1);
                    p.b().incr(1);
                });
                both.note("an atomic block", cancel_randomly(&mut rng, run).await);
            }
            1 => {
                let r = Pair::server_ref_for("blocks");
                let run = ServerOps::scope(&db, |ops| {
                    ops.incr(r.a(), 1);
                    ops.incr(r.b(), 1);
                });
                both.note("a ServerOps block", cancel_randomly(&mut rng, run).await);
            }
            2 => {
                let keys = [blocks.key()];
                let run = db.run_script::<String>("bump_both", &keys, NONE);
                both.note("a named script", cancel_randomly(&mut rng, run).await);
            }
            3 => {
                // Two calls in one db.pipeline(): each call is whole; the two may split.
                let mut pipe = db.pipeline();
                pipe.run_script("bump_both", &[blocks.key()], NONE);
                pipe.cmd(redis::cmd("PING"));
                pipe.run_script("bump_both", &[blocks.key()], NONE);
                let run = pipe.execute();
                match cancel_randomly(&mut rng, run).await {
                    Some(Ok(replies)) => {
                        assert_eq!(replies.len(), 3);
                        both.ok += 2;
                    }
                    Some(Err(e)) => panic!("a db.pipeline() failed: {e}"),
                    None => both.cancelled += 2,
                }
            }
            4 => {
                let mut c = blocks.c();
                let run = c.incr(&db, 1);
                handle.note("a field handle", cancel_randomly(&mut rng, run).await);
            }
            5 => {
                saves += 1;
                saved.a = saves as i64;
                saved.b = saves as i64;
                saved.note = format!("version {saves}");
                let run = saved.save(&db);
                let _ = cancel_randomly(&mut rng, run).await;
            }
            6 => {
                let run = Pair::lock(&db, "locked", lock_options.clone());
                match cancel_randomly(&mut rng, run).await {
                    Some(Ok(mut guard)) => {
                        locks.ok += 1;
                        guard.note = format!("locked {round}");
                        let _ = cancel_randomly(&mut rng, guard.save()).await;
                        let _ =
                            cancel_randomly(&mut rng, guard.extend(Duration::from_secs(30))).await;
                        // Released, cancelled while releasing, or dropped: freed either way.
                        match rng.below(3) {
                            0 => drop(guard),
                            1 => guard.release().await.expect("release"),
                            _ => {
                                let _ = cancel_randomly(&mut rng, guard.release()).await;
                            }
                        }
                    }
                    // Another cancelled call's lock may still be on its way out.
                    Some(Err(Error::LockTimeout { .. })) => locks.ok += 1,
                    Some(Err(e)) => panic!("lock failed: {e}"),
                    None => locks.cancelled += 1,
                }
            }
            _ => {
                // Every block so far, finished or cancelled, applied whole or not at all.
                let now = stored(&mut raw, &blocks_key).await;
                assert_eq!(
                    now["a"], now["b"],
                    "a half-applied block after round {round}"
                );
            }
        }
    }

    // The connection still works and every cancelled call has landed or never will.
    let _: () = redis::cmd("PING")
        .query_async(&mut raw)
        .await
        .expect("PING");
    let done: Vec<redis::Value> = {
        let mut pipe = db.pipeline();
        pipe.cmd(redis::cmd("PING"));
        pipe.execute().await.expect("the Db still works")
    };
    assert_eq!(done.len(), 1);

    let now = stored(&mut raw, &blocks_key).await;
    let (a, b, c) = (
        now["a"].as_i64().expect("a"),
        now["b"].as_i64().expect("b"),
        now["c"].as_i64().expect("c"),
    );
    assert_eq!(a, b, "a half-applied block");
    assert!(
        a >= both.ok && a <= both.ok + both.cancelled,
        "a = {a}: {both:?}"
    );
    assert!(
        c >= handle.ok && c <= handle.ok + handle.cancelled,
        "c = {c}: {handle:?}"
    );
    assert!(both.cancelled > 0 && both.ok > 0, "{both:?}");
    assert!(handle.cancelled > 0 && handle.ok > 0, "{handle:?}");

    // The saved document is one whole version, never a mix of two.
    let doc = stored(&mut raw, &saved_key).await;
    let version = doc["a"].as_u64().expect("a");
    assert!(version <= saves);
    assert_eq!(doc["b"], doc["a"], "a mixed save: {doc}");
    if version > 0 {
        assert_eq!(
            doc["note"],
            format!("version {version}"),
            "a mixed save: {doc}"
        );
    }

    // No lock stays held: after the background releases land, a fresh lock() gets it.
    assert!(locks.cancelled > 0, "{locks:?}");
    let fresh = LockOptions::default().timeout(Duration::from_secs(2));
    Pair::lock(&db, "locked", fresh)
        .await
        .expect("no lock left held by a cancelled call or a dropped guard")
        .release()
        .await
        .expect("release");
}
