//! The file manifest and its chunk table (SPEC.md, "Manifest", "Chunk table").
//!
//! A manifest is the capability to read a file: `coffer1:` + base64url of
//!
//! ```text
//! version 1 ‖ manifest key (32) ‖ AES-256-GCM(manifest key, zero nonce, body)
//! body = chunk_size u32 ‖ data_shards u8 ‖ parity_shards u8 ‖ size u64 ‖ depth u8
//!        ‖ ref_count u16 ‖ ref_count × chunk ref ‖ lp(metadata JSON)
//! chunk ref = chunk key (32) ‖ (data_shards + parity_shards) × shard address (32)
//! ```
//!
//! Everything but the version and the manifest key is sealed, so the file's metadata
//! (its name, its type) cannot be read off the string without opening it, and a
//! manifest altered or cut short in transit fails with [`ManifestError::Tampered`]
//! instead of sending the reader after the wrong shards. The seal is not a signature:
//! whoever holds a manifest can read the file and can make another manifest.
//!
//! **Small files** list their chunk refs in the manifest (`depth` 0). **Large files**
//! list them in a *chunk table*: a tree of table nodes, each at most one chunk long,
//! each sealed with its own key and erasure-coded like a chunk; the manifest lists the
//! refs of the top level (`depth` ≥ 1). So a manifest stays under
//! [`MAX_MANIFEST_LEN`] characters for any file size, and neither writer nor reader
//! ever holds more than one table node per level.
//!
//! Writing: [`ManifestBuilder`]. Reading: [`Manifest::parse`], then
//! [`ChunkTable::parse`] for each table node opened.
//!
//! A manifest is untrusted input: its length is checked before it is decoded, every
//! count is checked against the sizes it implies, and nothing is allocated beyond
//! what the (at most 1 KiB) text holds.

use zeroize::Zeroizing;

use crate::b64;
use crate::chunk::{CHUNK_KEY_LEN, CHUNK_OVERHEAD, ChunkKey, ChunkPos};
use crate::erasure;
use crate::primitives::{NONCE_LEN, TAG_LEN, open, push_lp, seal};
use crate::shard::{ADDRESS_LEN, ShardAddress};
use crate::{Coded, ErrorCode};

/// The manifest format version this SDK writes and reads.
pub const MANIFEST_VERSION: u8 = 1;
/// What every manifest starts with: `"coffer"`, its version, `':'`.
pub const MANIFEST_PREFIX: &str = "coffer1:";
/// Longest manifest text, in characters (bytes): under 1 KiB.
pub const MAX_MANIFEST_LEN: usize = 1023;
/// Longest metadata, as JSON text in UTF-8 bytes. Chosen so that a manifest with
/// the largest chunk ref ([`MAX_DATA_SHARDS`](erasure::MAX_DATA_SHARDS) +
/// [`MAX_PARITY_SHARDS`](erasure::MAX_PARITY_SHARDS) shards) and this much
/// metadata stays under [`MAX_MANIFEST_LEN`].
pub const MAX_METADATA_BYTES: usize = 256;
/// Bytes in a manifest key.
pub const MANIFEST_KEY_LEN: usize = 32;
/// Domain prefix of the manifest seal's AAD (followed by the version byte).
pub const LABEL_MANIFEST: &[u8] = b"coffer/v1/manifest";
/// The manifest seal's nonce: zero, because a manifest key is drawn fresh for one
/// manifest and seals nothing else (the argument of [`crate::chunk::CHUNK_NONCE`]).
pub const MANIFEST_NONCE: [u8; NONCE_LEN] = [0; NONCE_LEN];
/// First byte of a chunk-table node's plaintext.
pub const TABLE_VERSION: u8 = 1;
/// Default chunk size: 4 MiB.
pub const DEFAULT_CHUNK_SIZE: u32 = 4 * 1024 * 1024;
/// Smallest chunk size: 1 KiB (tests use small chunks; real files should not).
pub const MIN_CHUNK_SIZE: u32 = 1024;
/// Largest chunk size: 16 MiB, which bounds what a reader allocates per chunk.
pub const MAX_CHUNK_SIZE: u32 = 16 * 1024 * 1024;
/// Largest file: 2⁵³ − 1 bytes, the largest size a JavaScript number holds exactly.
pub const MAX_FILE_SIZE: u64 = (1 << 53) - 1;

/// Fixed part of the body: chunk_size, shards, size, depth, ref_count, metadata length.
const BODY_FIXED_LEN: usize = 4 + 1 + 1 + 8 + 1 + 2 + 4;
/// Version, manifest key, tag.
const SEAL_FIXED_LEN: usize = 1 + MANIFEST_KEY_LEN + TAG_LEN;

