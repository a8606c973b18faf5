//! The bank of the ServerOps concurrency tests: accounts that share a cluster slot, and 32
//! tasks moving money between them.

use rapyer::prelude::*;
use serde::{Deserialize, Serialize};

use super::{Flusher, Rng};

#[derive(AtomicModel, Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
#[rapyer(hash_tag = "bank")]
pub(crate) struct Account {
    #[rapyer(key)]
    pub(crate) id: u32,
    pub(crate) balance: i64,
}

async fn total(db: &Db) -> i64 {
    let all = Account::get_many(db, 0..10).await.expect("save");
    all.into_iter().map(|a| a.expect("account").balance).sum()
}

/// 32 tasks doing random transfers, swaps and sweeps between 10 accounts, optionally with
/// SCRIPT FLUSH in a loop from another connection: the total never changes, no block is
/// half-applied and none reports NOSCRIPT.
pub(crate) async fn transfers(db: &Db, flush: bool) -> u64 {
    for id in 0..10 {
        Account { id, balance: 1000 }.save(db).await.expect("save");
    }
    let flusher = if flush {
        Some(Flusher::start().await)
    } else {
        None
    };
    let mut tasks = Vec::new();
    for t in 0..32u64 {
        let db = db.clone();
        tasks.push(tokio::spawn(async move {
            let mut rng = Rng(0x9e37_79b9 + t);
            for _ in 0..60 {
                let (x, y) = (rng.below(10) as u32, rng.below(10) as u32);
                let (a, b) = (Account::server_ref_for(x), Account::server_ref_for(y));
                let amount = rng.below(300) as i64;
                let result = match rng.below(3) {
                    0 => {
                        ServerOps::scope(&db, |ops| {
                            ops.when(a.balance().ge(amount)).then(|ops| {
                                ops.incr(a.balance(), -amount);
                                ops.incr(b.balance(), amount);
                            });
                        })
                        .await
                    }
                    1 => {
                        ServerOps::scope(&db, |ops| {
                            ops.swap(a.balance(), b.balance());
                        })
                        .await
                    }
                    _ if x != y => {
                        ServerOps::scope(&db, |ops| {
                            // Sweep b into a: a += b, then b = 0.
                            ops.when(b.balance().gt(0) & !a.balance().lt(0))
                                .then(|ops| {
                                    ops.incr_by_field(a.balance(), b.balance());
                                    ops.set(b.balance(), 0);
                                });
                        })
                        .await
                    }
                    _ => continue,
                };
                result.unwrap_or_else(|e| panic!("a transfer failed: {e}"));
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    let flushes = match flusher {
        Some(f) => f.stop().await,
        None => 0,
    };
    assert_eq!(total(db).await, 10_000);
    assert!(
        Account::get_many(db, 0..10)
            .await
            .expect("get_many")
            .iter()
            .all(|a| a.as_ref().is_some_and(|a| a.balance >= 0))
    );
    flushes
}
