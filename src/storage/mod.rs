//! `client.storage`: files of any size in shared spaces, readable by anyone given
//! their manifest.
//!
//! - [`write`] — the writer's steps in order, chunks in flight, commit.
//! - [`read`] — walk, fetch, rebuild, open; bytes, Blob or stream.
//! - [`chunk`] — one chunk end to end: seal, code, upload; fetch, rebuild, open.
//! - [`pool`] — where chunks run: the page's module workers, or inline.
//! - [`worker`] — the worker's side: runs the jobs the page posts.
//! - [`resume`] — resumable uploads: the plan kept on the device, and resuming it.
//! - [`shards`] — uploads with retry; reads that check every shard.
//! - [`cipher`] — AES-256-GCM through WebCrypto, or wasm as the fallback.
//! - [`source`] — `Uint8Array | Blob | File`, read slice by slice.
//! - [`shared`] — the `$files` record behind `listFiles()`.

pub mod chunk;
pub mod cipher;
pub mod pool;
pub mod read;
pub mod resume;
pub mod shards;
pub mod shared;
pub mod source;
pub mod worker;
pub mod write;

use coffer_core::{Coded, ErrorCode};
use std::collections::HashMap;
use std::rc::Rc;

use coffer_core::manifest::{FileParams, Manifest};
use coffer_core::pipeline::ChunkWalk;
use coffer_core::proto::answer::{Listed, PageWalk};
use coffer_core::proto::storage::{DeleteFileResponse, FileEntry, FileListResponse};
use coffer_core::space::{self, SpaceKey};
use js_sys::Promise;
use serde::{Deserialize, Serialize};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::future_to_promise;

use crate::error::{SdkError, SdkResult};
use crate::js::to_js;
use crate::json;
use crate::keyring;
use crate::listing::{Listing, page_path};
use crate::options::{self, Callback, Signal, Text, Whole, string_arg};
use crate::session::{Session, call, rejected};
use crate::spaces::space_path;
use read::Output;
use shared::SharedFile;
use source::Source;
use write::WriteJob;

/// File storage (`client.storage`). Typed in the `.d.ts` by the `Storage` interface.
#[wasm_bindgen]
pub struct Storage {
    session: Rc<Session>,
}

impl Storage {
    /// A handle on the client's storage.
    pub fn new(session: Rc<Session>) -> Self {
        Storage { session }
    }
}

/// A file's stat as JS sees it (`FileStat` in types.d.ts); what only a space's
/// members know is absent when read by manifest alone.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Stat {
    /// `null` when read by manifest alone.
    id: Option<String>,
    space_id: Option<String>,
    size: f64,
    /// The metadata as `JSON.parse` gives it back (exact JSON, see json.rs).
    #[serde(with = "serde_wasm_bindgen::preserve")]
    metadata: JsValue,
    #[serde(skip_serializing_if = "Option::is_none")]
    created_at: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    created_by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stored_bytes: Option<f64>,
    /// The read capability, in listings.
    #[serde(skip_serializing_if = "Option::is_none")]
    manifest: Option<String>,
}

impl Stat {
    /// What every reader of the file can know.
    fn new(size: u64, metadata: &str) -> SdkResult<Stat> {
        Ok(Stat {
            id: None,
            space_id: None,
            size: size as f64,
            metadata: json::parse(metadata)?,
            created_at: None,
            created_by: None,
            stored_bytes: None,
            manifest: None,
        })
    }

    /// A file of a space, from its entry.
    fn of_entry(entry: &FileEntry, manifest: &Manifest) -> SdkResult<Stat> {
        Ok(Stat {
            id: Some(entry.file_id.clone()),
            space_id: Some(entry.space_id.clone()),
            created_at: Some(entry.created_at_ms as f64),
            created_by: Some(entry.created_by.clone()),
            stored_bytes: Some(entry.stored_bytes as f64),
            ..Stat::new(manifest.size(), manifest.metadata())?
        })
    }
}

/// What a read resolves to (`ReadResult`).
#[derive(Serialize)]
struct ReadResult {
    /// A `Uint8Array`, `Blob` or `ReadableStream`.
    #[serde(with = "serde_wasm_bindgen::preserve")]
    data: JsValue,
    stat: Stat,
}

/// What `writeFile` resolves to.
#[derive(Serialize)]
struct WriteResult<'a> {
    stat: Stat,
    manifest: &'a str,
}

fn parse_manifest(text: &str) -> SdkResult<Manifest> {
    Manifest::parse(text).map_err(|e| SdkError::new(e.code(), format!("not a readable manifest: {e}")))
}

