#![doc = include_str!("../README.md")]

extern crate self as rapyer;

mod codec;
mod connect;
mod crud;
mod db;
mod depth;
mod documents;
mod error;
pub mod field;
mod finite;
mod keys;
mod lock;
mod model;
pub mod ops;
mod path;
pub mod query;
pub mod script;
mod slot;
mod types;

pub use connect::ConnectOptions;
pub use db::Db;
pub use error::{Error, Result};
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
pub use query::Order;
pub use script::{Call, Keys, Pipeline, Reply, Script, Scripts};
pub use types::{Bytes, Id, ParseIdError};

/// `#[derive(AtomicModel)]`: see [`AtomicModel`] and the crate documentation.
pub use rapyer_derive::AtomicModel;

/// Everything a model file needs: `use rapyer::prelude::*;`.
pub mod prelude {
    pub use crate::ops::BoundRef;
    pub use crate::{
        AtomicModel, Bytes, Db, Error, Id, Keys, LockOptions, Model, Order, Result, ServerOps,
    };
}

/// Support for the code `#[derive(AtomicModel)]` generates.
///
/// Not public API: anything here may change in any release.
#[doc(hidden)]
pub mod __private {
    pub use crate::codec::Document;
    pub use crate::field::{At, FieldType, load_model, set_model};
    pub use crate::keys::KeySettings;
    pub use crate::model::{ModelKey, NoHandle, SerdeWithField};
    pub use crate::ops::{
        Bind, Bound, Free, Loc, Ref, Referable, Whole, id_member, model_json, no_field,
        patch_value, set_bound, value_ref,
    };
    pub use redis::ToRedisArgs;
    pub use serde;
    pub use serde_json;
    pub use std::option::Option::{self, None, Some};
    pub use std::time::Duration;
}
