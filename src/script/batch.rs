//! Sending a batch of script calls and plain commands in one round trip, with the scripts
//! loaded inside the same `MULTI … EXEC` as their calls, and reading the replies back.

use redis::{Cmd, RedisError, ServerError, Value};

use super::Script;
use super::run::script_error;
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
    /// failure.
    ///
    /// Every run of items that calls a script is sent as `MULTI`, `SCRIPT LOAD` of each
    /// script it calls, the items, `EXEC`: the scripts are in the cache when the calls run,
    /// whatever another client flushes, so no call can fail with NOSCRIPT. An atomic batch
    /// is one such run; a plain one is cut into runs of at most [`SEGMENT`] commands, and
    /// runs without scripts are sent bare.
    pub(crate) async fn send(self, db: &Db, op: &'static str) -> Result<Vec<Value>> {
        if self.items.is_empty() {
            return Ok(Vec::new());
        }
        let total = self.items.len();
        let keys: usize = self.items.iter().map(|i| i.keys).sum();
        let mut pipe = redis::pipe();
        let mut segments = Vec::new();
        let mut items = self.items.into_iter().peekable();
        while items.peek().is_some() {
            let take = if self.atomic { total } else { SEGMENT };
            let chunk: Vec<Item> = items.by_ref().take(take).collect();
            let wrapped = self.atomic || chunk.iter().any(|i| i.script.is_some());
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

/// Matches the raw replies of a sent batch to its items.
fn read_replies(
    op: &'static str,
    total: usize,
    segments: Vec<Segment>,
    replies: Vec<Value>,
) -> Result<Vec<Value>> {
    let mut replies = replies.into_iter();
    let mut next = || {
        replies.next().ok_or_else(|| {
            Error::redis(
                op,
                RedisError::from((redis::ErrorKind::Client, "fewer replies than commands")),
            )
        })
    };
    let mut out = Vec::with_capacity(total);
    let mut first_failure: Option<Error> = None;
    let mut note = |failure: Error| {
        if first_failure.is_none() {
            first_failure = Some(failure);
        }
    };
    for segment in segments {
        if !segment.wrapped {
            for script in &segment.scripts {
                let reply = next()?;
                if let Value::ServerError(e) = &reply {
                    note(item_error(op, script.as_ref(), e, &[]));
                }
                out.push(reply);
            }
            continue;
        }
        // MULTI, then QUEUED (or a queue-time error) for each load and item, then EXEC.
        if let Value::ServerError(e) = next()? {
            return Err(Error::redis(op, RedisError::from(e)));
        }
        let mut queue_failure: Option<(usize, ServerError)> = None;
        for position in 0..segment.loads.len() + segment.len {
            if let Value::ServerError(e) = next()?
                && queue_failure.is_none()
            {
                queue_failure = Some((position, e));
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
                    if let Value::ServerError(e) = &reply {
                        note(item_error(op, script.as_ref(), e, &load_failures));
                    }
                    out.push(reply);
                }
            }
            // EXECABORT: a command was refused while queueing, so nothing in this segment ran.
            exec => {
                let failure = match queue_failure {
                    Some((position, e)) if position < segment.loads.len() => {
                        script_error(&segment.loads[position], &e)
                    }
                    Some((position, e)) => {
                        let script = segment.scripts[position - segment.loads.len()].as_ref();
                        item_error(op, script, &e, &[])
                    }
                    None => Error::redis(op, unexpected_exec(exec)),
                };
                note(failure);
                out.extend(std::iter::repeat_n(Value::Nil, segment.len));
            }
        }
    }
    match first_failure {
        Some(failure) => Err(failure),
        None => Ok(out),
    }
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

/// The error for an item that failed with `e`. A script whose `SCRIPT LOAD` failed in the
/// same segment reports the load's error (e.g. a Lua syntax error), not the NOSCRIPT of its
/// call.
fn item_error(
    op: &'static str,
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
        None => Error::redis(op, RedisError::from(e.clone())),
    }
}

fn busy(e: &ServerError) -> Error {
    Error::Busy {
        message: crate::error::server_error_text(e),
    }
}
