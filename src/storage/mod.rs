//! `client.storage`: files of any size in shared spaces, readable by anyone given
//! their manifest.
//!
//! - [`write`] — the writer's steps in order, chunks in flight, commit.
//! - [`read`] — walk, fetch, rebuild, open; bytes, Blob or stream.
//! - [`chunk`] — one chunk end to end: seal, code, upload; fetch, rebuild, open.
//! - [`pool`] — where chunks run: the page's module workers, or inline.
//! - [`worker`] — the worker's side: runs the jobs the page posts.
//! - [`shards`] — uploads with retry; reads that check every shard.
//! - [`cipher`] — AES-256-GCM through WebCrypto, or wasm as the fallback.
//! - [`source`] — `Uint8Array | Blob | File`, read slice by slice.
//! - [`shared`] — the `$files` record behind `listFiles()`.

pub mod chunk;
pub mod cipher;
pub mod pool;
pub mod read;
pub mod shards;
pub mod shared;
pub mod source;
pub mod worker;
pub mod write;

use coffer_core::Coded;
use std::rc::Rc;

use coffer_core::manifest::{FileParams, Manifest};
use coffer_core::proto::answer::{Listed, PageWalk};
use coffer_core::proto::storage::{DeleteFileResponse, FileEntry, FileListResponse};
use coffer_core::space::{self, SpaceKey};
use js_sys::{Array, Promise};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::future_to_promise;
use web_sys::AbortSignal;

use crate::error::{SdkError, SdkResult};
use crate::js::{number, object};
use crate::json;
use crate::keyring;
use crate::listing::{Listing, page_path};
use crate::options::{Options, string_arg};
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

/// The parts of a file's stat that every reader can know.
fn stat_object(
    id: Option<&str>,
    space_id: Option<&str>,
    size: u64,
    metadata: &str,
    extra: &[(&str, JsValue)],
) -> SdkResult<JsValue> {
    let mut pairs = vec![
        ("id", id.map_or(JsValue::NULL, JsValue::from)),
        ("spaceId", space_id.map_or(JsValue::NULL, JsValue::from)),
        ("size", number(size)),
        ("metadata", json::parse(metadata)?),
    ];
    pairs.extend(extra.iter().cloned());
    Ok(object(&pairs))
}

fn entry_stat(entry: &FileEntry, manifest: &Manifest) -> SdkResult<JsValue> {
    stat_object(
        Some(&entry.file_id),
        Some(&entry.space_id),
        manifest.size(),
        manifest.metadata(),
        &[
            ("createdAt", number(entry.created_at_ms)),
            ("createdBy", entry.created_by.as_str().into()),
            ("storedBytes", number(entry.stored_bytes)),
        ],
    )
}

fn parse_manifest(text: &str) -> SdkResult<Manifest> {
    Manifest::parse(text).map_err(|e| SdkError::new(e.code(), format!("not a readable manifest: {e}")))
}

/// A file of a space from its entry, as `listFiles({ spaceId })` shows it: the
/// record opened with the ids asked for (an entry for another file is refused).
fn listed_stat(key: &SpaceKey, space_id: &str, entry: &FileEntry) -> SdkResult<JsValue> {
    let text = space::open_file_entry(key, space_id, &entry.file_id, entry)?;
    let stat = entry_stat(entry, &parse_manifest(&text)?)?;
    let _ = js_sys::Reflect::set(&stat, &"manifest".into(), &text.as_str().into());
    Ok(stat)
}

/// `{ as?, onProgress?, signal? }` of the read calls.
struct ReadOptions {
    output: Output,
    progress: Option<js_sys::Function>,
    signal: Option<AbortSignal>,
}

fn read_options(options: Option<JsValue>) -> SdkResult<ReadOptions> {
    let o = Options::optional(options, "read options")?;
    Ok(ReadOptions {
        output: Output::parse(o.optional_string("as")?.as_deref())?,
        progress: o.optional_function("onProgress")?,
        signal: signal_option(&o)?,
    })
}