/// Why a manifest or chunk table could not be made or read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ManifestError {
    /// A manifest (`coffer<N>:`) or table node of a version this SDK does not know.
    #[error("this file's manifest has format version {0}, which this SDK does not know; update the SDK")]
    UnknownVersion(u32),
    /// Not a manifest: wrong prefix, or longer than any manifest.
    #[error("not a Coffer file manifest (expected text starting with \"coffer1:\", at most 1023 characters)")]
    Malformed,
    /// The manifest did not authenticate: altered or truncated.
    #[error("the file manifest failed its integrity check: it was altered or cut short; ask for the link again")]
    Tampered,
    /// An authentic manifest whose contents are inconsistent (counts that do not
    /// match its size, a depth that cannot be), or a table node that does not match
    /// its manifest.
    #[error("the file manifest or its chunk table is inconsistent; the file cannot be read")]
    Inconsistent,
    /// File parameters outside their bounds.
    #[error(
        "chunk size must be {MIN_CHUNK_SIZE}–{MAX_CHUNK_SIZE} bytes and shards 1–8 data + 1–4 parity, not {chunk_size} bytes, {data_shards} + {parity_shards}"
    )]
    Params {
        /// Chunk size asked for.
        chunk_size: u32,
        /// Data shards asked for.
        data_shards: u8,
        /// Parity shards asked for.
        parity_shards: u8,
    },
    /// A file larger than [`MAX_FILE_SIZE`].
    #[error("the file is {size} bytes; the limit is {max} bytes")]
    FileTooLarge {
        /// Its size.
        size: u64,
        /// The limit.
        max: u64,
    },
    /// Metadata longer than [`MAX_METADATA_BYTES`].
    #[error("file metadata is {len} bytes as JSON; the limit is {max} bytes — keep it to a name and a type")]
    MetadataTooLarge {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Metadata that is not JSON text.
    #[error("file metadata must be JSON")]
    MetadataNotJson,
    /// A chunk ref with the wrong number of shard addresses.
    #[error("a chunk ref must list {expected} shard addresses, not {got}")]
    ShardCount {
        /// `data_shards + parity_shards`.
        expected: usize,
        /// Addresses given.
        got: usize,
    },
    /// The builder was given more or fewer chunks than the file size implies.
    #[error("a {expected}-chunk file was given {got} chunks")]
    ChunkCount {
        /// Chunks the size implies.
        expected: u64,
        /// Chunks given.
        got: u64,
    },
    /// The builder was called out of order (see [`ManifestBuilder`]).
    #[error("manifest builder misuse: {0}")]
    Sequence(&'static str),
    /// A position that is not part of this file.
    #[error("no such chunk or table node in this file")]
    NoSuchPosition,
    /// A read that starts past the end of the file.
    #[error("offset {offset} is past the end of this {size}-byte file")]
    OffsetPastEnd {
        /// Where the read was to start.
        offset: u64,
        /// The file's size.
        size: u64,
    },
}

impl Coded for ManifestError {
    /// The stable code for this failure.
    fn code(&self) -> ErrorCode {
        match self {
            ManifestError::Tampered | ManifestError::Inconsistent => ErrorCode::Integrity,
            ManifestError::FileTooLarge { .. } | ManifestError::MetadataTooLarge { .. } => ErrorCode::TooLarge,
            _ => ErrorCode::InvalidInput,
        }
    }
}

/// How a file is cut and coded; chosen per write, recorded in its manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileParams {
    /// Plaintext bytes per chunk (the last chunk may be shorter),
    /// [`MIN_CHUNK_SIZE`]–[`MAX_CHUNK_SIZE`].
    pub chunk_size: u32,
    /// Data shards per sealed chunk, 1–8: any this many shards rebuild the chunk.
    pub data_shards: u8,
    /// Parity shards per sealed chunk, 1–4: this many may be lost or corrupted.
    pub parity_shards: u8,
}

impl Default for FileParams {
    /// 4 MiB chunks, 4 data + 2 parity shards (1.5× storage, any 2 of 6 may be lost).
    fn default() -> Self {
        FileParams { chunk_size: DEFAULT_CHUNK_SIZE, data_shards: 4, parity_shards: 2 }
    }
}

impl FileParams {
    /// Refuses parameters outside the bounds.
    pub fn check(&self) -> Result<(), ManifestError> {
        let size_ok = (MIN_CHUNK_SIZE..=MAX_CHUNK_SIZE).contains(&self.chunk_size);
        if size_ok && erasure::check_shape(self.data(), self.parity()).is_ok() {
            Ok(())
        } else {
            Err(ManifestError::Params {
                chunk_size: self.chunk_size,
                data_shards: self.data_shards,
                parity_shards: self.parity_shards,
            })
        }
    }

    /// Data shards, as the erasure module counts them.
    pub fn data(&self) -> usize {
        usize::from(self.data_shards)
    }

    /// Parity shards, as the erasure module counts them.
    pub fn parity(&self) -> usize {
        usize::from(self.parity_shards)
    }

    /// Shards per sealed chunk.
    pub fn total_shards(&self) -> usize {
        self.data() + self.parity()
    }

    /// Bytes in one encoded chunk ref: key and one address per shard.
    pub fn ref_len(&self) -> usize {
        CHUNK_KEY_LEN + ADDRESS_LEN * self.total_shards()
    }

    /// Refs per chunk-table node: as many as fit in one chunk after the version
    /// byte, and at least 2 (so the tree shrinks at every level).
    pub fn fanout(&self) -> u64 {
        let fit = (self.chunk_size as usize).saturating_sub(1) / self.ref_len();
        fit.max(2) as u64
    }

    /// Chunks in a file of `size` bytes: ⌈size / chunk_size⌉ (0 for an empty file).
    pub fn chunk_count(&self, size: u64) -> u64 {
        size.div_ceil(u64::from(self.chunk_size.max(1)))
    }

    /// The most shards, and shard bytes, a file of `size` bytes written with these
    /// parameters can need: every data chunk and every chunk-table node up to a
    /// single root (a writer that puts the top level inline needs fewer), each as
    /// `data + parity` shards of a full chunk's sealed length. The accelerator holds
    /// a commit to it (SPEC.md F.5), so a file cannot pin more than its declared
    /// size needs.
    pub fn shard_bound(&self, size: u64) -> ShardBound {
        let shape = Shape { params: *self, size };
        let (mut pieces, mut level) = (0u64, 0u8);
        loop {
            let count = shape.count(level);
            pieces = pieces.saturating_add(count);
            if count <= 1 || level == u8::MAX {
                break;
            }
            level += 1;
        }
        let shards = pieces.saturating_mul(self.total_shards() as u64);
        let shard_len =
            (u64::from(self.chunk_size) + CHUNK_OVERHEAD as u64).div_ceil(u64::from(self.data_shards.max(1)));
        ShardBound { shards, bytes: shards.saturating_mul(shard_len) }
    }
}

/// What a file can need on the accelerator at most ([`FileParams::shard_bound`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShardBound {
    /// Distinct shards.
    pub shards: u64,
    /// Their bytes in all.
    pub bytes: u64,
}

/// Where one sealed chunk (or table node) lives: its key and its shards' addresses,
/// data shards first, then parity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkRef {
    /// The key it was sealed under.
    pub key: ChunkKey,
    /// `data_shards + parity_shards` addresses, in shard order.
    pub shards: Vec<ShardAddress>,
}

impl ChunkRef {
    /// Its binary form, as a chunk-table node lists it: key ‖ addresses.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(CHUNK_KEY_LEN + ADDRESS_LEN * self.shards.len());
        self.write(&mut out);
        out
    }

    /// Decodes the binary form of a ref written with `params`.
    pub fn from_bytes(bytes: &[u8], params: FileParams) -> Result<ChunkRef, ManifestError> {
        if bytes.len() != params.ref_len() {
            return Err(ManifestError::Inconsistent);
        }
        Ok(ChunkRef::read(bytes))
    }

    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.key.as_bytes());
        for address in &self.shards {
            out.extend_from_slice(address.as_bytes());
        }
    }

    /// Decodes one ref of exactly `params.ref_len()` bytes.
    fn read(bytes: &[u8]) -> ChunkRef {
        let (key, rest) = bytes.split_at(CHUNK_KEY_LEN);
        let key = ChunkKey::from_bytes(key.try_into().expect("split at CHUNK_KEY_LEN"));
        let shards = rest
            .chunks_exact(ADDRESS_LEN)
            .map(|a| ShardAddress::from_bytes(a.try_into().expect("chunks of ADDRESS_LEN")))
            .collect();
        ChunkRef { key, shards }
    }
}

