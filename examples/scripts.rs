//! Named Lua scripts: define once, run by name, call through a typed command, batch calls in
//! a pipeline or a transaction, and preload.
//!
//! Run it with `cargo xtask demo scripts` (which provides a Redis), or against your own
//! Redis 8 / redis-stack with `REDIS_URL=redis://127.0.0.1:6379 cargo run --example scripts`.

use rapyer::prelude::*;
use rapyer::script::{Json, NONE};

rapyer::script! {
    /// Pushes `message` onto the queue of every member of `group` (queue keys are
    /// `queue_prefix` followed by the member); returns how many queues got it.
    pub PUBLISH_TO_GROUP(
        "publish_to_group",
        keys(group),
        args(queue_prefix: &str, message: &str),
    ) -> i64 = r#"
local members = redis.call('SMEMBERS', KEYS[1])
for _, member in ipairs(members) do
  redis.call('RPUSH', ARGV[1] .. member, ARGV[2])
end
return #members
"#;
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let db = Db::connect(&url).await?.with_namespace("scripts-demo/")?;
    println!("connected to {url}, every key under the namespace `scripts-demo/`\n");

    println!("== Define a script once, run it by name");
    db.scripts().define(
        "bump",
        Keys::Fixed(1),
        "return redis.call('INCRBY', KEYS[1], ARGV[1])",
    )?;
    let n: i64 = db.run_script("bump", &["visits"], &[5]).await?;
    println!("bump(visits, 5) -> {n} (stored at {})", db.key("visits"));

    println!("\n== A typed command: the key count is part of the signature");
    // Plain commands go through a pipeline too (their keys are sent as given).
    let mut setup = db.pipeline();
    setup.cmd(redis::cmd("DEL").arg(db.key("group:chat")).to_owned());
    setup.cmd(
        redis::cmd("SADD")
            .arg(db.key("group:chat"))
            .arg(&["ann", "bob", "cy"])
            .to_owned(),
    );
    setup.execute().await?;
    let queues = db.key("queue:");
    let delivered = PUBLISH_TO_GROUP
        .call(&db, "group:chat", &queues, "hello")
        .await?;
    println!("publish_to_group(group:chat, hello) reached {delivered} queues");

    println!("\n== A pipeline: many calls, one round trip, replies in order");
    let mut pipe = db.pipeline();
    let first = pipe.add(PUBLISH_TO_GROUP.prepare("group:chat", &queues, "one"));
    let second = pipe.add(PUBLISH_TO_GROUP.prepare("group:chat", &queues, "two"));
    let bumped = pipe.run_script("bump", &["visits"], &[1]);
    let ann = pipe.cmd(
        redis::cmd("LRANGE")
            .arg(format!("{queues}ann"))
            .arg(0)
            .arg(-1)
            .to_owned(),
    );
    let replies = pipe.execute().await?;
    let visits: i64 = bumped.typed().get(&replies)?;
    let ann: Vec<String> = ann.typed().get(&replies)?;
    println!(
        "delivered {} and {}, visits now {visits}, ann's queue {ann:?}",
        first.get(&replies)?,
        second.get(&replies)?,
    );

    println!("\n== A transaction: script calls and commands in one MULTI/EXEC");
    let mut tx = db.transaction();
    tx.run_script("bump", &["visits"], &[10]);
    tx.cmd(
        redis::cmd("SET")
            .arg(db.key("last-visit"))
            .arg("now")
            .to_owned(),
    );
    let replies = tx.execute().await?;
    println!("transaction replies: {replies:?}");

    println!("\n== Replies follow Lua's rules: return floats as text or JSON");
    db.scripts().define(
        "stats",
        Keys::Fixed(0),
        "return cjson.encode({mean = string.format('%.17g', 10 / 3), count = 3})",
    )?;
    #[derive(serde::Deserialize, Debug)]
    struct Stats {
        mean: String,
        count: i64,
    }
    let Json(stats): Json<Stats> = db.run_script("stats", NONE, NONE).await?;
    let mean: f64 = stats.mean.parse().unwrap_or(f64::NAN);
    println!("stats: mean {mean} over {} values", stats.count);

    println!("\n== Errors name the script");
    db.scripts().define(
        "picky",
        Keys::Fixed(0),
        "return redis.error_reply('ERR picky says no')",
    )?;
    if let Err(e) = db.run_script::<i64>("picky", NONE, NONE).await {
        println!("{e}");
    }

    println!("\n== Preload every defined script (optional: a missing one loads on first use)");
    let loaded = db.scripts().preload().await?;
    println!("loaded {loaded} scripts: {:?}", db.scripts().names());
    println!(
        "missing from the server's cache now: {:?}",
        db.scripts().missing().await?
    );

    let mut cleanup = db.pipeline();
    let mut del = redis::cmd("DEL");
    del.arg(db.key("visits"))
        .arg(db.key("group:chat"))
        .arg(db.key("last-visit"));
    for member in ["ann", "bob", "cy"] {
        del.arg(format!("{queues}{member}"));
    }
    cleanup.cmd(del);
    cleanup.execute().await?;
    Ok(())
}
