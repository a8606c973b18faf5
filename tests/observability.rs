//! Every round trip rapyer makes (a command, a script call, a whole pipeline) is one
//! `tracing` event with the operation, the key count and the duration, and never a value.

mod common;

use std::sync::{Arc, Mutex};

use rapyer::prelude::*;
use serde::{Deserialize, Serialize};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id as SpanId, Record};
use tracing::{Event, Metadata, Subscriber};

#[derive(AtomicModel, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[rapyer(ttl = 30)]
struct Secret {
    #[rapyer(key)]
    id: String,
    password: String,
}

/// Records each event as `target field=value ...`.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<String>>>);

struct Line(String);

impl Visit for Line {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.push_str(&format!(" {}={:?}", field.name(), value));
    }
}

impl Subscriber for Recorder {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &Attributes<'_>) -> SpanId {
        SpanId::from_u64(1)
    }
    fn record(&self, _: &SpanId, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &SpanId, _: &SpanId) {}
    fn event(&self, event: &Event<'_>) {
        let mut line = Line(event.metadata().target().to_string());
        event.record(&mut line);
        self.0.lock().expect("recorder").push(line.0);
    }
    fn enter(&self, _: &SpanId) {}
    fn exit(&self, _: &SpanId) {}
}

#[tokio::test]
async fn commands_are_traced_without_values() {
    let recorder = Recorder::default();
    let _guard = tracing::subscriber::set_default(recorder.clone());
    let db = common::db().await;
    let secret = Secret {
        id: "s1".into(),
        password: "hunter2-do-not-log".into(),
    };
    secret.save(&db).await.expect("save");
    Secret::get(&db, "s1").await.expect("get");
    Secret::get_many(&db, ["s1", "s2"]).await.expect("get_many");
    Secret::delete_by_id(&db, "s1").await.expect("delete");
    db.scripts()
        .define("echo", Keys::Fixed(1), "return ARGV[1]")
        .expect("define");
    let _: String = db
        .run_script("echo", &["k"], &["hunter2"])
        .await
        .expect("run_script");
    let mut pipe = db.pipeline();
    pipe.run_script("echo", &["k"], &["hunter2"]);
    pipe.run_script("echo", &["k"], &["hunter2"]);
    pipe.execute().await.expect("pipeline");
    let mut tx = db.transaction();
    tx.run_script("echo", &["k"], &["hunter2"]);
    tx.execute().await.expect("transaction");

    let lines = recorder.0.lock().expect("recorder").clone();
    let commands: Vec<&String> = lines
        .iter()
        .filter(|l| l.starts_with("rapyer::command"))
        .collect();
    for (op, keys) in [
        ("EVALSHA", 1),
        ("JSON.GET", 1),
        ("JSON.MGET", 2),
        // delete_by_id: the delete script, which checks the key's type first.
        ("EVALSHA", 1),
        ("pipeline", 2),
        ("transaction", 1),
    ] {
        assert!(
            commands
                .iter()
                .any(|l| l.contains(&format!("op=\"{op}\"")) && l.contains(&format!("keys={keys}"))),
            "no event for {op} with {keys} keys in {commands:#?}"
        );
    }
    assert!(commands.iter().all(|l| l.contains("elapsed_us=")));
    for line in &lines {
        assert!(
            !line.contains("hunter2"),
            "a value leaked into a trace: {line}"
        );
    }
}
