//! Benchmark entry points — only with the `bench` feature, never in the shipped
//! package. `scripts/bench` builds them into `target/bench-pkg/` so
//! `bench/files.mjs` can time each per-chunk stage of a file write and read in wasm,
//! on one chunk held in wasm memory (no JS copies in the way unless a stage says so),
//! beside WebCrypto on the same bytes and the same code natively
//! (`crates/core/examples/bench_native.rs` runs the same steps).

use coffer_core::chunk::{self, ChunkKey};
use coffer_core::erasure;
use coffer_core::manifest::FileParams;
use coffer_core::pipeline;
use coffer_core::proto::storage::{decode_shard_batch, encode_shard_batch};
use coffer_core::shard::ShardAddress;
use wasm_bindgen::prelude::*;

/// One chunk and everything derived from it, kept in wasm memory between calls.
#[wasm_bindgen]
pub struct BenchChunk {
    /// Shard counts (the chunk size is the plaintext's length).
    params: FileParams,
    /// The chunk key (fixed: benchmarks need no secrecy).
    key: ChunkKey,
    /// The plaintext chunk.
    plain: Vec<u8>,
    /// Its seal (ciphertext ‖ tag).
    sealed: Vec<u8>,
    /// The seal cut into data then parity shards.
    shards: Vec<Vec<u8>>,
    /// The shards' addresses.
    addresses: Vec<ShardAddress>,
}

#[wasm_bindgen]
impl BenchChunk {
    /// Seals and encodes `plain` once under `key` (32 bytes) with `data` + `parity`
    /// shards, so every stage below has its input ready.
    #[wasm_bindgen(constructor)]
    pub fn new(plain: Vec<u8>, key: &[u8], data: u8, parity: u8) -> Result<BenchChunk, JsError> {
        let key = ChunkKey::from_bytes(key.try_into().map_err(|_| JsError::new("the key is 32 bytes"))?);
        let params = FileParams { chunk_size: plain.len() as u32, data_shards: data, parity_shards: parity };
        let sealed = chunk::seal_chunk(&key, 0, &plain);
        let encoded =
            pipeline::encode_sealed(key.clone(), &sealed, params).map_err(|e| JsError::new(&e.to_string()))?;
        Ok(BenchChunk { params, key, plain, sealed, shards: encoded.shards, addresses: encoded.chunk_ref.shards })
    }

    /// The AAD of chunk 0 (for WebCrypto on the same bytes).
    pub fn aad(&self) -> Vec<u8> {
        chunk::chunk_aad(0)
    }

    /// The seal, copied out (WebCrypto's output must equal it).
    pub fn sealed(&self) -> Vec<u8> {
        self.sealed.clone()
    }

    /// Bytes in all shards together.
    #[wasm_bindgen(js_name = shardBytes)]
    pub fn shard_bytes(&self) -> usize {
        self.shards.iter().map(Vec::len).sum()
    }

    /// Seal: AES-256-GCM of the plaintext in wasm (`aes-gcm`). Returns its length.
    pub fn seal(&mut self) -> usize {
        self.sealed = chunk::seal_chunk(&self.key, 0, &self.plain);
        self.sealed.len()
    }

    /// Open: AES-256-GCM decryption and check of the seal in wasm.
    pub fn open(&self) -> Result<usize, JsError> {
        chunk::open_chunk(&self.key, 0, &self.sealed).map(|p| p.len()).map_err(|e| JsError::new(&e.to_string()))
    }

    /// Erasure encode: the seal into data + parity shards.
    pub fn encode(&mut self) -> Result<usize, JsError> {
        self.shards = erasure::encode(&self.sealed, self.params.data(), self.params.parity())
            .map_err(|e| JsError::new(&e.to_string()))?;
        Ok(self.shards.len())
    }

    /// Hash: the BLAKE3 address of every shard. Returns a byte of the last one.
    pub fn hash(&self) -> u8 {
        self.shards.iter().map(|s| ShardAddress::of(s).as_bytes()[0]).fold(0, |a, b| a ^ b)
    }

