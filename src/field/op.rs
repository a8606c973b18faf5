//! The field operations (`lua/field.lua`), by name: the one place their Lua spelling is
//! written on the Rust side; and the JSON types an operation accepts at its field.

/// One field operation: its script is `rapyer.field.<its name>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FieldOp {
    /// Reads the field.
    Get,
    /// Replaces the field with a JSON value.
    Set,
    /// Adds to an integer (exact decimal arithmetic, range-checked).
    Incr,
    /// Multiplies an integer (exact decimal arithmetic, range-checked).
    Mul,
    /// Adds to a float.
    FloatIncr,
    /// Multiplies a float.
    FloatMul,
    /// Appends to a string.
    Append,
    /// Flips a boolean.
    Toggle,
    /// Moves an RFC 3339 date-time by a duration.
    // Used by the date-time handle, which exists with the `chrono` feature; the field script
    // has the operation either way.
    #[cfg_attr(not(feature = "chrono"), allow(dead_code))]
    TimeAdd,
    /// Replaces an RFC 3339 date-time (and its search instant).
    #[cfg_attr(not(feature = "chrono"), allow(dead_code))]
    TimeSet,
    /// Appends elements to a list.
    ListAppend,
    /// Inserts an element into a list (Python's `insert`).
    ListInsert,
    /// Removes and returns a list element.
    ListPop,
    /// Reads a list element.
    ListGet,
    /// Replaces a list element.
    ListSet,
    /// Removes the first element equal to a value.
    ListRemove,
    /// Empties a list.
    ListClear,
    /// Keeps a slice of a list.
    ListTrim,
    /// Reads a slice of a list.
    ListSlice,
    /// A list's length.
    ListLen,
    /// Sets dict entries.
    DictSet,
    /// Removes a dict entry.
    DictDel,
    /// Reads a dict entry.
    DictGet,
    /// A dict's keys.
    DictKeys,
    /// A dict's size.
    DictLen,
    /// Empties a dict.
    DictClear,
    /// Appends to a circular buffer, then keeps its newest items.
    BufferPush,
}

impl FieldOp {
    /// Every operation.
    #[cfg(test)]
    pub(crate) const ALL: [FieldOp; 27] = [
        FieldOp::Get,
        FieldOp::Set,
        FieldOp::Incr,
        FieldOp::Mul,
        FieldOp::FloatIncr,
        FieldOp::FloatMul,
        FieldOp::Append,
        FieldOp::Toggle,
        FieldOp::TimeAdd,
        FieldOp::TimeSet,
        FieldOp::ListAppend,
        FieldOp::ListInsert,
        FieldOp::ListPop,
        FieldOp::ListGet,
        FieldOp::ListSet,
        FieldOp::ListRemove,
        FieldOp::ListClear,
        FieldOp::ListTrim,
        FieldOp::ListSlice,
        FieldOp::ListLen,
        FieldOp::DictSet,
        FieldOp::DictDel,
        FieldOp::DictGet,
        FieldOp::DictKeys,
        FieldOp::DictLen,
        FieldOp::DictClear,
        FieldOp::BufferPush,
    ];

    /// Its name in `lua/field.lua` (`op_<name>`) and in its script's name.
    pub(crate) fn lua_name(self) -> &'static str {
        match self {
            FieldOp::Get => "get",
            FieldOp::Set => "set",
            FieldOp::Incr => "incr",
            FieldOp::Mul => "mul",
            FieldOp::FloatIncr => "fincr",
            FieldOp::FloatMul => "fmul",
            FieldOp::Append => "append",
            FieldOp::Toggle => "toggle",
            FieldOp::TimeAdd => "tadd",
            FieldOp::TimeSet => "tset",
            FieldOp::ListAppend => "lappend",
            FieldOp::ListInsert => "linsert",
            FieldOp::ListPop => "lpop",
            FieldOp::ListGet => "lget",
            FieldOp::ListSet => "lset",
            FieldOp::ListRemove => "lremove",
            FieldOp::ListClear => "lclear",
            FieldOp::ListTrim => "ltrim",
            FieldOp::ListSlice => "lslice",
            FieldOp::ListLen => "llen",
            FieldOp::DictSet => "dset",
            FieldOp::DictDel => "ddel",
            FieldOp::DictGet => "dget",
            FieldOp::DictKeys => "dkeys",
            FieldOp::DictLen => "dlen",
            FieldOp::DictClear => "dclear",
            FieldOp::BufferPush => "bpush",
        }
    }

    /// Whether it only reads (and so re-arms the read expiry, not the write one).
    pub(crate) fn reads_only(self) -> bool {
        matches!(
            self,
            FieldOp::Get
                | FieldOp::ListGet
                | FieldOp::ListSlice
                | FieldOp::ListLen
                | FieldOp::DictGet
                | FieldOp::DictKeys
                | FieldOp::DictLen
        )
    }
}

/// The JSON types an operation accepts at the field, for the script (and, through
/// [`crate::script::failure::expected`], for errors).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Want {
    /// Comma-separated JSON types as `JSON.TYPE` names them, or `*`.
    pub(crate) types: &'static str,
}

impl Want {
    pub(crate) const ANY: Want = Want { types: "*" };
    pub(crate) const INTEGER: Want = Want { types: "integer" };
    pub(crate) const NUMBER: Want = Want {
        types: "number,integer",
    };
    pub(crate) const STRING: Want = Want { types: "string" };
    pub(crate) const BOOLEAN: Want = Want { types: "boolean" };
    pub(crate) const OBJECT: Want = Want { types: "object" };
    pub(crate) const ARRAY: Want = Want { types: "array" };
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::FieldOp;
    use crate::script::{library, lua};

    #[test]
    fn every_operation_is_spelled_as_the_script_handles_it() {
        let spelled: BTreeSet<&str> = FieldOp::ALL.iter().map(|op| op.lua_name()).collect();
        assert_eq!(
            spelled.len(),
            FieldOp::ALL.len(),
            "two operations share a name"
        );
        // Both ways: no enum spelling without its op_<name> in lua/field.lua, no operation
        // there the enum lacks.
        let handled: BTreeSet<&str> = lua::field_ops().collect();
        assert_eq!(spelled, handled);
        for op in FieldOp::ALL {
            let script = library::field(op.lua_name());
            assert!(
                script.is_some_and(|s| s.name() == format!("rapyer.field.{}", op.lua_name())),
                "{op:?} has no script"
            );
        }
    }
}
