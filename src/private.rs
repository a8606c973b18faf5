//! Support for the code `#[derive(AtomicModel)]`, [`script!`](crate::script!) and
//! [`index_as_tag!`](crate::index_as_tag!) generate: the one place generated code reaches
//! the runtime through, so the names it uses are not tied to the public modules.
//!
//! Not public API: anything here may change in any release.

/// The runtime as generated code of this version sees it. The derive writes every path as
/// `::rapyer::__private::v1::…`; a derive and a runtime of different versions then fail to
/// resolve a path rather than compile against items whose meaning changed.
pub mod v1 {
    use std::fmt::Display;
    use std::future::Future;

    use serde::Serialize;
    use serde::de::DeserializeOwned;

    pub use crate::codec::Document;
    pub use crate::field::{At, FieldType, RedisValue};
    pub use crate::keys::{HashTag, KeySettings, Structure};
    pub use crate::model::{AtomicModel, Model, ModelKey, NoHandle, SerdeWithField};
    pub use crate::ops::refs::{no_field, patch_value};
    pub use crate::ops::{Bind, Bound, Free, Loc, Out, Ref, Referable, ServerRef, Whole};
    pub use crate::partial::{Field, Pickable};
    #[cfg(feature = "chrono")]
    pub use crate::query::refused::DateCondition;
    pub use crate::query::refused::{
        BoolCondition, EnumCondition, IndexedField, TagArrayCondition, TagCondition, TextCondition,
    };
    pub use crate::query::schema::{indexed, join};
    pub use crate::query::{
        EnumField, IndexOptions, Indexable, Indexed, NotIndexed, SchemaField, TextField,
    };
    pub use crate::referrers::{OnDelete, Referrer};
    pub use crate::script::names::{is_blank, is_reserved_name, is_valid_name};
    pub use crate::script::{Call, Keys, Script};
    pub use crate::unlink::declare;
    pub use crate::{Db, Result};

    /// Compiles only for a field `on_delete = "set_null"` can clear: `Option<Ref<M>>`.
    pub fn nullable<T: crate::unlink::Nullable>() {}
    pub use redis::ToRedisArgs;
    pub use serde;
    pub use serde_json;
    pub use std::option::Option::{self, None, Some};
    pub use std::time::Duration;

    use crate::field::{FieldOp, Want};

    /// The handle on the field `segment` (`.name` or `["name"]`) of the value at `at`,
    /// marked as a field of the search index when `indexed`.
    pub fn at_field(at: &At, segment: &str, indexed: bool) -> At {
        let at = at.field(segment);
        if indexed { at.indexed() } else { at }
    }

    /// The root of the stored model `model`.
    pub fn at_root<M: AtomicModel>(model: &M) -> At {
        At::root(model)
    }

    /// The handle on the field `segment` of the stored model `model` (what
    /// `at_field(&at_root(model), segment, indexed)` gives, built without the root's copies).
    pub fn at_root_field<M: AtomicModel>(model: &M, segment: &str, indexed: bool) -> At {
        let at = At::root_field(model, segment);
        if indexed { at.indexed() } else { at }
    }

    /// The place of the field `name` (its JSON name) of the model at `loc`, marked as a
    /// field of the search index when `indexed`.
    pub fn loc_field(loc: &Loc, name: &'static str, indexed: bool) -> Loc {
        let loc = loc.field(name);
        if indexed { loc.indexed() } else { loc }
    }

