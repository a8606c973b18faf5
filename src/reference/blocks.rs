//! A `Ref` as a field handle and in blocks: a string place.

use super::Ref;
use crate::codec::Document;
use crate::field::{At, FieldType, RedisValue};
use crate::keys::KeySettings;
use crate::ops::refs::json_string;
use crate::ops::{Bind, Comparable, IntoOperand, Loc, Operand, Referable, ServerRef};

/// A `Ref` field's handle is a [`RedisValue`]: `book.author().set(&db, Ref::to(&bob))`.
impl<M: KeySettings + Document + Send + Sync> FieldType for Ref<M> {
    type Handle<'a> = RedisValue<'a, Self>;
    fn handle(value: &mut Self, at: At) -> RedisValue<'_, Self> {
        RedisValue::new(value, at)
    }
}

/// In blocks a `Ref` is a string place: copied with `assign`, set with `set`, compared with
/// `eq`/`ne` against a model, a `Ref` or another reference field.
impl<M: KeySettings + Document + Send + Sync> Referable for Ref<M> {
    type Ref<B: Bind> = ServerRef<Ref<M>, B>;
    const WANT: &'static str = "string";
    fn reference<B: Bind>(loc: Loc, bind: B) -> ServerRef<Ref<M>, B> {
        ServerRef::new(loc, bind, "string")
    }
}

impl<M: KeySettings + Document + Send + Sync> Comparable for Ref<M> {}

impl<M: KeySettings + Document + Send + Sync> IntoOperand<Ref<M>> for Ref<M> {
    fn operand(self) -> std::result::Result<Operand, String> {
        Ok(Operand::Value(json_string(&self.id)))
    }
}

impl<M: KeySettings + Document + Send + Sync> IntoOperand<Ref<M>> for &Ref<M> {
    fn operand(self) -> std::result::Result<Operand, String> {
        Ok(Operand::Value(json_string(&self.id)))
    }
}

impl<M: KeySettings + Document + Send + Sync> IntoOperand<Ref<M>> for &M {
    fn operand(self) -> std::result::Result<Operand, String> {
        Ok(Operand::Value(json_string(&self.model_id())))
    }
}

impl<M: KeySettings + Document + Send + Sync, B: Bind> IntoOperand<Ref<M>>
    for ServerRef<Ref<M>, B>
{
    fn operand(self) -> std::result::Result<Operand, String> {
        Ok(Operand::Loc(self.loc))
    }
}

impl<M: KeySettings + Document + Send + Sync, B: Bind> IntoOperand<Ref<M>>
    for &ServerRef<Ref<M>, B>
{
    fn operand(self) -> std::result::Result<Operand, String> {
        Ok(Operand::Loc(self.loc.clone()))
    }
}
