//! The shards of a search: the one server, or every primary of a cluster, each with the name
//! its copy of a model's index has there.
//!
//! RediSearch without a coordinator indexes each node's own documents, and its commands
//! name the index as if it were a key: a node that does not serve the slot of the name
//! answers `MOVED`. So on a cluster the index of a primary is named with a hash tag of a
//! slot that primary serves (its lowest), `{ns}_rapyer:index:{Prefix}:{tag}`, and every
//! command for it runs inside a script sent to that node by address, which either runs it
//! there or fails; it is never redirected to another node's copy.

use redis::{Cmd, FromRedisValue, Value};

use crate::db::Db;
use crate::error::Result;

/// One node of a search and the name of the index there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Shard {
    /// The primary's address; `None` for the one server.
    at: Option<(String, u16)>,
    index: String,
}

impl Shard {
    /// Every shard of `db` for the index named `base`: the one server with `base`, or each
    /// primary of the cluster (read now, one `CLUSTER SLOTS`) with its own name.
    pub(crate) async fn all(db: &Db, base: &str) -> Result<Vec<Shard>> {
        if !db.is_cluster() {
            return Ok(vec![Shard {
                at: None,
                index: base.to_string(),
            }]);
        }
        let primaries = db.primary_slots().await?;
        Ok(primaries
            .into_iter()
            .filter_map(|(at, ranges)| {
                let lowest = ranges.iter().map(|&(start, _)| start).min()?;
                let tag = crate::slot::tag_for(lowest);
                Some(Shard {
                    at: Some(at),
                    index: format!("{base}:{{{tag}}}"),
                })
            })
            .collect())
    }

    /// The name of the index on this shard.
    pub(crate) fn index(&self) -> &str {
        &self.index
    }

    /// Whether this shard is a primary of a cluster.
    pub(crate) fn is_cluster_node(&self) -> bool {
        self.at.is_some()
    }

    /// Sends `cmd` (a RediSearch command naming this shard's index) to this shard only.
    pub(crate) async fn query<T: FromRedisValue>(
        &self,
        db: &Db,
        op: &'static str,
        cmd: &Cmd,
    ) -> std::result::Result<T, redis::RedisError> {
        let Some(at) = &self.at else {
            return db.query(op, 0, cmd).await;
        };
        let mut call = redis::cmd("EVAL");
        call.arg(crate::script::library::SHARD_CALL.body()).arg(0);
        for arg in cmd.args_iter() {
            if let redis::Arg::Simple(bytes) = arg {
                call.arg(bytes);
            }
        }
        let reply: Value = db.query_at(op, Some(at), &call).await?;
        T::from_redis_value(reply).map_err(redis::RedisError::from)
    }
}
