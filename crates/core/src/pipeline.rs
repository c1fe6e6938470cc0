//! The pure steps of moving a file, between the formats and the network: what to
//! store next and in what order (writing, [`ChunkWriter`]), turning a sealed chunk
//! into addressed shards, and walking a manifest's chunk tree in file order
//! (reading, [`ChunkWalk`]). The SDK does the I/O around them.

use std::ops::Range;

use crate::chunk::{CHUNK_OVERHEAD, ChunkKey, ChunkPos};
use crate::erasure::{self, ErasureError};
use crate::manifest::{
    ChunkRef, ChunkTable, FileParams, Finish, MANIFEST_KEY_LEN, Manifest, ManifestBuilder, ManifestError, TableNode,
};
use crate::shard::ShardAddress;

/// One thing a writer must store next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Put {
    /// Data chunk `index`: read the file's bytes `start..end`, seal them at
    /// [`ChunkPos::Data`]`(index)` under a fresh key, store the shards and report the
    /// ref with [`ChunkWriter::data_stored`]. Several may be in flight at once;
    /// reports come in file order.
    Data {
        /// Its index in the file.
        index: u64,
        /// First plaintext byte.
        start: u64,
        /// One past its last plaintext byte.
        end: u64,
    },
    /// A chunk-table node: seal it at its position under a fresh key, store it and
    /// report the ref with [`ChunkWriter::table_stored`] before any other report.
    Table(TableNode),
    /// Every step so far is handed out: report one in flight, then ask again.
    Wait,
    /// Everything is stored.
    Done(Stored),
}

/// A finished write: what the commit sends.
#[derive(Clone, PartialEq, Eq)]
pub struct Stored {
    /// The manifest text: the file's read capability.
    pub manifest: String,
    /// Every shard the file stored (data chunks and table nodes), for the commit.
    pub shards: Vec<ShardAddress>,
}

// Debug output never shows the manifest (a capability).
impl std::fmt::Debug for Stored {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Stored {{ manifest: <{} characters>, shards: {} }}", self.manifest.len(), self.shards.len())
    }
}

/// Says what to store, in an order that keeps memory bounded: the write protocol as
/// [`ChunkWalk`] is the read walk. The writer keeps up to as many data chunks in
/// flight as it likes, asking [`next_step`](Self::next_step) for more while there
/// is room, and [`Put::Wait`] when it should report one first. Table nodes (one per
/// `fanout` refs of a level) and the manifest come from the [`ManifestBuilder`]
/// inside, so at most one table node per level is ever held.
pub struct ChunkWriter {
    builder: ManifestBuilder,
    size: u64,
    /// Data chunks handed out.
    handed: u64,
    /// Data chunks reported stored (in order).
    reported: u64,
    /// A table node ready to hand out.
    ready: Option<TableNode>,
    /// A table node handed out and not yet reported.
    table_out: bool,
    /// Every shard stored so far.
    shards: Vec<ShardAddress>,
}

impl ChunkWriter {
    /// Starts writing a file of `size` bytes with `metadata` (JSON text);
    /// `manifest_key` must be 32 fresh random bytes.
    pub fn new(
        params: FileParams,
        size: u64,
        metadata: &str,
        manifest_key: [u8; MANIFEST_KEY_LEN],
    ) -> Result<Self, ManifestError> {
        let builder = ManifestBuilder::new(params, size, metadata, manifest_key)?;
        let shards = Vec::with_capacity(
            usize::try_from(builder.chunk_count()).unwrap_or(0).saturating_mul(params.total_shards()),
        );
        Ok(ChunkWriter { builder, size, handed: 0, reported: 0, ready: None, table_out: false, shards })
    }

    /// The parameters the file is written with.
    pub fn params(&self) -> FileParams {
        self.builder.params()
    }