/// The shape of a file's chunk tree, from its parameters and size alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Shape {
    params: FileParams,
    size: u64,
}

impl Shape {
    /// Refs at `level`: level 0 counts data chunks, level L ≥ 1 counts table nodes.
    fn count(&self, level: u8) -> u64 {
        let mut count = self.params.chunk_count(self.size);
        for _ in 0..level {
            count = count.div_ceil(self.params.fanout());
        }
        count
    }

    /// Plaintext bytes at `pos`, or `None` if the file has no such chunk or node.
    fn plain_len(&self, pos: ChunkPos) -> Option<usize> {
        match pos {
            ChunkPos::Data(index) => {
                let chunk = u64::from(self.params.chunk_size);
                let start = index.checked_mul(chunk).filter(|&s| s < self.size)?;
                Some((self.size - start).min(chunk) as usize)
            }
            ChunkPos::Table { level, index } => {
                let entries = self.node_entries(level, index)?;
                Some(1 + entries as usize * self.params.ref_len())
            }
        }
    }

    /// Refs in table node `index` of `level` (≥ 1), or `None` if there is none.
    fn node_entries(&self, level: u8, index: u64) -> Option<u64> {
        if level == 0 || index >= self.count(level) {
            return None;
        }
        let below = self.count(level - 1);
        let start = index * self.params.fanout();
        Some((below - start).min(self.params.fanout()))
    }

    /// The data chunks under `pos`: itself, or every chunk its table node reaches.
    fn data_span(&self, pos: ChunkPos) -> std::ops::Range<u64> {
        let (level, index) = match pos {
            ChunkPos::Data(index) => (0, index),
            ChunkPos::Table { level, index } => (level, index),
        };
        let (mut start, mut end) = (index, index.saturating_add(1));
        for _ in 0..level {
            start = start.saturating_mul(self.params.fanout());
            end = end.saturating_mul(self.params.fanout());
        }
        let count = self.count(0);
        start.min(count)..end.min(count)
    }

    /// The position of entry `i` of the node at `pos`, or of the manifest (`None`).
    fn child(&self, parent: Option<(u8, u64)>, depth: u8, i: u64) -> ChunkPos {
        let (level, index) = match parent {
            Some((level, index)) => (level - 1, index * self.params.fanout() + i),
            None => (depth, i),
        };
        if level == 0 { ChunkPos::Data(index) } else { ChunkPos::Table { level, index } }
    }
}

fn check_metadata(metadata: &str) -> Result<(), ManifestError> {
    if metadata.len() > MAX_METADATA_BYTES {
        return Err(ManifestError::MetadataTooLarge { len: metadata.len(), max: MAX_METADATA_BYTES });
    }
    serde_json::from_str::<serde::de::IgnoredAny>(metadata).map_err(|_| ManifestError::MetadataNotJson)?;
    Ok(())
}

/// Characters of the manifest text holding `refs` refs of `ref_len` bytes and
/// `metadata_len` bytes of metadata.
fn text_len(refs: usize, ref_len: usize, metadata_len: usize) -> usize {
    let binary = SEAL_FIXED_LEN + BODY_FIXED_LEN + refs * ref_len + metadata_len;
    MANIFEST_PREFIX.len() + (4 * binary).div_ceil(3)
}

fn aad() -> Vec<u8> {
    [LABEL_MANIFEST, &[MANIFEST_VERSION]].concat()
}

/// A chunk-table node the writer must store before going on: seal `plaintext` with
/// a **fresh random** [`ChunkKey`] at `pos` ([`crate::chunk::seal_at`]), erasure-code
/// and upload it exactly like a data chunk, then hand its [`ChunkRef`] to
/// [`ManifestBuilder::table_stored`].
#[derive(Clone, PartialEq, Eq)]
pub struct TableNode {
    /// Its position (bound into its seal).
    pub pos: ChunkPos,
    /// `TABLE_VERSION ‖ refs`, at most one chunk long.
    pub plaintext: Vec<u8>,
}

/// What [`ManifestBuilder::finish`] asks for next.
#[derive(Clone, PartialEq, Eq)]
pub enum Finish {
    /// Store this table node, report it with [`ManifestBuilder::table_stored`], and
    /// call `finish` again.
    StoreTable(TableNode),
    /// Done: the manifest text.
    Manifest(String),
}

// Debug output never shows keys, metadata or the manifest text (a capability).
impl std::fmt::Debug for TableNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TableNode {{ pos: {:?}, plaintext: {} bytes }}", self.pos, self.plaintext.len())
    }
}

impl std::fmt::Debug for Finish {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Finish::StoreTable(node) => f.debug_tuple("StoreTable").field(node).finish(),
            Finish::Manifest(text) => write!(f, "Manifest(<{} characters>)", text.len()),
        }
    }
}

