//! Named Lua scripts: define once, run by name or through a typed command, in pipelines and
//! transactions too.
//!
//! Every script runs with `EVALSHA`. A server that does not know a script (after a
//! `SCRIPT FLUSH`, a restart or a failover) answers NOSCRIPT, and nothing ran. A named script
//! is then loaded with `SCRIPT LOAD` (which Redis never evicts): rapyer sends `MULTI`,
//! `SCRIPT LOAD`, `EVALSHA`, `EXEC` as one atomic step, in which the script cannot be
//! missing, so the caller never sees NOSCRIPT and the script runs once. A ServerOps block's
//! script is sent again as `EVAL` of its text instead: one command, so just as atomic, and
//! Redis 8 keeps scripts cached by `EVAL` in an LRU of 500 (an `EVALSHA` refreshes one), so
//! block scripts a program no longer runs leave the server's memory.
//!
//! Pipelines and transactions load their scripts inside the same `MULTI … EXEC` as the
//! calls that use them; see [`Pipeline`] for the exact guarantees.
//!
//! ```no_run
//! use rapyer::{Db, Keys};
//!
//! rapyer::script! {
//!     /// Pushes `message` onto the queue of every member of `group`; returns how many.
//!     pub PUBLISH_TO_GROUP("publish_to_group", keys(group), args(message: &str)) -> i64 = r#"
//!         local members = redis.call('SMEMBERS', KEYS[1])
//!         for _, m in ipairs(members) do redis.call('RPUSH', 'queue:' .. m, ARGV[1]) end
//!         return #members
//!     "#;
//! }
//!
//! # async fn demo(db: &Db) -> rapyer::Result<()> {
//! // By name: defined once per connection, keys and arguments checked when it runs.
//! db.scripts().define("bump", Keys::Fixed(1), "return redis.call('INCRBY', KEYS[1], ARGV[1])")?;
//! let visits: i64 = db.run_script("bump", &["visits"], &[5]).await?; // keys get the namespace
//!
//! // Typed: the signature carries the keys and arguments.
//! let reached = PUBLISH_TO_GROUP.call(db, "group:chat", "hello").await?;
//!
//! // Many calls in one round trip, none of them able to meet NOSCRIPT.
//! let mut pipe = db.pipeline(); // or db.transaction(), all or none
//! let a = pipe.add(PUBLISH_TO_GROUP.prepare("group:a", "hi"));
//! pipe.run_script("bump", &["visits"], &[1]);
//! let replies = pipe.execute().await?;
//! let reached_a: i64 = a.get(&replies)?;
//! # Ok(()) }
//! ```
//!
//! A typed command takes exactly its keys and arguments, of their types:
//!
//! ```compile_fail
//! # use rapyer::Db;
//! rapyer::script! {
//!     /// Pushes `message` onto the queue of every member of `group`; returns how many.
//!     pub PUBLISH_TO_GROUP("publish_to_group", keys(group), args(message: &str)) -> i64 = r#"
//!         return 0
//!     "#;
//! }
//! # async fn demo(db: &Db) -> rapyer::Result<()> {
//! PUBLISH_TO_GROUP.call(db, "group:chat", 42).await?; // `message` is a &str
//! # Ok(()) }
//! ```

mod batch;
mod call;
pub(crate) mod failure;
pub(crate) mod gather;
pub(crate) mod lua;
pub(crate) mod names;
mod pipeline;
mod registry;
mod reply;
mod run;

use std::borrow::Cow;
use std::sync::{Arc, LazyLock};

pub use call::{Call, Json};
pub(crate) use gather::Gather;
use names::{MAX_NAME_LEN, RESERVED_PREFIX, is_blank, is_valid_name};
pub use pipeline::{Pipeline, Reply};
pub(crate) use registry::Registry;
pub use registry::{DEFAULT_BLOCK_CAPACITY, Scripts};

use crate::error::{Error, Result};

/// How many keys a script takes: checked before anything is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Keys {
    /// Exactly this many keys, every call.
    Fixed(usize),
    /// Any number of keys (the script reads `#KEYS`).
    Dynamic,
}

impl Keys {
    /// Whether a call with `n` keys fits.
    pub fn accepts(self, n: usize) -> bool {
        match self {
            Keys::Fixed(k) => k == n,
            Keys::Dynamic => true,
        }
    }
}

impl std::fmt::Display for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Keys::Fixed(1) => f.write_str("1 key"),
            Keys::Fixed(n) => write!(f, "{n} keys"),
            Keys::Dynamic => f.write_str("any number of keys"),
        }
    }
}

/// No keys, or no arguments: `db.run_script("ping", NONE, NONE)`.
pub const NONE: &[&str] = &[];

