//! Sending a batch of script calls and plain commands in one round trip, with the scripts
//! loaded inside the same `MULTI … EXEC` as their calls, and reading the replies back.

use redis::{Cmd, RedisError, ServerError, Value};

use super::Script;
use super::reply::script_error;
use crate::db::Db;
use crate::error::{Error, Result};

/// Commands per `MULTI … EXEC` segment of a plain pipeline that calls scripts: bounds how
/// long one segment holds the server and how much it queues there.
const SEGMENT: usize = 1000;

/// One command of a batch, with the script it calls, if any.
pub(crate) struct Item {
    cmd: Cmd,
    script: Option<Script>,
    keys: usize,
}

impl Item {
    /// An `EVALSHA` of `script` with `keys` keys.
    pub(crate) fn script(script: Script, cmd: Cmd, keys: usize) -> Item {
        Item {
            cmd,
            script: Some(script),
            keys,
        }
    }

    /// A plain command.
    pub(super) fn command(cmd: Cmd) -> Item {
        Item {
            cmd,
            script: None,
            keys: 0,
        }
    }
}

/// Commands sent in one round trip; `atomic` wraps them all in one `MULTI … EXEC`.
pub(crate) struct Batch {
    atomic: bool,
    items: Vec<Item>,
}

/// How one run of consecutive items was sent.
struct Segment {
    len: usize,
    /// Sent inside `MULTI … EXEC`, after a `SCRIPT LOAD` of each script in `loads`.
    wrapped: bool,
    loads: Vec<Script>,
    /// The scripts of the batch's items, in order (`None` for plain commands).
    scripts: Vec<Option<Script>>,
}

impl Batch {
    pub(crate) fn new(atomic: bool) -> Batch {
        Batch {
            atomic,
            items: Vec::new(),
        }
    }

    /// Adds `item`; returns its position.
    pub(crate) fn push(&mut self, item: Item) -> usize {
        self.items.push(item);
        self.items.len() - 1
    }

    /// How many items were added.
    pub(super) fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether it is sent as one `MULTI … EXEC`.
    pub(super) fn is_atomic(&self) -> bool {
        self.atomic
    }

    /// Sends every item in one round trip and returns one reply per item, or the first
    /// failure (see [`send_each`](Batch::send_each)).
    pub(crate) async fn send(self, db: &Db, op: &'static str) -> Result<Vec<Value>> {
        self.send_each(db, op).await?.into_iter().collect()
    }

    /// Sends every item in one round trip and returns, per item, its reply or the typed
    /// error of its own failure; the outer error is a failure of the round trip itself.
    ///
    /// An atomic batch is sent as `MULTI`, a `SCRIPT LOAD` of each script it calls, the
    /// items, `EXEC`: the scripts are in the cache when the calls run, whatever another
    /// client flushes, so no call can fail with NOSCRIPT. A plain batch wraps only its
    /// script calls that way — each run of consecutive calls (at most [`SEGMENT`]) with the
    /// loads it needs — and sends its plain commands bare, so a plain command Redis refuses
    /// while queueing (a wrong argument count, an unknown command) cannot abort anything
    /// but itself. The order of the items is kept.
    pub(crate) async fn send_each(self, db: &Db, op: &'static str) -> Result<Vec<Result<Value>>> {
        if self.items.is_empty() {
            return Ok(Vec::new());
        }
        let total = self.items.len();
        let keys: usize = self.items.iter().map(|i| i.keys).sum();
        let mut pipe = redis::pipe();
        let mut segments = Vec::new();
        let mut items = self.items.into_iter().peekable();
        while let Some(first) = items.peek() {
            let wrapped = self.atomic || first.script.is_some();
            let mut chunk = Vec::new();
            while let Some(item) = items.peek() {
                let fits = if self.atomic {
                    true
                } else if wrapped {
                    item.script.is_some() && chunk.len() < SEGMENT
                } else {
                    item.script.is_none()
                };
                if !fits {
                    break;
                }
                chunk.extend(items.next());
            }
            let mut loads: Vec<Script> = Vec::new();
            if wrapped {
                pipe.cmd("MULTI");
                for script in chunk.iter().filter_map(|i| i.script.as_ref()) {
                    if !loads.iter().any(|l| l.sha() == script.sha()) {
                        pipe.cmd("SCRIPT").arg("LOAD").arg(script.body());
                        loads.push(script.clone());
                    }
                }
            }
            let mut scripts = Vec::with_capacity(chunk.len());
            for item in chunk {
                pipe.add_command(item.cmd);
                scripts.push(item.script);
            }
            if wrapped {
                pipe.cmd("EXEC");
            }
            segments.push(Segment {
                len: scripts.len(),
                wrapped,
                loads,
                scripts,
            });
        }
        let replies = db
            .send_raw(op, keys, &pipe)
            .await
            .map_err(|e| Error::redis(op, e))?;
        read_replies(op, total, segments, replies)
    }
}

