//! Writing a file: read a slice, seal it under a fresh key, cut it into shards,
//! upload them — a few chunks in flight at once — then commit the sealed manifest.
//! Only the chunks in flight are ever in memory, whatever the file's size.

use coffer_core::chunk::{ChunkKey, ChunkPos};
use coffer_core::manifest::{ChunkRef, FileParams, Finish, ManifestBuilder, TableNode};
use coffer_core::proto::storage::{CommitFileRequest, FileEntry};
use coffer_core::shard::ShardAddress;
use coffer_core::space::{self, SpaceKey};
use coffer_core::{ErrorCode, b64, pipeline};
use futures_util::{StreamExt, stream};
use js_sys::{Function, Uint8Array};
use web_sys::AbortSignal;

use super::cipher::{self, Engine};
use super::shards;
use super::source::Source;
use crate::client::Inner;
use crate::error::{SdkError, SdkResult};
use crate::js::report_progress;
use crate::spaces::space_path;
use crate::{random, timer};

/// Chunks sealed and uploading at once: enough to keep the network and the cipher
/// busy together, few enough that wasm memory stays bounded (≈ 10 MiB per 4 MiB chunk).
const IN_FLIGHT: usize = 3;

/// One `writeFile` call, checked.
pub struct WriteJob {
    /// The space it goes into.
    pub space_id: String,
    /// That space's key (seals the file record).
    pub space_key: SpaceKey,
    /// The bytes.
    pub source: Source,
    /// Metadata JSON text (at most 256 bytes).
    pub metadata: String,
    /// Chunk size and shard counts.
    pub params: FileParams,
    /// `onProgress(doneBytes, totalBytes)`.
    pub progress: Option<Function>,
    /// Cancels the write.
    pub signal: Option<AbortSignal>,
}

/// What a finished write produced.
pub struct Written {
    /// The committed record.
    pub entry: FileEntry,
    /// The read capability.
    pub manifest: String,
    /// Plaintext bytes.
    pub size: u64,
}

fn check_abort(signal: Option<&AbortSignal>) -> SdkResult<()> {
    if signal.is_some_and(AbortSignal::aborted) { Err(SdkError::aborted()) } else { Ok(()) }
}

/// Seals, erasure-codes and uploads one chunk or table node; returns its ref.
async fn store(
    inner: &Inner,
    engine: Engine,
    params: FileParams,
    signal: Option<&AbortSignal>,
    pos: ChunkPos,
    plaintext: Uint8Array,
) -> SdkResult<ChunkRef> {
    check_abort(signal)?;
    let key = ChunkKey::from_bytes(random::bytes());
    let sealed = cipher::seal(engine, &key, pos, &plaintext).await?;
    drop(plaintext);
    timer::yield_now().await;
    let encoded = pipeline::encode_sealed(key, &sealed, params)?;
    drop(sealed);
    shards::upload(&inner.http, &encoded.chunk_ref.shards, &encoded.shards, signal).await?;
    Ok(encoded.chunk_ref)
}

/// Stores table nodes the builder hands out until it has none pending.
async fn store_tables(
    inner: &Inner,
    engine: Engine,
    builder: &mut ManifestBuilder,
    mut node: Option<TableNode>,
    signal: Option<&AbortSignal>,
    addresses: &mut Vec<ShardAddress>,
) -> SdkResult<()> {
    while let Some(TableNode { pos, plaintext }) = node {
        let chunk_ref = store(inner, engine, builder.params(), signal, pos, Uint8Array::from(&plaintext[..])).await?;
        addresses.extend_from_slice(&chunk_ref.shards);
        node = builder.table_stored(chunk_ref)?;
    }
    Ok(())
}

/// Writes and commits a file.
pub async fn write(inner: &Inner, job: WriteJob) -> SdkResult<Written> {
    let WriteJob { space_id, space_key, source, metadata, params, progress, signal } = job;
    let signal = signal.as_ref();
    let engine = Engine::best();
    let size = source.size();
    let mut builder = ManifestBuilder::new(params, size, &metadata, random::bytes())?;
    let count = builder.chunk_count();
    let chunk = u64::from(params.chunk_size);
    let mut addresses = Vec::with_capacity((count as usize).saturating_mul(params.total_shards()));

    let source = &source;
    let mut chunks = stream::iter(0..count)
        .map(|index| async move {
            let start = index * chunk;
            let end = (start + chunk).min(size);
            check_abort(signal)?;
            let plaintext = source.read(start, end).await?;
            let chunk_ref = store(inner, engine, params, signal, ChunkPos::Data(index), plaintext).await?;
            Ok::<_, SdkError>((chunk_ref, end - start))
        })
        .buffered(IN_FLIGHT);

    let mut done = 0u64;
    report_progress(progress.as_ref(), 0, size);
    while let Some(result) = chunks.next().await {
        let (chunk_ref, len) = result?;
        addresses.extend_from_slice(&chunk_ref.shards);
        let node = builder.push_chunk(chunk_ref)?;
        store_tables(inner, engine, &mut builder, node, signal, &mut addresses).await?;
        done += len;
        report_progress(progress.as_ref(), done, size);
    }
    drop(chunks);
    let manifest = loop {
        match builder.finish()? {
            Finish::Manifest(text) => break text,
            Finish::StoreTable(node) => {
                store_tables(inner, engine, &mut builder, Some(node), signal, &mut addresses).await?
            }
        }
    };

    check_abort(signal)?;
    let file_id = b64::encode(random::bytes::<16>());
    let sealed = space::seal_file_record(&space_key, &space_id, &file_id, &manifest, random::bytes())?;
    let request = CommitFileRequest {
        file_id,
        sealed_record: b64::encode(sealed),
        shards: addresses,
        size,
        chunk_size: params.chunk_size,
        data_shards: params.data_shards,
        parity_shards: params.parity_shards,
    };
    let entry = commit(inner, &space_id, &request).await?;
    // The entry's ids are what the shared-files list records: they must be this file's.
    entry.check_is(&space_id, &request.file_id)?;
    Ok(Written { entry, manifest, size })
}

/// Commits, retried like a shard upload (an accelerator that went down mid-request,
/// a proxy's 502). A commit is named by its random file id, so a retry whose first
/// attempt went through is refused with `Conflict`: if the file under that id holds
/// this very sealed record, that first attempt is the answer.
async fn commit(inner: &Inner, space_id: &str, request: &CommitFileRequest) -> SdkResult<FileEntry> {
    let path = format!("{}/files", space_path(space_id)?);
    let attempted = std::cell::Cell::new(false);
    shards::with_retry(None, || async {
        let retry = attempted.replace(true);
        match inner.http.post::<_, FileEntry>(&path, request).await {
            Err(e) if retry && e.code == ErrorCode::Conflict => {
                let earlier: FileEntry =
                    inner.http.get(&format!("{path}/{}", request.file_id)).await.map_err(|_| e.clone())?;
                if earlier.sealed_record == request.sealed_record { Ok(earlier) } else { Err(e) }
            }
            answer => answer,
        }
    })
    .await
}