/// A Lua script with its name, key count and SHA1: cheap to clone (one `Arc`).
#[derive(Clone)]
pub struct Script(Arc<Inner>);

struct Inner {
    name: Cow<'static, str>,
    keys: Keys,
    body: Cow<'static, str>,
    sha: String,
    /// A ServerOps block's script: reloaded with `EVAL`, never `SCRIPT LOAD`ed.
    block: bool,
}

impl std::fmt::Debug for Script {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Script")
            .field("name", &self.name())
            .field("keys", &self.keys())
            .field("sha", &self.sha())
            .finish_non_exhaustive()
    }
}

impl PartialEq for Script {
    fn eq(&self, other: &Script) -> bool {
        self.name() == other.name() && self.keys() == other.keys() && self.sha() == other.sha()
    }
}

impl Eq for Script {}

impl Script {
    /// A script named `name` taking `keys`, with the Lua source `body`.
    ///
    /// The name is 1 to 128 characters of `A-Z a-z 0-9 _ - . : /`, not starting with
    /// `rapyer.` (the library's own scripts); the body must not be blank. Syntax errors in the
    /// body are reported by the server when the script is first loaded, as
    /// [`Error::Script`].
    pub fn new(name: impl Into<String>, keys: Keys, body: impl Into<String>) -> Result<Script> {
        let name = name.into();
        let body = body.into();
        if let Err(why) = check_name(&name) {
            return Err(Error::InvalidScript { name, message: why });
        }
        if name.starts_with(RESERVED_PREFIX) {
            return Err(Error::InvalidScript {
                name,
                message: format!("names starting with `{RESERVED_PREFIX}` are the library's own"),
            });
        }
        if is_blank(&body) {
            return Err(Error::InvalidScript {
                name,
                message: "the Lua body is empty".into(),
            });
        }
        Ok(Script::build(name.into(), keys, body.into()))
    }

    /// A script whose name and body were checked at compile time (by [`script!`](crate::script!))
    /// or belong to the library.
    pub(crate) fn from_static(name: &'static str, keys: Keys, body: &'static str) -> Script {
        Script::build(Cow::Borrowed(name), keys, Cow::Borrowed(body))
    }

    /// The script of ServerOps blocks, built at run time: reloaded with `EVAL` (evictable
    /// by the server), never `SCRIPT LOAD`ed.
    pub(crate) fn block(name: String, keys: Keys, body: String) -> Script {
        let mut script = Script::build(Cow::Owned(name), keys, Cow::Owned(body));
        if let Some(inner) = Arc::get_mut(&mut script.0) {
            inner.block = true;
        }
        script
    }

    fn build(name: Cow<'static, str>, keys: Keys, body: Cow<'static, str>) -> Script {
        let sha = sha1_smol::Sha1::from(body.as_bytes()).digest().to_string();
        Script(Arc::new(Inner {
            name,
            keys,
            body,
            sha,
            block: false,
        }))
    }

    /// Whether this is a ServerOps block's script (reloaded with `EVAL`).
    pub(crate) fn is_block(&self) -> bool {
        self.0.block
    }

    /// The script's registered name.
    pub fn name(&self) -> &str {
        &self.0.name
    }

    /// How many keys it takes.
    pub fn keys(&self) -> Keys {
        self.0.keys
    }

    /// The Lua source.
    pub fn body(&self) -> &str {
        &self.0.body
    }

    /// The SHA1 of the body, in lowercase hex: what `EVALSHA` and `SCRIPT EXISTS` use.
    pub fn sha(&self) -> &str {
        &self.0.sha
    }

    /// An error unless a call with `n` keys fits this script; checked before sending.
    pub(crate) fn check_key_count(&self, n: usize) -> Result<()> {
        if self.keys().accepts(n) {
            return Ok(());
        }
        Err(Error::InvalidScript {
            name: self.name().to_string(),
            message: format!("takes {}, called with {n}", self.keys()),
        })
    }
}

fn check_name(name: &str) -> std::result::Result<(), String> {
    if is_valid_name(name) {
        return Ok(());
    }
    Err(format!(
        "a script name is 1 to {MAX_NAME_LEN} characters of A-Z a-z 0-9 _ - . : /"
    ))
}

/// The library's own scripts, one file each in `lua/`, registered in every [`Db`](crate::Db)'s
/// registry under `rapyer.<file name>`.
pub(crate) mod library {
    use std::collections::HashMap;

    use super::*;

    /// Whole-document saves with an optional expiry, all keys checked before any write.
    pub(crate) static SAVE: LazyLock<Script> = LazyLock::new(|| {
        Script::build(
            Cow::Borrowed("rapyer.save"),
            Keys::Dynamic,
            Cow::Owned(super::lua::reporting(include_str!("../../lua/save.lua"))),
        )
    });

