//! Where shard bytes live: the [`ShardStore`] trait.
//!
//! A shard store is content-addressed and knows nothing else: no sizes to meter, no
//! owners, no reference counts. Those are records ([`super::Records`]); which shard
//! may be removed, and when, is decided in [`crate::gc`]. [`super::shard_dir::ShardDir`]
//! is the embedded default (a directory on disk); an S3-compatible object store for
//! several accelerators would implement the same trait.
//!
//! Like [`super::Records`] the trait is synchronous; handlers run it on tokio's
//! blocking pool.

use std::io;

use coffer_core::shard::ShardAddress;

/// A stored shard being read.
pub struct ShardReader {
    /// Its length in bytes.
    pub len: u64,
    /// Its bytes, from the start.
    pub bytes: Box<dyn io::Read + Send>,
}

/// Shard bytes by address. Implementations must be safe to call from many threads.
pub trait ShardStore: Send + Sync + 'static {
    /// Stores `bytes` under `address`, replacing what was there. The caller has
    /// checked that they hash to `address`. When this returns, the shard is durable
    /// and complete under its address; a crash part-way leaves the address as it
    /// was, never a partial shard.
    fn put(&self, address: &ShardAddress, bytes: &[u8]) -> io::Result<()>;

    /// The shard's bytes, or `None` if it is not stored.
    fn get(&self, address: &ShardAddress) -> io::Result<Option<Vec<u8>>>;

    /// The stored shard opened for reading piece by piece, so that serving it holds
    /// one piece in memory rather than the whole shard; `None` if it is not stored.
    fn open(&self, address: &ShardAddress) -> io::Result<Option<ShardReader>>;

    /// Whether a shard is stored under `address`.
    fn has(&self, address: &ShardAddress) -> io::Result<bool> {
        Ok(self.size(address)?.is_some())
    }

    /// The stored shard's length in bytes, or `None` if it is not stored.
    fn size(&self, address: &ShardAddress) -> io::Result<Option<u64>>;

    /// Removes a shard. Returns whether it was stored.
    fn delete(&self, address: &ShardAddress) -> io::Result<bool>;

    /// Every stored address whose hex form starts with `prefix` (two hex digits
    /// select one 256th of the store). The collector walks the store prefix by prefix
    /// to find shards without a record, so memory stays bounded.
    fn list(&self, prefix: &str) -> io::Result<Vec<ShardAddress>>;
}
