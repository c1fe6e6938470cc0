//! Resumable uploads (SPEC.md D.2): a `writeFile({ resumable: true })` keeps its plan
//! on the device, sealed, and records each data chunk once it is stored; after a
//! reload, a crash or a lost network, `resumeUpload(id, file)` checks the file is the
//! same, asks the accelerator which recorded shards it still holds and writes only
//! the rest. The core decides what a plan holds and when a file is another
//! ([`coffer_core::resume`]); this module keeps the rows and asks the accelerator.

use std::collections::{HashMap, HashSet};

use coffer_core::b64;
use coffer_core::device::{DeviceKeys, RecordKind};
use coffer_core::manifest::{ChunkRef, FileParams};
use coffer_core::proto::storage::{MAX_BATCH_ADDRESSES, ShardsMissingResponse, ShardsRequest};
use coffer_core::resume::{ChunkDone, FileIdentity, MAX_PLAN_LIFETIME_MS, PLAN_VERSION, UploadPlan, fingerprint};
use coffer_core::shard::ShardAddress;
use coffer_core::{Coded, ErrorCode};
use serde::Serialize;
use wasm_bindgen::prelude::*;

use super::source::Source;
use super::write::WriteJob;
use crate::device::{self, ChunkRow, PlanRow, UPLOAD_CHUNKS, UPLOADS};
use crate::error::{SdkError, SdkResult};
use crate::random;
use crate::session::{Session, User};
use crate::tabs::{self, Lease};

/// Records the chunks of one upload as they are stored.
pub struct Recorder {
    /// The upload's id (`uploadId` on the JS side).
    pub id: String,
    keys: DeviceKeys,
    /// The upload's Web Lock: no other tab resumes or discards it meanwhile.
    _lease: Lease,
}

impl Recorder {
    /// Records data chunk `index` as stored. A failure only means a resume would
    /// store that chunk again, so it is reported to the console, not to the upload.
    pub async fn chunk_done(&self, index: u64, chunk_ref: &ChunkRef) {
        let done = ChunkDone { index, chunk_ref: chunk_ref.clone() };
        let record_id = ChunkDone::record_id(&self.id, index);
        let sealed = self.keys.seal(RecordKind::UploadChunk, &record_id, &done.to_bytes(), random::bytes());
        let row = ChunkRow { id: self.id.clone(), index: index as f64, sealed };
        if let Err(e) = device::put(UPLOAD_CHUNKS, &row).await {
            web_sys::console::warn_1(
                &format!("coffer: could not record a stored chunk for resuming: {}", e.message).into(),
            );
        }
    }

    /// Deletes the upload's records: it was committed or given up.
    pub async fn forget(&self) -> SdkResult<()> {
        device::delete_upload(&self.id).await
    }
}

/// A pending upload as `pendingUploads()` lists it (`PendingUpload` in types.d.ts).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Pending {
    id: String,
    space_id: String,
    /// The `File`'s name, `null` for bytes or a Blob.
    name: Option<String>,
    size: f64,
    last_modified: Option<f64>,
    /// The metadata the file will be committed with.
    #[serde(with = "serde_wasm_bindgen::preserve")]
    metadata: JsValue,
    /// What the app kept with the upload (`resumable: { context }`), or `null`.
    #[serde(with = "serde_wasm_bindgen::preserve")]
    context: JsValue,
    /// Bytes already stored (chunks recorded).
    done_bytes: f64,
    created_at: f64,
    expires_at: f64,
}

/// What tells this file from another: size, a `File`'s name and time, and a
/// fingerprint of its first chunk (read once, here).
pub async fn identity_of(source: &Source, chunk_size: u32) -> SdkResult<FileIdentity> {
    let size = source.size();
    let first = source.part(0, size.min(u64::from(chunk_size)))?.read().await?;
    let (name, last_modified) = match source {
        Source::Blob(blob) => match blob.dyn_ref::<web_sys::File>() {
            Some(file) => (Some(file.name()), Some(file.last_modified() as u64)),
            None => (None, None),
        },
        Source::Bytes(_) => (None, None),
    };
    Ok(FileIdentity { size, name, last_modified, first_chunk: fingerprint(&first.to_vec()) })
}