    /// Takes a model's lock and reads the model in one step.
    pub(crate) static LOCK_ACQUIRE: LazyLock<Script> = LazyLock::new(|| {
        Script::build(
            Cow::Borrowed("rapyer.lock_acquire"),
            Keys::Fixed(2),
            Cow::Owned(super::lua::reporting(include_str!(
                "../../lua/lock_acquire.lua"
            ))),
        )
    });

    /// Saves a locked model only while the lock is held.
    pub(crate) static LOCK_SAVE: LazyLock<Script> = LazyLock::new(|| {
        Script::build(
            Cow::Borrowed("rapyer.lock_save"),
            Keys::Dynamic,
            Cow::Owned(super::lua::reporting_with_queues(include_str!(
                "../../lua/lock_save.lua"
            ))),
        )
    });

    /// Releases a lock if still held (compare and delete).
    pub(crate) static LOCK_RELEASE: LazyLock<Script> = LazyLock::new(|| {
        Script::from_static(
            "rapyer.lock_release",
            Keys::Fixed(1),
            include_str!("../../lua/lock_release.lua"),
        )
    });

    /// Renews a lock if still held.
    pub(crate) static LOCK_EXTEND: LazyLock<Script> = LazyLock::new(|| {
        Script::from_static(
            "rapyer.lock_extend",
            Keys::Fixed(1),
            include_str!("../../lua/lock_extend.lua"),
        )
    });

    /// Reads documents and re-arms their expiry in one step.
    pub(crate) static TOUCH_GET: LazyLock<Script> = LazyLock::new(|| {
        Script::from_static(
            "rapyer.touch_get",
            Keys::Dynamic,
            include_str!("../../lua/touch_get.lua"),
        )
    });

    /// Deletes documents, all keys checked before any delete.
    pub(crate) static DELETE: LazyLock<Script> = LazyLock::new(|| {
        Script::build(
            Cow::Borrowed("rapyer.delete"),
            Keys::Dynamic,
            Cow::Owned(super::lua::reporting(include_str!("../../lua/delete.lua"))),
        )
    });

    /// Sets or reads a document's expiry, only on a document.
    pub(crate) static EXPIRE: LazyLock<Script> = LazyLock::new(|| {
        Script::build(
            Cow::Borrowed("rapyer.expire"),
            Keys::Dynamic,
            Cow::Owned(super::lua::reporting(include_str!("../../lua/expire.lua"))),
        )
    });

    /// Saves documents with their structures' companion keys, all keys checked before any
    /// write.
    pub(crate) static SAVE_STRUCTURES: LazyLock<Script> = LazyLock::new(|| {
        Script::build(
            Cow::Borrowed("rapyer.save_structures"),
            Keys::Dynamic,
            Cow::Owned(super::lua::reporting(include_str!(
                "../../lua/save_structures.lua"
            ))),
        )
    });

    /// Reads documents with their structures' companion keys, re-arming their expiry when
    /// asked.
    pub(crate) static READ_STRUCTURES: LazyLock<Script> = LazyLock::new(|| {
        Script::build(
            Cow::Borrowed("rapyer.read_structures"),
            Keys::Dynamic,
            Cow::Owned(super::lua::reporting(include_str!(
                "../../lua/read_structures.lua"
            ))),
        )
    });

    /// One operation on a set or a priority queue of a stored model.
    pub(crate) static STRUCTURE: LazyLock<Script> = LazyLock::new(|| {
        Script::build(
            Cow::Borrowed("rapyer.structure"),
            Keys::Dynamic,
            Cow::Owned(super::lua::reporting_with_queues(include_str!(
                "../../lua/structure.lua"
            ))),
        )
    });

    /// Deletes documents with what their referrers' `on_delete` policies ask (`src/unlink.rs`).
    pub(crate) static UNLINK: LazyLock<Script> = LazyLock::new(|| {
        Script::build(
            Cow::Borrowed("rapyer.unlink"),
            Keys::Dynamic,
            Cow::Owned(super::lua::reporting(include_str!("../../lua/unlink.lua"))),
        )
    });

    /// Sets the expiry of several documents, all keys checked first (`set_ttl_cascade`).
    pub(crate) static EXPIRE_MANY: LazyLock<Script> = LazyLock::new(|| {
        Script::build(
            Cow::Borrowed("rapyer.expire_many"),
            Keys::Dynamic,
            Cow::Owned(super::lua::reporting(include_str!(
                "../../lua/expire_many.lua"
            ))),
        )
    });

    /// Runs one RediSearch command on the node it is sent to (by address, with `EVAL`: a
    /// keyless script has no routing of its own), never redirected (see `query::shard`).
    pub(crate) static SHARD_CALL: LazyLock<Script> = LazyLock::new(|| {
        Script::from_static(
            "rapyer.shard_call",
            Keys::Fixed(0),
            include_str!("../../lua/shard_call.lua"),
        )
    });

