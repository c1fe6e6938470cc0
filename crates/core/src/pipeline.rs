//! The pure steps of moving a file, between the formats and the network: turning a
//! sealed chunk into addressed shards (writing), and walking a manifest's chunk tree
//! in file order (reading). The SDK does the I/O around them.

use crate::chunk::{ChunkKey, ChunkPos};
use crate::erasure::{self, ErasureError};
use crate::manifest::{ChunkRef, ChunkTable, FileParams, Manifest, ManifestError};
use crate::shard::ShardAddress;

/// A sealed chunk (or table node) cut into shards, ready to upload.
pub struct EncodedChunk {
    /// Its key and shard addresses, for the manifest.
    pub chunk_ref: ChunkRef,
    /// Data shards then parity shards, in the order of `chunk_ref.shards`.
    pub shards: Vec<Vec<u8>>,
}

/// Erasure-codes sealed bytes and addresses every shard.
pub fn encode_sealed(key: ChunkKey, sealed: &[u8], params: FileParams) -> Result<EncodedChunk, ErasureError> {
    let shards = erasure::encode(sealed, params.data(), params.parity())?;
    let addresses = shards.iter().map(|s| ShardAddress::of(s)).collect();
    Ok(EncodedChunk { chunk_ref: ChunkRef { key, shards: addresses }, shards })
}

/// One thing a reader must fetch next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// A chunk-table node: fetch, rebuild, open at `pos`, then hand its plaintext to
    /// [`ChunkWalk::table_opened`] before asking for the next step.
    Table {
        /// Its position (for the seal's AAD).
        pos: ChunkPos,
        /// Its key and shards.
        chunk_ref: ChunkRef,
        /// Sealed length: what the shards rebuild.
        sealed_len: usize,
    },
    /// A data chunk, in file order.
    Data {
        /// Its index in the file.
        index: u64,
        /// Its key and shards.
        chunk_ref: ChunkRef,
        /// Sealed length: what the shards rebuild.
        sealed_len: usize,
    },
}

/// Walks a manifest's chunk tree depth first, so data chunks come out in file order
/// while at most one table node per level is held.
pub struct ChunkWalk {
    /// The authenticated manifest.
    manifest: Manifest,
    /// Refs still to visit, the next one last.
    stack: Vec<(ChunkPos, ChunkRef)>,
    /// The table node handed out and not yet opened.
    awaiting: Option<ChunkPos>,
}

impl ChunkWalk {
    /// Starts at the manifest's own refs.
    pub fn new(manifest: Manifest) -> Self {
        let mut stack: Vec<_> = manifest.entries().map(|(pos, r)| (pos, r.clone())).collect();
        stack.reverse();
        ChunkWalk { manifest, stack, awaiting: None }
    }

    /// The manifest being read.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The next thing to fetch; `None` when every data chunk has been handed out.
    pub fn next_step(&mut self) -> Result<Option<Step>, ManifestError> {
        if self.awaiting.is_some() {
            return Err(ManifestError::Sequence("open the table node returned last, then call table_opened"));
        }
        let Some((pos, chunk_ref)) = self.stack.pop() else { return Ok(None) };
        let sealed_len = self.manifest.sealed_len(pos).ok_or(ManifestError::Inconsistent)?;
        Ok(Some(match pos {
            ChunkPos::Data(index) => Step::Data { index, chunk_ref, sealed_len },
            ChunkPos::Table { .. } => {
                self.awaiting = Some(pos);
                Step::Table { pos, chunk_ref, sealed_len }
            }
        }))
    }

