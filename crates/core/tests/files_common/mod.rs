//! Shared by the `files_*` tests: a whole writer and reader over an in-memory shard
//! store, built only from the core's public API — the SDK's file pipeline in small.
#![allow(dead_code)]

use coffer_core::Coded;
use std::collections::HashMap;

use coffer_core::ErrorCode;
use coffer_core::chunk::{ChunkKey, ChunkPos, open_at, seal_at};
use coffer_core::erasure;
use coffer_core::manifest::{ChunkRef, ChunkTable, FileParams, Finish, Manifest, ManifestBuilder, TableNode};
use coffer_core::shard::ShardAddress;

/// Content-addressed shards.
pub type Store = HashMap<ShardAddress, Vec<u8>>;

/// splitmix64: deterministic stand-in for the caller's CSPRNG.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next_u64() % n }
    }
    pub fn key(&mut self) -> [u8; 32] {
        let mut out = [0u8; 32];
        for chunk in out.chunks_mut(8) {
            chunk.copy_from_slice(&self.next_u64().to_be_bytes());
        }
        out
    }
    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next_u64() as u8).collect()
    }
}

/// Seals at `pos` under `key`, erasure-codes, stores the shards; returns the ref.
pub fn put(store: &mut Store, params: FileParams, key: ChunkKey, pos: ChunkPos, plaintext: &[u8]) -> ChunkRef {
    let sealed = seal_at(&key, pos, plaintext);
    let shards = erasure::encode(&sealed, params.data(), params.parity()).unwrap();
    let addresses = shards.iter().map(|s| ShardAddress::of(s)).collect();
    for shard in shards {
        store.insert(ShardAddress::of(&shard), shard);
    }
    ChunkRef { key, shards: addresses }
}

/// Writes `data` the way the SDK does. Keys are drawn from `next_key` in the order
/// the writer needs them: the manifest key, then each chunk's and each table node's
/// key as it is sealed. `store_table` may alter a table node before it is sealed (to
/// make broken vectors).
pub fn write_file_with(
    store: &mut Store,
    params: FileParams,
    data: &[u8],
    metadata: &str,
    next_key: &mut dyn FnMut() -> [u8; 32],
    alter_table: &mut dyn FnMut(&mut TableNode),
) -> String {
    fn store_tables(
        builder: &mut ManifestBuilder,
        store: &mut Store,
        next_key: &mut dyn FnMut() -> [u8; 32],
        alter_table: &mut dyn FnMut(&mut TableNode),
        first: TableNode,
    ) {
        let params = builder.params();
        let mut node = Some(first);
        while let Some(mut n) = node {
            alter_table(&mut n);
            let r = put(store, params, ChunkKey::from_bytes(next_key()), n.pos, &n.plaintext);
            node = builder.table_stored(r).unwrap();
        }
    }
    let mut builder = ManifestBuilder::new(params, data.len() as u64, metadata, next_key()).unwrap();
    let chunks: Vec<&[u8]> = data.chunks(params.chunk_size as usize).collect();
    assert_eq!(chunks.len() as u64, builder.chunk_count());
    for (i, chunk) in chunks.into_iter().enumerate() {
        let key = ChunkKey::from_bytes(next_key());
        let r = put(store, params, key, ChunkPos::Data(i as u64), chunk);
        if let Some(node) = builder.push_chunk(r).unwrap() {
            store_tables(&mut builder, store, next_key, alter_table, node);
        }
    }
    loop {
        match builder.finish().unwrap() {
            Finish::Manifest(text) => return text,
            Finish::StoreTable(node) => store_tables(&mut builder, store, next_key, alter_table, node),
        }
    }
}

pub fn write_file(store: &mut Store, params: FileParams, data: &[u8], metadata: &str, rng: &mut Rng) -> String {
    write_file_with(store, params, data, metadata, &mut || rng.key(), &mut |_| {})
}

/// What the reader fetched for one sealed chunk or table node, before checking.
pub type Damage<'a> = dyn FnMut(ChunkPos, &mut Vec<Option<Vec<u8>>>) + 'a;

/// Reads a file back the way the SDK does: every shard fetched (then `damage`d),
/// checked and rebuilt, every chunk and node opened. Returns the bytes and metadata.
pub fn read_file(text: &str, store: &Store, damage: &mut Damage<'_>) -> Result<(Vec<u8>, String), ErrorCode> {
    let manifest = Manifest::parse(text).map_err(|e| e.code())?;
    let mut out = Vec::new();
    let mut stack: Vec<(ChunkPos, ChunkRef)> = manifest.entries().map(|(p, r)| (p, r.clone())).collect();
    stack.reverse();
    while let Some((pos, r)) = stack.pop() {
        let mut shards: Vec<Option<Vec<u8>>> = r.shards.iter().map(|a| store.get(a).cloned()).collect();
        damage(pos, &mut shards);
        let len = manifest.sealed_len(pos).ok_or(ErrorCode::Integrity)?;
        let params = manifest.params();
        let sealed =
            erasure::reconstruct(shards, &r.shards, params.data(), params.parity(), len).map_err(|e| e.code())?;
        let plain = open_at(&r.key, pos, &sealed).map_err(|e| e.code())?;
        match pos {
            ChunkPos::Data(i) => {
                assert_eq!(i * u64::from(params.chunk_size), out.len() as u64, "chunks in order");
                out.extend_from_slice(&plain);
            }
            ChunkPos::Table { .. } => {
                let table = ChunkTable::parse(&manifest, pos, &plain).map_err(|e| e.code())?;
                stack.extend(table.entries().iter().rev().cloned());
            }
        }
    }
    if out.len() as u64 != manifest.size() {
        return Err(ErrorCode::Integrity);
    }
    Ok((out, manifest.metadata().to_owned()))
}

/// Damages `count` distinct shards of `shards` in ways drawn from `rng`: missing,
/// a flipped bit, one byte short, one byte long, emptied.
pub fn damage_shards(rng: &mut Rng, shards: &mut [Option<Vec<u8>>], count: usize) {
    let mut order: Vec<usize> = (0..shards.len()).collect();
    for i in (1..order.len()).rev() {
        order.swap(i, rng.below(i as u64 + 1) as usize);
    }
    for &i in order.iter().take(count) {
        let Some(shard) = shards[i].as_mut() else { continue };
        match rng.below(5) {
            0 => shards[i] = None,
            1 => {
                let bit = rng.below(shard.len() as u64 * 8);
                shard[(bit / 8) as usize] ^= 1 << (bit % 8);
            }
            2 => {
                shard.pop();
            }
            3 => shard.push(rng.next_u64() as u8),
            _ => shard.clear(),
        }
    }
}