/// Builds a manifest while a file is written, holding at most one table node per
/// level (so memory stays bounded for any file size).
///
/// For each chunk in order, the writer seals it (fresh random key,
/// [`crate::chunk::seal_chunk`]), erasure-codes it, uploads the shards and calls
/// [`push_chunk`](Self::push_chunk). When a table node fills up, `push_chunk` (or
/// [`table_stored`](Self::table_stored)) returns it: the writer stores it like a chunk
/// and reports its ref with `table_stored`, which may return the next level's node in
/// turn. At the end, [`finish`](Self::finish) is called until it returns the manifest.
///
/// ```
/// use std::cell::Cell;
/// use coffer_core::chunk::{ChunkKey, ChunkPos, seal_at};
/// use coffer_core::erasure;
/// use coffer_core::manifest::{ChunkRef, FileParams, Finish, Manifest, ManifestBuilder, ManifestError, TableNode};
/// use coffer_core::shard::ShardAddress;
///
/// # fn main() -> Result<(), ManifestError> {
/// let params = FileParams { chunk_size: 1024, ..FileParams::default() };
/// let file = vec![7u8; 10_000];
/// // Stands in for a CSPRNG: every key must be drawn at random.
/// let counter = Cell::new(0u8);
/// let fresh_key = || {
///     counter.set(counter.get() + 1);
///     ChunkKey::from_bytes([counter.get(); 32])
/// };
/// // Stands in for uploading: seal under a fresh key, erasure-code, address the shards.
/// let store = |pos: ChunkPos, plaintext: &[u8]| -> ChunkRef {
///     let key = fresh_key();
///     let sealed = seal_at(&key, pos, plaintext);
///     let shards = erasure::encode(&sealed, params.data(), params.parity()).unwrap();
///     ChunkRef { key, shards: shards.iter().map(|s| ShardAddress::of(s)).collect() }
/// };
/// let store_tables = |b: &mut ManifestBuilder, mut node: Option<TableNode>| -> Result<(), ManifestError> {
///     while let Some(n) = node {
///         node = b.table_stored(store(n.pos, &n.plaintext))?;
///     }
///     Ok(())
/// };
///
/// let mut builder = ManifestBuilder::new(params, file.len() as u64, r#"{"name":"a.bin"}"#, [0xee; 32])?;
/// for (i, chunk) in file.chunks(params.chunk_size as usize).enumerate() {
///     let node = builder.push_chunk(store(ChunkPos::Data(i as u64), chunk))?;
///     store_tables(&mut builder, node)?;
/// }
/// let manifest = loop {
///     match builder.finish()? {
///         Finish::Manifest(text) => break text,
///         Finish::StoreTable(node) => store_tables(&mut builder, Some(node))?,
///     }
/// };
/// assert!(manifest.starts_with("coffer1:") && manifest.len() < 1024);
/// assert_eq!(Manifest::parse(&manifest)?.chunk_count(), 10);
/// # Ok(()) }
/// ```
pub struct ManifestBuilder {
    shape: Shape,
    metadata: String,
    manifest_key: Zeroizing<[u8; MANIFEST_KEY_LEN]>,
    /// `levels[L]`: refs at level L not yet in a table node (L = 0: data chunks).
    levels: Vec<Vec<ChunkRef>>,
    /// `made[L]`: table nodes made from level L so far (nodes of level L + 1).
    made: Vec<u64>,
    /// Data chunks pushed.
    chunks: u64,
    /// The table node handed out and not yet reported stored.
    awaiting: Option<ChunkPos>,
    /// `finish` has been called: no more chunks.
    finishing: bool,
    /// The manifest was returned.
    done: bool,
}

impl ManifestBuilder {
    /// Starts a manifest for a file of `size` bytes with `metadata` (JSON text, at
    /// most [`MAX_METADATA_BYTES`]); `manifest_key` must be 32 fresh random bytes.
    pub fn new(
        params: FileParams,
        size: u64,
        metadata: &str,
        manifest_key: [u8; MANIFEST_KEY_LEN],
    ) -> Result<Self, ManifestError> {
        params.check()?;
        if size > MAX_FILE_SIZE {
            return Err(ManifestError::FileTooLarge { size, max: MAX_FILE_SIZE });
        }
        check_metadata(metadata)?;
        Ok(ManifestBuilder {
            shape: Shape { params, size },
            metadata: metadata.to_owned(),
            manifest_key: Zeroizing::new(manifest_key),
            levels: vec![Vec::new()],
            made: vec![0],
            chunks: 0,
            awaiting: None,
            finishing: false,
            done: false,
        })
    }

    /// The parameters this file is written with.
    pub fn params(&self) -> FileParams {
        self.shape.params
    }

    /// Chunks the file has: how many times to call [`push_chunk`](Self::push_chunk).
    pub fn chunk_count(&self) -> u64 {
        self.shape.params.chunk_count(self.shape.size)
    }

    /// Plaintext bytes of data chunk `index` (the last chunk may be short).
    pub fn chunk_len(&self, index: u64) -> Option<usize> {
        self.shape.plain_len(ChunkPos::Data(index))
    }

    fn check_ref(&self, r: &ChunkRef) -> Result<(), ManifestError> {
        let expected = self.shape.params.total_shards();
        if r.shards.len() != expected {
            return Err(ManifestError::ShardCount { expected, got: r.shards.len() });
        }
        Ok(())
    }

    /// Adds the ref of the next data chunk (chunks in order, from 0). Returns a table
    /// node that must be stored and reported before anything else.
    pub fn push_chunk(&mut self, r: ChunkRef) -> Result<Option<TableNode>, ManifestError> {
        self.check_ref(&r)?;
        if self.awaiting.is_some() {
            return Err(ManifestError::Sequence("store the table node returned last, then call table_stored"));
        }
        if self.finishing {
            return Err(ManifestError::Sequence("push_chunk after finish was called"));
        }
        let expected = self.chunk_count();
        if self.chunks == expected {
            return Err(ManifestError::ChunkCount { expected, got: expected + 1 });
        }
        self.chunks += 1;
        self.levels[0].push(r);
        Ok(self.emit_if_full(0))
    }

    /// Reports where the table node last returned was stored. Returns the next
    /// table node to store, if that one filled a node of the level above.
    pub fn table_stored(&mut self, r: ChunkRef) -> Result<Option<TableNode>, ManifestError> {
        self.check_ref(&r)?;
        let Some(ChunkPos::Table { level, .. }) = self.awaiting.take() else {
            return Err(ManifestError::Sequence("table_stored without a table node to store"));
        };
        let level = usize::from(level);
        if self.levels.len() <= level {
            self.levels.push(Vec::new());
            self.made.push(0);
        }
        self.levels[level].push(r);
        Ok(self.emit_if_full(level))
    }

    fn emit_if_full(&mut self, level: usize) -> Option<TableNode> {
        if self.levels[level].len() as u64 == self.shape.params.fanout() { Some(self.emit(level)) } else { None }
    }

    fn emit(&mut self, level: usize) -> TableNode {
        let refs = std::mem::take(&mut self.levels[level]);
        let mut plaintext = Vec::with_capacity(1 + refs.len() * self.shape.params.ref_len());
        plaintext.push(TABLE_VERSION);
        refs.iter().for_each(|r| r.write(&mut plaintext));
        let level_above = u8::try_from(level + 1).expect("a tree with fanout ≥ 2 over < 2^64 chunks has < 64 levels");
        let pos = ChunkPos::Table { level: level_above, index: self.made[level] };
        self.made[level] += 1;
        self.awaiting = Some(pos);
        TableNode { pos, plaintext }
    }

