//! "Files I've shared": every `writeFile` also records the file in the writer's own
//! sealed `$files` kv collection, so `listFiles()` needs no walk over every space.
//! A failed record is retried, and if it still fails the write reports it.

use coffer_core::ErrorCode;
use serde::{Deserialize, Serialize};

use super::shards::with_retry;
use crate::error::{SdkError, SdkResult};
use crate::kv;
use crate::listing::Listing;
use crate::session::Session;

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
pub async fn record(session: &Session, file: &SharedFile) -> SdkResult<()> {
    let text = serde_json::to_string(file).expect("records serialize");
    let id = key(&file.space_id, &file.file_id);
    with_retry(None, || kv::put(session, FILES.into(), id.clone(), &text, true)).await
}

/// Forgets a deleted file (retried on network failures).
pub async fn forget(session: &Session, space_id: &str, file_id: &str) -> SdkResult<()> {
    let id = key(space_id, file_id);
    with_retry(None, || kv::remove(session, FILES.into(), id.clone())).await.map(drop)
}

/// Every recorded file that could be read, oldest first; a record that does not
/// authenticate or is malformed goes to `listing`'s `skipped` instead.
pub async fn all(session: &Session, listing: &Listing) -> SdkResult<Vec<SharedFile>> {
    let mut out = Vec::new();
    for id in kv::ids(session, FILES.into()).await? {
        let file = kv::fetch(session, FILES.into(), id.clone()).await.and_then(|text| text.map(parse).transpose());
        if let Some(Some(file)) = listing.check(file_id_of(&id), file)? {
            out.push(file);
        }
    }
    out.sort_by_key(|f| f.created_at);
    Ok(out)
}

fn parse(text: String) -> SdkResult<SharedFile> {
    serde_json::from_str(&text)
        .map_err(|_| SdkError::new(ErrorCode::Integrity, "a record in the shared-files list is malformed"))
}

/// The file id part of a record's key (`space:file`), to name a skipped record.
fn file_id_of(key: &str) -> &str {
    key.split_once(':').map_or(key, |(_, file_id)| file_id)
}
