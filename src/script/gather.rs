//! Gathering: field operations in flight at the same moment on one connection go to the
//! server together, the calls of one operation as one script call.
//!
//! A field operation is one script call (`rapyer.field.<op>`); what it costs the server
//! beyond its own commands is mostly the call itself. So while a connection already has
//! [`ConnectOptions::gathered_after`](crate::ConnectOptions) field calls in flight, the next
//! ones wait, and when one of those in flight ends, the waiting ones go out at once: the
//! calls of each operation as ONE call of its gathered script
//! ([`field_gather_script`](super::lua::field_gather_script)), which runs each of them in
//! turn, each with its own keys and arguments, each under `pcall`. A call with nothing else
//! in flight goes out at once as it always did, alone: gathering adds no wait to it.
//!
//! What each caller sees is what its call alone would have given:
//! - **Its own outcome.** Each call's reply, or its error, is its own entry of the reply. A
//!   call that fails does so before it writes anything (as every field script does), and the
//!   others still run. An error of the whole script call (the connection lost, the server
//!   out of memory or busy) is every call's error, each naming its own key.
//! - **Atomic, in order.** Each call runs whole, with nothing of another client between its
//!   read and its write; the calls of one script call run one after the other in the order
//!   they were made, and nothing else runs between them.
//! - **Out of memory.** The gathered script keeps the operation's `#!lua` line, so over its
//!   `maxmemory` the server refuses every call that could grow a document before any runs.
//! - **Cancellation.** A call dropped while it waits is taken out and never sent; one
//!   dropped after its script call went out may have run, as for any call (the script call
//!   is sent by whichever of its callers polls it first, and goes on while any of them
//!   waits on it).
//!
//! Not on a cluster: calls gathered into one script call must share a hash slot, which
//! concurrent calls on different documents rarely do.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, LazyLock, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use futures_util::future::{FutureExt, Shared};
use redis::{Cmd, FromRedisValue, Value};
use tokio::sync::oneshot;

use super::Script;
use super::library;
use super::reply::{decode, script_error};
use crate::db::Db;
use crate::error::{Error, Result};

/// The most calls one gathered script call carries; more waiting calls of one operation go
/// out as several gathered calls at once.
const MOST_CALLS: usize = 64;

/// The longest a call waits for the calls in flight to make room before it goes out alone
/// anyway. A call in flight makes room when its caller sees its reply, so one whose caller
/// stopped polling it without dropping it (a task stuck elsewhere) holds its place until
/// the caller polls again: while every place is held so, this bounds what that costs the
/// others. Far above a round trip under load (well below a millisecond here), so it does
/// not fire while the calls in flight progress.
const LONGEST_WAIT: Duration = Duration::from_secs(1);

/// One connection's field calls: how many are in flight, and those waiting for one to end.
pub(crate) struct Gather {
    /// How many field calls may be in flight before the next ones wait (at least 1).
    after: usize,
    state: Mutex<State>,
}

struct State {
    /// Field script calls sent or about to be (alone or gathered), not yet ended.
    in_flight: usize,
    /// The calls waiting, in the order they were made.
    waiting: Vec<Waiting>,
    /// The number of the next call to wait.
    next: u64,
}

/// A field call waiting for a script call to carry it.
struct Waiting {
    /// Its number, by which it takes itself out ([`Gather::withdraw`]).
    number: u64,
    /// The operation's name in `lua/field.lua`.
    op: &'static str,
    keys: Vec<String>,
    args: Vec<String>,
    handoff: oneshot::Sender<Handoff>,
}

/// What a waiting call is told when the calls in flight make room.
enum Handoff {
    /// Go alone: the only one of its operation waiting. The slot it holds is freed when the
    /// call ends (or when this is dropped unreceived).
    Alone(Slot<Db>),
    /// The script call that carries it, and its entry in the reply.
    Gathered(Sending, usize),
}

/// One gathered script call, shared by its callers: whichever polls first sends it.
type Sending = Shared<Pin<Box<dyn Future<Output = Outcome> + Send>>>;

/// A gathered script call's reply, one entry per call, or the error of the whole call.
type Outcome = Arc<std::result::Result<Vec<Value>, Error>>;

/// A field call's place among those in flight, given back when it is dropped.
struct Slot<D: std::borrow::Borrow<Db>>(D);

impl<D: std::borrow::Borrow<Db>> Drop for Slot<D> {
    fn drop(&mut self) {
        let db = self.0.borrow();
        if let Some(gather) = db.gather() {
            gather.release(db);
        }
    }
}