    /// Finishes the file: returns table nodes still to store (one per call) and then
    /// the manifest text. Call once every chunk has been pushed.
    pub fn finish(&mut self) -> Result<Finish, ManifestError> {
        if self.awaiting.is_some() {
            return Err(ManifestError::Sequence("store the table node returned last, then call table_stored"));
        }
        if self.done {
            return Err(ManifestError::Sequence("the manifest is already finished"));
        }
        let expected = self.chunk_count();
        if self.chunks != expected {
            return Err(ManifestError::ChunkCount { expected, got: self.chunks });
        }
        self.finishing = true;
        let ref_len = self.shape.params.ref_len();
        for level in 0..self.levels.len() {
            let pending = self.levels[level].len();
            if self.made[level] == 0 {
                // Nothing above this level yet: it is the top, inline if it fits.
                if text_len(pending, ref_len, self.metadata.len()) <= MAX_MANIFEST_LEN {
                    self.done = true;
                    return Ok(Finish::Manifest(self.seal(level)));
                }
                return Ok(Finish::StoreTable(self.emit(level)));
            }
            if pending > 0 {
                return Ok(Finish::StoreTable(self.emit(level)));
            }
        }
        unreachable!("a level with nodes made from it has a level above it")
    }

    fn seal(&self, depth: usize) -> String {
        let refs = &self.levels[depth];
        let params = self.shape.params;
        let mut body = Vec::with_capacity(BODY_FIXED_LEN + refs.len() * params.ref_len() + self.metadata.len());
        body.extend_from_slice(&params.chunk_size.to_be_bytes());
        body.push(params.data_shards);
        body.push(params.parity_shards);
        body.extend_from_slice(&self.shape.size.to_be_bytes());
        body.push(u8::try_from(depth).expect("depth < 64"));
        body.extend_from_slice(&u16::try_from(refs.len()).expect("an inline level fits in 1 KiB").to_be_bytes());
        refs.iter().for_each(|r| r.write(&mut body));
        push_lp(&mut body, self.metadata.as_bytes());
        let body = Zeroizing::new(body);
        let mut binary = vec![MANIFEST_VERSION];
        binary.extend_from_slice(self.manifest_key.as_ref());
        binary.extend(seal(&self.manifest_key, &MANIFEST_NONCE, &aad(), &body));
        let text = format!("{MANIFEST_PREFIX}{}", b64::encode(binary));
        debug_assert!(text.len() <= MAX_MANIFEST_LEN);
        text
    }
}

/// A parsed, authenticated manifest: what a reader needs to plan and verify reads.
#[derive(Clone, PartialEq, Eq)]
pub struct Manifest {
    shape: Shape,
    depth: u8,
    refs: Vec<ChunkRef>,
    metadata: String,
}

impl std::fmt::Debug for Manifest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Manifest")
            .field("params", &self.shape.params)
            .field("size", &self.shape.size)
            .field("depth", &self.depth)
            .field("refs", &self.refs.len())
            .field("metadata", &format_args!("<{} bytes>", self.metadata.len()))
            .finish()
    }
}

/// Reads the `coffer<N>:` prefix; `Ok(rest)` for version 1.
fn strip_prefix(text: &str) -> Result<&str, ManifestError> {
    let rest = text.strip_prefix("coffer").ok_or(ManifestError::Malformed)?;
    let (digits, rest) = rest.split_once(':').ok_or(ManifestError::Malformed)?;
    // A version is a decimal number without leading zeros.
    let canonical =
        matches!(digits.as_bytes(), [b'1'..=b'9', rest @ ..] if rest.len() < 9 && rest.iter().all(u8::is_ascii_digit));
    if !canonical {
        return Err(ManifestError::Malformed);
    }
    let version: u32 = digits.parse().map_err(|_| ManifestError::Malformed)?;
    if version != u32::from(MANIFEST_VERSION) {
        return Err(ManifestError::UnknownVersion(version));
    }
    Ok(rest)
}

/// A cursor over authenticated body bytes; every read is bounds-checked.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], ManifestError> {
        if n > self.0.len() {
            return Err(ManifestError::Inconsistent);
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    fn u8(&mut self) -> Result<u8, ManifestError> {
        Ok(self.take(1)?[0])
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], ManifestError> {
        Ok(self.take(N)?.try_into().expect("took N"))
    }
}

impl Manifest {
    /// Parses and authenticates a manifest. Fails with
    /// [`UnknownVersion`](ManifestError::UnknownVersion) for another version,
    /// [`Malformed`](ManifestError::Malformed) for anything that is not a manifest,
    /// [`Tampered`](ManifestError::Tampered) if it does not authenticate and
    /// [`Inconsistent`](ManifestError::Inconsistent) if its contents contradict
    /// each other.
    pub fn parse(text: &str) -> Result<Manifest, ManifestError> {
        if text.len() > MAX_MANIFEST_LEN {
            // Checked first, so that an oversized input costs nothing.
            strip_prefix(text)?;
            return Err(ManifestError::Malformed);
        }
        // Past a good prefix, text that does not decode was damaged on its way here
        // (cut short, a character changed): the same failure as one that does not open.
        let binary = b64::decode(strip_prefix(text)?).ok_or(ManifestError::Tampered)?;
        let (&version, rest) = binary.split_first().ok_or(ManifestError::Malformed)?;
        if version != MANIFEST_VERSION {
            return Err(ManifestError::Malformed);
        }
        if rest.len() < MANIFEST_KEY_LEN + TAG_LEN {
            return Err(ManifestError::Tampered);
        }
        let (key, sealed) = rest.split_at(MANIFEST_KEY_LEN);
        let key: [u8; MANIFEST_KEY_LEN] = key.try_into().expect("split at MANIFEST_KEY_LEN");
        let key = Zeroizing::new(key);
        let body = Zeroizing::new(open(&key, &MANIFEST_NONCE, &aad(), sealed).ok_or(ManifestError::Tampered)?);
        Self::parse_body(&body)
    }