/// Asks which of `addresses` the accelerator lacks (in batches), which moves the
/// caller's own uploads among the rest on by a grace period; returns the missing
/// ones and that grace, in ms.
async fn missing(session: &Session, addresses: &[ShardAddress]) -> SdkResult<(HashSet<ShardAddress>, u64)> {
    let mut missing = HashSet::new();
    let mut grace_ms = u64::MAX;
    // An empty list still asks once: that is how a new upload learns the grace.
    let batches: Vec<&[ShardAddress]> =
        if addresses.is_empty() { vec![&[]] } else { addresses.chunks(MAX_BATCH_ADDRESSES).collect() };
    for batch in batches {
        let request = ShardsRequest { addresses: batch.to_vec() };
        let answer: ShardsMissingResponse = session.http.post("/v1/shards/missing", &request).await?;
        missing.extend(answer.missing);
        grace_ms = grace_ms.min(answer.grace_ms);
    }
    // An accelerator's word on the grace period is capped: a plan never lingers long.
    Ok((missing, grace_ms.min(MAX_PLAN_LIFETIME_MS)))
}

fn now_ms() -> u64 {
    js_sys::Date::now() as u64
}

fn seal_plan(keys: &DeviceKeys, id: &str, plan: &UploadPlan) -> PlanRow {
    PlanRow {
        id: id.to_owned(),
        owner: keys.owner(),
        expires_at: plan.expires_at_ms as f64,
        sealed: keys.seal(RecordKind::UploadPlan, id, &plan.to_bytes(), random::bytes()),
    }
}

/// Begins keeping a plan for the upload `job` is, with the app's `context` (JSON text).
pub async fn begin(session: &Session, user: &User, job: &WriteJob, context: Option<String>) -> SdkResult<Recorder> {
    let params = job.params;
    let file = identity_of(&job.source, params.chunk_size).await?;
    let (_, grace_ms) = missing(session, &[]).await?;
    let created_at_ms = now_ms();
    let plan = UploadPlan {
        v: PLAN_VERSION,
        space_id: job.space_id.clone(),
        file,
        metadata: job.metadata.clone(),
        context,
        chunk_size: params.chunk_size,
        data_shards: params.data_shards,
        parity_shards: params.parity_shards,
        created_at_ms,
        expires_at_ms: created_at_ms.saturating_add(grace_ms),
    };
    let id = b64::encode(random::bytes::<16>());
    let lease = tabs::hold_upload(&id).await?;
    let keys = DeviceKeys::derive(&user.root);
    device::put(UPLOADS, &seal_plan(&keys, &id, &plan)).await?;
    Ok(Recorder { id, keys, _lease: lease })
}

fn not_pending(id: &str, why: &str) -> SdkError {
    SdkError::new(ErrorCode::NotFound, format!("no upload {id:?} is pending on this device: {why}"))
}

/// Opens a plan row of this account; `None` if it is another account's or does not open.
fn open_plan(keys: &DeviceKeys, row: &PlanRow) -> Option<Result<UploadPlan, SdkError>> {
    if row.owner != keys.owner() {
        return None;
    }
    let opened = keys.open(RecordKind::UploadPlan, &row.id, &row.sealed).map_err(SdkError::from);
    Some(opened.and_then(|bytes| UploadPlan::from_bytes(&bytes).map_err(SdkError::from)))
}

/// The chunks upload `id` recorded, opened; those that do not open are left out
/// (a resume stores them again).
async fn chunks_done(keys: &DeviceKeys, id: &str, params: FileParams) -> SdkResult<Vec<ChunkDone>> {
    let rows = device::chunks_of(id).await?;
    Ok(rows
        .into_iter()
        .filter_map(|row| {
            let index = row.index as u64;
            let bytes = keys.open(RecordKind::UploadChunk, &ChunkDone::record_id(id, index), &row.sealed).ok()?;
            ChunkDone::from_bytes(&bytes, params).ok().filter(|done| done.index == index)
        })
        .collect())
}