impl Gather {
    /// Gathering for one connection, or `None` when `after` is 0 (turned off).
    pub(crate) fn new(after: usize) -> Option<Arc<Gather>> {
        (after > 0).then(|| {
            Arc::new(Gather {
                after,
                state: Mutex::new(State {
                    in_flight: 0,
                    waiting: Vec::new(),
                    next: 0,
                }),
            })
        })
    }

    /// Takes a place in flight when there is room (`None`), else queues the call and
    /// returns its number and where it will be told how it goes.
    fn enter(
        &self,
        op: &'static str,
        keys: &[String],
        args: &[&str],
    ) -> Option<(u64, oneshot::Receiver<Handoff>)> {
        let mut state = lock(&self.state);
        if state.in_flight < self.after {
            state.in_flight += 1;
            return None;
        }
        let (handoff, told) = oneshot::channel();
        let number = state.next;
        state.next += 1;
        state.waiting.push(Waiting {
            number,
            op,
            keys: keys.to_vec(),
            args: args.iter().map(|a| a.to_string()).collect(),
            handoff,
        });
        Some((number, told))
    }

    /// Takes the waiting call `number` out and gives it a place in flight beyond the limit
    /// (`true`), unless it was already handed on (`false`: its handoff is sent, or about
    /// to be).
    fn withdraw(&self, number: u64) -> bool {
        let mut state = lock(&self.state);
        let Some(at) = state.waiting.iter().position(|w| w.number == number) else {
            return false;
        };
        state.waiting.remove(at);
        state.in_flight += 1;
        true
    }

    /// Gives back a place in flight, and sends every call waiting: alone when it is the only
    /// one of its operation, else gathered with the others of its operation.
    fn release(&self, db: &Db) {
        let groups = {
            let mut state = lock(&self.state);
            state.in_flight = state.in_flight.saturating_sub(1);
            if state.waiting.is_empty() {
                return;
            }
            let groups = groups(std::mem::take(&mut state.waiting));
            state.in_flight += groups.len();
            groups
        };
        for group in groups {
            start(db, group);
        }
    }
}

/// The waiting calls whose callers still wait, by operation (in the order of each
/// operation's first call), each operation's calls in order and in groups of at most
/// [`MOST_CALLS`].
fn groups(waiting: Vec<Waiting>) -> Vec<Vec<Waiting>> {
    let mut groups: Vec<Vec<Waiting>> = Vec::new();
    for call in waiting {
        if call.handoff.is_closed() {
            continue;
        }
        match groups
            .iter_mut()
            .rev()
            .find(|g| g[0].op == call.op && g.len() < MOST_CALLS)
        {
            Some(group) => group.push(call),
            None => groups.push(vec![call]),
        }
    }
    groups
}

/// Sends one group of waiting calls, which holds one place in flight: a lone call is told
/// to go alone (with the place), several become one gathered script call (which gives the
/// place back when it ends, or when every caller has dropped it).
fn start(db: &Db, mut group: Vec<Waiting>) {
    let slot = Slot(db.clone());
    if group.len() == 1 {
        let call = group.remove(0);
        // Unreceived, the handoff is dropped with its slot, which gives the place back.
        let _ = call.handoff.send(Handoff::Alone(slot));
        return;
    }
    // Every field operation has one; without, the callers are told nothing and go alone.
    let Some(script) = gathered_script(group[0].op) else {
        return;
    };
    let mut cmd = Cmd::new();
    let keys: usize = group.iter().map(|c| c.keys.len()).sum();
    cmd.arg("EVALSHA").arg(script.sha()).arg(keys);
    for call in &group {
        for key in &call.keys {
            cmd.arg(key);
        }
    }
    cmd.arg(group.len());
    for call in &group {
        cmd.arg(call.keys.len()).arg(call.args.len());
    }
    for call in &group {
        for arg in &call.args {
            cmd.arg(arg);
        }
    }
    let calls = group.len();
    let sending: Pin<Box<dyn Future<Output = Outcome> + Send>> = Box::pin(async move {
        let outcome = match slot.0.eval_entries(script, cmd, keys).await {
            Ok(Value::Array(replies)) if replies.len() == calls => Ok(replies),
            Ok(_) => Err(Error::Script {
                name: script.name().to_string(),
                message: "the reply does not hold one entry per call".into(),
            }),
            Err(e) => Err(e),
        };
        drop(slot);
        Arc::new(outcome)
    });
    let sending = sending.shared();
    for (index, call) in group.into_iter().enumerate() {
        let _ = call.handoff.send(Handoff::Gathered(sending.clone(), index));
    }
}