    /// The write pipeline, all in wasm: seal → encode → address.
    pub fn pipeline(&mut self) -> Result<usize, JsError> {
        self.seal();
        self.encode_sealed_in_place()
    }

    /// The rest of the write pipeline as the SDK runs it after WebCrypto sealed:
    /// the seal copied into wasm (by the binding), then encode → address.
    #[wasm_bindgen(js_name = encodeAddress)]
    pub fn encode_address(&mut self, sealed: Vec<u8>) -> Result<usize, JsError> {
        self.sealed = sealed;
        self.encode_sealed_in_place()
    }

    fn encode_sealed_in_place(&mut self) -> Result<usize, JsError> {
        let encoded = pipeline::encode_sealed(self.key.clone(), &self.sealed, self.params)
            .map_err(|e| JsError::new(&e.to_string()))?;
        self.shards = encoded.shards;
        self.addresses = encoded.chunk_ref.shards;
        Ok(self.shards.len())
    }

    /// The shards copied out to JS, one `Uint8Array` each, as the SDK hands them to
    /// `fetch`.
    #[wasm_bindgen(js_name = copyShardsOut)]
    pub fn copy_shards_out(&self) -> js_sys::Array {
        self.shards.iter().map(|s| JsValue::from(js_sys::Uint8Array::from(&s[..]))).collect()
    }

    /// Read side: the data shards checked against their addresses and joined back
    /// into the seal (no shard missing: the common case). Returns its length.
    pub fn rebuild(&self) -> Result<usize, JsError> {
        self.rebuild_in_wasm().map(|s| s.len())
    }

    fn rebuild_in_wasm(&self) -> Result<Vec<u8>, JsError> {
        let k = self.params.data();
        let shards = self.shards.iter().enumerate().map(|(i, s)| (i < k).then(|| s.clone())).collect();
        erasure::reconstruct(shards, &self.addresses, k, self.params.parity(), self.sealed.len())
            .map_err(|e| JsError::new(&e.to_string()))
    }

    /// The data shards framed as the accelerator answers `POST /v1/shards/fetch`.
    pub fn batch(&self) -> Vec<u8> {
        encode_shard_batch(self.shards[..self.params.data()].iter().map(|s| Some(&s[..])))
    }

    /// What the SDK does with such an answer (`storage::shards::fetch_chunk` without
    /// the network): the batch copied in, split, every data shard checked, the seal
    /// rebuilt, and copied out to JS for WebCrypto to open.
    #[wasm_bindgen(js_name = fetchPath)]
    pub fn fetch_path(&self, batch: Vec<u8>) -> Result<Vec<u8>, JsError> {
        let (k, m) = (self.params.data(), self.params.parity());
        let shard_len = erasure::shard_len(self.sealed.len(), k);
        let mut shards = decode_shard_batch(&batch, k, shard_len).map_err(|e| JsError::new(&e.to_string()))?;
        drop(batch);
        erasure::drop_bad_shards(&mut shards, &self.addresses[..k], shard_len);
        shards.extend(std::iter::repeat_n(None, m));
        erasure::reconstruct(shards, &self.addresses, k, m, self.sealed.len()).map_err(|e| JsError::new(&e.to_string()))
    }

    /// The read pipeline, all in wasm: check → join → open.
    #[wasm_bindgen(js_name = readPipeline)]
    pub fn read_pipeline(&self) -> Result<usize, JsError> {
        let sealed = self.rebuild_in_wasm()?;
        chunk::open_chunk(&self.key, 0, &sealed).map(|p| p.len()).map_err(|e| JsError::new(&e.to_string()))
    }
}

/// The shard address (BLAKE3, 64 hex digits) of `bytes`: lets the upload floor send
/// real shards to the real route.
#[wasm_bindgen(js_name = shardAddress)]
pub fn shard_address(bytes: &[u8]) -> String {
    ShardAddress::of(bytes).to_hex()
}
