//! "Files I've shared": every `writeFile` also records the file in the writer's own
//! sealed `$files` kv collection, so `listFiles()` needs no walk over every space.
//! A failed record is retried, and if it still fails the write reports it.

use coffer_core::ErrorCode;
use serde::{Deserialize, Serialize};

use super::shards::with_retry;
use crate::client::Inner;
use crate::error::{SdkError, SdkResult};
use crate::kv;

/// The reserved collection of shared files.
pub const FILES: &str = "$files";

/// One shared file, as stored (sealed) in `$files`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SharedFile {
    /// The space it is in.
    pub space_id: String,
    /// Its id in the space.
    pub file_id: String,
    /// Its read capability.
    pub manifest: String,
    /// Plaintext bytes.
    pub size: u64,
    /// The metadata JSON text.
    pub metadata: String,
    /// When it was committed, ms since the Unix epoch.
    pub created_at: u64,
}

fn key(space_id: &str, file_id: &str) -> String {
    format!("{space_id}:{file_id}")
}

/// Records a written file (retried on network failures).
pub async fn record(inner: &Inner, file: &SharedFile) -> SdkResult<()> {
    let text = serde_json::to_string(file).expect("records serialize");
    let id = key(&file.space_id, &file.file_id);
    with_retry(None, || kv::put(inner, FILES.into(), id.clone(), &text, true)).await
}

/// Forgets a deleted file (retried on network failures).
pub async fn forget(inner: &Inner, space_id: &str, file_id: &str) -> SdkResult<()> {
    let id = key(space_id, file_id);
    with_retry(None, || kv::remove(inner, FILES.into(), id.clone())).await.map(drop)
}

/// Every recorded file, oldest first.
pub async fn all(inner: &Inner) -> SdkResult<Vec<SharedFile>> {
    let mut out = Vec::new();
    for id in kv::ids(inner, FILES.into()).await? {
        if let Some(text) = kv::fetch(inner, FILES.into(), id).await? {
            let file: SharedFile = serde_json::from_str(&text)
                .map_err(|_| SdkError::new(ErrorCode::Integrity, "a record in the shared-files list is malformed"))?;
            out.push(file);
        }
    }
    out.sort_by_key(|f| f.created_at);
    Ok(out)
}
