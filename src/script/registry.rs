//! The per-connection registry of named scripts, and the `db.scripts()` handle on it.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError, RwLock};

use redis::Value;

use super::{Keys, Script, library};
use crate::db::Db;
use crate::error::{Error, Result};

/// How many ServerOps block scripts a registry keeps unless told otherwise
/// ([`Scripts::set_block_capacity`]).
pub const DEFAULT_BLOCK_CAPACITY: usize = 256;

/// The scripts known to one connection (shared by every clone and namespace of a [`Db`]):
/// the named ones (the user's and the library's), kept until replaced, and apart from them
/// the scripts of ServerOps blocks, in a bounded least-recently-used cache.
pub(crate) struct Registry {
    scripts: RwLock<HashMap<String, Script>>,
    blocks: Mutex<Blocks>,
}

/// Block scripts by shape, each with the tick of its last use.
struct Blocks {
    capacity: usize,
    tick: u64,
    by_shape: HashMap<String, (Script, u64)>,
}

impl Blocks {
    /// Drops the least recently used scripts until at most `capacity` are left.
    fn trim(&mut self) {
        while self.by_shape.len() > self.capacity {
            let oldest = self
                .by_shape
                .iter()
                .min_by_key(|(_, (_, tick))| *tick)
                .map(|(shape, _)| shape.clone());
            match oldest {
                Some(shape) => self.by_shape.remove(&shape),
                None => break,
            };
        }
    }
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("names", &self.names())
            .field("blocks", &self.block_count())
            .finish()
    }
}

impl Registry {
    /// A registry holding the library's own scripts.
    pub(crate) fn new() -> Registry {
        let scripts = library::all()
            .into_iter()
            .map(|s| (s.name().to_string(), s.clone()))
            .collect();
        Registry {
            scripts: RwLock::new(scripts),
            blocks: Mutex::new(Blocks {
                capacity: DEFAULT_BLOCK_CAPACITY,
                tick: 0,
                by_shape: HashMap::new(),
            }),
        }
    }

    /// The block script for `shape`, built with `build` unless cached; the least recently
    /// used one is dropped when the cache is full (the server keeps or evicts it on its
    /// own; a dropped shape is rebuilt on its next use).
    pub(crate) fn block(&self, shape: &str, build: impl FnOnce() -> Script) -> Script {
        let mut blocks = self.blocks.lock().unwrap_or_else(PoisonError::into_inner);
        blocks.tick += 1;
        let tick = blocks.tick;
        if let Some((script, used)) = blocks.by_shape.get_mut(shape) {
            *used = tick;
            return script.clone();
        }
        let script = build();
        blocks
            .by_shape
            .insert(shape.to_string(), (script.clone(), tick));
        blocks.trim();
        script
    }

    /// How many block scripts are cached.
    pub(crate) fn block_count(&self) -> usize {
        let blocks = self.blocks.lock().unwrap_or_else(PoisonError::into_inner);
        blocks.by_shape.len()
    }

    /// The most block scripts kept.
    pub(crate) fn block_capacity(&self) -> usize {
        let blocks = self.blocks.lock().unwrap_or_else(PoisonError::into_inner);
        blocks.capacity
    }

    /// Sets the most block scripts kept (at least 1), dropping the least recently used
    /// beyond it.
    pub(crate) fn set_block_capacity(&self, capacity: usize) {
        let mut blocks = self.blocks.lock().unwrap_or_else(PoisonError::into_inner);
        blocks.capacity = capacity.max(1);
        blocks.trim();
    }

    /// Adds `script`; the same definition again is a no-op, a different one under a taken
    /// name is an error unless `replace`.
    fn define(&self, script: Script, replace: bool) -> Result<Script> {
        let mut scripts = self.scripts.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(existing) = scripts.get(script.name()) {
            if *existing == script {
                return Ok(existing.clone());
            }
            if !replace || super::names::is_reserved_name(script.name()) {
                return Err(conflict(existing, &script));
            }
        }
        scripts.insert(script.name().to_string(), script.clone());
        Ok(script)
    }

