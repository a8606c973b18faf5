//! Special structures: each part below is one structure in use, atomic on the server and
//! usable inside blocks or on its own: a recent-activity buffer (`CircularBuffer`) with a
//! counter (the exact integer handle), a job queue (`PriorityQueue`) drained into a list in
//! one block, set algebra between two models' `Set`s, a signup Bloom filter (`BloomFilter`
//! and `#[rapyer(bloom)]`) and an API rate limiter (`RateLimiter`).
//!
//! Run it with `cargo xtask demo structures` (which provides a Redis), or against your own
//! Redis 8 / redis-stack with `REDIS_URL=redis://127.0.0.1:6379 cargo run --example structures`.

use std::time::Duration;

use rapyer::prelude::*;
use rapyer::{BloomFilter, CircularBuffer, Limit, PriorityQueue, RateLimiter, Set};
use serde::{Deserialize, Serialize};

/// A user's profile with the newest five things they did, kept inside its document.
#[derive(AtomicModel, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[rapyer(hash_tag = "activity")]
struct Profile {
    #[rapyer(key)]
    id: String,
    recent: CircularBuffer<String, 5>,
    actions: u64,
}

#[tokio::main]
async fn main() -> Result<()> {
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let db = Db::connect(&url)
        .await?
        .with_namespace("structures-demo/")?;
    println!("connected to {url}, every key under the namespace `structures-demo/`\n");

    recent_activity(&db).await?;
    job_queue(&db).await?;
    set_algebra(&db).await?;
    signups(&db).await?;
    api_limit(&db).await?;
    Ok(())
}

/// A recent-activity buffer: the newest five actions of a user, pushed one at a time, in a
/// batch, and inside a block together with a counter.
async fn recent_activity(db: &Db) -> Result<()> {
    println!("== A recent-activity buffer: the newest 5 actions, inside the document");
    let mut ann = Profile {
        id: "ann".into(),
        recent: CircularBuffer::new(),
        actions: 0,
    };
    ann.save(db).await?;
    for action in ["signed in", "viewed /pricing", "viewed /docs"] {
        ann.recent().push(db, action).await?;
    }
    let batch: Vec<String> = (1..=4).map(|i| format!("edited draft {i}")).collect();
    let len = ann.recent().push_many(db, batch).await?;
    println!(
        "after 7 pushes the buffer holds {len}, oldest first: {:?}",
        ann.recent
    );

    // A push and a counter in one all-or-nothing script.
    let me = Profile::server_ref_for("ann");
    let (actions, _) = ServerOps::scope(db, |ops| {
        (
            ops.incr(me.actions(), 8),
            ops.push_into(me.recent(), "published"),
        )
    })
    .await?;
    println!("a block counted {actions:?} actions and pushed one more");
    println!(
        "the newest 3, newest first: {:?}",
        ann.recent().latest(db, 3).await?
    );
    let stored = Profile::get(db, "ann").await?;
    println!(
        "stored as a plain JSON array: {}",
        serde_json::to_string(&stored.recent).unwrap_or_default()
    );

    // The local model follows an atomic block's push.
    ann.atomic(db, |m| m.recent().push("signed out")).await?;
    println!("after an atomic block: {:?}", ann.recent);
    ann.delete(db).await?;
    println!();
    Ok(())
}

/// A member whose email goes into a Bloom filter with every save.
#[derive(AtomicModel, Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Member {
    #[rapyer(key)]
    id: String,
    #[rapyer(bloom)]
    email: String,
}

/// A signup check: "is this email taken?" answered from a Bloom filter kept up to date by
/// every save ("no" is certain, "maybe" is then checked against the documents), and a
/// named filter of blocked domains.
async fn signups(db: &Db) -> Result<()> {
    println!("== A signup Bloom filter: every save adds the email");
    for (id, email) in [("m1", "ann@example.com"), ("m2", "bob@example.com")] {
        Member {
            id: id.into(),
            email: email.into(),
        }
        .save(db)
        .await?;
    }
    for email in ["ann@example.com", "carol@example.com"] {
        let maybe = Member::maybe_exists_by_email(db, email).await?;
        println!(
            "{email}: {}",
            if maybe {
                "maybe taken"
            } else {
                "certainly free"
            }
        );
    }
    let blocked = BloomFilter::<str>::named(db, "blocked-domains");
    blocked.reserve(0.001, 10_000).await?;
    blocked.add_many(["spam.example", "junk.example"]).await?;
    println!(
        "junk.example blocked: {}, example.com blocked: {}",
        blocked.contains("junk.example").await?,
        blocked.contains("example.com").await?
    );
    Member::delete_many(db, ["m1", "m2"]).await?;
    println!();
    Ok(())
}