    /// The operations of RedisBloom's Bloom filters and count-min sketches, each only on
    /// its structure or a missing key, sketch sums checked before any write.
    pub(crate) static PROBABILISTIC: LazyLock<Script> = LazyLock::new(|| {
        Script::build(
            Cow::Borrowed("rapyer.probabilistic"),
            Keys::Fixed(1),
            Cow::Owned(super::lua::reporting(include_str!(
                "../../lua/probabilistic.lua"
            ))),
        )
    });

    /// The fast path of every flat block without a float increment (`lua/flat_fast.lua`):
    /// the block done in the usual case, or declined with nothing written.
    pub(crate) static FLAT_FAST: LazyLock<Script> = LazyLock::new(|| {
        Script::build(
            Cow::Borrowed("rapyer.flat_fast"),
            Keys::Dynamic,
            Cow::Owned(super::lua::flat_fast_script()),
        )
    });

    /// One rate-limiter check on the server's clock (`TIME`).
    pub(crate) static RATE_LIMIT: LazyLock<Script> = LazyLock::new(|| {
        Script::build(
            Cow::Borrowed("rapyer.rate_limit"),
            Keys::Fixed(1),
            Cow::Owned(super::lua::reporting(include_str!(
                "../../lua/rate_limit.lua"
            ))),
        )
    });

    /// The two lines of `lua/rate_limit.lua` that read the server's clock.
    pub(crate) const SERVER_CLOCK: &str = "local clock = redis.call('TIME')\n\
        local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])\n";

    /// The same check at the instant in `ARGV[5]`, for tests only: not in [`all`], so no
    /// name reaches it, and [`RATE_LIMIT`]'s text has no way to take a time.
    pub(crate) static RATE_LIMIT_TEST_CLOCK: LazyLock<Script> = LazyLock::new(|| {
        Script::build(
            Cow::Borrowed("rapyer.rate_limit_test_clock"),
            Keys::Fixed(1),
            Cow::Owned(RATE_LIMIT.body().replacen(
                SERVER_CLOCK,
                "local now = tonumber(ARGV[5])\n",
                1,
            )),
        )
    });

    /// The field operations, one script each (`rapyer.field.<operation>`): the pieces of
    /// `lua/field.lua` and of the shared library the operation uses, so a call defines little
    /// more than it runs (every function a script defines is created again on each call).
    static FIELD: LazyLock<HashMap<&'static str, Script>> =
        LazyLock::new(|| field_scripts("", super::lua::field_script));

    /// The script of the field operation named `op` in `lua/field.lua`.
    pub(crate) fn field(op: &str) -> Option<&'static Script> {
        FIELD.get(op)
    }

    /// The scripts that run several calls of one field operation in one script call
    /// (`rapyer.field.<operation>.gathered`, see [`super::gather`]): the same parts as the
    /// operation's own script, then the loop of `lua/field_gather.lua`.
    static FIELD_GATHERED: LazyLock<HashMap<&'static str, Script>> =
        LazyLock::new(|| field_scripts(".gathered", super::lua::field_gather_script));

    /// One script per field operation, named `rapyer.field.<operation><suffix>`, its text
    /// `body(operation)`. Its keys: the document's, then its structures' companion keys
    /// (re-armed with it).
    fn field_scripts(suffix: &str, body: fn(&str) -> String) -> HashMap<&'static str, Script> {
        super::lua::field_ops()
            .map(|op| {
                let name = Cow::Owned(format!("rapyer.field.{op}{suffix}"));
                (op, Script::build(name, Keys::Dynamic, Cow::Owned(body(op))))
            })
            .collect()
    }

    /// The gathered script of the field operation named `op` in `lua/field.lua`.
    pub(crate) fn field_gathered(op: &str) -> Option<&'static Script> {
        FIELD_GATHERED.get(op)
    }

    /// Every library script.
    pub(crate) fn all() -> Vec<&'static Script> {
        let mut all: Vec<&'static Script> = vec![
            &SAVE,
            &LOCK_ACQUIRE,
            &LOCK_SAVE,
            &LOCK_RELEASE,
            &LOCK_EXTEND,
            &TOUCH_GET,
            &DELETE,
            &EXPIRE,
            &SHARD_CALL,
            &PROBABILISTIC,
            &RATE_LIMIT,
            &SAVE_STRUCTURES,
            &READ_STRUCTURES,
            &STRUCTURE,
            &UNLINK,
            &EXPIRE_MANY,
            &FLAT_FAST,
        ];
        all.extend(FIELD.values());
        all.extend(FIELD_GATHERED.values());
        all
    }
}
