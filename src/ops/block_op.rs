//! The operations of the block runtime (`lua/block.lua`), by name: the one place their Lua
//! spelling is written on the Rust side.

/// One operation of the block runtime: a `local function op_…` of `lua/block.lua`, which a
/// block's script carries (with the pieces it needs) when the block uses it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BlockOp {
    /// Replaces a place (a slice, a whole document, a dict entry, any value).
    Set,
    /// Adds a number to a number.
    Incr,
    /// Adds the number at one place to the number at another.
    IncrBy,
    /// Copies one place onto another.
    Assign,
    /// Exchanges two places.
    Swap,
    /// Joins strings into a place.
    Concat,
    /// Appends a list's (or slice's) elements to a list.
    AppendFrom,
    /// Moves a list element to the end of another list.
    Move,
    /// Flips a boolean.
    Toggle,
    /// Appends elements to a list.
    ListPush,
    /// Removes and returns a list element.
    ListPop,
    /// Inserts an element into a list (Python's `insert`).
    ListInsert,
    /// Removes a dict entry.
    DictRemove,
    /// Sets dict entries.
    DictUpdate,
    /// Empties a list or a dict.
    Clear,
    /// Appends to a string.
    StrAppend,
    /// Appends to a circular buffer, then keeps its newest items.
    BufferPush,
    /// Adds a member to a set (`lua/block_structures.lua`, as the seven below).
    SetAdd,
    /// Removes a member from a set.
    SetRemove,
    /// Removes an item from a queue.
    QueueRemove,
    /// Queues an item.
    QueuePush,
    /// Pops a queue's most urgent item.
    QueuePop,
    /// Pops a queue's most urgent item into a list.
    QueuePopInto,
    /// Copies a document's structures onto another document's.
    StructuresCopy,
    /// Runs the structure writes a block queued, and gives companion keys their expiry.
    StructuresFlush,
}

impl BlockOp {
    /// Every operation.
    #[cfg(test)]
    pub(crate) const ALL: [BlockOp; 25] = [
        BlockOp::Set,
        BlockOp::Incr,
        BlockOp::IncrBy,
        BlockOp::Assign,
        BlockOp::Swap,
        BlockOp::Concat,
        BlockOp::AppendFrom,
        BlockOp::Move,
        BlockOp::Toggle,
        BlockOp::ListPush,
        BlockOp::ListPop,
        BlockOp::ListInsert,
        BlockOp::DictRemove,
        BlockOp::DictUpdate,
        BlockOp::Clear,
        BlockOp::StrAppend,
        BlockOp::BufferPush,
        BlockOp::SetAdd,
        BlockOp::SetRemove,
        BlockOp::QueueRemove,
        BlockOp::QueuePush,
        BlockOp::QueuePop,
        BlockOp::QueuePopInto,
        BlockOp::StructuresCopy,
        BlockOp::StructuresFlush,
    ];

    /// Its function's name in the block runtime (and in a compiled program).
    pub(crate) fn lua_name(self) -> &'static str {
        match self {
            BlockOp::Set => "op_set",
            BlockOp::Incr => "op_incr",
            BlockOp::IncrBy => "op_incr_by",
            BlockOp::Assign => "op_assign",
            BlockOp::Swap => "op_swap",
            BlockOp::Concat => "op_concat",
            BlockOp::AppendFrom => "op_append_from",
            BlockOp::Move => "op_move",
            BlockOp::Toggle => "op_toggle",
            BlockOp::ListPush => "op_list_push",
            BlockOp::ListPop => "op_list_pop",
            BlockOp::ListInsert => "op_list_insert",
            BlockOp::DictRemove => "op_dict_remove",
            BlockOp::DictUpdate => "op_dict_update",
            BlockOp::Clear => "op_clear",
            BlockOp::StrAppend => "op_str_append",
            BlockOp::BufferPush => "op_buffer_push",
            BlockOp::SetAdd => "op_sadd",
            BlockOp::SetRemove => "op_srem",
            BlockOp::QueueRemove => "op_qremove",
            BlockOp::QueuePush => "op_qpush",
            BlockOp::QueuePop => "op_qpop",
            BlockOp::QueuePopInto => "op_qpop_into",
            BlockOp::StructuresCopy => "op_scopy",
            BlockOp::StructuresFlush => "op_sflush",
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::BlockOp;
    use crate::script::lua::{BLOCK, BLOCK_STRUCTURES, top_level_functions};

    #[test]
    fn every_operation_is_spelled_as_the_runtime_defines_it() {
        let spelled: BTreeSet<&str> = BlockOp::ALL.iter().map(|op| op.lua_name()).collect();
        assert_eq!(
            spelled.len(),
            BlockOp::ALL.len(),
            "two operations share a name"
        );
        // Both ways: every enum spelling is an operation of the runtime, and every
        // operation of the runtime (`local function op_…`) has its enum variant.
        let defined: BTreeSet<&str> = top_level_functions(BLOCK)
            .into_iter()
            .chain(top_level_functions(BLOCK_STRUCTURES))
            .filter(|f| f.starts_with("op_"))
            .collect();
        assert_eq!(spelled, defined);
    }
}