fn signal_option(o: &Options) -> SdkResult<Option<AbortSignal>> {
    let value = o.raw("signal");
    if value.is_undefined() || value.is_null() {
        return Ok(None);
    }
    value.dyn_into::<AbortSignal>().map(Some).map_err(|_| SdkError::invalid("signal must be an AbortSignal"))
}

fn mime_of(manifest: &Manifest) -> Option<String> {
    let meta: serde_json::Value = serde_json::from_str(manifest.metadata()).ok()?;
    meta.get("type")?.as_str().map(str::to_owned)
}

/// Reads a parsed manifest into `{ data, stat }`.
async fn read_into(
    session: Rc<Session>,
    manifest: Manifest,
    stat: JsValue,
    options: ReadOptions,
) -> SdkResult<JsValue> {
    let mime = mime_of(&manifest);
    let data = read::read(session, manifest, options.output, mime, options.progress, options.signal).await?;
    Ok(object(&[("data", data), ("stat", stat)]))
}

fn file_params(o: &Options) -> SdkResult<FileParams> {
    let defaults = FileParams::default();
    let small = |name: &str, default: u8| -> SdkResult<u8> {
        match o.optional_number(name)? {
            None => Ok(default),
            Some(n) if n <= 255.0 => Ok(n as u8),
            Some(_) => Err(SdkError::invalid(format!("{name} is out of range"))),
        }
    };
    let params = FileParams {
        chunk_size: match o.optional_number("chunkSize")? {
            None => defaults.chunk_size,
            Some(n) if n <= f64::from(u32::MAX) => n as u32,
            Some(_) => return Err(SdkError::invalid("chunkSize is out of range")),
        },
        data_shards: small("dataShards", defaults.data_shards)?,
        parity_shards: small("parityShards", defaults.parity_shards)?,
    };
    params.check().map_err(|e| SdkError::invalid(format!("{e}")))?;
    Ok(params)
}

