//! The shards of a search: the one server, or every primary of a cluster, each with the name
//! its copy of a model's index has there.
//!
//! RediSearch without a coordinator indexes each node's own documents, and its commands
//! name the index as if it were a key: a node that does not serve the slot of the name
//! answers `MOVED`. So on a cluster the index of a primary is named with a hash tag of a
//! slot that primary serves (its lowest), `{ns}_rapyer:index:{Prefix}:{tag}`, and every
//! command for it runs inside a script sent to that node by address, which either runs it
//! there or fails; it is never redirected to another node's copy.
//!
//! A node refuses its copy's name while the name's slot is being migrated away (verified:
//! "Script attempted to access a non local key", for `FT.SEARCH`, `FT.INFO` and
//! `FT.DROPINDEX` alike), or once the slot is gone while the slot map read was older. Then
//! [`Shard::settled`] names the copy after the lowest slot the node itself says it serves and
//! is not migrating: the name it will have once the migration ends.

use redis::{Cmd, FromRedisValue, Value};

use crate::db::Db;
use crate::error::Result;

/// One node of a search and the name of the index there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Shard {
    /// The primary's address; `None` for the one server.
    at: Option<(String, u16)>,
    /// The model's index name on one server; a cluster copy's name is this and a tag.
    base: String,
    index: String,
}

impl Shard {
    /// Every shard of `db` for the index named `base`: the one server with `base`, or each
    /// primary of the cluster (read now, one `CLUSTER SLOTS`) with its own name.
    pub(crate) async fn all(db: &Db, base: &str) -> Result<Vec<Shard>> {
        if !db.is_cluster() {
            return Ok(vec![Shard {
                at: None,
                base: base.to_string(),
                index: base.to_string(),
            }]);
        }
        let primaries = db.primary_slots().await?;
        Ok(primaries
            .into_iter()
            .filter_map(|(at, ranges)| {
                let lowest = ranges.iter().map(|&(start, _)| start).min()?;
                Some(Shard {
                    at: Some(at),
                    base: base.to_string(),
                    index: copy_name(base, lowest),
                })
            })
            .collect())
    }

    /// This cluster primary with its copy named after the lowest slot it serves and is not
    /// migrating away, as the node itself says (`CLUSTER NODES` on it): the name it answers
    /// for when it refuses this one. `None` on one server or when the node serves no slot.
    pub(crate) async fn settled(&self, db: &Db) -> Result<Option<Shard>> {
        let Some(at) = &self.at else {
            return Ok(None);
        };
        let Some(lowest) = crate::scan::settled_lowest_slot(db, at).await? else {
            return Ok(None);
        };
        Ok(Some(Shard {
            at: self.at.clone(),
            base: self.base.clone(),
            index: copy_name(&self.base, lowest),
        }))
    }

    /// Whether `name` is another copy of this shard's index, as rapyer names them: the same
    /// base (namespace and model) and the tag rapyer makes for the tag's own slot, not this
    /// shard's name. Any other index (another model's or namespace's, one merely starting
    /// like ours) is not.
    pub(crate) fn is_other_copy(&self, name: &str) -> bool {
        let Some(tag) = name
            .strip_prefix(self.base.as_str())
            .and_then(|rest| rest.strip_prefix(":{"))
            .and_then(|rest| rest.strip_suffix('}'))
        else {
            return false;
        };
        name != self.index && crate::slot::tag_for(crate::slot::hash_slot(tag.as_bytes())) == tag
    }

    /// The name of the index on this shard.
    pub(crate) fn index(&self) -> &str {
        &self.index
    }

    /// Whether this shard is a primary of a cluster.
    pub(crate) fn is_cluster_node(&self) -> bool {
        self.at.is_some()
    }

    /// Sends `cmd` (a RediSearch command naming this shard's index, or another index on its
    /// node) to this shard only.
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

/// The name of a cluster primary's copy of the index `base`, tagged to `slot`.
fn copy_name(base: &str, slot: u16) -> String {
    format!("{base}:{{{}}}", crate::slot::tag_for(slot))
}

/// Whether a node refused a command because the slot its index name hashes to is not one it
/// serves now (being migrated away, or moved): from a script it refuses instead of
/// redirecting, "Script attempted to access a non local key in a cluster node" (verified)
/// or "… a slot not served".
pub(crate) fn is_not_served(e: &redis::RedisError) -> bool {
    let message = crate::error::server_message(e);
    message.contains("attempted to access a non local key")
        || message.contains("attempted to access a slot not served")
}

#[cfg(test)]
mod tests {
    use super::Shard;

    #[test]
    fn only_rapyer_s_own_names_of_the_same_index_are_other_copies() {
        let shard = Shard {
            at: Some(("127.0.0.1".into(), 7000)),
            base: "ns/_rapyer:index:Person".into(),
            index: super::copy_name("ns/_rapyer:index:Person", 0),
        };
        let tag = crate::slot::tag_for(5);
        assert!(shard.is_other_copy(&format!("ns/_rapyer:index:Person:{{{tag}}}")));
        assert!(!shard.is_other_copy(shard.index()));
        for name in [
            format!("ns/_rapyer:index:Person:{{{tag}}}:x"),
            format!("ns/_rapyer:index:Personx:{{{tag}}}"),
            format!("ns/x/_rapyer:index:Person:{{{tag}}}"),
            format!("ns/_rapyer:index:Person:{{{tag}zzzz}}"),
            "ns/_rapyer:index:Person:{}".to_string(),
            "ns/_rapyer:index:Person".to_string(),
        ] {
            assert!(!shard.is_other_copy(&name), "{name}");
        }
    }
}
