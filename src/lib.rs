#![doc = include_str!("../README.md")]

extern crate self as rapyer;

mod buffer;
mod codec;
mod connect;
mod crud;
mod db;
mod depth;
mod direct;
mod documents;
mod error;
pub mod field;
mod finite;
mod keys;
mod lock;
mod model;
pub mod ops;
pub mod partial;
mod path;
pub mod probabilistic;
pub mod query;
mod rate_limit;
mod reference;
mod referrers;
mod safe;
mod scan;
pub mod script;
mod slot;
mod structures;
mod types;
mod unlink;

pub use buffer::CircularBuffer;
pub use connect::ConnectOptions;
pub use db::Db;
pub use error::{Error, Result};
pub use field::RedisBuffer;
#[cfg(feature = "chrono")]
pub use field::RedisDatetime;
pub use field::{
    FieldType, RedisBool, RedisBytes, RedisDict, RedisFloat, RedisInt, RedisList, RedisOption,
    RedisStr, RedisValue,
};
pub use keys::HashTag;
pub use lock::{LockGuard, LockOptions};
pub use model::{AtomicModel, Model, ModelKey};
pub use ops::ServerOps;
pub use probabilistic::{BloomFilter, CountMinSketch};
pub use query::Order;
pub use rate_limit::{Decision, Limit, MAX_SPAN_MICROS, RateLimiter};
pub use script::{Call, Keys, Pipeline, Reply, Script, Scripts};
pub use types::{Bytes, Id, ParseIdError};
// Safe and partial loading (issue 17).
pub use documents::Lossy;
pub use field::RedisSafe;
pub use safe::Safe;
// Special structures kept in companion keys beside their model's document.
pub use field::{RedisPriorityQueue, RedisSet};
pub use reference::{Ref, RefField, RefId, Refs};
pub use referrers::OnDelete;
pub use structures::{PriorityQueue, Set, SetOperand};
pub use unlink::set_ttl_cascade;

/// `#[derive(AtomicModel)]`: see [`AtomicModel`] and the crate documentation.
pub use rapyer_derive::AtomicModel;

/// Everything a model file needs: `use rapyer::prelude::*;`.
pub mod prelude {
    /// `.wait()`: a call run to its end from synchronous code (the `blocking` feature).
    #[cfg(feature = "blocking")]
    pub use crate::blocking::Wait;
    pub use crate::ops::BoundRef;
    pub use crate::{
        AtomicModel, Bytes, Db, Error, Id, Keys, LockOptions, Model, Order, Result, ServerOps,
    };
    // Makes `save`, `get`, … on a model without a key a compile error that says to add one.
    pub use crate::__private::v1::Keyless as _;
}

#[cfg(feature = "blocking")]
pub mod blocking;

/// Support for the code `#[derive(AtomicModel)]`, `script!` and `index_as_tag!` generate.
///
/// Not public API: anything here may change in any release.
#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;
