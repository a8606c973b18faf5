//! ServerOps: typed work across stored models that runs on the server as one script, all or
//! nothing, without loading the models: moving list slices, aggregating counters, building
//! strings, swapping, conditionals, queue transfers, and a model's own atomic block.
//!
//! Run it with `cargo xtask demo server_ops` (which provides a Redis), or against your own
//! Redis 8 / redis-stack with `REDIS_URL=redis://127.0.0.1:6379 cargo run --example server_ops`.

use rapyer::ops::Results;
use rapyer::prelude::*;
use serde::{Deserialize, Serialize};

// Models changed together in one block must share a cluster slot: each group below has a
// hash tag of its own, which puts `{tag}` in every key (`TaskList:{board}:todo`).

#[derive(AtomicModel, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[rapyer(hash_tag = "board")]
struct TaskList {
    #[rapyer(key)]
    id: String,
    tasks: Vec<String>,
}

#[derive(AtomicModel, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[rapyer(hash_tag = "stats")]
struct PageStats {
    #[rapyer(key)]
    id: String,
    views: i64,
}

#[derive(AtomicModel, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[rapyer(hash_tag = "mail")]
struct Message {
    #[rapyer(key)]
    id: String,
    header: String,
    body: String,
    footer: String,
    full: String,
}

#[derive(AtomicModel, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[rapyer(hash_tag = "bank")]
struct Account {
    #[rapyer(key)]
    id: String,
    balance: i64,
    frozen: bool,
    declined: i64,
}

/// A job: a nested model (no key), moved between queues as a whole.
#[derive(AtomicModel, Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Job {
    name: String,
    tries: i64,
}

#[derive(AtomicModel, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[rapyer(hash_tag = "jobs")]
struct Queue {
    #[rapyer(key)]
    id: String,
    jobs: Vec<Job>,
}

