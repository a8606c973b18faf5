//! Gathering: field operations made at the same moment on one connection go to the server
//! together, the calls of one operation as one script call.
//!
//! A field operation is one script call (`rapyer.field.<op>`), and each call costs the
//! server and the connection something beyond the operation's own commands. So once a
//! connection has [`gather_after`](crate::ConnectOptions::gather_after) field calls in flight, a
//! new call does not go out at once: it opens a group for its operation, or joins the one
//! already open, and the call that opened it yields to the runtime once, so that the calls
//! other tasks are making at that moment (the tasks the last replies woke, say) join in. Then
//! the group goes out as ONE call of the operation's gathered script
//! ([`field_gather_script`](super::lua::field_gather_script)), which runs each call in turn,
//! on its own keys and arguments, under `pcall`. A group of one goes out as the plain call.
//! Nothing limits how many calls are in flight (the server's queue never drains while calls
//! come), and a call made with fewer in flight goes out at once, as it always did.
//!
//! What each caller sees is what its call alone would have given:
//! - **Its own outcome.** Each call's reply, or its error, is its own entry of the reply. A
//!   call that fails does so before it writes anything (as every field script does), and the
//!   others still run. An error of the whole script call (the connection lost, the server
//!   out of memory or busy) is every call's error, each naming its own key.
//! - **Atomic, in order.** Each call runs whole, with nothing of another client between its
//!   read and its write; the calls of one script call run one after the other in the order
//!   they joined, and nothing else runs between them.
//! - **Out of memory.** The gathered script keeps the operation's `#!lua` line, so over its
//!   `maxmemory` the server refuses every call that could grow a document before any runs.
//! - **Cancellation.** A call dropped before its group goes out is left out of it, and never
//!   sent; one dropped after may have run, as for any call (the script call is sent by
//!   whichever of its callers polls it first, and goes on while any of them waits on it).
//! - **No wait on others.** The group goes out when the call that opened it is polled again
//!   after its yield; should that caller stop polling it without dropping it, any other
//!   call of the group sends the group after [`LONGEST_WAIT`].
//!
//! Not on a cluster: calls gathered into one script call must share a hash slot, which
//! concurrent calls on different documents rarely do.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use futures_util::future::{FutureExt, Shared};
use redis::{FromRedisValue, Value};
use tokio::sync::oneshot;

use super::Script;
use super::library;
use super::reply::{decode, script_error};
use super::run::evalsha_head;
use crate::db::Db;
use crate::error::{Error, Result};

/// The most calls one gathered script call carries, at least: the call that fills a group
/// sends it at once, and the next call opens another. With more than twice as many field
/// calls in flight, a group takes up to half of them ([`State::most`]). Measured (spawned
/// tasks, 2-worker runtime, each calling `incr` in a loop): with 64 in flight, groups of up
/// to 32 ran 156-161k increments/s against 127-131k for groups of up to 8 and 139-143k for
/// 16 (the server spends less per increment: less per script call); with 20 in flight,
/// groups of up to 32 or 64 ran 70-76k/s against 83-110k for 8, as one group then holds
/// nearly every call and the server waits while the client makes the next (BENCHMARKS.md).
const MOST_CALLS: usize = 8;

/// How long a call that joined a group waits for the call that opened it to send it, before
/// it sends the group itself: only a caller that stopped polling the opening call without
/// dropping it keeps a group open that long (it goes out after one yield).
const LONGEST_WAIT: Duration = Duration::from_millis(2);

/// One connection's field calls: how many are in flight, and the groups not sent yet.
pub(crate) struct Gather {
    /// How many field calls may be in flight before the next ones are gathered (at least 1).
    after: usize,
    state: Mutex<State>,
}

struct State {
    /// Field script calls sent or about to be (alone or gathered), not yet ended.
    in_flight: usize,
    /// Field calls made and not yet ended (each call of a group counts).
    callers: usize,
    /// The groups open, not sent yet (at most one per operation that is not full).
    open: Vec<Group>,
    /// The number of the next group.
    next: u64,
}

/// Calls of one operation that will go out as one script call.
struct Group {
    /// Its number, by which a call finds it again ([`Gather::send`]).
    number: u64,
    /// The operation's name in `lua/field.lua`.
    op: &'static str,
    calls: Vec<Waiting>,
}