    fn parse_body(body: &[u8]) -> Result<Manifest, ManifestError> {
        let mut r = Reader(body);
        let params =
            FileParams { chunk_size: u32::from_be_bytes(r.array()?), data_shards: r.u8()?, parity_shards: r.u8()? };
        params.check().map_err(|_| ManifestError::Inconsistent)?;
        let size = u64::from_be_bytes(r.array()?);
        if size > MAX_FILE_SIZE {
            return Err(ManifestError::Inconsistent);
        }
        let shape = Shape { params, size };
        let depth = r.u8()?;
        let ref_count = u16::from_be_bytes(r.array()?);
        // A writer only goes up a level when the level below holds two refs or more.
        if u64::from(ref_count) != shape.count(depth) || (depth > 0 && shape.count(depth - 1) < 2) {
            return Err(ManifestError::Inconsistent);
        }
        let ref_bytes = r.take(usize::from(ref_count) * params.ref_len())?;
        let refs = ref_bytes.chunks_exact(params.ref_len()).map(ChunkRef::read).collect();
        let metadata_len = u32::from_be_bytes(r.array()?) as usize;
        let metadata = r.take(metadata_len)?;
        if !r.0.is_empty() {
            return Err(ManifestError::Inconsistent);
        }
        let metadata = std::str::from_utf8(metadata).map_err(|_| ManifestError::Inconsistent)?;
        check_metadata(metadata).map_err(|_| ManifestError::Inconsistent)?;
        Ok(Manifest { shape, depth, refs, metadata: metadata.to_owned() })
    }

    /// How the file was cut and coded.
    pub fn params(&self) -> FileParams {
        self.shape.params
    }

    /// The file's size in bytes.
    pub fn size(&self) -> u64 {
        self.shape.size
    }

    /// The file's data chunks: ⌈size / chunk_size⌉.
    pub fn chunk_count(&self) -> u64 {
        self.shape.params.chunk_count(self.shape.size)
    }

    /// The metadata JSON text the writer gave (e.g. `{"name":…,"type":…}`).
    pub fn metadata(&self) -> &str {
        &self.metadata
    }

    /// Levels of chunk table between the manifest and the data chunks (0: the
    /// manifest lists the data chunks itself).
    pub fn depth(&self) -> u8 {
        self.depth
    }

    /// The refs the manifest holds, each with its position: data chunks when
    /// [`depth`](Self::depth) is 0, else the top level's table nodes.
    pub fn entries(&self) -> impl Iterator<Item = (ChunkPos, &ChunkRef)> {
        self.refs.iter().enumerate().map(|(i, r)| (self.shape.child(None, self.depth, i as u64), r))
    }

    /// Plaintext bytes at `pos`; `None` if this file has no such chunk or node.
    pub fn plain_len(&self, pos: ChunkPos) -> Option<usize> {
        match pos {
            ChunkPos::Table { level, .. } if level > self.depth => None,
            _ => self.shape.plain_len(pos),
        }
    }

    /// The data chunks under `pos`, by index: itself, or every chunk a table node
    /// reaches (empty for a position this file does not have).
    pub fn data_span(&self, pos: ChunkPos) -> std::ops::Range<u64> {
        self.shape.data_span(pos)
    }

    /// Sealed bytes at `pos` (what the shards rebuild): plaintext + tag. Pass this to
    /// [`erasure::reconstruct`] as `len`.
    pub fn sealed_len(&self, pos: ChunkPos) -> Option<usize> {
        Some(self.plain_len(pos)? + CHUNK_OVERHEAD)
    }
}

/// One opened chunk-table node: the refs it lists, with their positions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkTable {
    entries: Vec<(ChunkPos, ChunkRef)>,
}

impl ChunkTable {
    /// Parses the plaintext of the table node at `pos` (after
    /// [`crate::chunk::open_at`]) and checks it lists exactly the refs the manifest
    /// implies. A short or long node is [`Inconsistent`](ManifestError::Inconsistent).
    pub fn parse(manifest: &Manifest, pos: ChunkPos, plaintext: &[u8]) -> Result<ChunkTable, ManifestError> {
        let ChunkPos::Table { level, index } = pos else {
            return Err(ManifestError::NoSuchPosition);
        };
        let expected = manifest.plain_len(pos).ok_or(ManifestError::NoSuchPosition)?;
        let (&version, refs) = plaintext.split_first().ok_or(ManifestError::Inconsistent)?;
        if version != TABLE_VERSION {
            return Err(ManifestError::UnknownVersion(u32::from(version)));
        }
        if plaintext.len() != expected {
            return Err(ManifestError::Inconsistent);
        }
        let ref_len = manifest.shape.params.ref_len();
        let entries = refs
            .chunks_exact(ref_len)
            .enumerate()
            .map(|(i, r)| (manifest.shape.child(Some((level, index)), 0, i as u64), ChunkRef::read(r)))
            .collect();
        Ok(ChunkTable { entries })
    }

