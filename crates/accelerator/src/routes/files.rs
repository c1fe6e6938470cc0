//! The file routes of a space: commit, list, get, delete.
//!
//! A commit declares the file's size and parameters, which bound the shards it may
//! list and their bytes ([`coffer_core::manifest::FileParams::shard_bound`]).
//!
//! A file is visible only once committed: its shards are uploaded first (invisible,
//! collected after the grace if nothing commits them), then one commit checks every
//! listed shard is stored, meters their bytes against the space's quota and records
//! the file with its sealed manifest. A large commit takes several transactions
//! ([`crate::store::Files::commit_file`]), so other users' writes are never held
//! up behind it, but it is checked whole before it starts and becomes visible in
//! one step at its end — so a refused commit leaves nothing visible and the writer's
//! uploads as they were. Deleting a file frees, before the answer, the shards no
//! other file references, so its manifest stops opening it ([`crate::gc`]).
//!
//! A commit names the key epoch its record is sealed under (SPEC.md F.12): anything
//! but the space's current epoch, or a commit while a rotation is due, is refused
//! with `Conflict` — at its first step and again as it becomes visible — so nothing
//! new is sealed under a key a departed member holds. Every file answers its epoch.

use std::sync::Arc;

use axum::extract::State;
use coffer_core::proto::PageQuery;
use coffer_core::proto::storage::{
    CommitFileRequest, DeleteFileResponse, FileEntry, FileListResponse, MAX_FILE_SHARDS,
};
use coffer_core::shard::ADDRESS_HEX_LEN;

use crate::error::{ApiError, Json, Path, Query, page_request};
use crate::routes::spaces::{check_id, sealed_bytes};
use crate::session::Authed;
use crate::state::{AppState, expiry_ms, now_ms};
use crate::store::{NewFile, Withdrawn};

/// Longest sealed file record, in bytes (one around the longest manifest is 1,052).
pub const MAX_SEALED_RECORD_BYTES: usize = 4096;
/// The commit route's body limit: [`MAX_FILE_SHARDS`] quoted addresses with their
/// commas, and room for the rest of the body.
pub const MAX_COMMIT_BODY_BYTES: usize = MAX_FILE_SHARDS * (ADDRESS_HEX_LEN + 3) + 64 * 1024;

/// `POST /v1/spaces/{space}/files` (writers and owners), at the space's current epoch.
pub async fn commit(
    State(state): State<AppState>,
    authed: Authed,
    Path(space_id): Path<String>,
    Json(req): Json<CommitFileRequest>,
) -> Result<Json<FileEntry>, ApiError> {
    check_id(&space_id, "the space id")?;
    check_id(&req.file_id, "fileId")?;
    let sealed_record = sealed_bytes(&req.sealed_record, "sealedRecord", MAX_SEALED_RECORD_BYTES)?;
    if req.shards.len() > MAX_FILE_SHARDS {
        return Err(ApiError::too_large(format!("a file lists at most {MAX_FILE_SHARDS} shards")));
    }
    let params = req.params().map_err(|e| ApiError::invalid(e.to_string()))?;
    let bound = params.shard_bound(req.size);
    let mut distinct = req.shards.clone();
    distinct.sort_unstable();
    distinct.dedup();
    if distinct.len() as u64 > bound.shards {
        return Err(ApiError::invalid(format!(
            "a file of {} bytes in {} B chunks, {} + {} shards, has at most {} shards; this commit lists {}",
            req.size,
            params.chunk_size,
            params.data_shards,
            params.parity_shards,
            bound.shards,
            distinct.len()
        )));
    }
    let file = NewFile {
        space_id,
        file_id: req.file_id,
        sealed_record,
        shards: distinct.into(),
        max_shard_bytes: bound.bytes,
        created_by: authed.session.user_id,
        created_at_ms: now_ms(),
        epoch: req.epoch,
    };
    let quotas = state.config.quotas();
    let expires_at_ms = expiry_ms(state.config.shard_grace);
    let (space_id, file_id) = (file.space_id.clone(), file.file_id.clone());
    // The steps run to the end even if the client goes.
    let records = Arc::clone(&state.records);
    let committed = tokio::spawn(async move { records.commit_file(&file, quotas, expires_at_ms).await })
        .await
        .map_err(ApiError::internal)?;
    if committed.is_err() {
        // A refusal after the first step abandoned the draft: its references go now
        // (or, if that fails, at the collector's next pass). The answer is the refusal.
        if let Err(err) = state.unwind(Withdrawn::File { space_id, file_id }).await {
            tracing::warn!(message = %err.message, "an abandoned draft is left to the collector");
        }
    }
    Ok(Json(FileEntry::from(&committed?)))
}

/// `GET /v1/spaces/{space}/files` (members): oldest first.
pub async fn list(
    State(state): State<AppState>,
    authed: Authed,
    Path(space_id): Path<String>,
    Query(page): Query<PageQuery>,
) -> Result<Json<FileListResponse>, ApiError> {
    check_id(&space_id, "the space id")?;
    let page = page_request(page)?;
    let actor = authed.session.user_id;
    let files = state.records.files(&space_id, &actor, &page).await?;
    Ok(Json(FileListResponse { files: files.items.iter().map(FileEntry::from).collect(), next: files.next }))
}

/// `GET /v1/spaces/{space}/files/{file}` (members).
pub async fn get(
    State(state): State<AppState>,
    authed: Authed,
    Path((space_id, file_id)): Path<(String, String)>,
) -> Result<Json<FileEntry>, ApiError> {
    check_id(&space_id, "the space id")?;
    check_id(&file_id, "the file id")?;
    let actor = authed.session.user_id;
    let file = state.records.file(&space_id, &file_id, &actor).await?;
    let file = file.ok_or_else(|| ApiError::not_found("no file with that id in this space"))?;
    Ok(Json(FileEntry::from(&file)))
}

/// `DELETE /v1/spaces/{space}/files/{file}` (writers and owners): frees the shards
/// no other file references before answering.
pub async fn delete(
    State(state): State<AppState>,
    authed: Authed,
    Path((space_id, file_id)): Path<(String, String)>,
) -> Result<Json<DeleteFileResponse>, ApiError> {
    check_id(&space_id, "the space id")?;
    check_id(&file_id, "the file id")?;
    let actor = authed.session.user_id;
    let existed = state.records.delete_file(&space_id, &file_id, &actor).await?;
    if existed {
        state.unwind(Withdrawn::File { space_id, file_id }).await?;
    }
    Ok(Json(DeleteFileResponse { existed }))
}
