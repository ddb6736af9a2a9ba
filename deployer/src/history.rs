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

/// The keys of the stack's entries, oldest first: each names its artifact (`artifact_of_key`),
/// so a choice among them reads only the entries it chose.
pub async fn keys(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    stack: &str,
) -> Result<Vec<String>, Error> {
    let mut keys: Vec<String> = crate::artifact::objects(s3, bucket, &prefix(stack))
        .await?
        .into_iter()
        .filter_map(|o| o.key)
        .collect();
    keys.sort();
    Ok(keys)
}

/// The entry at `key`, checked against the artifact its key names.
pub async fn read(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Result<Entry, Error> {
    let bad = |message: String| Error::BadManifest {
        path: format!("s3://{bucket}/{key}").into(),
        message,
    };
    let bytes = crate::artifact::read_object(s3, bucket, key).await?;
    let entry: Entry = serde_json::from_slice(&bytes).map_err(|e| bad(e.to_string()))?;
    match artifact_of_key(key) {
        Some(named) if named != entry.manifest.sha256 => Err(bad(format!(
            "its key names artifact {named} but it records {}",
            entry.manifest.sha256
        ))),
        _ => Ok(entry),
    }
}

/// The stack's newest `limit` entries, newest first.
pub async fn list(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    stack: &str,
    limit: usize,
) -> Result<Vec<Entry>, Error> {
    let mut entries = vec![];
    for key in keys(s3, bucket, stack).await?.iter().rev().take(limit) {
        entries.push(read(s3, bucket, key).await?);
    }
    Ok(entries)
}

/// The manifest and zip of the artifact `sha256` as `stack` last ran it: the manifest from its
/// newest history entry naming it, the zip from the bucket, checked against it. Refused when the
/// history names no such artifact.
pub async fn recall(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    stack: &str,
    sha256: &str,
) -> Result<(Manifest, Vec<u8>), Error> {
    // The key names the artifact: one entry read, however long the history.
    let newest = keys(s3, bucket, stack)
        .await?
        .into_iter()
        .rfind(|key| artifact_of_key(key) == Some(sha256))
        .ok_or_else(|| Error::NotInHistory {
            stack: stack.to_string(),
            sha256: sha256.to_string(),
        })?;
    let entry = read(s3, bucket, &newest).await?;
    let zip = crate::artifact::fetch(s3, bucket, &entry.manifest).await?;
    Ok((entry.manifest, zip))
}

/// The sha256 of the artifact a history entry's key (as `record` names it) records, read from
/// the key alone.
pub fn artifact_of_key(key: &str) -> Option<&str> {
    let file = key.strip_prefix("history/")?.rsplit('/').next()?;
    let (_, sha256) = file.strip_suffix(".json")?.split_once('-')?;
    Some(sha256)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_history_key_names_its_artifact() {
        let sha = "ab".repeat(32);
        let key = format!("history/catalog-sandbox/1796115319000-{sha}.json");
        assert_eq!(super::artifact_of_key(&key), Some(sha.as_str()));
        assert_eq!(super::artifact_of_key(&format!("app/{sha}.zip")), None);
    }
}