    /// Registers `script` if its name is free; an error if another script holds the name.
    /// Cheap when it is already there (one read lock and a SHA comparison).
    pub(crate) fn ensure(&self, script: &Script) -> Result<()> {
        {
            let scripts = self.scripts.read().unwrap_or_else(PoisonError::into_inner);
            match scripts.get(script.name()) {
                Some(existing) if existing == script => return Ok(()),
                Some(existing) => return Err(conflict(existing, script)),
                None => {}
            }
        }
        self.define(script.clone(), false).map(drop)
    }

    /// The script registered as `name`.
    pub(crate) fn get(&self, name: &str) -> Option<Script> {
        let scripts = self.scripts.read().unwrap_or_else(PoisonError::into_inner);
        scripts.get(name).cloned()
    }

    /// The script registered as `name`, or an error listing the known names.
    pub(crate) fn lookup(&self, name: &str) -> Result<Script> {
        self.get(name).ok_or_else(|| Error::UnknownScript {
            name: name.to_string(),
            known: self.names(),
        })
    }

    /// Every registered name, sorted.
    pub(crate) fn names(&self) -> Vec<String> {
        let scripts = self.scripts.read().unwrap_or_else(PoisonError::into_inner);
        let mut names: Vec<String> = scripts.keys().cloned().collect();
        names.sort_unstable();
        names
    }

    /// Every registered script, sorted by name.
    fn all(&self) -> Vec<Script> {
        let scripts = self.scripts.read().unwrap_or_else(PoisonError::into_inner);
        let mut all: Vec<Script> = scripts.values().cloned().collect();
        all.sort_unstable_by(|a, b| a.name().cmp(b.name()));
        all
    }
}

fn conflict(existing: &Script, new: &Script) -> Error {
    let what = if existing.keys() != new.keys() {
        format!("takes {} there, {} here", existing.keys(), new.keys())
    } else {
        format!("body {} there, {} here", existing.sha(), new.sha())
    };
    Error::InvalidScript {
        name: new.name().to_string(),
        message: format!(
            "a different script is already defined under this name ({what}); \
             use `replace` to change it"
        ),
    }
}

/// The named scripts of a [`Db`]: `db.scripts()`.
///
/// The registry is shared by every clone of the handle and by every namespace
/// ([`Db::with_namespace`]) on the same connection. It starts with the library's own scripts
/// (named `rapyer.*`).
///
/// ```no_run
/// use rapyer::{Db, Keys};
/// # async fn demo(db: &Db) -> rapyer::Result<()> {
/// db.scripts().define("bump", Keys::Fixed(1), "return redis.call('INCRBY', KEYS[1], ARGV[1])")?;
/// let n: i64 = db.run_script("bump", &["counter"], &[5]).await?;
/// assert_eq!(db.scripts().preload().await?, db.scripts().names().len());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Scripts<'db> {
    db: &'db Db,
}

