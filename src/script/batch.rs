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
    /// The index of the first item in the batch the caller built (a cluster sends a plain
    /// batch's items one by one), for the errors that name an item by its index.
    first: usize,
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
            first: 0,
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
    ///
    /// On a cluster, a transaction whose keys span hash slots is [`Error::CrossSlot`] before
    /// anything is sent, and a plain batch is sent one item per request (see
    /// [`send_to_cluster`](Batch::send_to_cluster)).
    pub(crate) async fn send_each(self, db: &Db, op: &'static str) -> Result<Vec<Result<Value>>> {
        if self.items.is_empty() {
            return Ok(Vec::new());
        }
        if db.is_cluster() {
            if self.atomic {
                self.check_one_slot()?;
            } else if self.items.len() > 1 {
                return self.send_to_cluster(db, op).await;
            }
        }
        // What a refused transaction names: each item's keys, or a plain command's first
        // argument.
        let named: Vec<String> = if db.is_cluster() {
            self.items.iter().flat_map(Item::named_keys).collect()
        } else {
            Vec::new()
        };
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
        let first = self.first;
        let replies = db.send_raw(op, keys, &pipe).await.map_err(|e| {
            // redis-rs refuses a transaction whose plain commands span slots.
            if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::CrossSlot) {
                Error::CrossSlot { keys: named }
            } else {
                Error::redis(op, e)
            }
        })?;
        read_replies(op, first, total, segments, replies)
    }

    /// A plain batch on a cluster: each item is sent as a request of its own (a script call
    /// with its `SCRIPT LOAD` in one `MULTI … EXEC`), because redis-rs re-sends a whole
    /// pipeline when one of its replies is a redirect, which would run the others twice.
    /// The items of one hash slot are sent one after another, in order; the slots' runs go
    /// at once, so items of different slots keep no order between them.
    fn send_to_cluster<'a>(
        self,
        db: &'a Db,
        op: &'static str,
    ) -> futures_util::future::BoxFuture<'a, Result<Vec<Result<Value>>>> {
        let total = self.items.len();
        let mut runs: Vec<(Option<u16>, Vec<Batch>)> = Vec::new();
        for (index, item) in self.items.into_iter().enumerate() {
            let slot = item.first_key().map(crate::slot::hash_slot);
            let single = Batch {
                atomic: false,
                items: vec![item],
                first: self.first + index,
            };
            match runs.iter_mut().find(|(s, _)| *s == slot && slot.is_some()) {
                Some((_, run)) => run.push(single),
                None => runs.push((slot, vec![single])),
            }
        }
        Box::pin(async move {
            let sends = runs.into_iter().map(|(_, run)| async move {
                let mut replies = Vec::with_capacity(run.len());
                for single in run {
                    let index = single.first;
                    let mut reply = Box::pin(single.send_each(db, op)).await?;
                    replies.push((index, reply.pop().unwrap_or_else(|| Err(no_reply(op)))));
                }
                Ok::<_, Error>(replies)
            });
            let mut out: Vec<Option<Result<Value>>> = (0..total).map(|_| None).collect();
            for run in futures_util::future::join_all(sends).await {
                for (index, reply) in run? {
                    out[index - self.first] = Some(reply);
                }
            }
            Ok(out
                .into_iter()
                .map(|reply| reply.unwrap_or_else(|| Err(no_reply(op))))
                .collect())
        })
    }

    /// Fails with [`Error::CrossSlot`] naming the keys when the batch's script calls (whose
    /// keys are known exactly) name keys of more than one hash slot.
    fn check_one_slot(&self) -> Result<()> {
        let keys: Vec<String> = self.items.iter().flat_map(Item::keys).collect();
        let Some(first) = keys.first() else {
            return Ok(());
        };
        let slot = crate::slot::hash_slot(first.as_bytes());
        if keys
            .iter()
            .any(|k| crate::slot::hash_slot(k.as_bytes()) != slot)
        {
            return Err(Error::CrossSlot { keys });
        }
        Ok(())
    }
}

impl Item {
    /// The keys of a script call (`EVALSHA sha n key…`); none for a plain command.
    fn keys(&self) -> Vec<String> {
        if self.script.is_none() {
            return Vec::new();
        }
        self.cmd
            .args_iter()
            .skip(3)
            .take(self.keys)
            .filter_map(|arg| match arg {
                redis::Arg::Simple(key) => Some(String::from_utf8_lossy(key).into_owned()),
                _ => None,
            })
            .collect()
    }

    /// The keys a refusal names: a script call's keys, else a plain command's first argument.
    fn named_keys(&self) -> Vec<String> {
        match &self.script {
            Some(_) => self.keys(),
            None => self
                .first_key()
                .map(|k| String::from_utf8_lossy(k).into_owned())
                .into_iter()
                .collect(),
        }
    }

    /// The key that decides where the item goes: a script call's first key, else a plain
    /// command's first argument (where most commands take their key).
    fn first_key(&self) -> Option<&[u8]> {
        let at = if self.script.is_some() && self.keys > 0 {
            3
        } else if self.script.is_none() {
            1
        } else {
            return None;
        };
        match self.cmd.args_iter().nth(at) {
            Some(redis::Arg::Simple(key)) => Some(key),
            _ => None,
        }
    }
}

fn no_reply(op: &'static str) -> Error {
    Error::redis(
        op,
        RedisError::from((
            redis::ErrorKind::Client,
            "no reply to a command of the batch",
        )),
    )
}

/// Matches the raw replies of a sent batch to its items: per item, its reply or its error.
fn read_replies(
    op: &'static str,
    first: usize,
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
        let start = first + out.len();
        if !segment.wrapped {
            for script in &segment.scripts {
                let index = first + out.len();
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
                    let index = first + out.len();
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
