//! Which places of a block are special structures kept in companion keys, and the checks
//! the vocabulary makes about them (below both `vocabulary.rs` and `structures.rs`).

use super::program::Param;
use super::refs::{Loc, Step};
use crate::error::{Error, Result};
use crate::keys::StructureKind;

/// The parameters of the copy of every structure of the document at `from` onto the
/// document at `to` (with a whole model's copy), when the model has structures.
pub(crate) fn copy_params(from: &Loc, to: &Loc) -> Option<Vec<Param>> {
    (!from.doc.structures.is_empty())
        .then(|| vec![Param::Loc(from.clone()), Param::Loc(to.clone())])
}

/// Refuses replacing, with a local value, a place that is or holds a set or a queue: their
/// members live in companion keys, which a document write would not change.
pub(crate) fn not_a_structure(loc: &Loc) -> Result<()> {
    let Some(names) = field_names(loc) else {
        return Ok(());
    };
    if loc
        .doc
        .structures
        .iter()
        .any(|s| s.names.starts_with(&names))
    {
        return Err(Error::InvalidOp {
            key: loc.doc.key.clone(),
            path: loc.path(),
            message: "this place is or holds a set or a priority queue, whose members live in \
                      companion keys: a block cannot replace it with a value; use the \
                      structure's operations, `save`, or `copy_model`"
                .into(),
        });
    }
    Ok(())
}

/// The field names from the document's root to `loc`, or `None` when it reaches into a list
/// or a dict.
fn field_names(loc: &Loc) -> Option<Vec<&'static str>> {
    if loc.slice.is_some() {
        return None;
    }
    loc.steps
        .iter()
        .map(|s| match s {
            Step::Field(name) => Some(*name),
            _ => None,
        })
        .collect()
}

/// The JSONPath of the structure of kind `kind` at `loc`, which must be one its model keeps
/// in companion keys (a set or queue inside a list, a dict or an option is stored in the
/// document, as a list).
pub(crate) fn structure_path(loc: &Loc, kind: StructureKind) -> Result<String> {
    let names = field_names(loc);
    loc.doc
        .structures
        .iter()
        .find(|s| s.kind == kind && Some(&s.names) == names.as_ref())
        .map(crate::keys::Structure::path)
        .ok_or_else(|| Error::InvalidOp {
            key: loc.doc.key.clone(),
            path: loc.path(),
            message: "this set or queue is not kept in a companion key (one inside a list, a \
                      dict or an option is stored in the document): blocks cannot operate on it"
                .into(),
        })
}
