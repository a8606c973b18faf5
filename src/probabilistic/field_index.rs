//! The Bloom indexes of model fields (`#[rapyer(bloom)]`): the filter each save adds to
//! first, and the lookup behind `maybe_exists_by_<field>`.

use serde::Serialize;

use super::{BloomFilter, field_filter_key};
use crate::codec::{self, Document};
use crate::db::Db;
use crate::error::Result;
use crate::keys::{KeySettings, full_key};

/// Adds the values of `M`'s `#[rapyer(bloom)]` fields in `models` to their filters, one
/// step per field, before the models are written (see [`BloomFilter::of_field`]). A model
/// that cannot be encoded is the error its save would give, before anything is sent.
pub(crate) async fn index_fields<M: KeySettings + Document>(db: &Db, models: &[M]) -> Result<()> {
    if M::BLOOM_FIELDS.is_empty() || models.is_empty() {
        return Ok(());
    }
    let mut documents = Vec::with_capacity(models.len());
    for model in models {
        let key = full_key::<M>(db.namespace(), model.model_id());
        documents.push(codec::encode_model_value(&key, model)?);
    }
    for field in M::BLOOM_FIELDS {
        let filter = BloomFilter::<serde_json::Value>::at(
            db,
            field_filter_key(db.namespace(), M::PREFIX, field),
        );
        let mut args = vec!["bf.add".to_string()];
        // serde_json's map (without `preserve_order`) writes its members sorted: the
        // canonical text `item_text` gives the same value.
        args.extend(
            documents
                .iter()
                .filter_map(|d| d.get(*field))
                .map(|v| v.to_string()),
        );
        filter.each_text(args).await?;
    }
    Ok(())
}

/// Whether `value` is maybe the `field` of a stored `M` (`maybe_exists_by_<field>`).
pub(crate) async fn field_contains<M, Q>(db: &Db, field: &str, value: &Q) -> Result<bool>
where
    M: KeySettings,
    Q: Serialize + ?Sized,
{
    BloomFilter::<Q>::at(db, field_filter_key(db.namespace(), M::PREFIX, field))
        .contains(value)
        .await
}