/// An API rate limiter: 5 calls a second with bursts of 3, checked on the server's clock.
async fn api_limit(db: &Db) -> Result<()> {
    println!("== An API rate limiter: 5 a second, bursts of 3");
    let api = RateLimiter::new(
        db,
        "api",
        Limit::per(5, Duration::from_secs(1)).max_burst(2),
    )?;
    for call in 1..=5 {
        let d = api.check("user:42").await?;
        println!(
            "call {call}: {} (remaining {}, retry after {:?})",
            if d.allowed { "allowed" } else { "refused" },
            d.remaining,
            d.retry_after
        );
    }
    println!();
    Ok(())
}

/// A board of jobs: a queue by urgency (lowest first), the list of jobs started, a counter.
#[derive(AtomicModel, Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Board {
    #[rapyer(key)]
    id: String,
    queue: PriorityQueue<String>,
    started: Vec<String>,
    processed: u64,
}

/// A job queue: jobs pushed with priorities, then the most urgent popped into the board's
/// list and counted in one all-or-nothing block.
async fn job_queue(db: &Db) -> Result<()> {
    println!("== A job queue: the most urgent job first, ties in arrival order");
    let mut board = Board {
        id: "ops".into(),
        queue: PriorityQueue::new(),
        started: Vec::new(),
        processed: 0,
    };
    board.save(db).await?;
    for (job, priority) in [
        ("rotate logs", 5),
        ("page on-call", 0),
        ("renew cert", 1),
        ("reindex", 5),
    ] {
        board.queue().push(db, job.to_string(), priority).await?;
    }
    println!(
        "queued: {:?}",
        board.queue().items(db).await?.iter().collect::<Vec<_>>()
    );
    let me = Board::server_ref_for("ops");
    for _ in 0..2 {
        let (job, processed) = ServerOps::scope(db, |ops| {
            (
                ops.queue_pop_into(me.queue(), me.started()),
                ops.incr(me.processed(), 1),
            )
        })
        .await?;
        // Each result is `None` only where a `when` skipped the operation.
        let job = job.flatten().map(|(name, _priority)| name);
        println!(
            "started {job:?}, {} processed so far",
            processed.unwrap_or_default()
        );
    }
    let stored = Board::get(db, "ops").await?;
    println!(
        "left in the queue: {}, started: {:?}",
        stored.queue.len(),
        stored.started
    );
    stored.delete(db).await?;
    println!();
    Ok(())
}

/// A team with its members' skills in a set (one hash tag: teams share a slot, so their
/// sets can be combined on the server).
#[derive(AtomicModel, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[rapyer(hash_tag = "teams")]
struct Team {
    #[rapyer(key)]
    id: String,
    skills: Set<String>,
}

/// Set algebra on the server: what two teams know together, in common, and apart.
async fn set_algebra(db: &Db) -> Result<()> {
    println!("== Set algebra between two models' sets, on the server");
    let skills = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Set<String>>();
    let mut web = Team {
        id: "web".into(),
        skills: skills(&["rust", "sql", "css"]),
    };
    let mut data = Team {
        id: "data".into(),
        skills: skills(&["rust", "sql", "python"]),
    };
    web.save(db).await?;
    data.save(db).await?;
    let mut both = Team {
        id: "both".into(),
        skills: skills(&["rust", "sql", "css"]),
    };
    both.save(db).await?;
    let n = both.skills().intersect_into(db, &data.skills()).await?;
    println!(
        "in common ({n}): {:?}",
        both.skills.iter().collect::<Vec<_>>()
    );
    let n = web.skills().union_into(db, &data.skills()).await?;
    println!(
        "web after learning data's skills ({n}): {:?}",
        web.skills.iter().collect::<Vec<_>>()
    );
    let n = data.skills().difference_into(db, &both.skills()).await?;
    println!(
        "data's own skills ({n}): {:?}",
        data.skills.iter().collect::<Vec<_>>()
    );
    Team::delete_many(db, ["web", "data", "both"]).await?;
    println!();
    Ok(())
}
