// A typed command's keys are parameters: calling it with too few does not compile.
rapyer::script! {
    /// Moves one item from `from` to `to`.
    MOVE("move", keys(from, to), args()) -> Option<String> = "return redis.call('LMOVE', KEYS[1], KEYS[2], 'LEFT', 'RIGHT')";
}

async fn run(db: &rapyer::Db) -> rapyer::Result<()> {
    MOVE.call(db, "only-one-key").await?;
    Ok(())
}

fn main() {
    let _ = run;
}
