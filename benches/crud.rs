#![allow(missing_docs)] // criterion_group! generates an undocumented public function
//! Criterion benchmarks of single-document save and get, next to raw redis-rs sending the
//! same command with the same serde payload in the same run. `cargo xtask bench crud`.

use criterion::{Criterion, criterion_group, criterion_main};
use rapyer::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(AtomicModel, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[rapyer(prefix = "CritUser")]
struct CritUser {
    #[rapyer(key)]
    id: u64,
    name: String,
    tags: Vec<String>,
    score: f64,
}

fn user() -> CritUser {
    CritUser {
        id: 1,
        name: "bench user".into(),
        tags: vec!["a".into(), "b".into()],
        score: 1.5,
    }
}

fn crud(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let url = rapyer_testkit::server().url().to_string();
    let (db, raw) = rt.block_on(async {
        let db = Db::connect(&url)
            .await
            .expect("connect")
            .with_namespace("crit")
            .expect("a valid namespace");
        let raw = redis::Client::open(url.as_str())
            .expect("url")
            .get_multiplexed_async_connection()
            .await
            .expect("raw");
        (db, raw)
    });
    let u = user();
    rt.block_on(u.save(&db)).expect("seed");

    let mut group = c.benchmark_group("save");
    group.bench_function("rapyer", |b| {
        b.to_async(&rt)
            .iter(|| async { u.save(&db).await.expect("save") })
    });
    group.bench_function("raw redis-rs", |b| {
        b.to_async(&rt).iter(|| async {
            let mut conn = raw.clone();
            let json = serde_json::to_string(&u).expect("json");
            let _: () = redis::cmd("JSON.SET")
                .arg("crit/CritUser:1")
                .arg("$")
                .arg(json)
                .query_async(&mut conn)
                .await
                .expect("JSON.SET");
        })
    });
    group.finish();

    let mut group = c.benchmark_group("get");
    group.bench_function("rapyer", |b| {
        b.to_async(&rt)
            .iter(|| async { CritUser::get(&db, 1).await.expect("get") })
    });
    group.bench_function("raw redis-rs", |b| {
        b.to_async(&rt).iter(|| async {
            let mut conn = raw.clone();
            let text: Vec<u8> = redis::cmd("JSON.GET")
                .arg("crit/CritUser:1")
                .query_async(&mut conn)
                .await
                .expect("JSON.GET");
            serde_json::from_slice::<CritUser>(&text).expect("decode")
        })
    });
    group.finish();
}

criterion_group!(benches, crud);
criterion_main!(benches);