/// A call in an open group.
struct Waiting {
    keys: Vec<String>,
    args: Vec<String>,
    handoff: oneshot::Sender<Handoff>,
}

/// What a call in a group is told when the group goes out.
enum Handoff {
    /// Go alone: the only call left in the group. The slot it holds is freed when the call
    /// ends (or when this is dropped unreceived).
    Alone(Slot<Db>),
    /// The script call that carries it, and its entry in the reply.
    Gathered(Sending, usize),
}

/// One gathered script call, shared by its callers: whichever polls first sends it.
type Sending = Shared<Pin<Box<dyn Future<Output = Outcome> + Send>>>;

/// A gathered script call's reply, one entry per call, or the error of the whole call.
type Outcome = Arc<std::result::Result<Vec<Value>, Error>>;

impl State {
    /// The most calls a group takes now: [`MOST_CALLS`], or half the field calls in flight
    /// when that is more, so that at least two script calls carry them.
    fn most(&self) -> usize {
        MOST_CALLS.max(self.callers / 2)
    }
}

/// A field call made through [`Gather::enter`], counted among [`State::callers`] until it
/// ends or is dropped.
struct Caller<'a>(&'a Gather);

impl Drop for Caller<'_> {
    fn drop(&mut self) {
        let mut state = lock(&self.0.state);
        state.callers = state.callers.saturating_sub(1);
    }
}

/// A field script call's place among those in flight, given back when it is dropped.
struct Slot<D: std::borrow::Borrow<Db>>(D);

impl<D: std::borrow::Borrow<Db>> Drop for Slot<D> {
    fn drop(&mut self) {
        if let Some(gather) = self.0.borrow().gather() {
            let mut state = lock(&gather.state);
            state.in_flight = state.in_flight.saturating_sub(1);
        }
    }
}

/// The group a call opened, with where the call will be told how it goes. Dropped, it sends
/// the group: after the call's yield, with the call in it ([`Opened::send`]); or when the
/// call is dropped first, without it (its receiver is dropped first, so the group leaves
/// it out).
struct Opened<'a> {
    gather: &'a Gather,
    db: &'a Db,
    number: u64,
    told: Option<oneshot::Receiver<Handoff>>,
}

impl Opened<'_> {
    /// Sends the group, the call in it, and returns where the call will be told.
    fn send(mut self) -> Option<oneshot::Receiver<Handoff>> {
        let told = self.told.take();
        self.gather.send(self.db, self.number);
        told
    }
}

impl Drop for Opened<'_> {
    fn drop(&mut self) {
        if let Some(told) = self.told.take() {
            drop(told);
            self.gather.send(self.db, self.number);
        }
    }
}

/// Where a call stands after [`Gather::enter`].
enum Entry {
    /// Fewer than `after` calls in flight: it goes out alone, now, in the place it took.
    Alone,
    /// It opened the group `number`, which it sends after one yield.
    Opened(u64, oneshot::Receiver<Handoff>),
    /// It joined the group `number`, and filled it (`true`: it sends it).
    Joined(u64, bool, oneshot::Receiver<Handoff>),
}

impl Gather {
    /// Gathering for one connection, or `None` when `after` is 0 (turned off).
    pub(crate) fn new(after: usize) -> Option<Arc<Gather>> {
        (after > 0).then(|| {
            Arc::new(Gather {
                after,
                state: Mutex::new(State {
                    in_flight: 0,
                    callers: 0,
                    open: Vec::new(),
                    next: 0,
                }),
            })
        })
    }

    /// Counts the call among those made (until the returned [`Caller`] is dropped), then
    /// takes a place in flight when fewer than `after` calls are, else puts the call into
    /// its operation's open group (opening one when there is none, or it is full).
    fn enter(&self, op: &'static str, keys: &[String], args: &[&str]) -> (Caller<'_>, Entry) {
        let entry = {
            let mut state = lock(&self.state);
            state.callers += 1;
            self.place(&mut state, op, keys, args)
        };
        (Caller(self), entry)
    }