/// A file of a space from its entry, as `listFiles({ spaceId })` shows it: the
/// record opened with the ids asked for (an entry for another file is refused).
fn listed_stat(key: &SpaceKey, space_id: &str, entry: &FileEntry) -> SdkResult<JsValue> {
    let text = space::open_file_entry(key, space_id, &entry.file_id, entry)?;
    let stat = Stat::of_entry(entry, &parse_manifest(&text)?)?;
    Ok(to_js(&Stat { manifest: Some(text), ..stat }))
}

/// `{ as?, offset?, length?, onProgress?, signal? }` of the read calls.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ReadOptions {
    #[serde(rename = "as")]
    output: Option<Output>,
    /// First byte to read (0 by default).
    offset: Option<Whole>,
    /// Bytes to read from `offset` (to the end of the file by default, and at most).
    length: Option<Whole>,
    on_progress: Option<Callback>,
    signal: Option<Signal>,
}

/// `{ spaceId, data, metadata?, onProgress?, signal?, chunkSize?, dataShards?,
/// parityShards? }` of `writeFile`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WriteOptions {
    space_id: Text,
    /// `Uint8Array | Blob | File`, checked by [`Source::from_js`].
    #[serde(with = "serde_wasm_bindgen::preserve")]
    data: JsValue,
    /// Any JSON value (`null` included); absent means the `File`'s name and type.
    #[serde(default, with = "serde_wasm_bindgen::preserve")]
    metadata: JsValue,
    on_progress: Option<Callback>,
    signal: Option<Signal>,
    chunk_size: Option<Whole>,
    data_shards: Option<Whole>,
    parity_shards: Option<Whole>,
    /// `true | { context? }`: keep a plan on this device so `resumeUpload` can
    /// finish the upload later; read by [`resumable_of`].
    #[serde(default, with = "serde_wasm_bindgen::preserve")]
    resumable: JsValue,
}

/// `resumable` of `writeFile`: `None` for no plan, else the app's context (JSON
/// text) to keep with it, if any.
fn resumable_of(value: &JsValue) -> SdkResult<Option<Option<String>>> {
    if value.is_undefined() || value.is_null() || value.as_bool() == Some(false) {
        return Ok(None);
    }
    if value.as_bool() == Some(true) {
        return Ok(Some(None));
    }
    if !value.is_object() || js_sys::Array::is_array(value) {
        return Err(SdkError::invalid("writeFile options.resumable must be true, false or { context }"));
    }
    let context = js_sys::Reflect::get(value, &"context".into()).unwrap_or(JsValue::UNDEFINED);
    if context.is_undefined() {
        return Ok(Some(None));
    }
    let text = json::stringify(&context)?;
    coffer_core::resume::check_context(&text)?;
    Ok(Some(Some(text)))
}

/// `{ onProgress?, signal? }` of `resumeUpload`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ResumeOptions {
    on_progress: Option<Callback>,
    signal: Option<Signal>,
}

/// `{ spaceId? }` of `listFiles`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListOptions {
    space_id: Option<Text>,
}

fn mime_of(manifest: &Manifest) -> Option<String> {
    let meta: serde_json::Value = serde_json::from_str(manifest.metadata()).ok()?;
    meta.get("type")?.as_str().map(str::to_owned)
}

/// Reads a parsed manifest (all of it, or the range asked for) into `{ data, stat }`.
async fn read_into(session: Rc<Session>, manifest: Manifest, stat: Stat, options: ReadOptions) -> SdkResult<JsValue> {
    let mime = mime_of(&manifest);
    let walk = ChunkWalk::range(manifest, options.offset.map_or(0, |Whole(n)| n), options.length.map(|Whole(n)| n))?;
    let output = options.output.unwrap_or_default();
    let progress = options.on_progress.map(|Callback(f)| f);
    let signal = options.signal.map(|Signal(s)| s);
    let data = read::read(session, walk, output, mime, progress, signal).await?;
    Ok(to_js(&ReadResult { data, stat }))
}

