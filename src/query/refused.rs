//! Conditions a field marker does not have, as methods that exist only to be refused at
//! compile time with a message naming the conditions it does have.
//!
//! Without them, `name.gt("x")` on a TAG field would resolve to `Iterator::gt` and fail with
//! "`TagField` is not an iterator", and a query on a field that is not indexed with
//! "no field on `UserFields`". Each method's bound (`&Self: …`) is a trait no type
//! implements, so a call is one error saying what to write instead; the lifetime keeps the
//! bound from being checked where the method is defined.

#[cfg(feature = "chrono")]
use super::expr::DateField;
use super::expr::{BoolField, Expr, TagArrayField, TagField, TextField};
use super::schema::EnumField;

/// Methods of `$field` that fail to compile with `$bound`'s message.
macro_rules! refuse {
    (
        impl[$($param:ident)?] $field:ty => $bound:ident {
            message = $message:literal,
            label = $label:literal,
            note = $note:literal,
        }
        one: [$($one:ident),*]
        two: [$($two:ident),*]
    ) => {
        /// Never implemented: the bound that makes a condition this field does not have a
        /// compile error naming the conditions it does have.
        #[diagnostic::on_unimplemented(message = $message, label = $label, note = $note)]
        pub trait $bound {}

        impl<$($param)?> $field {
            $(
                #[doc = concat!("Not a condition of this field: a call is a compile error that ", "names the ones it has (", $note, ").")]
                pub fn $one<'a, V>(&'a self, value: V) -> Expr
                where
                    &'a Self: $bound,
                {
                    let _ = value;
                    Expr::Nothing
                }
            )*
            $(
                #[doc = concat!("Not a condition of this field: a call is a compile error that ", "names the ones it has (", $note, ").")]
                pub fn $two<'a, V, W>(&'a self, low: V, high: W) -> Expr
                where
                    &'a Self: $bound,
                {
                    let _ = (low, high);
                    Expr::Nothing
                }
            )*
        }
    };
}

refuse! {
    impl[] TagField => TagCondition {
        message = "a TAG field has no order: its conditions are `eq`, `ne`, `one_of` and `starts_with`",
        label = "not a condition of a TAG field",
        note = "TAG fields (strings, enums) match whole values: `eq`, `ne`, `one_of`, `starts_with`; to compare by order, index a number or a date-time",
    }
    one: [gt, ge, lt, le]
    two: [between]
}

refuse! {
    impl[] BoolField => BoolCondition {
        message = "a boolean field has one condition: `eq` (with `!` for its opposite)",
        label = "not a condition of a boolean field",
        note = "a boolean field matches with `eq(true)` or `eq(false)`, and `!f.x.eq(v)` negates it",
    }
    one: [ne, gt, ge, lt, le, one_of]
    two: [between]
}

refuse! {
    impl[] TagArrayField => TagArrayCondition {
        message = "a list-of-tags field matches its elements: its conditions are `contains` and `any_of`",
        label = "not a condition of a list of tags",
        note = "a `Vec<String>` field matches an element: `contains(tag)`, `any_of([tags])`",
    }
    one: [eq, ne, gt, ge, lt, le, one_of]
    two: [between]
}

refuse! {
    impl[] TextField => TextCondition {
        message = "a full-text field matches words: its conditions are `matches`, `contains` and `prefix`",
        label = "not a condition of a full-text field",
        note = "an `index(text)` field matches words: `matches(words)`, `contains(word)`, `prefix(p)`; for exact values, index it without `text` (a TAG)",
    }
    one: [eq, ne, gt, ge, lt, le, one_of, starts_with]
    two: [between]
}

#[cfg(feature = "chrono")]
refuse! {
    impl[] DateField => DateCondition {
        message = "a date-time field compares instants: its conditions are `before`, `after` and `between`",
        label = "not a condition of a date-time field",
        note = "an indexed date-time matches by instant: `before(t)`, `after(t)`, `between(from, to)`",
    }
    one: [eq, ne, gt, ge, lt, le]
    two: []
}

refuse! {
    impl[T] EnumField<T> => EnumCondition {
        message = "an enum field is a TAG, with no order: its conditions are `eq`, `ne` and `one_of`",
        label = "not a condition of an enum field",
        note = "an enum indexed with `index_as_tag!` matches whole variants: `eq`, `ne`, `one_of`",
    }
    one: [gt, ge, lt, le]
    two: [between]
}

/// A field of `<Name>Fields` that is not in the search index: it is there so that a
/// condition on it is a compile error saying to index it, instead of "no field".
#[derive(Debug, Clone, Copy)]
pub struct NotIndexed;

refuse! {
    impl[] NotIndexed => IndexedField {
        message = "this field is not in the search index, so queries cannot use it",
        label = "not indexed",
        note = "add `#[rapyer(index)]` to the field (and run `db.init::<Model>()` again to re-create the index)",
    }
    one: [eq, ne, gt, ge, lt, le, one_of, starts_with, contains, any_of, matches, prefix, before, after]
    two: [between]
}