impl<'db> Scripts<'db> {
    pub(crate) fn new(db: &'db Db) -> Scripts<'db> {
        Scripts { db }
    }

    /// Defines `name` as the Lua `body` taking `keys`; returns the script.
    ///
    /// Defining the same name with the same body and key count again is a no-op. A different
    /// definition under a taken name is [`Error::InvalidScript`] (use [`Scripts::replace`]);
    /// so are invalid names (see [`Script::new`]) and blank bodies. Nothing is sent: the
    /// script is loaded on first use or by [`Scripts::preload`].
    pub fn define(&self, name: &str, keys: Keys, body: impl Into<String>) -> Result<Script> {
        self.db
            .registry()
            .define(Script::new(name, keys, body)?, false)
    }

    /// Defines `name`, replacing whatever was defined under it. Calls already built keep the
    /// script they were built with.
    pub fn replace(&self, name: &str, keys: Keys, body: impl Into<String>) -> Result<Script> {
        self.db
            .registry()
            .define(Script::new(name, keys, body)?, true)
    }

    /// The script defined as `name`, with its SHA1, key count and body.
    pub fn get(&self, name: &str) -> Option<Script> {
        self.db.registry().get(name)
    }

    /// Every defined name, sorted (the library's own `rapyer.*` scripts included, the
    /// scripts of ServerOps blocks not: see [`Scripts::block_count`]).
    pub fn names(&self) -> Vec<String> {
        self.db.registry().names()
    }

    /// How many ServerOps block scripts this connection keeps right now: at most
    /// [`Scripts::block_capacity`].
    ///
    /// A block's script depends only on which operations it uses (not on their number,
    /// order, keys or values), so most programs need a handful. The cache is least recently
    /// used first out; a dropped script is rebuilt when a block needs it again. On the
    /// server, block scripts are cached by `EVAL`, which Redis evicts beyond 500, so they
    /// never pile up there either.
    pub fn block_count(&self) -> usize {
        self.db.registry().block_count()
    }

    /// The most ServerOps block scripts kept, [`DEFAULT_BLOCK_CAPACITY`] unless set.
    pub fn block_capacity(&self) -> usize {
        self.db.registry().block_capacity()
    }

    /// Sets the most ServerOps block scripts kept (at least 1) for this connection (every
    /// clone and namespace of the handle); the least recently used beyond it are dropped.
    pub fn set_block_capacity(&self, capacity: usize) {
        self.db.registry().set_block_capacity(capacity);
    }

    /// Loads every defined script into the server's script cache with `SCRIPT LOAD`, in one
    /// round trip; returns how many were loaded. ServerOps block scripts are not among them:
    /// they are sent with `EVAL` when the server lacks them. A script the server cannot compile is
    /// [`Error::Script`] naming it.
    ///
    /// Preloading is optional (a missing script is loaded on first use) and lasts until the
    /// server's cache is flushed or the server restarts.
    pub async fn preload(&self) -> Result<usize> {
        let scripts = self.db.registry().all();
        let mut pipe = redis::pipe();
        for script in &scripts {
            pipe.cmd("SCRIPT").arg("LOAD").arg(script.body());
        }
        let replies = self
            .db
            .send_raw("SCRIPT LOAD", 0, &pipe)
            .await
            .map_err(|e| Error::redis("SCRIPT LOAD", e))?;
        for (script, reply) in scripts.iter().zip(&replies) {
            if let Value::ServerError(e) = reply {
                return Err(super::reply::script_error(script, e));
            }
        }
        Ok(scripts.len())
    }

    /// Whether the server's script cache holds the script defined as `name` (`SCRIPT EXISTS`).
    pub async fn exists(&self, name: &str) -> Result<bool> {
        let script = self.db.registry().lookup(name)?;
        let found = self.loaded(std::slice::from_ref(&script)).await?;
        Ok(found.first().copied().unwrap_or(false))
    }

    /// The defined scripts the server's cache does not hold right now (`SCRIPT EXISTS`),
    /// sorted by name. Empty right after [`Scripts::preload`].
    pub async fn missing(&self) -> Result<Vec<String>> {
        let scripts = self.db.registry().all();
        let found = self.loaded(&scripts).await?;
        Ok(scripts
            .iter()
            .zip(found)
            .filter(|(_, loaded)| !loaded)
            .map(|(s, _)| s.name().to_string())
            .collect())
    }

    async fn loaded(&self, scripts: &[Script]) -> Result<Vec<bool>> {
        let mut cmd = redis::cmd("SCRIPT");
        cmd.arg("EXISTS");
        for script in scripts {
            cmd.arg(script.sha());
        }
        self.db
            .query("SCRIPT EXISTS", 0, &cmd)
            .await
            .map_err(|e| Error::redis("SCRIPT EXISTS", e))
    }

    /// Empties the server's whole script cache (`SCRIPT FLUSH SYNC`): every client's scripts,
    /// not only these. Definitions stay; each script is reloaded on its next use.
    pub async fn flush(&self) -> Result<()> {
        let mut cmd = redis::cmd("SCRIPT");
        cmd.arg("FLUSH").arg("SYNC");
        self.db
            .query::<()>("SCRIPT FLUSH", 0, &cmd)
            .await
            .map_err(|e| Error::redis("SCRIPT FLUSH", e))
    }
}
