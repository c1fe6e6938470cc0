//! Where shard bytes live: the [`ShardStore`] trait.
//!
//! A shard store is content-addressed and knows nothing else: no sizes to meter, no
//! owners, no reference counts. Those are records ([`super::Files`]); which shard
//! may be removed, and when, is decided in [`super::keeper`]. [`super::objects::ObjectShards`]
//! keeps them in a directory (the embedded default) or an S3-compatible bucket.

use std::io;

use async_trait::async_trait;
use bytes::Bytes;
use coffer_core::shard::ShardAddress;
use futures_util::stream::BoxStream;

/// The most bytes of a shard read from the store at a time: serving a shard holds
/// about this much of it in memory.
pub const PIECE: usize = 64 * 1024;

/// A stored shard being read.
pub struct ShardReader {
    /// Its length in bytes.
    pub len: u64,
    /// Its bytes, from the start, a piece of at most [`PIECE`] bytes at a time.
    pub bytes: BoxStream<'static, io::Result<Bytes>>,
}

/// Shard bytes by address. Implementations must be safe to call from many tasks,
/// and from several accelerators sharing one store.
#[async_trait]
pub trait ShardStore: Send + Sync + 'static {
    /// Stores `bytes` under `address`; the caller has checked that they hash to
    /// it. A shard already stored there is success (the same address holds the same
    /// bytes). When this returns, the shard is durable and complete under its
    /// address; a crash part-way never leaves a partial shard there.
    async fn put(&self, address: &ShardAddress, bytes: Bytes) -> io::Result<()>;

    /// The shard's bytes, or `None` if it is not stored.
    async fn get(&self, address: &ShardAddress) -> io::Result<Option<Bytes>>;

    /// The stored shard opened for reading piece by piece, so that serving it holds
    /// one piece in memory rather than the whole shard; `None` if it is not stored.
    async fn open(&self, address: &ShardAddress) -> io::Result<Option<ShardReader>>;

    /// Whether a shard is stored under `address`.
    async fn has(&self, address: &ShardAddress) -> io::Result<bool> {
        Ok(self.size(address).await?.is_some())
    }

    /// The stored shard's length in bytes, or `None` if it is not stored.
    async fn size(&self, address: &ShardAddress) -> io::Result<Option<u64>>;

    /// Removes a shard. Returns whether it was stored.
    async fn delete(&self, address: &ShardAddress) -> io::Result<bool>;

    /// Every stored address whose hex form starts with `prefix` (two hex digits
    /// select one 256th of the store). The collector walks the store prefix by prefix
    /// to find shards without a record, so memory stays bounded.
    async fn list(&self, prefix: &str) -> io::Result<Vec<ShardAddress>>;
}