/// Matches the raw replies of a sent batch to its items: per item, its reply or its error.
fn read_replies(
    op: &'static str,
    total: usize,
    segments: Vec<Segment>,
    replies: Vec<Value>,
) -> Result<Vec<Result<Value>>> {
    let mut replies = replies.into_iter();
    let mut next = || {
        replies.next().ok_or_else(|| {
            Error::redis(
                op,
                RedisError::from((redis::ErrorKind::Client, "fewer replies than commands")),
            )
        })
    };
    let mut out: Vec<Result<Value>> = Vec::with_capacity(total);
    for segment in segments {
        let start = out.len();
        if !segment.wrapped {
            for script in &segment.scripts {
                let index = out.len();
                out.push(match next()? {
                    Value::ServerError(e) => Err(item_error(op, index, script.as_ref(), &e, &[])),
                    reply => Ok(reply),
                });
            }
            continue;
        }
        // MULTI, then QUEUED (or a queue-time error) for each load and item, then EXEC.
        if let Value::ServerError(e) = next()? {
            return Err(Error::redis(op, RedisError::from(e)));
        }
        let mut queue_failures: Vec<(usize, ServerError)> = Vec::new();
        for position in 0..segment.loads.len() + segment.len {
            if let Value::ServerError(e) = next()? {
                queue_failures.push((position, e));
            }
        }
        match next()? {
            Value::Array(results) if results.len() == segment.loads.len() + segment.len => {
                let mut results = results.into_iter();
                let mut load_failures: Vec<(&Script, ServerError)> = Vec::new();
                for script in &segment.loads {
                    if let Some(Value::ServerError(e)) = results.next() {
                        load_failures.push((script, e));
                    }
                }
                for (script, reply) in segment.scripts.iter().zip(results) {
                    let index = out.len();
                    out.push(match reply {
                        Value::ServerError(e) => {
                            Err(item_error(op, index, script.as_ref(), &e, &load_failures))
                        }
                        reply => Ok(reply),
                    });
                }
            }
            // EXECABORT: a command was refused while queueing, so nothing in this segment
            // ran. Each refused item reports its own refusal; the others, the first one.
            exec => {
                let loads = segment.loads.len();
                let first = match queue_failures.first() {
                    Some((position, e)) if *position < loads => {
                        script_error(&segment.loads[*position], e)
                    }
                    Some((position, e)) => item_error(
                        op,
                        start + position - loads,
                        segment.scripts[position - loads].as_ref(),
                        e,
                        &[],
                    ),
                    None => Error::redis(op, unexpected_exec(exec)),
                };
                for (i, script) in segment.scripts.iter().enumerate() {
                    let own = queue_failures.iter().find(|(p, _)| *p == loads + i);
                    out.push(Err(match own {
                        Some((_, e)) => item_error(op, start + i, script.as_ref(), e, &[]),
                        None => aborted(op, start + i, &first),
                    }));
                }
            }
        }
    }
    Ok(out)
}

/// The error of an item that did not run because another command of its `MULTI … EXEC`
/// was refused while queueing (`first`).
fn aborted(op: &'static str, index: usize, first: &Error) -> Error {
    Error::redis(
        &format!("{op} command {index}"),
        RedisError::from((
            redis::ErrorKind::Client,
            "not run: its MULTI … EXEC was aborted",
            first.to_string(),
        )),
    )
}

fn unexpected_exec(exec: Value) -> RedisError {
    match exec {
        Value::ServerError(e) => RedisError::from(e),
        other => RedisError::from((
            redis::ErrorKind::Client,
            "unexpected reply to EXEC",
            format!("{other:?}"),
        )),
    }
}

/// The error for the item at `index` that failed with `e`. A script whose `SCRIPT LOAD`
/// failed in the same segment reports the load's error (e.g. a Lua syntax error), not the
/// NOSCRIPT of its call. A plain command's error names its index.
fn item_error(
    op: &'static str,
    index: usize,
    script: Option<&Script>,
    e: &ServerError,
    load_failures: &[(&Script, ServerError)],
) -> Error {
    match script {
        Some(script) => {
            let load = load_failures.iter().find(|(s, _)| s.sha() == script.sha());
            script_error(script, load.map_or(e, |(_, le)| le))
        }
        None if e.code() == "BUSY" => busy(e),
        None => Error::redis(
            &format!("{op} command {index}"),
            RedisError::from(e.clone()),
        ),
    }
}

fn busy(e: &ServerError) -> Error {
    Error::Busy {
        message: crate::error::server_error_text(e),
    }
}
