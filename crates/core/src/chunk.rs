//! Chunk sealing (SPEC.md, "Chunk sealing").
//!
//! A file is cut into chunks of [`FileParams::chunk_size`](crate::manifest::FileParams)
//! bytes (the last one shorter). Each chunk is sealed with AES-256-GCM under its **own
//! random key**, with the fixed nonce [`CHUNK_NONCE`] and an AAD that names the chunk's
//! position ([`ChunkPos::aad`]). Chunk-table nodes (see `manifest`) are sealed the same
//! way, with their own positions.
//!
//! The SDK seals and opens file chunks through WebCrypto where the browser has it:
//! `crypto.subtle.encrypt({name: "AES-GCM", iv: CHUNK_NONCE, additionalData:
//! pos.aad(), tagLength: 128}, key, plaintext)` gives exactly the bytes of
//! [`seal_at`] (ciphertext ‖ 16-byte tag), and either side opens the other's output.

use zeroize::Zeroizing;

use crate::primitives::{NONCE_LEN, TAG_LEN, open, seal};
use crate::{Coded, ErrorCode};

/// Bytes in a chunk key.
pub const CHUNK_KEY_LEN: usize = 32;

/// The nonce of every chunk and chunk-table seal: twelve zero bytes.
///
/// Why a fixed nonce is safe here: AES-GCM breaks only when one key seals two
/// different messages under one nonce. A chunk key is 32 fresh random bytes drawn for
/// one chunk (or one table node) and seals exactly that one plaintext, once; a
/// writer that retries an upload re-sends the same ciphertext, it does not re-seal.
/// With one message per key there is no second message to collide with, so the nonce
/// carries no information and is fixed — which also means a manifest need not store
/// one. Never seal two plaintexts under one [`ChunkKey`].
pub const CHUNK_NONCE: [u8; NONCE_LEN] = [0; NONCE_LEN];
/// Bytes a seal adds: the AES-GCM tag.
pub const CHUNK_OVERHEAD: usize = TAG_LEN;
/// Domain prefix of a data chunk's AAD.
pub const LABEL_FILE_CHUNK: &[u8] = b"coffer/v1/file-chunk";
/// Domain prefix of a chunk-table node's AAD.
pub const LABEL_TABLE_NODE: &[u8] = b"coffer/v1/table-node";

/// Why a sealed chunk could not be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChunkError {
    /// Did not authenticate: wrong key, wrong position, truncated or altered.
    /// Deliberately says no more than that.
    #[error("a file chunk failed authentication (altered, truncated, or the wrong key)")]
    Decrypt,
}

impl Coded for ChunkError {
    /// The stable code for this failure.
    fn code(&self) -> ErrorCode {
        ErrorCode::Integrity
    }
}

/// A chunk's key: 32 random bytes drawn by the caller for this chunk only.
#[derive(Clone, PartialEq, Eq)]
pub struct ChunkKey(Zeroizing<[u8; CHUNK_KEY_LEN]>);

impl ChunkKey {
    /// Takes 32 fresh random bytes (the caller draws them; one key per chunk).
    pub fn from_bytes(bytes: [u8; CHUNK_KEY_LEN]) -> Self {
        ChunkKey(Zeroizing::new(bytes))
    }

    /// The raw key (to import it into WebCrypto as a raw AES-GCM key).
    pub fn as_bytes(&self) -> &[u8; CHUNK_KEY_LEN] {
        &self.0
    }
}

impl std::fmt::Debug for ChunkKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ChunkKey(…)")
    }
}

/// Where a sealed chunk sits in its file; bound into its AAD so a chunk cannot be
/// served in another's place, nor a data chunk as a table node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChunkPos {
    /// Data chunk number `index` (0-based): file bytes `[index × chunk_size, …)`.
    Data(u64),
    /// Chunk-table node number `index` (0-based) on tree level `level` (≥ 1).
    Table {
        /// 1 for nodes listing data chunks, 2 for nodes listing level-1 nodes, …
        level: u8,
        /// Position among the nodes of that level.
        index: u64,
    },
}

