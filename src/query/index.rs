//! Index lifecycle: `db.init::<M>()` creates the RediSearch index of a model, and re-creates
//! it (documents kept) only when the model's schema changed.

use std::time::{Duration, Instant};

use redis::Value;

use super::schema::{IndexKind, IndexOptions, Indexable, SchemaField};
use crate::db::Db;
use crate::error::{Error, Result};
use crate::model::AtomicModel;

/// How long `init` waits for a (re-)created index to finish indexing existing documents.
const INDEXING_TIMEOUT: Duration = Duration::from_secs(600);

/// The schema of `M`: every `#[rapyer(index)]` field, nested ones included.
pub fn schema<M: Indexable>() -> Vec<SchemaField> {
    let mut out = Vec::new();
    M::schema("$", "", IndexOptions::default(), &mut out);
    out
}

/// The name of `M`'s index on `db`: `idx:{namespace}{Prefix}`.
pub(crate) fn index_name<M: AtomicModel>(db: &Db) -> String {
    format!("idx:{}", db.model_key(M::PREFIX, "").trim_end_matches(':'))
}

/// The `FT.CREATE` arguments after the index name.
fn create_args<M: AtomicModel>(db: &Db, schema: &[SchemaField]) -> Vec<String> {
    let mut args = vec![
        "ON".to_string(),
        "JSON".into(),
        "PREFIX".into(),
        "1".into(),
        db.model_key(M::PREFIX, ""),
        "SCHEMA".into(),
    ];
    // Without it, TEXT drops English stopwords: `contains("the")` would match nothing.
    // Index options go before SCHEMA.
    if schema.iter().any(|f| f.kind == IndexKind::Text) {
        let schema_at = args.len() - 1;
        args.splice(schema_at..schema_at, ["STOPWORDS".to_string(), "0".into()]);
    }
    for field in schema {
        args.extend([field.path.clone(), "AS".into(), field.name.clone()]);
        match field.kind {
            IndexKind::Numeric => args.push("NUMERIC".into()),
            IndexKind::Text => args.push("TEXT".into()),
            IndexKind::Tag => {
                args.push("TAG".into());
                if !field.options.case_insensitive {
                    args.push("CASESENSITIVE".into());
                }
                // Without it an empty string is not indexed, so `eq("")` could never match.
                args.push("INDEXEMPTY".into());
            }
        }
        if field.options.sortable {
            args.push("SORTABLE".into());
        }
    }
    args
}

impl Db {
    /// Gets `M` ready: loads the defined scripts, and creates `M`'s search index, or
    /// re-creates it (documents are kept) when its schema changed since the last `init`,
    /// waiting until existing documents are indexed. An unchanged schema costs two reads.
    ///
    /// The index covers the keys of `M` in this handle's namespace (`{ns}{Prefix}:`). A
    /// fingerprint of the schema is kept at `{ns}rapyer:index:{Prefix}`.
    pub async fn init<M: AtomicModel + Indexable>(&self) -> Result<()> {
        self.scripts().preload().await?;
        let schema = schema::<M>();
        if schema.is_empty() {
            return Ok(());
        }
        let index = index_name::<M>(self);
        let args = create_args::<M>(self, &schema);
        let fingerprint = sha1_smol::Sha1::from(args.join("\n")).digest().to_string();
        let marker = self.key(&format!("rapyer:index:{}", M::PREFIX));

        let stored: Option<String> = self
            .query("GET", 1, redis::cmd("GET").arg(&marker))
            .await
            .map_err(|e| Error::redis("init", e))?;
        let exists = self.index_info(&index).await?.is_some();
        if exists && stored.as_deref() == Some(fingerprint.as_str()) {
            return Ok(());
        }
        if exists {
            // Without DD: the documents stay, only the index goes.
            let _: () = self
                .query("FT.DROPINDEX", 0, redis::cmd("FT.DROPINDEX").arg(&index))
                .await
                .map_err(|e| Error::redis("FT.DROPINDEX", e))?;
        }
        let mut create = redis::cmd("FT.CREATE");
        create.arg(&index).arg(&args);
        match self.query::<()>("FT.CREATE", 0, &create).await {
            Ok(()) => {}
            // Another process created it first, from the same schema or a newer one.
            Err(e) if e.to_string().contains("already exists") => {}
            Err(e) => {
                return Err(Error::InvalidQuery {
                    message: format!("FT.CREATE {index} failed: {e}"),
                });
            }
        }
        let _: () = self
            .query("SET", 1, redis::cmd("SET").arg(&marker).arg(&fingerprint))
            .await
            .map_err(|e| Error::redis("init", e))?;
        self.wait_indexed(&index).await
    }

    /// `FT.INFO` as name/value pairs, or `None` when there is no such index.
    async fn index_info(&self, index: &str) -> Result<Option<Vec<(String, Value)>>> {
        match self
            .query::<Value>("FT.INFO", 0, redis::cmd("FT.INFO").arg(index))
            .await
        {
            Ok(Value::Array(items)) | Ok(Value::Set(items)) => {
                let mut pairs = Vec::new();
                let mut items = items.into_iter();
                while let (Some(name), Some(value)) = (items.next(), items.next()) {
                    if let Ok(name) = redis::from_redis_value::<String>(name) {
                        pairs.push((name, value));
                    }
                }
                Ok(Some(pairs))
            }
            Ok(Value::Map(map)) => Ok(Some(
                map.into_iter()
                    .filter_map(|(k, v)| redis::from_redis_value::<String>(k).ok().map(|k| (k, v)))
                    .collect(),
            )),
            Ok(_) => Ok(None),
            Err(e) if is_missing_index(&e) => Ok(None),
            Err(e) => Err(Error::redis("FT.INFO", e)),
        }
    }

    /// Waits until the index has indexed every existing document.
    async fn wait_indexed(&self, index: &str) -> Result<()> {
        let started = Instant::now();
        loop {
            let info = self.index_info(index).await?.unwrap_or_default();
            let indexing = info
                .iter()
                .find(|(k, _)| k == "indexing")
                .and_then(|(_, v)| redis::from_redis_value_ref::<f64>(v).ok())
                .unwrap_or(0.0);
            if indexing == 0.0 {
                return Ok(());
            }
            if started.elapsed() > INDEXING_TIMEOUT {
                return Err(Error::InvalidQuery {
                    message: format!("index {index} was still indexing after {INDEXING_TIMEOUT:?}"),
                });
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// Whether RediSearch answered that the index does not exist (`Unknown index name`,
/// or `no such index` in older versions).
pub(crate) fn is_missing_index(e: &redis::RedisError) -> bool {
    let message = crate::error::server_message(e).to_lowercase();
    message.contains("unknown index name") || message.contains("no such index")
}
