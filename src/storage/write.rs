//! Writing a file: the core's [`ChunkWriter`] says what to store in what order; each
//! chunk is read, sealed under a fresh key, cut into shards and uploaded — on a
//! worker where the page has them ([`pool`](super::pool)), a few chunks in flight at
//! once — then the sealed manifest is committed. Only the chunks in flight are ever
//! in memory, whatever the file's size.

use std::collections::HashMap;
use std::rc::Rc;

use coffer_core::chunk::ChunkPos;
use coffer_core::manifest::{ChunkRef, FileParams};
use coffer_core::pipeline::{ChunkWriter, Put, Stored};
use coffer_core::proto::storage::{CommitFileRequest, FileEntry};
use coffer_core::space;
use coffer_core::{ErrorCode, b64};
use futures_util::StreamExt;
use futures_util::stream::FuturesOrdered;
use js_sys::Function;
use web_sys::AbortSignal;

use super::chunk::StoreChunk;
use super::pool;
use super::resume::Recorder;
use super::shards::{self, check_abort};
use super::source::{Part, Source};
use crate::error::{SdkError, SdkResult};
use crate::js::report_progress;
use crate::random;
use crate::session::Session;
use crate::spaces::space_path;
use crate::{keyring, rotation};

/// Chunks sealed and uploading at once: enough to keep the network and every worker
/// busy, few enough that memory stays bounded (≈ 10 MiB per 4 MiB chunk).
const IN_FLIGHT: usize = 4;

/// One `writeFile` call, checked.
pub struct WriteJob {
    /// The space it goes into.
    pub space_id: String,
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
    /// Data chunks already stored by an earlier attempt (a resumed upload), by
    /// index: taken as they are, not read again.
    pub held: HashMap<u64, ChunkRef>,
    /// Records each data chunk stored, for a resumable upload.
    pub recorder: Option<Rc<Recorder>>,
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

/// Stores every chunk and table node the writer asks for; returns the manifest and
/// the shards to commit.
async fn store_all(session: &Session, job: &WriteJob) -> SdkResult<Stored> {
    let (http, signal, params) = (&session.http, job.signal.as_ref(), job.params);
    let size = job.source.size();
    let mut writer = ChunkWriter::new(params, size, &job.metadata, random::bytes())?;
    let mut in_flight = FuturesOrdered::new();
    let mut done = 0u64;
    report_progress(job.progress.as_ref(), 0, size);
    loop {
        let step = if in_flight.len() < IN_FLIGHT { writer.next_step()? } else { Put::Wait };
        match step {
            Put::Data { index, start, end } => {
                check_abort(signal)?;
                let held = job.held.get(&index).cloned();
                let chunk = StoreChunk { pos: ChunkPos::Data(index), params, part: job.source.part(start, end)? };
                in_flight.push_back(async move {
                    let chunk_ref = match held {
                        Some(chunk_ref) => chunk_ref,
                        None => {
                            let chunk_ref = pool::store(http, chunk, signal).await?;
                            if let Some(recorder) = &job.recorder {
                                recorder.chunk_done(index, &chunk_ref).await;
                            }
                            chunk_ref
                        }
                    };
                    Ok::<_, SdkError>((index, end - start, chunk_ref))
                });
            }
            Put::Table(node) => {
                let chunk = StoreChunk { pos: node.pos, params, part: Part::from_vec(&node.plaintext) };
                writer.table_stored(pool::store(http, chunk, signal).await?)?;
            }
            Put::Wait => {
                let (index, len, chunk_ref) = in_flight
                    .next()
                    .await
                    .ok_or_else(|| SdkError::new(ErrorCode::Internal, "the writer waited with nothing in flight"))??;
                writer.data_stored(index, chunk_ref)?;
                done += len;
                report_progress(job.progress.as_ref(), done, size);
            }
            Put::Done(stored) => return Ok(stored),
        }
    }
}

/// Writes and commits a file, its record sealed under the space's newest key. The
/// accelerator refuses a record under a key that is no longer current, or while a
/// member's departure awaits a new key (`Conflict`, SPEC.md F.12): then the key is
/// brought up to date and the record sealed again, once; the shards stay as stored.
pub async fn write(session: &Session, job: WriteJob) -> SdkResult<Written> {
    let Stored { manifest, shards } = store_all(session, &job).await?;
    let WriteJob { space_id, source, params, signal, .. } = job;
    let size = source.size();
    let file_id = b64::encode(random::bytes::<16>());
    let mut settled = false;
    let mut request = CommitFileRequest {
        file_id,
        sealed_record: String::new(),
        shards,
        size,
        chunk_size: params.chunk_size,
        data_shards: params.data_shards,
        parity_shards: params.parity_shards,
        epoch: 0,
    };
    loop {
        check_abort(signal.as_ref())?;
        let (epoch, key) = keyring::newest(session, &space_id).await?;
        let sealed = space::seal_file_record(&key, &space_id, &request.file_id, &manifest, random::bytes())?;
        request.sealed_record = b64::encode(sealed);
        request.epoch = epoch;
        match commit(session, &space_id, &request).await {
            Ok(entry) => {
                // The entry's ids are what the shared-files list records: they must be
                // this file's.
                entry.check_is(&space_id, &request.file_id)?;
                return Ok(Written { entry, manifest, size });
            }
            Err(e) if e.code == ErrorCode::Conflict && !settled => {
                settled = true;
                if !rotation::settle(session, &space_id).await? {
                    return Err(e);
                }
            }
            Err(e) => return Err(e),
        }
    }
}

/// Commits, retried like a shard upload (an accelerator that went down mid-request,
/// a proxy's 502). A commit is named by its random file id, so a retry whose first
/// attempt went through is refused with `Conflict`: if the file under that id holds
/// this very sealed record, that first attempt is the answer.
async fn commit(session: &Session, space_id: &str, request: &CommitFileRequest) -> SdkResult<FileEntry> {
    let path = format!("{}/files", space_path(space_id)?);
    let attempted = std::cell::Cell::new(false);
    shards::with_retry(None, || async {
        let retry = attempted.replace(true);
        match session.http.post::<_, FileEntry>(&path, request).await {
            Err(e) if retry && e.code == ErrorCode::Conflict => {
                let earlier: FileEntry =
                    session.http.get(&format!("{path}/{}", request.file_id)).await.map_err(|_| e.clone())?;
                if earlier.sealed_record == request.sealed_record { Ok(earlier) } else { Err(e) }
            }
            answer => answer,
        }
    })
    .await
}