    /// The next thing to store.
    pub fn next_step(&mut self) -> Result<Put, ManifestError> {
        if let Some(node) = self.ready.take() {
            self.table_out = true;
            return Ok(Put::Table(node));
        }
        let count = self.builder.chunk_count();
        if self.handed < count {
            let index = self.handed;
            let start = index * u64::from(self.params().chunk_size);
            let end = (start + u64::from(self.params().chunk_size)).min(self.size);
            self.handed += 1;
            return Ok(Put::Data { index, start, end });
        }
        if self.table_out || self.reported < count {
            return Ok(Put::Wait);
        }
        match self.builder.finish()? {
            Finish::StoreTable(node) => {
                self.table_out = true;
                Ok(Put::Table(node))
            }
            Finish::Manifest(manifest) => Ok(Put::Done(Stored { manifest, shards: std::mem::take(&mut self.shards) })),
        }
    }

    /// Reports data chunk `index` stored; chunks are reported in file order, and not
    /// while a table node is out.
    pub fn data_stored(&mut self, index: u64, chunk_ref: ChunkRef) -> Result<(), ManifestError> {
        if index != self.reported || index >= self.handed {
            return Err(ManifestError::Sequence("report data chunks in file order, each once, after handing it out"));
        }
        if self.table_out || self.ready.is_some() {
            return Err(ManifestError::Sequence("store the table node handed out, then report more chunks"));
        }
        let shards = chunk_ref.shards.clone();
        self.ready = self.builder.push_chunk(chunk_ref)?;
        self.shards.extend(shards);
        self.reported += 1;
        Ok(())
    }

    /// Reports the table node handed out last stored.
    pub fn table_stored(&mut self, chunk_ref: ChunkRef) -> Result<(), ManifestError> {
        if !self.table_out {
            return Err(ManifestError::Sequence("table_stored without a table node handed out"));
        }
        let shards = chunk_ref.shards.clone();
        self.ready = self.builder.table_stored(chunk_ref)?;
        self.shards.extend(shards);
        self.table_out = false;
        Ok(())
    }
}

/// A sealed chunk (or table node) cut into shards, ready to upload.
pub struct EncodedChunk {
    /// Its key and shard addresses, for the manifest.
    pub chunk_ref: ChunkRef,
    /// Data shards then parity shards, in the order of `chunk_ref.shards`.
    pub shards: Vec<Vec<u8>>,
}

/// Erasure-codes sealed bytes and addresses every shard.
pub fn encode_sealed(key: ChunkKey, sealed: &[u8], params: FileParams) -> Result<EncodedChunk, ErasureError> {
    let striped = encode_sealed_with(key, sealed.len(), params, |buffer| buffer.copy_from_slice(sealed))?;
    let shards = striped.stripes.shards().map(<[u8]>::to_vec).collect();
    Ok(EncodedChunk { chunk_ref: striped.chunk_ref, shards })
}

/// A sealed chunk cut into shards that lie back to back in one buffer.
pub struct StripedChunk {
    /// Its key and shard addresses, for the manifest.
    pub chunk_ref: ChunkRef,
    /// Data shards then parity shards, in the order of `chunk_ref.shards`.
    pub stripes: erasure::Stripes,
}

/// Erasure-codes `len` sealed bytes that `fill` copies in (once, from wherever they
/// are) and addresses every shard.
pub fn encode_sealed_with(
    key: ChunkKey,
    len: usize,
    params: FileParams,
    fill: impl FnOnce(&mut [u8]),
) -> Result<StripedChunk, ErasureError> {
    let stripes = erasure::encode_with(len, params.data(), params.parity(), fill)?;
    let addresses = stripes.shards().map(ShardAddress::of).collect();
    Ok(StripedChunk { chunk_ref: ChunkRef { key, shards: addresses }, stripes })
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
        /// The part of its plaintext the read wants: all of it, except where the
        /// range starts or ends inside the chunk.
        keep: Range<usize>,
    },
}