    /// The refs, in order, with their positions: data chunks for a level-1 node,
    /// table nodes of the level below otherwise.
    pub fn entries(&self) -> &[(ChunkPos, ChunkRef)] {
        &self.entries
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chunk::{open_at, seal_at};

    fn params(chunk_size: u32, data: u8, parity: u8) -> FileParams {
        FileParams { chunk_size, data_shards: data, parity_shards: parity }
    }

    fn fake_ref(params: FileParams, n: u64) -> ChunkRef {
        let mut key = [0u8; 32];
        key[..8].copy_from_slice(&n.to_be_bytes());
        let shards =
            (0..params.total_shards()).map(|s| ShardAddress::of(&[n.to_be_bytes(), [s as u8; 8]].concat())).collect();
        ChunkRef { key: ChunkKey::from_bytes(key), shards }
    }

    /// Builds a manifest whose table nodes live in a map; returns it and the map.
    fn build(
        params: FileParams,
        size: u64,
        metadata: &str,
    ) -> (String, std::collections::HashMap<ChunkPos, (ChunkRef, Vec<u8>)>) {
        let mut store = std::collections::HashMap::new();
        let mut next = 1_000_000u64;
        let mut put = |node: TableNode| {
            next += 1;
            let r = fake_ref(params, next);
            let sealed = seal_at(&r.key, node.pos, &node.plaintext);
            assert!(node.plaintext.len() <= params.chunk_size as usize);
            assert!(store.insert(node.pos, (r.clone(), sealed)).is_none());
            r
        };
        let mut b = ManifestBuilder::new(params, size, metadata, [9; 32]).unwrap();
        for i in 0..b.chunk_count() {
            let mut node = b.push_chunk(fake_ref(params, i)).unwrap();
            while let Some(n) = node {
                node = b.table_stored(put(n)).unwrap();
            }
        }
        let text = loop {
            match b.finish().unwrap() {
                Finish::Manifest(text) => break text,
                Finish::StoreTable(n) => {
                    let mut node = b.table_stored(put(n)).unwrap();
                    while let Some(n) = node {
                        node = b.table_stored(put(n)).unwrap();
                    }
                }
            }
        };
        (text, store)
    }

    /// Walks the tree, collecting the data chunk refs in order.
    fn walk(m: &Manifest, store: &std::collections::HashMap<ChunkPos, (ChunkRef, Vec<u8>)>) -> Vec<ChunkRef> {
        fn go(
            m: &Manifest,
            store: &std::collections::HashMap<ChunkPos, (ChunkRef, Vec<u8>)>,
            pos: ChunkPos,
            r: &ChunkRef,
            out: &mut Vec<ChunkRef>,
        ) {
            match pos {
                ChunkPos::Data(i) => {
                    assert_eq!(i, out.len() as u64);
                    out.push(r.clone());
                }
                ChunkPos::Table { .. } => {
                    let (stored, sealed) = &store[&pos];
                    assert_eq!(stored, r);
                    assert_eq!(sealed.len(), m.sealed_len(pos).unwrap());
                    let plain = open_at(&r.key, pos, sealed).unwrap();
                    for (p, child) in ChunkTable::parse(m, pos, &plain).unwrap().entries() {
                        go(m, store, *p, child, out);
                    }
                }
            }
        }
        let mut out = Vec::new();
        for (pos, r) in m.entries() {
            go(m, store, pos, r, &mut out);
        }
        out
    }

    #[test]
    fn trees_of_every_depth_round_trip() {
        for p in [params(1024, 4, 2), params(1024, 8, 4), params(1024, 1, 1), params(4096, 3, 2)] {
            let f = p.fanout();
            let counts = [0, 1, 2, 3, 4, f - 1, f, f + 1, f * f - 1, f * f, f * f + 1, f * f * f + 1];
            for chunks in counts {
                for metadata in ["{}", &format!("\"{}\"", "x".repeat(MAX_METADATA_BYTES - 2))] {
                    let size = (chunks * u64::from(p.chunk_size)).saturating_sub(1);
                    let (text, store) = build(p, size, metadata);
                    assert!(text.len() <= MAX_MANIFEST_LEN, "{p:?} {chunks} chunks: {} chars", text.len());
                    let m = Manifest::parse(&text).unwrap();
                    assert_eq!((m.size(), m.metadata(), m.params()), (size, metadata, p));
                    let refs = walk(&m, &store);
                    let expect: Vec<_> = (0..m.chunk_count()).map(|i| fake_ref(p, i)).collect();
                    assert_eq!(refs, expect, "{p:?} {chunks} chunks");
                }
            }
        }
    }

    #[test]
    fn the_shard_bound_covers_every_tree_a_writer_builds() {
        for p in [params(MIN_CHUNK_SIZE, 1, 1), params(MIN_CHUNK_SIZE, 8, 4), params(4096, 4, 2)] {
            let fanout = p.fanout();
            for chunks in [0, 1, 2, fanout, fanout + 1, fanout * fanout + 3] {
                let size = chunks * u64::from(p.chunk_size);
                // `build` stores the table nodes it writes; the data chunks are all full.
                let (_, tables) = build(p, size, "{}");
                let per_piece = p.total_shards() as u64;
                let shard_bytes = |sealed: u64| sealed.div_ceil(u64::from(p.data_shards)) * per_piece;
                let shards = (chunks + tables.len() as u64) * per_piece;
                let bytes = chunks * shard_bytes(u64::from(p.chunk_size) + CHUNK_OVERHEAD as u64)
                    + tables.values().map(|(_, sealed)| shard_bytes(sealed.len() as u64)).sum::<u64>();
                let bound = p.shard_bound(size);
                assert!(shards <= bound.shards, "{p:?} {chunks} chunks: {shards} > {}", bound.shards);
                assert!(bytes <= bound.bytes, "{p:?} {chunks} chunks: {bytes} > {}", bound.bytes);
            }
        }
        assert_eq!(FileParams::default().shard_bound(0), ShardBound { shards: 0, bytes: 0 });
    }

    #[test]
    fn sizes_of_manifests() {
        let p = FileParams::default();
        for (size, depth) in [(0u64, 0u8), (4 << 20, 0), (1 << 30, 1), (1 << 40, 2), (MAX_FILE_SIZE, 3)] {
            let shape = Shape { params: p, size };
            // The depth a writer reaches: the lowest level whose refs fit inline.
            let mut d = 0;
            while text_len(shape.count(d) as usize, p.ref_len(), 2) > MAX_MANIFEST_LEN {
                d += 1;
            }
            assert_eq!(d, depth, "{size}");
            assert!(text_len(shape.count(d) as usize, p.ref_len(), MAX_METADATA_BYTES) <= MAX_MANIFEST_LEN);
        }
        // The largest chunk ref and the largest metadata fit.
        let widest = params(MIN_CHUNK_SIZE, 8, 4);
        assert!(text_len(1, widest.ref_len(), MAX_METADATA_BYTES) <= MAX_MANIFEST_LEN);
    }

    #[test]
    fn tamper_truncate_and_versions() {
        let (text, _) = build(FileParams::default(), 5, r#"{"name":"secret-name.txt"}"#);
        let bin = b64::decode(&text[MANIFEST_PREFIX.len()..]).unwrap();
        assert!(!String::from_utf8_lossy(&bin).contains("secret-name"));
        for i in [0, 40, bin.len() - 1] {
            let mut t = bin.clone();
            t[i] ^= 1;
            let expected = if i == 0 { ManifestError::Malformed } else { ManifestError::Tampered };
            assert_eq!(Manifest::parse(&format!("{MANIFEST_PREFIX}{}", b64::encode(&t))), Err(expected));
        }
        assert_eq!(Manifest::parse(&text[..text.len() - 4]), Err(ManifestError::Tampered));
        assert_eq!(Manifest::parse("coffer1:AQ"), Err(ManifestError::Tampered));
        assert_eq!(Manifest::parse(&text.replacen("coffer1:", "coffer2:", 1)), Err(ManifestError::UnknownVersion(2)));
        assert_eq!(Manifest::parse(&text.replacen("coffer1:", "coffer01:", 1)), Err(ManifestError::Malformed));
        assert_eq!(Manifest::parse(&text.replacen("coffer1:", "coffer:", 1)), Err(ManifestError::Malformed));
        assert_eq!(Manifest::parse(&text.replacen("coffer1:", "cofer1:", 1)), Err(ManifestError::Malformed));
        assert_eq!(Manifest::parse(&format!("{text}=")), Err(ManifestError::Tampered));
        assert_eq!(Manifest::parse(&text[..text.len() - 1]), Err(ManifestError::Tampered));
        assert_eq!(Manifest::parse(&text.replacen(':', ":!", 1)), Err(ManifestError::Tampered));
        assert_eq!(Manifest::parse(&format!("coffer1:{}", "A".repeat(5000))), Err(ManifestError::Malformed));
        assert_eq!(Manifest::parse(""), Err(ManifestError::Malformed));
    }

    #[test]
    fn authentic_but_inconsistent_bodies_are_refused() {
        let seal_body = |body: &[u8]| {
            let key = [5u8; 32];
            let mut bin = vec![1u8];
            bin.extend_from_slice(&key);
            bin.extend(seal(&key, &MANIFEST_NONCE, &aad(), body));
            format!("{MANIFEST_PREFIX}{}", b64::encode(bin))
        };
        let body = |chunk: u32, size: u64, depth: u8, refs: u16, meta: &[u8]| {
            let mut b = chunk.to_be_bytes().to_vec();
            b.extend([4, 2]);
            b.extend(size.to_be_bytes());
            b.push(depth);
            b.extend(refs.to_be_bytes());
            b.extend(vec![0u8; usize::from(refs) * 224]);
            push_lp(&mut b, meta);
            b
        };
        assert!(Manifest::parse(&seal_body(&body(1024, 1, 0, 1, b"{}"))).is_ok());
        let bad = [
            body(1024, 1, 0, 0, b"{}"),                     // too few refs
            body(1024, 1, 0, 2, b"{}"),                     // too many
            body(1024, 1, 1, 1, b"{}"),                     // a table over a single chunk
            body(1024, 4096, 1, 1, b"{}"),                  // a table over chunks that fit inline is fine, but…
            body(512, 1, 0, 1, b"{}"),                      // chunk size out of bounds
            body(1024, 1, 0, 1, b"{"),                      // metadata not JSON
            body(1024, 1, 0, 1, &[0xff]),                   // metadata not UTF-8
            body(1024, u64::MAX, 0, 1, b""),                // size out of bounds
            [body(1024, 1, 0, 1, b"{}"), vec![0]].concat(), // trailing byte
            body(1024, 1, 0, 1, b"{}")[..30].to_vec(),      // cut short
        ];
        for (i, b) in bad.iter().enumerate() {
            let r = Manifest::parse(&seal_body(b));
            if i == 3 {
                // 4 chunks under one level-1 node: allowed (a writer may emit a full node early).
                assert!(r.is_ok());
            } else {
                assert_eq!(r, Err(ManifestError::Inconsistent), "case {i}");
            }
        }
    }

    #[test]
    fn table_nodes_are_checked() {
        let p = params(1024, 4, 2);
        let (text, store) = build(p, 10 * 1024, "{}");
        let m = Manifest::parse(&text).unwrap();
        assert_eq!(m.depth(), 1);
        let (pos, r) = m.entries().next().unwrap();
        let plain = open_at(&r.key, pos, &store[&pos].1).unwrap();
        assert!(ChunkTable::parse(&m, pos, &plain).is_ok());
        assert_eq!(ChunkTable::parse(&m, pos, &plain[..plain.len() - 1]), Err(ManifestError::Inconsistent));
        assert_eq!(ChunkTable::parse(&m, pos, &[plain.clone(), vec![0]].concat()), Err(ManifestError::Inconsistent));
        assert_eq!(ChunkTable::parse(&m, pos, &[]), Err(ManifestError::Inconsistent));
        let mut v2 = plain.clone();
        v2[0] = 2;
        assert_eq!(ChunkTable::parse(&m, pos, &v2), Err(ManifestError::UnknownVersion(2)));
        let far = ChunkPos::Table { level: 1, index: 99 };
        assert_eq!(ChunkTable::parse(&m, far, &plain), Err(ManifestError::NoSuchPosition));
        let high = ChunkPos::Table { level: 2, index: 0 };
        assert_eq!(ChunkTable::parse(&m, high, &plain), Err(ManifestError::NoSuchPosition));
        assert_eq!(ChunkTable::parse(&m, ChunkPos::Data(0), &plain), Err(ManifestError::NoSuchPosition));
        assert_eq!(m.plain_len(ChunkPos::Data(9)), Some(1024));
        assert_eq!(m.plain_len(ChunkPos::Data(10)), None);
    }

    #[test]
    fn builder_refuses_misuse() {
        let p = params(1024, 4, 2);
        assert!(matches!(ManifestBuilder::new(params(100, 4, 2), 1, "{}", [0; 32]), Err(ManifestError::Params { .. })));
        assert!(matches!(
            ManifestBuilder::new(p, MAX_FILE_SIZE + 1, "{}", [0; 32]),
            Err(ManifestError::FileTooLarge { .. })
        ));
        let big = format!("\"{}\"", "x".repeat(MAX_METADATA_BYTES));
        assert_eq!(ManifestBuilder::new(p, 1, &big, [0; 32]).err().unwrap().code(), ErrorCode::TooLarge);
        assert_eq!(ManifestBuilder::new(p, 1, "nope", [0; 32]).err(), Some(ManifestError::MetadataNotJson));
        let mut b = ManifestBuilder::new(p, 1500, "{}", [0; 32]).unwrap();
        assert_eq!(b.finish(), Err(ManifestError::ChunkCount { expected: 2, got: 0 }));
        let short = ChunkRef { shards: vec![], ..fake_ref(p, 0) };
        assert_eq!(b.push_chunk(short), Err(ManifestError::ShardCount { expected: 6, got: 0 }));
        assert!(b.table_stored(fake_ref(p, 0)).is_err());
        b.push_chunk(fake_ref(p, 0)).unwrap();
        b.push_chunk(fake_ref(p, 1)).unwrap();
        assert_eq!(b.push_chunk(fake_ref(p, 2)), Err(ManifestError::ChunkCount { expected: 2, got: 3 }));
        assert!(matches!(b.finish(), Ok(Finish::Manifest(_))));
        assert!(matches!(b.finish(), Err(ManifestError::Sequence(_))));
    }
}
