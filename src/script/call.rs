//! Typed script calls: [`Call`], the [`script!`](crate::script!) macro, and [`Json`] replies.

use std::marker::PhantomData;

use redis::{Cmd, FromRedisValue, ParsingError, ToRedisArgs, Value};
use serde::de::DeserializeOwned;

use super::Script;
use super::reply::decode;
use crate::db::Db;
use crate::error::Result;

/// One call of a script with its keys and arguments, whose reply decodes into `R`.
///
/// Run it with [`Call::run`] or add it to a [`Pipeline`](crate::Pipeline) with
/// [`Pipeline::add`](crate::Pipeline::add). The [`script!`](crate::script!) macro builds
/// these with a typed signature.
#[must_use = "a call does nothing until it is run or added to a pipeline"]
pub struct Call<R = Value> {
    script: Script,
    keys: Vec<Vec<u8>>,
    args: Vec<Vec<u8>>,
    _reply: PhantomData<fn() -> R>,
}

impl<R> std::fmt::Debug for Call<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Keys and arguments may be user data: only their counts are shown.
        f.debug_struct("Call")
            .field("script", &self.script.name())
            .field("keys", &self.keys.len())
            .field("args", &self.args.len())
            .finish()
    }
}

impl<R: FromRedisValue> Call<R> {
    /// A call of `script` with `keys` (namespaced when run) and `args`.
    pub fn new(script: &Script, keys: impl ToRedisArgs, args: impl ToRedisArgs) -> Call<R> {
        Call {
            script: script.clone(),
            keys: keys.to_redis_args(),
            args: args.to_redis_args(),
            _reply: PhantomData,
        }
    }

    /// The script this calls.
    pub fn script(&self) -> &Script {
        &self.script
    }

    /// Runs the call on `db` (see [`Db::run_script`] for errors and reply rules). The script
    /// is added to `db`'s registry on first use; another script already defined under the same
    /// name is [`Error::InvalidScript`](crate::Error::InvalidScript).
    pub async fn run(self, db: &Db) -> Result<R> {
        let (cmd, keys) = self.command(db)?;
        let value = db.eval(&self.script, cmd, keys).await?;
        decode(&self.script, value)
    }

    /// The `EVALSHA` for `db` and its key count, after registering the script there.
    pub(crate) fn command(&self, db: &Db) -> Result<(Cmd, usize)> {
        db.registry().ensure(&self.script)?;
        db.evalsha(&self.script, &self.keys, &self.args)
    }
}

/// A reply holding JSON text (e.g. `cjson.encode(t)` in Lua), decoded with serde.
///
/// Lua numbers lose their fraction on the way out of a script and `cjson` keeps only 14
/// significant digits; for exact floats, encode them yourself with
/// `string.format('%.17g', x)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Json<T>(pub T);

impl<T: DeserializeOwned> FromRedisValue for Json<T> {
    fn from_redis_value(v: Value) -> std::result::Result<Self, ParsingError> {
        let bytes = match &v {
            Value::BulkString(bytes) => &bytes[..],
            Value::SimpleString(text) => text.as_bytes(),
            Value::VerbatimString { text, .. } => text.as_bytes(),
            other => {
                return Err(format!("expected JSON text, got {other:?}").into());
            }
        };
        serde_json::from_slice(bytes)
            .map(Json)
            .map_err(|e| ParsingError::from(format!("invalid JSON: {e}")))
    }
}