/// Walks a manifest's chunk tree depth first, so data chunks come out in file order
/// while at most one table node per level is held. A walk over a byte range visits
/// only the table nodes and data chunks that hold part of it.
pub struct ChunkWalk {
    /// The authenticated manifest.
    manifest: Manifest,
    /// The plaintext bytes the read wants.
    bytes: Range<u64>,
    /// The data chunks that hold them.
    chunks: Range<u64>,
    /// Refs still to visit, the next one last.
    stack: Vec<(ChunkPos, ChunkRef)>,
    /// The table node handed out and not yet opened.
    awaiting: Option<ChunkPos>,
}

impl ChunkWalk {
    /// Walks the whole file.
    pub fn new(manifest: Manifest) -> Self {
        let size = manifest.size();
        Self::range(manifest, 0, None).unwrap_or_else(|_| unreachable!("offset 0 is within any file of {size} bytes"))
    }

    /// Walks the `length` bytes from `offset` (to the end of the file when `length`
    /// is `None` or reaches past it). An offset past the end is refused; one at the
    /// end reads nothing.
    pub fn range(manifest: Manifest, offset: u64, length: Option<u64>) -> Result<Self, ManifestError> {
        let size = manifest.size();
        if offset > size {
            return Err(ManifestError::OffsetPastEnd { offset, size });
        }
        let end = length.map_or(size, |length| offset.saturating_add(length).min(size));
        let chunk = u64::from(manifest.params().chunk_size);
        let chunks = if offset == end { 0..0 } else { offset / chunk..(end - 1) / chunk + 1 };
        let mut walk = ChunkWalk { manifest, bytes: offset..end, chunks, stack: Vec::new(), awaiting: None };
        let top: Vec<_> = walk.manifest.entries().map(|(pos, r)| (pos, r.clone())).collect();
        walk.visit(top);
        Ok(walk)
    }

    /// The plaintext bytes the walk hands out: `offset..end` of the file.
    pub fn bytes(&self) -> Range<u64> {
        self.bytes.clone()
    }

    /// Queues `refs` (in file order) to visit, leaving out those that hold no byte
    /// of the range.
    fn visit(&mut self, refs: Vec<(ChunkPos, ChunkRef)>) {
        let wanted = |pos: ChunkPos| {
            let span = self.manifest.data_span(pos);
            span.start < self.chunks.end && self.chunks.start < span.end
        };
        let kept: Vec<_> = refs.into_iter().filter(|(pos, _)| wanted(*pos)).collect();
        self.stack.extend(kept.into_iter().rev());
    }