impl ChunkPos {
    /// The AAD for this position:
    /// `"coffer/v1/file-chunk" ‖ u64be(index)` for a data chunk,
    /// `"coffer/v1/table-node" ‖ u8(level) ‖ u64be(index)` for a table node.
    pub fn aad(&self) -> Vec<u8> {
        match *self {
            ChunkPos::Data(index) => chunk_aad(index),
            ChunkPos::Table { level, index } => {
                let mut aad = Vec::with_capacity(LABEL_TABLE_NODE.len() + 9);
                aad.extend_from_slice(LABEL_TABLE_NODE);
                aad.push(level);
                aad.extend_from_slice(&index.to_be_bytes());
                aad
            }
        }
    }
}

/// The AAD of data chunk `index`: `"coffer/v1/file-chunk" ‖ u64be(index)`.
pub fn chunk_aad(index: u64) -> Vec<u8> {
    let mut aad = Vec::with_capacity(LABEL_FILE_CHUNK.len() + 8);
    aad.extend_from_slice(LABEL_FILE_CHUNK);
    aad.extend_from_slice(&index.to_be_bytes());
    aad
}

/// Seals the bytes at `pos`: AES-256-GCM(key, [`CHUNK_NONCE`], `pos.aad()`) →
/// ciphertext ‖ tag, [`CHUNK_OVERHEAD`] bytes longer than `plaintext`.
pub fn seal_at(key: &ChunkKey, pos: ChunkPos, plaintext: &[u8]) -> Vec<u8> {
    seal(key.as_bytes(), &CHUNK_NONCE, &pos.aad(), plaintext)
}

/// Opens what [`seal_at`] (or WebCrypto with the same parameters) produced.
pub fn open_at(key: &ChunkKey, pos: ChunkPos, sealed: &[u8]) -> Result<Vec<u8>, ChunkError> {
    open(key.as_bytes(), &CHUNK_NONCE, &pos.aad(), sealed).ok_or(ChunkError::Decrypt)
}

/// Seals data chunk `index`.
pub fn seal_chunk(key: &ChunkKey, index: u64, plaintext: &[u8]) -> Vec<u8> {
    seal_at(key, ChunkPos::Data(index), plaintext)
}

/// Opens data chunk `index`.
pub fn open_chunk(key: &ChunkKey, index: u64, sealed: &[u8]) -> Result<Vec<u8>, ChunkError> {
    open_at(key, ChunkPos::Data(index), sealed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_binding() {
        let key = ChunkKey::from_bytes([1; 32]);
        let sealed = seal_chunk(&key, 7, b"chunk bytes");
        assert_eq!(sealed.len(), 11 + CHUNK_OVERHEAD);
        assert_eq!(open_chunk(&key, 7, &sealed).unwrap(), b"chunk bytes");
        assert_eq!(open_chunk(&key, 8, &sealed), Err(ChunkError::Decrypt));
        assert_eq!(open_at(&key, ChunkPos::Table { level: 1, index: 7 }, &sealed), Err(ChunkError::Decrypt));
        assert_eq!(open_chunk(&ChunkKey::from_bytes([2; 32]), 7, &sealed), Err(ChunkError::Decrypt));
        assert_eq!(open_chunk(&key, 7, &sealed[..sealed.len() - 1]), Err(ChunkError::Decrypt));
        assert_eq!(open_chunk(&key, 7, &[]), Err(ChunkError::Decrypt));
        let mut flipped = sealed.clone();
        flipped[0] ^= 1;
        assert_eq!(open_chunk(&key, 7, &flipped), Err(ChunkError::Decrypt));
    }

    #[test]
    fn empty_chunk_is_just_a_tag() {
        let key = ChunkKey::from_bytes([3; 32]);
        let sealed = seal_chunk(&key, 0, b"");
        assert_eq!(sealed.len(), CHUNK_OVERHEAD);
        assert_eq!(open_chunk(&key, 0, &sealed).unwrap(), b"");
    }

    #[test]
    fn aad_layout() {
        assert_eq!(chunk_aad(1), [LABEL_FILE_CHUNK, &[0, 0, 0, 0, 0, 0, 0, 1]].concat());
        assert_eq!(ChunkPos::Data(1).aad(), chunk_aad(1));
        let table = ChunkPos::Table { level: 2, index: 3 }.aad();
        assert_eq!(table, [LABEL_TABLE_NODE, &[2, 0, 0, 0, 0, 0, 0, 0, 3]].concat());
    }
}