#[wasm_bindgen]
impl Storage {
    /// Writes a file into a space; resolves to `{ stat, manifest }`.
    #[wasm_bindgen(skip_typescript, js_name = writeFile)]
    pub fn write_file(&self, options: JsValue) -> Promise {
        let parsed = (|| {
            let o = Options::new(&options, "writeFile options")?;
            let space_id = o.string("spaceId")?;
            space_path(&space_id)?;
            let source = Source::from_js(&o.raw("data"))?;
            let metadata_value = o.raw("metadata");
            let metadata_value = if metadata_value.is_undefined() { source.default_metadata() } else { metadata_value };
            let metadata = json::stringify(&metadata_value)?;
            Ok::<_, SdkError>((
                space_id,
                source,
                metadata,
                file_params(&o)?,
                o.optional_function("onProgress")?,
                signal_option(&o)?,
            ))
        })();
        let (space_id, source, metadata, params, progress, signal) = match parsed {
            Ok(p) => p,
            Err(e) => return rejected(e),
        };
        let session = Rc::clone(&self.session);
        // Not `call`: a failure after the commit rejects with an error that also
        // carries the result.
        future_to_promise(async move {
            session.user()?;
            let space_key = keyring::require(&session, &space_id).await?;
            let job = WriteJob { space_id, space_key, source, metadata: metadata.clone(), params, progress, signal };
            let written = write::write(&session, job).await?;
            let manifest = parse_manifest(&written.manifest)?;
            let stat = entry_stat(&written.entry, &manifest)?;
            let record = SharedFile {
                space_id: written.entry.space_id.clone(),
                file_id: written.entry.file_id.clone(),
                manifest: written.manifest.clone(),
                size: written.size,
                metadata,
                created_at: written.entry.created_at_ms,
            };
            let result = object(&[("stat", stat), ("manifest", written.manifest.as_str().into())]);
            if let Err(e) = shared::record(&session, &record).await {
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
        })
    }

    /// Reads a file of a space you are a member of; resolves to `{ data, stat }`.
    #[wasm_bindgen(skip_typescript, js_name = readFile)]
    pub fn read_file(&self, space_id: JsValue, id: JsValue, options: Option<JsValue>) -> Promise {
        let parsed = (|| {
            let space_id = string_arg(&space_id, "spaceId")?;
            let file_id = file_id_arg(&id)?;
            let path = format!("{}/files/{file_id}", space_path(&space_id)?);
            Ok::<_, SdkError>((space_id, file_id, path, read_options(options)?))
        })();
        call(&self.session, parsed, move |session, (space_id, file_id, path, options)| async move {
            session.user()?;
            let entry: FileEntry = session.http.get(&path).await?;
            let key = keyring::require(&session, &space_id).await?;
            let manifest = parse_manifest(&space::open_file_entry(&key, &space_id, &file_id, &entry)?)?;
            let stat = entry_stat(&entry, &manifest)?;
            read_into(session, manifest, stat, options).await
        })
    }

    /// Reads a file from its manifest alone — no sign-in, no membership.
    #[wasm_bindgen(skip_typescript, js_name = readByManifest)]
    pub fn read_by_manifest(&self, manifest: JsValue, options: Option<JsValue>) -> Promise {
        let parsed = (|| {
            let text = string_arg(&manifest, "manifest")?;
            Ok::<_, SdkError>((parse_manifest(text.trim())?, read_options(options)?))
        })();
        call(&self.session, parsed, move |session, (manifest, options)| async move {
            let stat = stat_object(None, None, manifest.size(), manifest.metadata(), &[])?;
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
            Options::optional(options, "listFiles options").and_then(|o| o.optional_string("spaceId")),
            move |session, space_id| async move {
                session.user()?;
                let listing = Listing::default();
                match space_id {
                    None => {
                        for file in shared::all(&session, &listing).await? {
                            let stat = stat_object(
                                Some(&file.file_id),
                                Some(&file.space_id),
                                file.size,
                                &file.metadata,
                                &[("createdAt", number(file.created_at)), ("manifest", file.manifest.as_str().into())],
                            );
                            listing.add(&file.file_id, stat)?;
                        }
                    }
                    Some(space_id) => {
                        let path = format!("{}/files", space_path(&space_id)?);
                        let key = keyring::require(&session, &space_id).await?;
                        let mut pages = PageWalk::default();
                        while let Some(after) = pages.next_after() {
                            let answer: FileListResponse<Listed<FileEntry>> =
                                session.http.get(&page_path(&path, after)).await?;
                            pages.answered(answer.files.len(), answer.next)?;
                            for entry in answer.files.into_iter().filter_map(|listed| listing.well_formed(listed)) {
                                listing.add(&entry.file_id, listed_stat(&key, &space_id, &entry))?;
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
    let refs: Array = manifest
        .entries()
        .map(|(pos, chunk_ref)| {
            let (kind, level, index) = match pos {
                coffer_core::chunk::ChunkPos::Data(index) => ("data", 0, index),
                coffer_core::chunk::ChunkPos::Table { level, index } => ("table", level, index),
            };
            let shards: Array = chunk_ref.shards.iter().map(|a| JsValue::from(a.to_hex())).collect();
            object(&[
                ("kind", kind.into()),
                ("level", level.into()),
                ("index", number(index)),
                ("shards", shards.into()),
            ])
        })
        .collect();
    Ok(object(&[
        ("size", number(manifest.size())),
        ("chunkSize", params.chunk_size.into()),
        ("dataShards", params.data_shards.into()),
        ("parityShards", params.parity_shards.into()),
        ("chunkCount", number(manifest.chunk_count())),
        ("depth", manifest.depth().into()),
        ("refs", refs.into()),
    ]))
}