    /// The part of data chunk `index`'s plaintext inside the range, from its
    /// sealed length.
    fn keep(&self, index: u64, sealed_len: usize) -> Range<usize> {
        let len = sealed_len - CHUNK_OVERHEAD;
        let start = index * u64::from(self.manifest.params().chunk_size);
        let from = self.bytes.start.saturating_sub(start).min(len as u64);
        let to = self.bytes.end.saturating_sub(start).min(len as u64);
        from as usize..to as usize
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
            ChunkPos::Data(index) => Step::Data { index, chunk_ref, sealed_len, keep: self.keep(index, sealed_len) },
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
        self.visit(table.entries().to_vec());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::chunk::{open_at, seal_at};

    /// Writes `file` through the writer into an in-memory shard store, up to
    /// `window` data chunks in flight, then reads it back through the walk; returns
    /// the bytes read and the tree depth.
    fn round_trip(file: &[u8], params: FileParams, window: usize) -> (Vec<u8>, u8) {
        let (store, text) = write(file, params, window);
        let manifest = Manifest::parse(&text).unwrap();
        let depth = manifest.depth();
        (read(&store, ChunkWalk::new(manifest)).0, depth)
    }

    type Store = HashMap<ShardAddress, Vec<u8>>;

    /// Writes `file` into an in-memory shard store, up to `window` data chunks in
    /// flight; returns the store and the manifest.
    fn write(file: &[u8], params: FileParams, window: usize) -> (Store, String) {
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
        let mut writer = ChunkWriter::new(params, file.len() as u64, "{}", [9; 32]).unwrap();
        let mut in_flight = std::collections::VecDeque::new();
        let stored = loop {
            let step = if in_flight.len() < window { writer.next_step().unwrap() } else { Put::Wait };
            match step {
                Put::Data { index, start, end } => {
                    in_flight.push_back((index, put(ChunkPos::Data(index), &file[start as usize..end as usize])))
                }
                Put::Table(node) => writer.table_stored(put(node.pos, &node.plaintext)).unwrap(),
                Put::Wait => {
                    let (index, chunk_ref) = in_flight.pop_front().expect("Wait only while chunks are in flight");
                    writer.data_stored(index, chunk_ref).unwrap();
                }
                Put::Done(stored) => break stored,
            }
        };
        assert!(in_flight.is_empty());
        let mut listed = stored.shards.clone();
        listed.sort();
        let mut held: Vec<_> = store.keys().copied().collect();
        held.sort();
        assert_eq!(listed, held, "the commit lists exactly the shards stored");
        (store, stored.manifest)
    }

    /// Reads what `walk` hands out from `store`; returns the bytes and the table
    /// nodes and data chunks fetched.
    fn read(store: &Store, mut walk: ChunkWalk) -> (Vec<u8>, Vec<ChunkPos>) {
        let params = walk.manifest().params();
        let fetch = |r: &ChunkRef, len: usize| {
            let shards = r.shards.iter().map(|a| store.get(a).cloned()).collect();
            erasure::reconstruct(shards, &r.shards, params.data(), params.parity(), len).unwrap()
        };
        let (mut out, mut fetched) = (Vec::new(), Vec::new());
        let mut expected_index = None;
        while let Some(step) = walk.next_step().unwrap() {
            match step {
                Step::Table { pos, chunk_ref, sealed_len } => {
                    fetched.push(pos);
                    let plain = open_at(&chunk_ref.key, pos, &fetch(&chunk_ref, sealed_len)).unwrap();
                    walk.table_opened(&plain).unwrap();
                }
                Step::Data { index, chunk_ref, sealed_len, keep } => {
                    if let Some(expected) = expected_index {
                        assert_eq!(index, expected, "data chunks come in file order");
                    }
                    expected_index = Some(index + 1);
                    fetched.push(ChunkPos::Data(index));
                    let plain = open_at(&chunk_ref.key, ChunkPos::Data(index), &fetch(&chunk_ref, sealed_len)).unwrap();
                    out.extend(&plain[keep]);
                }
            }
        }
        (out, fetched)
    }

    #[test]
    fn a_range_fetches_only_the_chunks_and_table_nodes_that_hold_it() {
        // 1 KiB chunks, 2 + 1 shards: 7 refs per table node, so 80 chunks and a
        // bit take two levels of table.
        let params = FileParams { chunk_size: 1024, data_shards: 2, parity_shards: 1 };
        let fanout = params.fanout();
        let size = 40 * 1024 * 2 + 7;
        let file: Vec<u8> = (0..size).map(|i| (i * 31 % 251) as u8).collect();
        let (store, text) = write(&file, params, 4);
        let manifest = Manifest::parse(&text).unwrap();
        assert!(manifest.depth() >= 2, "the test reaches a two-level chunk table");
        let size = size as u64;
        let node = 1024 * fanout;
        let edges = [0, 1, 1023, 1024, 1025, 2048, node - 1, node, node + 1, node * fanout - 1, node * fanout + 1];
        let mut points: Vec<u64> =
            edges.iter().chain(&[size - 1025, size - 8, size - 7, size - 1, size]).copied().collect();
        points.retain(|&p| p <= size);
        for &offset in &points {
            for &end in points.iter().filter(|&&end| end >= offset) {
                let walk = ChunkWalk::range(manifest.clone(), offset, Some(end - offset)).unwrap();
                assert_eq!(walk.bytes(), offset..end);
                let (back, fetched) = read(&store, walk);
                assert_eq!(back, &file[offset as usize..end as usize], "bytes {offset}..{end}");
                for pos in fetched {
                    let span = manifest.data_span(pos);
                    let held = span.start * 1024..(span.end * 1024).min(size);
                    assert!(
                        held.start < end && offset < held.end,
                        "{pos:?} holds bytes {held:?}, none of {offset}..{end}"
                    );
                }
            }
        }
        // A length past the end stops at the end; so does no length.
        let (back, _) = read(&store, ChunkWalk::range(manifest.clone(), size - 3, Some(u64::MAX)).unwrap());
        assert_eq!(back, &file[file.len() - 3..]);
        let (back, _) = read(&store, ChunkWalk::range(manifest.clone(), 5000, None).unwrap());
        assert_eq!(back, &file[5000..]);
        // Nothing to read at the end, and nothing fetched for it.
        let (back, fetched) = read(&store, ChunkWalk::range(manifest.clone(), size, None).unwrap());
        assert!(back.is_empty() && fetched.is_empty());
        // Past the end is refused.
        assert!(matches!(
            ChunkWalk::range(manifest, size + 1, Some(1)),
            Err(ManifestError::OffsetPastEnd { offset, size: s }) if offset == size + 1 && s == size
        ));
    }

    #[test]
    fn files_of_every_depth_come_back_in_order() {
        let params = FileParams { chunk_size: 1024, data_shards: 2, parity_shards: 1 };
        for size in [0usize, 1, 1023, 1024, 1025, 10 * 1024, 40 * 1024 + 7] {
            let file: Vec<u8> = (0..size).map(|i| (i * 31 % 251) as u8).collect();
            for window in [1, 3, 64] {
                let (back, _) = round_trip(&file, params, window);
                assert_eq!(back, file, "size {size}, {window} in flight");
            }
        }
        let file = vec![5u8; 40 * 1024];
        assert!(round_trip(&file, params, 3).1 >= 2, "the test reaches a two-level table");
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

    #[test]
    fn reports_out_of_order_are_refused() {
        let params = FileParams { chunk_size: 1024, data_shards: 2, parity_shards: 1 };
        let chunk_ref = |n: u8| ChunkRef {
            key: ChunkKey::from_bytes([n; 32]),
            shards: (0..3).map(|i| ShardAddress::of(&[n, i])).collect(),
        };
        let mut writer = ChunkWriter::new(params, 3000, "{}", [1; 32]).unwrap();
        assert!(writer.data_stored(0, chunk_ref(0)).is_err(), "a chunk not handed out");
        assert!(matches!(writer.next_step().unwrap(), Put::Data { index: 0, start: 0, end: 1024 }));
        assert!(matches!(writer.next_step().unwrap(), Put::Data { index: 1, .. }));
        assert!(matches!(writer.next_step().unwrap(), Put::Data { index: 2, start: 2048, end: 3000 }));
        assert_eq!(writer.next_step().unwrap(), Put::Wait);
        assert!(writer.data_stored(1, chunk_ref(1)).is_err(), "chunk 1 before chunk 0");
        assert!(writer.table_stored(chunk_ref(9)).is_err(), "no table node is out");
        writer.data_stored(0, chunk_ref(0)).unwrap();
        assert!(writer.data_stored(0, chunk_ref(0)).is_err(), "chunk 0 twice");
        writer.data_stored(1, chunk_ref(1)).unwrap();
        writer.data_stored(2, chunk_ref(2)).unwrap();
        let Put::Done(stored) = writer.next_step().unwrap() else { panic!("three chunks fit inline") };
        assert_eq!(stored.shards.len(), 9);
    }
}
