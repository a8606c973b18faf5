// Typed commands: keys and arguments of any redis-rs argument type, any reply type.
use std::collections::HashMap;

rapyer::script! {
    /// No keys, no arguments.
    pub PING("ping", keys(), args()) -> String = "return 'PONG'";
}

rapyer::script! {
    /// Two keys and mixed arguments.
    TRANSFER(
        "transfer",
        keys(from, to),
        args(amount: i64, note: &str, tags: &[String]),
    ) -> Vec<Option<i64>> = include_str!("transfer.lua");
}

rapyer::script! {
    /// A JSON reply decoded with serde.
    STATS("stats", keys(k), args()) -> rapyer::script::Json<HashMap<String, f64>> = "return '{}'";
}

async fn run(db: &rapyer::Db) -> rapyer::Result<()> {
    let _: String = PING.call(db).await?;
    let _: Vec<Option<i64>> = TRANSFER.call(db, "a", "b", 5, "rent", &["x".to_string()]).await?;
    let mut pipe = db.pipeline();
    let reply = pipe.add(STATS.prepare("k"));
    let replies = pipe.execute().await?;
    let rapyer::script::Json(_stats) = reply.get(&replies)?;
    assert_eq!(TRANSFER::KEYS, rapyer::Keys::Fixed(2));
    assert_eq!(TRANSFER.script().name(), "transfer");
    Ok(())
}

fn main() {
    let _ = run;
}