/// The gathered scripts of the field operations, by operation name.
static GATHERED: LazyLock<std::collections::HashMap<&'static str, Script>> = LazyLock::new(|| {
    super::lua::field_ops()
        .map(|op| {
            let name = std::borrow::Cow::Owned(format!("rapyer.field.{op}.gathered"));
            let body = std::borrow::Cow::Owned(super::lua::field_gather_script(op));
            (op, Script::build(name, super::Keys::Dynamic, body))
        })
        .collect()
});

/// The gathered script of the field operation `op`.
pub(crate) fn gathered_script(op: &str) -> Option<&'static Script> {
    GATHERED.get(op)
}

/// Every gathered script (for preloading and the library's checks).
pub(crate) fn gathered_scripts() -> impl Iterator<Item = &'static Script> {
    GATHERED.values()
}

impl Db {
    /// Runs the field operation `op` (its name in `lua/field.lua`) on full `keys` with
    /// `args`, gathered with the field calls in flight at the same moment when there are
    /// ([module](self)), and decodes its reply.
    pub(crate) async fn run_field<R: FromRedisValue>(
        &self,
        op: &'static str,
        keys: &[String],
        args: &[&str],
    ) -> Result<R> {
        let Some(script) = library::field(op) else {
            return Err(Error::InvalidScript {
                name: format!("rapyer.field.{op}"),
                message: "lua/field.lua has no such operation".into(),
            });
        };
        let Some(gather) = self.gather() else {
            return self.run_lua(script, keys, args).await;
        };
        let Some((number, mut told)) = gather.enter(op, keys, args) else {
            let _slot = Slot(self);
            return self.run_lua(script, keys, args).await;
        };
        let handoff = match tokio::runtime::Handle::try_current() {
            // Timers need a runtime; a call polled without one waits as long as it takes.
            Err(_) => told.await,
            Ok(_) => match tokio::time::timeout(LONGEST_WAIT, &mut told).await {
                Ok(handoff) => handoff,
                Err(_) if gather.withdraw(number) => {
                    let _slot = Slot(self);
                    return self.run_lua(script, keys, args).await;
                }
                // Handed on meanwhile: the handoff is on its way.
                Err(_) => told.await,
            },
        };
        match handoff {
            Ok(Handoff::Alone(slot)) => {
                let result = self.run_lua(script, keys, args).await;
                drop(slot);
                result
            }
            Ok(Handoff::Gathered(sending, index)) => {
                let outcome = sending.await;
                entry(
                    script,
                    &outcome,
                    index,
                    keys.first().map_or("", String::as_str),
                )
            }
            // Never sent: the call was dropped unhanded (see `start`).
            Err(_) => self.run_lua(script, keys, args).await,
        }
    }
}

/// Call `index`'s outcome in a gathered script call's `outcome`, as the call alone would
/// have had it: its reply decoded, its error as `script`'s, an error of the whole call
/// naming `key`.
fn entry<R: FromRedisValue>(
    script: &Script,
    outcome: &Outcome,
    index: usize,
    key: &str,
) -> Result<R> {
    match &**outcome {
        Ok(replies) => match replies.get(index) {
            Some(Value::ServerError(e)) => Err(script_error(script, e).naming(key)),
            Some(reply) => decode(script, reply.clone()),
            None => Err(Error::Script {
                name: script.name().to_string(),
                message: "the gathered reply has no entry for this call".into(),
            }),
        },
        Err(e) => Err(shared_error(e).naming(key)),
    }
}

/// Each caller's copy of the error of a whole gathered script call (which a connection,
/// the server's memory or a busy server can cause). An out-of-memory refusal loses the key
/// it named, for each caller to name its own.
fn shared_error(e: &Error) -> Error {
    match e {
        Error::OutOfMemory { .. } => Error::OutOfMemory { key: String::new() },
        Error::Redis { op, source } => Error::Redis {
            op: op.clone(),
            source: source.clone(),
        },
        Error::Busy { message } => Error::Busy {
            message: message.clone(),
        },
        Error::Script { name, message } => Error::Script {
            name: name.clone(),
            message: message.clone(),
        },
        other => Error::Script {
            name: "rapyer.field (gathered)".into(),
            message: other.to_string(),
        },
    }
}

/// Locks `mutex`, whose data stays valid even if a holder panicked.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