    /// Where a call just counted goes (see [`Gather::enter`]).
    fn place(&self, state: &mut State, op: &'static str, keys: &[String], args: &[&str]) -> Entry {
        if state.in_flight < self.after {
            state.in_flight += 1;
            return Entry::Alone;
        }
        let (handoff, told) = oneshot::channel();
        let call = Waiting {
            keys: keys.to_vec(),
            args: args.iter().map(|a| a.to_string()).collect(),
            handoff,
        };
        let most = state.most();
        if let Some(group) = state
            .open
            .iter_mut()
            .find(|g| g.op == op && g.calls.len() < most)
        {
            group.calls.push(call);
            return Entry::Joined(group.number, group.calls.len() >= most, told);
        }
        let number = state.next;
        state.next += 1;
        state.open.push(Group {
            number,
            op,
            calls: vec![call],
        });
        Entry::Opened(number, told)
    }

    /// Sends the group `number` if it is still open: its calls whose callers still wait,
    /// alone when one is left, else as one gathered script call.
    fn send(&self, db: &Db, number: u64) {
        let group = {
            let mut state = lock(&self.state);
            let Some(at) = state.open.iter().position(|g| g.number == number) else {
                return;
            };
            let mut group = state.open.swap_remove(at);
            group.calls.retain(|c| !c.handoff.is_closed());
            if group.calls.is_empty() {
                return;
            }
            state.in_flight += 1;
            group
        };
        start(db, group.op, group.calls);
    }
}

/// Sends the calls of one group, which holds one place in flight: a lone call is told to go
/// alone (with the place), several become one gathered script call (which gives the place
/// back when it ends, or when every caller has dropped it).
fn start(db: &Db, op: &'static str, mut group: Vec<Waiting>) {
    let slot = Slot(db.clone());
    if group.len() == 1 {
        let call = group.remove(0);
        // Unreceived, the handoff is dropped with its slot, which gives the place back.
        let _ = call.handoff.send(Handoff::Alone(slot));
        return;
    }
    // Every field operation has one; without, the callers are told nothing and go alone.
    let Some(script) = library::field_gathered(op) else {
        return;
    };
    let keys: usize = group.iter().map(|c| c.keys.len()).sum();
    let mut cmd = evalsha_head(script, keys);
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
        let Some(gather) = self.gather().filter(|_| gathers_here()) else {
            return self.run_lua(script, keys, args).await;
        };
        let (_caller, placed) = gather.enter(op, keys, args);
        let (number, mut told) = match placed {
            Entry::Alone => {
                let _slot = Slot(self);
                return self.run_lua(script, keys, args).await;
            }
            Entry::Opened(number, told) => {
                // The calls other tasks make meanwhile join the group; it goes out when this
                // call is polled again, or dropped.
                let opened = Opened {
                    gather,
                    db: self,
                    number,
                    told: Some(told),
                };
                tokio::task::yield_now().await;
                match opened.send() {
                    Some(told) => (number, told),
                    // Not reached: the receiver is taken only by `send` and by the drop.
                    None => return self.run_lua(script, keys, args).await,
                }
            }
            Entry::Joined(number, filled, told) => {
                if filled {
                    gather.send(self, number);
                }
                (number, told)
            }
        };
        let handoff = match tokio::time::timeout(LONGEST_WAIT, &mut told).await {
            Ok(handoff) => handoff,
            // The call that opened the group has not sent it: send it from here.
            Err(_) => {
                gather.send(self, number);
                told.await
            }
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
            // Never sent: the group was dropped unhanded (see `start`).
            Err(_) => self.run_lua(script, keys, args).await,
        }
    }
}

/// Whether calls made here are gathered: on a multi-thread tokio runtime (which
/// `.wait()` of the blocking API uses too). Measured with 64 and 16 increments in flight
/// (spawned tasks): on a multi-thread runtime gathered calls ran at 1.1× and 1.35× the rate
/// of calls sent alone; on a current-thread runtime at 0.75–0.85×, as the one thread that
/// both gathers and sends leaves the server idle between groups. Outside any runtime (a
/// call polled by another executor), never.
fn gathers_here() -> bool {
    tokio::runtime::Handle::try_current().is_ok_and(|runtime| {
        matches!(
            runtime.runtime_flavor(),
            tokio::runtime::RuntimeFlavor::MultiThread
        )
    })
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