#[derive(AtomicModel, Serialize, Deserialize, Debug, Clone, PartialEq)]
struct User {
    #[rapyer(key)]
    id: String,
    age: i64,
    level: i8,
    tags: Vec<String>,
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn account(id: &str, balance: i64) -> Account {
    Account {
        id: id.into(),
        balance,
        frozen: false,
        declined: 0,
    }
}

fn job(name: &str) -> Job {
    Job {
        name: name.into(),
        tries: 0,
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let db = Db::connect(&url)
        .await?
        .with_namespace("server-ops-demo/")?;
    println!("connected to {url}, every key under the namespace `server-ops-demo/`\n");

    println!("== Move pending tasks from one list to another: Python's slice assignment");
    let todo = TaskList {
        id: "todo".into(),
        tasks: strings(&["write docs", "fix bug", "review PR", "release"]),
    };
    let doing = TaskList {
        id: "doing".into(),
        tasks: strings(&["deploy"]),
    };
    TaskList::insert_many(&db, &[todo.clone(), doing.clone()]).await?;
    let (from, to) = (todo.server_ref(), doing.server_ref());
    // doing.tasks[0:0] = todo.tasks[0:2]; todo.tasks[0:2] = []
    ServerOps::scope(&db, |ops| {
        ops.assign(from.tasks().slice(0..2), to.tasks().slice(0..0));
        ops.set(from.tasks().slice(0..2), Vec::<String>::new());
    })
    .await?;
    let (todo, doing) = (
        TaskList::get(&db, "todo").await?,
        TaskList::get(&db, "doing").await?,
    );
    println!("todo  -> {:?}", todo.tasks);
    println!("doing -> {:?}", doing.tasks);
    assert_eq!(todo.tasks, strings(&["review PR", "release"]));
    assert_eq!(doing.tasks, strings(&["write docs", "fix bug", "deploy"]));

    println!("\n== Aggregate counters into a summary, without reading one of them");
    let pages = [("home", 120), ("docs", 45), ("blog", 7)];
    let mut stats: Vec<PageStats> = pages
        .iter()
        .map(|(id, views)| PageStats {
            id: id.to_string(),
            views: *views,
        })
        .collect();
    stats.push(PageStats {
        id: "total".into(),
        views: 0,
    });
    PageStats::insert_many(&db, &stats).await?;
    let total = PageStats::server_ref_for("total");
    let running = ServerOps::scope(&db, |ops| {
        pages
            .iter()
            .map(|(id, _)| {
                let page = PageStats::server_ref_for(id);
                ops.incr_by_field(total.views(), page.views())
            })
            .collect::<Vec<_>>()
    })
    .await?;
    let total_views = running.last().copied().flatten();
    println!("total.views += home, docs, blog -> running totals {running:?}");
    assert_eq!(total_views, Some(172));
    assert_eq!(PageStats::get(&db, "total").await?.views, 172);

    println!("\n== Assemble a message from its parts, with a separator");
    Message {
        id: "welcome".into(),
        header: "Hello Ann,".into(),
        body: "your order has shipped.".into(),
        footer: "-- the shop".into(),
        full: String::new(),
    }
    .save(&db)
    .await?;
    let m = Message::server_ref_for("welcome");
    let full = ServerOps::scope(&db, |ops| {
        ops.concat([m.header(), m.body(), m.footer()], m.full(), "\n\n")
    })
    .await?;
    println!("full ->\n{}", full.as_deref().unwrap_or_default());
    let expected = "Hello Ann,\n\nyour order has shipped.\n\n-- the shop";
    assert_eq!(full.as_deref(), Some(expected));
    assert_eq!(Message::get(&db, "welcome").await?.full, expected);

    println!("\n== Swap two balances");
    Account::insert_many(&db, &[account("x", 100), account("y", 5)]).await?;
    let (x, y) = (Account::server_ref_for("x"), Account::server_ref_for("y"));
    ServerOps::scope(&db, |ops| ops.swap(x.balance(), y.balance())).await?;
    let (xb, yb) = (
        Account::get(&db, "x").await?.balance,
        Account::get(&db, "y").await?.balance,
    );
    println!("x: 100 -> {xb}, y: 5 -> {yb}");
    assert_eq!((xb, yb), (5, 100));

    println!("\n== A conditional, decided on the server: move 30 if a can afford it");
    Account::insert_many(&db, &[account("a", 50), account("b", 20)]).await?;
    let (a, b) = (Account::server_ref_for("a"), Account::server_ref_for("b"));
    for attempt in 1..=2 {
        let moved = ServerOps::scope(&db, |ops| {
            ops.when(a.balance().ge(30) & !a.frozen().eq(true))
                .then(|ops| {
                    ops.incr(a.balance(), -30);
                    ops.incr(b.balance(), 30);
                })
                .otherwise(|ops| {
                    ops.incr(a.declined(), 1);
                })
        })
        .await?;
        let (sa, sb) = (Account::get(&db, "a").await?, Account::get(&db, "b").await?);
        println!(
            "attempt {attempt}: moved = {moved:?}; a has {} ({} declined), b has {}",
            sa.balance, sa.declined, sb.balance
        );
        let want = if attempt == 1 {
            (Some(true), 20, 0, 50)
        } else {
            (Some(false), 20, 1, 50)
        };
        assert_eq!((moved, sa.balance, sa.declined, sb.balance), want);
    }

    println!("\n== A queue transfer: take the first job of one queue, append it to another");
    Queue {
        id: "incoming".into(),
        jobs: vec![job("resize"), job("email")],
    }
    .save(&db)
    .await?;
    Queue {
        id: "working".into(),
        jobs: vec![],
    }
    .save(&db)
    .await?;
    let (q1, q2) = (
        Queue::server_ref_for("incoming"),
        Queue::server_ref_for("working"),
    );
    for _ in 0..3 {
        let taken = ServerOps::scope(&db, |ops| ops.move_item(q1.jobs().at(0), q2.jobs())).await?;
        // Option<Option<Job>>: the outer None would mean a condition skipped the operation.
        let taken = taken.flatten();
        match &taken {
            Some(job) => println!("moved {:?}", job.name),
            None => println!("moved nothing: the source queue is empty, nothing changed"),
        }
    }
    let (incoming, working) = (
        Queue::get(&db, "incoming").await?,
        Queue::get(&db, "working").await?,
    );
    println!(
        "incoming has {} jobs, working has {:?}",
        incoming.jobs.len(),
        working.jobs.iter().map(|j| &j.name).collect::<Vec<_>>()
    );
    assert!(incoming.jobs.is_empty());
    assert_eq!(working.jobs, vec![job("resize"), job("email")]);

    println!("\n== An atomic block: several field operations on one model, one atomic step");
    let mut ann = User {
        id: "ann".into(),
        age: 41,
        level: 100,
        tags: strings(&["x"]),
    };
    ann.save(&db).await?;
    let (age, tags) = ann
        .atomic(&db, |p| (p.age().incr(1), p.tags().append("y")))
        .await?;
    println!(
        "age -> {age:?}, tags length -> {tags:?}; the local model follows: age {}, tags {:?}",
        ann.age, ann.tags
    );
    assert_eq!((age, tags), (Some(42), Some(2)));
    assert_eq!(User::get(&db, "ann").await?, ann);

    println!("\n== All or nothing: the 2nd operation fails, the 1st is not written either");
    let failed = ann
        .atomic(&db, |p| (p.age().incr(1), p.level().incr(100)))
        .await;
    match &failed {
        Err(Error::Block { op, source }) => {
            println!("Error::Block {{ op: {op}, source: {source} }}");
            assert_eq!(*op, 1);
            assert!(matches!(**source, Error::Overflow { .. }));
        }
        other => panic!("expected Error::Block, got {other:?}"),
    }
    let stored = User::get(&db, "ann").await?;
    println!(
        "stored age is still {}, level still {}",
        stored.age, stored.level
    );
    assert_eq!(stored, ann);

    println!("\n== Models of different slots cannot share a block: CrossSlot, nothing sent");
    let crossed = ServerOps::scope(&db, |ops| {
        ops.incr_by_field(total.views(), a.balance());
    })
    .await;
    match &crossed {
        Err(Error::CrossSlot { keys }) => println!("Error::CrossSlot {{ keys: {keys:?} }}"),
        other => panic!("expected Error::CrossSlot, got {other:?}"),
    }
    assert_eq!(PageStats::get(&db, "total").await?.views, 172);

    println!("\n== Every operation's result, in order: a block whose closure returns ()");
    let results: Results = ServerOps::scope(&db, |ops| {
        ops.incr(a.balance(), 5);
        ops.set(a.frozen(), true);
        ops.swap(a.declined(), b.declined());
    })
    .await?;
    let new_balance: Option<i64> = results.value(0)?;
    println!(
        "{} results; op 0 -> {new_balance:?}, raw JSON of each: {:?}",
        results.len(),
        (0..results.len())
            .map(|i| results.raw(i))
            .collect::<Vec<_>>()
    );
    assert_eq!(new_balance, Some(25));

    println!("\n== The script a block runs (the block itself travels as a program in ARGV)");
    let lua = ServerOps::explain(|ops| {
        ops.swap(x.balance(), y.balance());
    });
    let lines: Vec<&str> = lua.lines().collect();
    for line in &lines[..3] {
        println!("  {line}");
    }
    println!(
        "  … ({} lines in all: the runtime pieces this block's operations need) …",
        lines.len()
    );
    let body = lines
        .iter()
        .position(|l| *l == "-- The block.")
        .unwrap_or(0);
    for line in &lines[body..] {
        println!("  {line}");
    }
    assert!(!lua.contains("balance") && !lua.contains("{bank}"));
    assert!(lua.contains("OPS.op_swap = op_swap"));

    println!("\n== Cleaning up");
    TaskList::delete_many(&db, ["todo", "doing"]).await?;
    PageStats::delete_many(&db, ["home", "docs", "blog", "total"]).await?;
    Message::delete_by_id(&db, "welcome").await?;
    Account::delete_many(&db, ["x", "y", "a", "b"]).await?;
    Queue::delete_many(&db, ["incoming", "working"]).await?;
    ann.delete(&db).await?;
    println!("done");
    Ok(())
}