fn file_params(o: &WriteOptions) -> SdkResult<FileParams> {
    let defaults = FileParams::default();
    let small = |value: &Option<Whole>, name: &str, default: u8| -> SdkResult<u8> {
        match value {
            None => Ok(default),
            Some(Whole(n)) => u8::try_from(*n).map_err(|_| SdkError::invalid(format!("{name} is out of range"))),
        }
    };
    let params = FileParams {
        chunk_size: match &o.chunk_size {
            None => defaults.chunk_size,
            Some(Whole(n)) => u32::try_from(*n).map_err(|_| SdkError::invalid("chunkSize is out of range"))?,
        },
        data_shards: small(&o.data_shards, "dataShards", defaults.data_shards)?,
        parity_shards: small(&o.parity_shards, "parityShards", defaults.parity_shards)?,
    };
    params.check().map_err(|e| SdkError::invalid(format!("{e}")))?;
    Ok(params)
}

/// Writes, commits and records a file; resolves to `{ stat, manifest }`. A resumable
/// upload's records are deleted once it is committed, or aborted; any other failure
/// keeps them, and the error carries `uploadId` to resume with. A failure after the
/// commit (recording it in the account's shared-files list) carries the `result`.
async fn write_and_record(session: &Rc<Session>, job: WriteJob) -> Result<JsValue, JsValue> {
    let space_id = job.space_id.clone();
    let metadata = job.metadata.clone();
    let recorder = job.recorder.clone();
    let written = async {
        keyring::check_once(session, &job.space_id).await?;
        write::write(session, job).await
    };
    let written = match written.await {
        Ok(written) => written,
        Err(e) => {
            let Some(recorder) = recorder else { return Err(e.into()) };
            if e.code == ErrorCode::Aborted {
                recorder.forget().await?;
                return Err(e.into());
            }
            let error: JsValue = e.into();
            let _ = js_sys::Reflect::set(&error, &"uploadId".into(), &recorder.id.as_str().into());
            return Err(error);
        }
    };
    if let Some(recorder) = recorder {
        // Committed: the plan is spent. Failing to delete it only leaves a plan that
        // expires on its own.
        let _ = recorder.forget().await;
    }
    let manifest = parse_manifest(&written.manifest)?;
    let stat = Stat::of_entry(&written.entry, &manifest)?;
    let record = SharedFile {
        space_id,
        file_id: written.entry.file_id.clone(),
        manifest: written.manifest.clone(),
        size: written.size,
        metadata,
        created_at: written.entry.created_at_ms,
    };
    let result = to_js(&WriteResult { stat, manifest: &written.manifest });
    if let Err(e) = shared::record(session, &record).await {
        // The file is committed; say so, and hand over what the caller needs.
        let error: JsValue = SdkError::new(
            e.code,
            format!(
                "the file was written (id {}), but recording it in your shared-files list failed: {}",
                record.file_id, e.message
            ),
        )
        .into();
        let _ = js_sys::Reflect::set(&error, &"result".into(), &result);
        return Err(error);
    }
    Ok(result)
}

#[wasm_bindgen]
impl Storage {
    /// Writes a file into a space; resolves to `{ stat, manifest }`.
    #[wasm_bindgen(skip_typescript, js_name = writeFile)]
    pub fn write_file(&self, options: JsValue) -> Promise {
        let parsed = (|| {
            let o: WriteOptions = options::read(&options, "writeFile options")?;
            space_path(&o.space_id.0)?;
            let source = Source::from_js(&o.data)?;
            let metadata = if o.metadata.is_undefined() { source.default_metadata() } else { o.metadata.clone() };
            let metadata = json::stringify(&metadata)?;
            let params = file_params(&o)?;
            let resumable = resumable_of(&o.resumable)?;
            let job = WriteJob {
                space_id: o.space_id.0,
                source,
                metadata,
                params,
                progress: o.on_progress.map(|Callback(f)| f),
                signal: o.signal.map(|Signal(s)| s),
                held: HashMap::new(),
                recorder: None,
            };
            Ok::<_, SdkError>((job, resumable))
        })();
        let (mut job, resumable) = match parsed {
            Ok(p) => p,
            Err(e) => return rejected(e),
        };
        let session = Rc::clone(&self.session);
        // Not `call`: a failure can carry more than the error (see `write_and_record`).
        future_to_promise(async move {
            let user = session.user()?;
            if let Some(context) = resumable {
                let recorder = resume::begin(&session, &user, &job, context).await?;
                job.recorder = Some(Rc::new(recorder));
            }
            write_and_record(&session, job).await
        })
    }

