//! What each stack ran, and when: one immutable object per deploy that changed it, in the
//! environment's own artifact bucket (`history/<stack>/<millis>-<sha256>.json`, written with
//! If-None-Match like the artifacts), so that `rollback` can find the artifact before and
//! `history` can list them. The artifact zips stay in the bucket under their sha256.

use crate::artifact::{Error, Manifest};
use serde::{Deserialize, Serialize};

/// One deploy of a stack that changed it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    pub stack: String,
    /// RFC 3339, milliseconds, UTC.
    pub time: String,
    /// The artifact it ran from then on.
    pub manifest: Manifest,
    /// Who deployed it (the caller's ARN: a pipeline action's session, an operator).
    pub by: String,
    /// "deployed", or "rolled-back" by `deployer rollback`.
    pub outcome: String,
}

fn prefix(stack: &str) -> String {
    format!("history/{stack}/")
}

/// Writes the entry once; the key sorts by time.
pub async fn record(s3: &aws_sdk_s3::Client, bucket: &str, entry: &Entry) -> Result<(), Error> {
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or_default();
    let key = format!(
        "{}{millis:013}-{}.json",
        prefix(&entry.stack),
        entry.manifest.sha256
    );
    let body = serde_json::to_vec_pretty(entry).expect("an entry serializes");
    crate::artifact::put_bytes_once(s3, bucket, &key, body).await?;
    Ok(())
}

/// The stack's newest `limit` entries, newest first.
pub async fn list(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    stack: &str,
    limit: usize,
) -> Result<Vec<Entry>, Error> {
    let mut keys = keys(s3, bucket, &prefix(stack)).await?;
    keys.sort();
    let mut entries = vec![];
    for key in keys.iter().rev().take(limit) {
        entries.push(read(s3, bucket, key).await?);
    }
    Ok(entries)
}

/// Every entry of every stack the bucket holds history for, in no order.
pub async fn every(s3: &aws_sdk_s3::Client, bucket: &str) -> Result<Vec<Entry>, Error> {
    let mut entries = vec![];
    for key in keys(s3, bucket, "history/").await? {
        entries.push(read(s3, bucket, &key).await?);
    }
    Ok(entries)
}

async fn keys(s3: &aws_sdk_s3::Client, bucket: &str, prefix: &str) -> Result<Vec<String>, Error> {
    Ok(crate::artifact::objects(s3, bucket, prefix)
        .await?
        .into_iter()
        .filter_map(|o| o.key)
        .collect())
}

async fn read(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Result<Entry, Error> {
    let bytes = crate::artifact::read_object(s3, bucket, key).await?;
    serde_json::from_slice(&bytes).map_err(|e| Error::BadManifest {
        path: format!("s3://{bucket}/{key}").into(),
        message: e.to_string(),
    })
}