    /// The handle of a `#[rapyer(value)]` field.
    pub fn value_handle<T: Serialize + DeserializeOwned + Send + Sync>(
        value: &mut T,
        at: At,
    ) -> RedisValue<'_, T> {
        RedisValue::new(value, at)
    }

    /// A script whose name and body `script!` checked at compile time.
    pub fn static_script(name: &'static str, keys: Keys, body: &'static str) -> Script {
        Script::from_static(name, keys, body)
    }

    /// A field's `#[rapyer(index(...))]` options.
    pub const fn index_options(text: bool, sortable: bool, case_insensitive: bool) -> IndexOptions {
        IndexOptions::new(text, sortable, case_insensitive)
    }

    /// The full-text marker of a `String` field declared `index(text)`.
    pub fn text_field(name: String) -> TextField {
        TextField::new(name)
    }

    /// The reference of a `#[rapyer(value)]` field: the value as a whole.
    pub fn value_ref<T: Serialize, B: Bind>(loc: Loc, bind: B) -> ServerRef<T, B> {
        ServerRef::new(loc, bind, "*")
    }

    /// The JSON of a key field's value for the id `id`: used when a whole document is
    /// copied in as the model with that id.
    pub fn id_member<K: std::str::FromStr + serde::Serialize>(
        name: &'static str,
        id: &str,
    ) -> std::result::Result<(&'static str, String), String> {
        let parsed: K = id
            .parse()
            .map_err(|_| format!("`{id}` does not parse as the model's key type"))?;
        // A NaN float id would be stored as `null`, an `i128`/`u128` one beyond what a
        // document holds as a float: either way the copy would no longer load.
        if crate::finite::find(&parsed).is_some() {
            return Err(format!(
                "the id `{id}` has no exact form in a document (a NaN or infinite float, or an \
                 integer beyond i64::MIN ..= u64::MAX)"
            ));
        }
        serde_json::to_string(&parsed)
            .map(|json| (name, json))
            .map_err(|e| e.to_string())
    }

    /// The [`Field`] of the member `name` (its JSON name) of the model at `at`: a member of a
    /// generated `<Name>Paths`.
    pub fn pick_field<P, T>(at: &Field<P>, name: &str) -> Field<T> {
        at.member(name)
    }

    /// `set` of a generated `<Name>Ref` in a model's atomic block: replaces the whole model.
    pub fn set_bound<'o, R: Ref<Bind = Bound<'o>> + Clone>(r: &R, value: R::Value) -> Out<()> {
        let Bound(ops) = *r.bind();
        ops.set(r.clone(), value)
    }

    /// A model's JSON with the search instant beside each date-time it indexes.
    pub fn model_json<T: Document>(value: &T) -> serde_json::Result<String> {
        crate::codec::model_text(value)
    }

    /// Replaces a nested model on the server (the `set` of a generated `<Name>Handle`),
    /// with the instant beside each date-time it indexes.
    pub async fn set_model<T: Document>(local: &mut T, at: &At, db: &Db, value: T) -> Result<()> {
        at.refuse_structures(db)?;
        let mut instants = Vec::new();
        T::instant_paths(&mut instants);
        let text =
            crate::codec::encode_with_instants(&db.key(at.key()), at.path(), &value, &instants)?;
        let mut stored: T = at.run(db, FieldOp::Set, Want::ANY, &[&text]).await?;
        // Fields serde skips are local-only: no server operation changes them.
        Document::keep_local(&mut stored, local);
        *local = stored;
        Ok(())
    }

    /// Reads a nested model from the server into `local` (the `load` of a generated
    /// `<Name>Handle`); the fields serde skips keep their local value.
    pub async fn load_model<T: Document>(local: &mut T, at: &At, db: &Db) -> Result<()> {
        let mut stored: T = at.run(db, FieldOp::Get, Want::ANY, &[]).await?;
        Document::keep_local(&mut stored, local);
        *local = stored;
        Ok(())
    }

    /// A stored-model call's future, boxed so that its type does not depend on the bound
    /// that refuses the call (an unboxed one would repeat the error at the future and at
    /// its `.await`).
    pub type Refused<'a, T> = std::pin::Pin<Box<dyn Future<Output = Result<T>> + Send + 'a>>;

    /// The stored-model methods of [`AtomicModel`] on a model without a `#[rapyer(key)]`
    /// field, which the derive implements this for instead: a call fails to compile with
    /// `AtomicModel`'s message saying to add the key (rather than "no method `save`").
    /// In scope through `rapyer::prelude`.
    pub trait Keyless: Sized {
        /// See [`AtomicModel::save`].
        fn save<'a>(&'a self, db: &'a Db) -> Refused<'a, ()>
        where
            Self: AtomicModel + 'a,
        {
            Box::pin(AtomicModel::save(self, db))
        }

        /// See [`AtomicModel::get`].
        fn get<'a>(db: &'a Db, id: impl Display + Send + 'a) -> Refused<'a, Self>
        where
            Self: AtomicModel + 'a,
        {
            Box::pin(<Self as AtomicModel>::get(db, id))
        }

        /// See [`AtomicModel::exists`].
        fn exists<'a>(db: &'a Db, id: impl Display + Send + 'a) -> Refused<'a, bool>
        where
            Self: AtomicModel + 'a,
        {
            Box::pin(<Self as AtomicModel>::exists(db, id))
        }

        /// See [`AtomicModel::delete`].
        fn delete<'a>(&'a self, db: &'a Db) -> Refused<'a, bool>
        where
            Self: AtomicModel + 'a,
        {
            Box::pin(AtomicModel::delete(self, db))
        }

        /// See [`AtomicModel::delete_by_id`].
        fn delete_by_id<'a>(db: &'a Db, id: impl Display + Send + 'a) -> Refused<'a, bool>
        where
            Self: AtomicModel + 'a,
        {
            Box::pin(<Self as AtomicModel>::delete_by_id(db, id))
        }

        /// See [`AtomicModel::insert_many`].
        fn insert_many<'a>(db: &'a Db, models: &'a [Self]) -> Refused<'a, ()>
        where
            Self: AtomicModel + 'a,
        {
            Box::pin(<Self as AtomicModel>::insert_many(db, models))
        }

        /// See [`AtomicModel::all`].
        fn all<'a>(db: &'a Db) -> Refused<'a, Vec<Self>>
        where
            Self: AtomicModel + 'a,
        {
            Box::pin(<Self as AtomicModel>::all(db))
        }

        /// See [`AtomicModel::refresh`].
        fn refresh<'a>(&'a mut self, db: &'a Db) -> Refused<'a, ()>
        where
            Self: AtomicModel + 'a,
        {
            Box::pin(AtomicModel::refresh(self, db))
        }

        /// See [`AtomicModel::find`].
        fn find(db: &Db, expr: crate::query::Expr) -> crate::query::Find<'_, Self>
        where
            Self: AtomicModel,
        {
            <Self as AtomicModel>::find(db, expr)
        }

        /// See [`AtomicModel::key`].
        fn key(&self) -> String
        where
            Self: AtomicModel,
        {
            AtomicModel::key(self)
        }

        /// See [`AtomicModel::server_ref_for`].
        fn server_ref_for(id: impl Display) -> <Self as Referable>::Ref<Free>
        where
            Self: AtomicModel,
        {
            <Self as AtomicModel>::server_ref_for(id)
        }

        /// See [`AtomicModel::server_ref`].
        fn server_ref(&self) -> <Self as Referable>::Ref<Free>
        where
            Self: AtomicModel,
        {
            AtomicModel::server_ref(self)
        }
    }

    /// A rate-limiter check at the instant `now_micros` (microseconds since the epoch)
    /// instead of the server's clock, through a script of its own that no script name
    /// reaches: for rapyer's tests, which compare the limiter with a reference GCRA over
    /// controlled timestamps. Never use it in a program: a client's clock would decide.
    pub async fn rate_limit_check_at(
        limiter: &crate::RateLimiter,
        subject: &str,
        quantity: u64,
        now_micros: u64,
    ) -> Result<crate::Decision> {
        limiter.check_at(subject, quantity, now_micros).await
    }

    /// `Model::maybe_exists_by_<field>`: whether `value` is maybe the `field` (its JSON
    /// name) of a stored `M`, by the field's Bloom index.
    pub async fn bloom_field_contains<M: AtomicModel, Q: Serialize + ?Sized>(
        db: &Db,
        field: &str,
        value: &Q,
    ) -> Result<bool> {
        crate::probabilistic::field_index::field_contains::<M, Q>(db, field, value).await
    }
}