    /// Finishes a resumable upload this device began (see `pendingUploads`), given
    /// the same file again; resolves to `{ stat, manifest }` like `writeFile`.
    #[wasm_bindgen(skip_typescript, js_name = resumeUpload)]
    pub fn resume_upload(&self, id: JsValue, data: JsValue, options: Option<JsValue>) -> Promise {
        let parsed = (|| {
            let id = string_arg(&id, "id")?;
            let source = Source::from_js(&data)?;
            let options: ResumeOptions = options::read_optional(options, "resumeUpload options")?;
            Ok::<_, SdkError>((id, source, options))
        })();
        let (id, source, options) = match parsed {
            Ok(p) => p,
            Err(e) => return rejected(e),
        };
        let session = Rc::clone(&self.session);
        future_to_promise(async move {
            let user = session.user()?;
            let resume::Resumed { plan, held, recorder } = resume::resume(&session, &user, &id, &source).await?;
            let job = WriteJob {
                space_id: plan.space_id.clone(),
                source,
                metadata: plan.metadata.clone(),
                params: plan.params(),
                progress: options.on_progress.map(|Callback(f)| f),
                signal: options.signal.map(|Signal(s)| s),
                held,
                recorder: Some(Rc::new(recorder)),
            };
            write_and_record(&session, job).await
        })
    }

    /// The resumable uploads this account began on this device and has not finished,
    /// oldest first (`PendingUpload[]`); expired ones are dropped.
    #[wasm_bindgen(skip_typescript, js_name = pendingUploads)]
    pub fn pending_uploads(&self) -> Promise {
        call(&self.session, Ok(()), move |session, ()| async move {
            let pending = resume::pending(&*session.user()?).await?;
            Ok(to_js(&pending))
        })
    }

    /// Drops a pending upload's plan from this device; resolves to whether there was
    /// one. Its shards on the accelerator are collected after the grace period.
    #[wasm_bindgen(skip_typescript, js_name = discardUpload)]
    pub fn discard_upload(&self, id: JsValue) -> Promise {
        call(&self.session, string_arg(&id, "id"), move |session, id| async move {
            Ok(JsValue::from_bool(resume::discard(&*session.user()?, &id).await?))
        })
    }

    /// Reads a file of a space you are a member of; resolves to `{ data, stat }`.
    #[wasm_bindgen(skip_typescript, js_name = readFile)]
    pub fn read_file(&self, space_id: JsValue, id: JsValue, options: Option<JsValue>) -> Promise {
        let parsed = (|| {
            let space_id = string_arg(&space_id, "spaceId")?;
            let file_id = file_id_arg(&id)?;
            let path = format!("{}/files/{file_id}", space_path(&space_id)?);
            let options: ReadOptions = options::read_optional(options, "read options")?;
            Ok::<_, SdkError>((space_id, file_id, path, options))
        })();
        call(&self.session, parsed, move |session, (space_id, file_id, path, options)| async move {
            session.user()?;
            keyring::check_once(&session, &space_id).await?;
            let entry: FileEntry = session.http.get(&path).await?;
            let key = keyring::for_epoch(&session, &space_id, entry.epoch).await?;
            let manifest = parse_manifest(&space::open_file_entry(&key, &space_id, &file_id, &entry)?)?;
            let stat = Stat::of_entry(&entry, &manifest)?;
            read_into(session, manifest, stat, options).await
        })
    }

    /// Reads a file from its manifest alone — no sign-in, no membership.
    #[wasm_bindgen(skip_typescript, js_name = readByManifest)]
    pub fn read_by_manifest(&self, manifest: JsValue, options: Option<JsValue>) -> Promise {
        let parsed = (|| {
            let text = string_arg(&manifest, "manifest")?;
            let options: ReadOptions = options::read_optional(options, "read options")?;
            Ok::<_, SdkError>((parse_manifest(text.trim())?, options))
        })();
        call(&self.session, parsed, move |session, (manifest, options)| async move {
            let stat = Stat::new(manifest.size(), manifest.metadata())?;
            read_into(session, manifest, stat, options).await
        })
    }