    /// Takes the opened plaintext of the table node last handed out.
    pub fn table_opened(&mut self, plaintext: &[u8]) -> Result<(), ManifestError> {
        let pos = self.awaiting.take().ok_or(ManifestError::Sequence("table_opened without a table node"))?;
        let table = ChunkTable::parse(&self.manifest, pos, plaintext)?;
        self.stack.extend(table.entries().iter().rev().cloned());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::chunk::{open_at, seal_at};
    use crate::manifest::{Finish, ManifestBuilder, TableNode};

    /// Writes `file` through the builder into an in-memory shard store, then reads it
    /// back through the walk; returns the bytes read and the tree depth.
    fn round_trip(file: &[u8], params: FileParams) -> (Vec<u8>, u8) {
        let mut store: HashMap<ShardAddress, Vec<u8>> = HashMap::new();
        let mut next_key = 0u8;
        let mut put = |pos: ChunkPos, plaintext: &[u8]| -> ChunkRef {
            next_key = next_key.wrapping_add(1);
            let key = ChunkKey::from_bytes([next_key; 32]);
            let sealed = seal_at(&key, pos, plaintext);
            let encoded = encode_sealed(key, &sealed, params).unwrap();
            for (address, shard) in encoded.chunk_ref.shards.iter().zip(encoded.shards) {
                store.insert(*address, shard);
            }
            encoded.chunk_ref
        };
        let mut builder = ManifestBuilder::new(params, file.len() as u64, "{}", [9; 32]).unwrap();
        let tables =
            |b: &mut ManifestBuilder, mut node: Option<TableNode>, put: &mut dyn FnMut(ChunkPos, &[u8]) -> ChunkRef| {
                while let Some(n) = node {
                    node = b.table_stored(put(n.pos, &n.plaintext)).unwrap();
                }
            };
        for (i, chunk) in file.chunks(params.chunk_size as usize).enumerate() {
            let node = builder.push_chunk(put(ChunkPos::Data(i as u64), chunk)).unwrap();
            tables(&mut builder, node, &mut put);
        }
        let text = loop {
            match builder.finish().unwrap() {
                Finish::Manifest(text) => break text,
                Finish::StoreTable(node) => tables(&mut builder, Some(node), &mut put),
            }
        };

        let manifest = Manifest::parse(&text).unwrap();
        let depth = manifest.depth();
        let mut walk = ChunkWalk::new(manifest);
        let fetch = |r: &ChunkRef, len: usize| {
            let shards = r.shards.iter().map(|a| store.get(a).cloned()).collect();
            erasure::reconstruct(shards, &r.shards, params.data(), params.parity(), len).unwrap()
        };
        let mut out = Vec::new();
        let mut expected_index = 0;
        while let Some(step) = walk.next_step().unwrap() {
            match step {
                Step::Table { pos, chunk_ref, sealed_len } => {
                    let plain = open_at(&chunk_ref.key, pos, &fetch(&chunk_ref, sealed_len)).unwrap();
                    walk.table_opened(&plain).unwrap();
                }
                Step::Data { index, chunk_ref, sealed_len } => {
                    assert_eq!(index, expected_index, "data chunks come in file order");
                    expected_index += 1;
                    out.extend(open_at(&chunk_ref.key, ChunkPos::Data(index), &fetch(&chunk_ref, sealed_len)).unwrap());
                }
            }
        }
        (out, depth)
    }

    #[test]
    fn files_of_every_depth_come_back_in_order() {
        let params = FileParams { chunk_size: 1024, data_shards: 2, parity_shards: 1 };
        for size in [0usize, 1, 1023, 1024, 1025, 10 * 1024, 40 * 1024 + 7] {
            let file: Vec<u8> = (0..size).map(|i| (i * 31 % 251) as u8).collect();
            let (back, _) = round_trip(&file, params);
            assert_eq!(back, file, "size {size}");
        }
        let file = vec![5u8; 40 * 1024];
        assert!(round_trip(&file, params).1 >= 2, "the test reaches a two-level table");
    }

    #[test]
    fn steps_out_of_order_are_refused() {
        let params = FileParams { chunk_size: 1024, data_shards: 2, parity_shards: 1 };
        let mut walk = ChunkWalk::new(
            Manifest::parse(&{
                let mut b = ManifestBuilder::new(params, 0, "{}", [1; 32]).unwrap();
                match b.finish().unwrap() {
                    Finish::Manifest(t) => t,
                    other => panic!("{other:?}"),
                }
            })
            .unwrap(),
        );
        assert_eq!(walk.next_step().unwrap(), None);
        assert!(walk.table_opened(b"x").is_err());
    }
}
