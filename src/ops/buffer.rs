//! Server references to circular buffers: `ops.push(r.recent(), item)` in a block, and
//! `m.recent().push(item)` on a model's atomic block.

use std::marker::PhantomData;

use super::program::Out;
use super::refs::{Bind, Bound, Loc, Ref, Referable, encode_items};
use crate::buffer::CircularBuffer;

/// A reference to a [`CircularBuffer`] field: the target of [`Ops::push_into`](super::Ops::push_into)
/// and [`Ops::push_many_into`](super::Ops::push_many_into), which append and keep the newest `N` in
/// the block's one script; also a whole value for `set`, `assign`, `swap` and `clear`.
#[derive(Debug)]
pub struct BufferRef<T, const N: usize, B: Bind = super::Free> {
    pub(crate) loc: Loc,
    pub(crate) bind: B,
    _value: PhantomData<fn() -> T>,
}

impl<T, const N: usize, B: Bind> Clone for BufferRef<T, N, B> {
    fn clone(&self) -> Self {
        BufferRef {
            loc: self.loc.clone(),
            bind: self.bind.clone(),
            _value: PhantomData,
        }
    }
}

impl<T: Referable, const N: usize, B: Bind> Ref for BufferRef<T, N, B> {
    type Value = CircularBuffer<T, N>;
    type Bind = B;
    fn loc(&self) -> &Loc {
        &self.loc
    }
    fn bind(&self) -> &B {
        &self.bind
    }
    fn want(&self) -> &'static str {
        "array"
    }
    fn element_want(&self) -> &'static str {
        T::WANT
    }
    fn encode(value: &CircularBuffer<T, N>) -> serde_json::Result<String> {
        encode_items(&value[..])
    }
}

impl<T: Referable, const N: usize> Referable for CircularBuffer<T, N> {
    type Ref<B: Bind> = BufferRef<T, N, B>;
    const WANT: &'static str = "array";
    fn reference<B: Bind>(loc: Loc, bind: B) -> BufferRef<T, N, B> {
        BufferRef {
            loc,
            bind,
            _value: PhantomData,
        }
    }
    fn to_json(&self) -> serde_json::Result<String> {
        encode_items(&self[..])
    }
}

impl<T: Referable, const N: usize> BufferRef<T, N, Bound<'_>> {
    /// Appends `item` and keeps the newest `N`; returns the length afterwards:
    /// [`Ops::push_into`](super::Ops::push_into).
    pub fn push(&self, item: impl Into<T>) -> Out<usize> {
        self.bind.0.push_into(self.clone(), item)
    }

    /// Appends every item and keeps the newest `N`; returns the length afterwards:
    /// [`Ops::push_many_into`](super::Ops::push_many_into).
    pub fn push_many(&self, items: impl IntoIterator<Item = T>) -> Out<usize> {
        self.bind.0.push_many_into(self.clone(), items)
    }

    /// Replaces the whole buffer: [`Ops::set`](super::Ops::set).
    pub fn replace(&self, buffer: CircularBuffer<T, N>) -> Out<()> {
        self.bind.0.set(self.clone(), buffer)
    }

    /// Empties the buffer: [`Ops::clear`](super::Ops::clear).
    pub fn clear(&self) -> Out<()> {
        self.bind.0.clear(self.clone())
    }
}