/// Declares a typed command for a Lua script: a value whose `call` has the script's keys and
/// arguments as parameters, so the key count is checked by the compiler.
///
/// ```no_run
/// rapyer::script! {
///     /// Pushes `message` onto the queue of every member of `group`; returns how many.
///     pub PUBLISH_TO_GROUP("publish_to_group", keys(group), args(message: &str)) -> i64 = r#"
///         local members = redis.call('SMEMBERS', KEYS[1])
///         for _, member in ipairs(members) do
///             redis.call('RPUSH', 'queue:' .. member, ARGV[1])
///         end
///         return #members
///     "#;
/// }
///
/// # async fn demo(db: &rapyer::Db) -> rapyer::Result<()> {
/// let delivered: i64 = PUBLISH_TO_GROUP.call(db, "group:chat", "hello").await?;
/// let mut pipe = db.pipeline();
/// let a = pipe.add(PUBLISH_TO_GROUP.prepare("group:a", "hi a"));
/// let b = pipe.add(PUBLISH_TO_GROUP.prepare("group:b", "hi b"));
/// let replies = pipe.execute().await?;
/// let (a, b): (i64, i64) = (a.get(&replies)?, b.get(&replies)?);
/// # Ok(()) }
/// ```
///
/// The form is `VIS NAME("registered name", keys(k1, k2, …), args(a1: T1, …)) -> Reply = LUA;`
/// where `LUA` is a constant string (a literal or `include_str!`), keys are `&str` (given the
/// handle's namespace) and each argument type implements `redis::ToRedisArgs`. The name
/// and the body are checked at compile time. `NAME` is a unit value with:
/// `call(&db, keys…, args…)`, `prepare(keys…, args…) -> Call<Reply>` for pipelines,
/// `script()`, and the constants `NAME`, `KEYS` and `LUA`.
#[macro_export]
macro_rules! script {
    (
        $(#[$meta:meta])*
        $vis:vis $NAME:ident (
            $name:literal,
            keys( $($key:ident),* $(,)? ),
            args( $($arg:ident : $ty:ty),* $(,)? ) $(,)?
        ) -> $ret:ty = $body:expr ;
    ) => {
        $(#[$meta])*
        // The command is a value named like a constant: `PUBLISH_TO_GROUP.call(..)`.
        #[allow(non_camel_case_types)]
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        $vis struct $NAME;

        const _: () = {
            impl $NAME {
                /// The name the script is registered under.
                pub const NAME: &'static str = $name;
                /// The Lua source.
                pub const LUA: &'static str = $body;
                /// How many keys the script takes.
                pub const KEYS: $crate::__private::v1::Keys =
                    $crate::__private::v1::Keys::Fixed(<[&str]>::len(&[$(stringify!($key)),*]));

                /// The script (name, key count, body and SHA1), built once.
                pub fn script(&self) -> &'static $crate::__private::v1::Script {
                    static SCRIPT: ::std::sync::LazyLock<$crate::__private::v1::Script> =
                        ::std::sync::LazyLock::new(|| {
                            $crate::__private::v1::static_script($NAME::NAME, $NAME::KEYS, $NAME::LUA)
                        });
                    &SCRIPT
                }

                /// A call with these keys and arguments, to run or to add to a pipeline.
                pub fn prepare(&self, $($key: &str,)* $($arg: $ty),*) -> $crate::__private::v1::Call<$ret> {
                    let keys: &[&str] = &[$($key),*];
                    let mut args: ::std::vec::Vec<::std::vec::Vec<u8>> = ::std::vec::Vec::new();
                    $( $crate::__private::v1::ToRedisArgs::write_redis_args(&$arg, &mut args); )*
                    $crate::__private::v1::Call::new(self.script(), keys, args)
                }

                /// Runs the script on `db` and decodes its reply.
                pub async fn call(
                    &self,
                    db: &$crate::__private::v1::Db,
                    $($key: &str,)*
                    $($arg: $ty),*
                ) -> $crate::__private::v1::Result<$ret> {
                    self.prepare($($key,)* $($arg),*).run(db).await
                }
            }
        };

        const _: () = {
            ::std::assert!(
                $crate::__private::v1::is_valid_name($NAME::NAME),
                "a script name is 1 to 128 characters of A-Z a-z 0-9 _ - . : /"
            );
            ::std::assert!(
                !$crate::__private::v1::is_reserved_name($NAME::NAME),
                "script names starting with `rapyer.` are the library's own"
            );
            ::std::assert!(!$crate::__private::v1::is_blank($NAME::LUA), "the Lua body is empty");
        };
    };
}