/// A plan ready to resume: what to write, the chunks the accelerator still holds,
/// and the recorder for the rest.
pub struct Resumed {
    /// The plan.
    pub plan: UploadPlan,
    /// Data chunks whose every shard the accelerator holds, by index.
    pub held: HashMap<u64, ChunkRef>,
    /// Records the chunks stored from here on.
    pub recorder: Recorder,
}

/// Opens upload `id` to resume it with `source`: refuses one another tab is on
/// (`Conflict`) and another file (`FileChanged`), asks which recorded shards are
/// still held, and moves the plan's expiry on with theirs.
pub async fn resume(session: &Session, user: &User, id: &str, source: &Source) -> SdkResult<Resumed> {
    let lease = tabs::hold_upload(id).await?;
    let keys = DeviceKeys::derive(&user.root);
    let row: PlanRow = device::get(UPLOADS, id).await?.ok_or_else(|| {
        not_pending(id, "it was finished, aborted or discarded, expired, or begun on another device or browser")
    })?;
    let mut plan = match open_plan(&keys, &row) {
        None => return Err(not_pending(id, "it was begun by another account")),
        Some(plan) => plan?,
    };
    if plan.expires_at_ms <= now_ms() {
        device::delete_upload(id).await?;
        return Err(not_pending(id, "it expired (the accelerator's grace period for unfinished uploads passed)"));
    }
    let given = identity_of(source, plan.chunk_size).await?;
    plan.file.check_same(&given).map_err(|e| SdkError::new(e.code(), e.to_string()))?;
    let done = chunks_done(&keys, id, plan.params()).await?;
    let addresses: Vec<ShardAddress> = done.iter().flat_map(|d| d.chunk_ref.shards.iter().copied()).collect();
    let (missing, grace_ms) = missing(session, &addresses).await?;
    let held = done
        .into_iter()
        .filter(|d| d.chunk_ref.shards.iter().all(|a| !missing.contains(a)))
        .map(|d| (d.index, d.chunk_ref))
        .collect();
    plan.expires_at_ms = now_ms().saturating_add(grace_ms);
    device::put(UPLOADS, &seal_plan(&keys, id, &plan)).await?;
    Ok(Resumed { plan, held, recorder: Recorder { id: id.to_owned(), keys, _lease: lease } })
}

/// This account's pending uploads on this device, oldest first; expired plans are
/// deleted on the way.
pub async fn pending(user: &User) -> SdkResult<Vec<Pending>> {
    let keys = &user.device;
    let mut rows: Vec<PlanRow> = device::by_index(UPLOADS, "owner", &keys.owner()).await?;
    let now = now_ms();
    let mut out = Vec::new();
    rows.sort_by(|a, b| a.expires_at.total_cmp(&b.expires_at));
    for row in rows {
        if row.expires_at <= now as f64 {
            device::delete_upload(&row.id).await?;
            continue;
        }
        let Some(Ok(plan)) = open_plan(keys, &row) else { continue };
        let done_bytes = plan.done_bytes(&chunks_done(keys, &row.id, plan.params()).await?);
        out.push(Pending {
            id: row.id,
            space_id: plan.space_id,
            name: plan.file.name,
            size: plan.file.size as f64,
            last_modified: plan.file.last_modified.map(|t| t as f64),
            metadata: crate::json::parse(&plan.metadata)?,
            context: match &plan.context {
                Some(text) => crate::json::parse(text)?,
                None => JsValue::NULL,
            },
            done_bytes: done_bytes as f64,
            created_at: plan.created_at_ms as f64,
            expires_at: plan.expires_at_ms as f64,
        });
    }
    Ok(out)
}

/// Deletes upload `id`'s records if they are this account's; resolves to whether
/// there were any.
pub async fn discard(user: &User, id: &str) -> SdkResult<bool> {
    let _lease = tabs::hold_upload(id).await?;
    let keys = &user.device;
    let Some(row) = device::get::<PlanRow>(UPLOADS, id).await? else { return Ok(false) };
    if row.owner != keys.owner() {
        return Ok(false);
    }
    device::delete_upload(id).await?;
    Ok(true)
}