    /// Lists files: with no argument, the files this account wrote (from its own
    /// records); with `{ spaceId }`, every file in that space. A record that is
    /// malformed or does not authenticate is listed in `skipped` instead.
    #[wasm_bindgen(skip_typescript, js_name = listFiles)]
    pub fn list_files(&self, options: Option<JsValue>) -> Promise {
        call(
            &self.session,
            options::read_optional(options, "listFiles options")
                .map(|ListOptions { space_id }| space_id.map(|Text(id)| id)),
            move |session, space_id| async move {
                session.user()?;
                let listing = Listing::default();
                match space_id {
                    None => {
                        for file in shared::all(&session, &listing).await? {
                            let stat = Stat::new(file.size, &file.metadata).map(|stat| Stat {
                                id: Some(file.file_id.clone()),
                                space_id: Some(file.space_id),
                                created_at: Some(file.created_at as f64),
                                manifest: Some(file.manifest),
                                ..stat
                            });
                            listing.add(&file.file_id, stat.map(|stat| to_js(&stat)))?;
                        }
                    }
                    Some(space_id) => {
                        let path = format!("{}/files", space_path(&space_id)?);
                        keyring::check_once(&session, &space_id).await?;
                        let mut pages = PageWalk::default();
                        while let Some(after) = pages.next_after() {
                            let answer: FileListResponse<Listed<FileEntry>> =
                                session.http.get(&page_path(&path, after)).await?;
                            pages.answered(answer.files.len(), answer.next)?;
                            for entry in answer.files.into_iter().filter_map(|listed| listing.well_formed(listed)) {
                                match keyring::for_epoch(&session, &space_id, entry.epoch).await {
                                    Ok(key) => listing.add(&entry.file_id, listed_stat(&key, &space_id, &entry))?,
                                    // Written after a rotation that left this account
                                    // out: named in `skipped`; the others are listed.
                                    Err(e) if e.code == ErrorCode::Forbidden => listing.skip(Some(&entry.file_id), &e),
                                    Err(e) => return Err(e),
                                }
                            }
                        }
                    }
                }
                Ok(listing.finish())
            },
        )
    }

    /// Deletes a file; resolves to whether it existed. Its manifest stops opening it.
    #[wasm_bindgen(skip_typescript, js_name = deleteFile)]
    pub fn delete_file(&self, space_id: JsValue, id: JsValue) -> Promise {
        let parsed = (|| {
            let space_id = string_arg(&space_id, "spaceId")?;
            let file_id = file_id_arg(&id)?;
            let path = format!("{}/files/{file_id}", space_path(&space_id)?);
            Ok::<_, SdkError>((space_id, file_id, path))
        })();
        call(&self.session, parsed, move |session, (space_id, file_id, path)| async move {
            session.user()?;
            let answer: DeleteFileResponse = session.http.delete(&path).await?;
            shared::forget(&session, &space_id, &file_id).await?;
            Ok(JsValue::from_bool(answer.existed))
        })
    }
}

fn file_id_arg(value: &JsValue) -> SdkResult<String> {
    let id = string_arg(value, "id")?;
    if !coffer_core::proto::storage::is_id(&id) {
        return Err(SdkError::invalid(format!("{id:?} is not a file id (22 base64url characters)")));
    }
    Ok(id)
}

/// What `inspectManifest` tells (`ManifestInfo` in types.d.ts).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ManifestInfo {
    size: f64,
    chunk_size: u32,
    data_shards: u8,
    parity_shards: u8,
    chunk_count: f64,
    depth: u8,
    refs: Vec<RefInfo>,
}

/// A chunk or table node the manifest lists directly.
#[derive(Serialize)]
struct RefInfo {
    kind: &'static str,
    level: u8,
    index: f64,
    /// Shard addresses, hex.
    shards: Vec<String>,
}

/// Describes a manifest's structure without reading the file: its size, how it is
/// cut and coded, and the shard addresses of each chunk (or top-level table node)
/// the manifest lists directly. For diagnostics and tests; every address is public
/// anyway (shards are open ciphertext).
///
/// @example
/// ```js
/// const { chunkSize, dataShards, parityShards, depth, refs } = inspectManifest(manifest);
/// ```
#[wasm_bindgen(js_name = inspectManifest, unchecked_return_type = "ManifestInfo")]
pub fn inspect_manifest(manifest: &str) -> Result<JsValue, JsValue> {
    let manifest = parse_manifest(manifest.trim())?;
    let params = manifest.params();
    let refs = manifest
        .entries()
        .map(|(pos, chunk_ref)| {
            let (kind, level, index) = match pos {
                coffer_core::chunk::ChunkPos::Data(index) => ("data", 0, index),
                coffer_core::chunk::ChunkPos::Table { level, index } => ("table", level, index),
            };
            let shards = chunk_ref.shards.iter().map(|a| a.to_hex()).collect();
            RefInfo { kind, level, index: index as f64, shards }
        })
        .collect();
    Ok(to_js(&ManifestInfo {
        size: manifest.size() as f64,
        chunk_size: params.chunk_size,
        data_shards: params.data_shards,
        parity_shards: params.parity_shards,
        chunk_count: manifest.chunk_count() as f64,
        depth: manifest.depth(),
        refs,
    }))
}
