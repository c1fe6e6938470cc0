//! Reed–Solomon erasure coding of sealed chunks (SPEC.md, "Erasure coding").
//!
//! [`encode`] splits bytes into `k` data shards (zero-padded to a common length) and
//! adds `m` parity shards; any `k` of the `k + m` rebuild the bytes. The code is the
//! systematic Reed–Solomon code over GF(2⁸) that SPEC.md F.3 defines by its encoding
//! matrix, so the data shards are the input itself, cut in `k` pieces. It is written
//! here — the matrices in `matrix`, the field and the inner loop (SIMD128 in the
//! browser) in the `coffer-gf256` crate, which holds the vector code's `unsafe` — and
//! is byte for byte `reed-solomon-erasure` 6's
//! `galois_8` code, which the tests check it against (`tests/erasure_crate.rs`); that
//! crate's 64 KB multiplication table is not in the wasm.
//!
//! Erasure coding **does not detect corruption**: fed a wrong shard, the decoder
//! returns wrong bytes without a word. So [`reconstruct`] first checks every shard
//! against its [`ShardAddress`] and treats a shard that does not match — or has the
//! wrong length — exactly like a missing one. The bytes it returns are then still
//! sealed: the caller opens them with AES-GCM, which authenticates them.

mod matrix;

use coffer_gf256::{Multiplier, mul_add_matrix};

use crate::shard::ShardAddress;
use crate::{Coded, ErrorCode};

/// Fewest data shards per chunk.
pub const MIN_DATA_SHARDS: usize = 1;
/// Most data shards per chunk. With [`MAX_PARITY_SHARDS`] this keeps one chunk
/// reference (32 + 32 × 12 bytes) small enough that a manifest holding one, plus the
/// largest metadata, stays under 1 KiB (SPEC.md, "Manifest").
pub const MAX_DATA_SHARDS: usize = 8;
/// Fewest parity shards per chunk: at least one shard may always be lost.
pub const MIN_PARITY_SHARDS: usize = 1;
/// Most parity shards per chunk.
pub const MAX_PARITY_SHARDS: usize = 4;

/// Why coding failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ErasureError {
    /// A shard count outside the bounds above.
    #[error(
        "erasure coding takes 1–{MAX_DATA_SHARDS} data shards and 1–{MAX_PARITY_SHARDS} parity shards, not {data} + {parity}"
    )]
    Shape {
        /// Data shards asked for.
        data: usize,
        /// Parity shards asked for.
        parity: usize,
    },
    /// The shard or address list does not have one entry per shard.
    #[error("expected {expected} shards and addresses, got {shards} shards and {addresses} addresses")]
    ShardCount {
        /// `k + m`.
        expected: usize,
        /// Shards passed.
        shards: usize,
        /// Addresses passed.
        addresses: usize,
    },
    /// Fewer than `k` shards were present and matched their addresses: too much was
    /// lost or corrupted to rebuild the chunk.
    #[error("only {good} of the {needed} shards needed are intact; the data cannot be rebuilt")]
    TooFewShards {
        /// Shards that were present and matched their address.
        good: usize,
        /// `k`.
        needed: usize,
    },
}

impl Coded for ErasureError {
    /// The stable code for this failure.
    fn code(&self) -> ErrorCode {
        match self {
            ErasureError::Shape { .. } | ErasureError::ShardCount { .. } => ErrorCode::InvalidInput,
            ErasureError::TooFewShards { .. } => ErrorCode::Integrity,
        }
    }
}

/// Refuses shard counts outside the bounds.
pub fn check_shape(data: usize, parity: usize) -> Result<(), ErasureError> {
    if (MIN_DATA_SHARDS..=MAX_DATA_SHARDS).contains(&data) && (MIN_PARITY_SHARDS..=MAX_PARITY_SHARDS).contains(&parity)
    {
        Ok(())
    } else {
        Err(ErasureError::Shape { data, parity })
    }
}

/// Bytes in each shard of a `len`-byte input split `data` ways: ⌈len / data⌉, and at
/// least 1 (the codec has no empty shards).
pub fn shard_len(len: usize, data: usize) -> usize {
    len.div_ceil(data.max(1)).max(1)
}

/// `data + parity` shards of equal length, back to back in one buffer: what
/// [`encode_with`] fills, so a writer copies its bytes in once and hands the
/// shards out as views.
pub struct Stripes {
    bytes: Vec<u8>,
    shard_len: usize,
}

impl Stripes {
    /// Bytes in each shard.
    pub fn shard_len(&self) -> usize {
        self.shard_len
    }

    /// Shard `i`: data shards first, then parity.
    pub fn shard(&self, i: usize) -> &[u8] {
        &self.bytes[i * self.shard_len..(i + 1) * self.shard_len]
    }

    /// Every shard, in order.
    pub fn shards(&self) -> impl Iterator<Item = &[u8]> {
        self.bytes.chunks_exact(self.shard_len)
    }
}

/// Erasure-codes `len` bytes that `fill` writes into the start of a zeroed buffer of
/// `data + parity` shards of [`shard_len`] bytes (the last data shard is zero-padded),
/// then computes the parity shards in place. The bytes are copied once, by `fill`,
/// from wherever they are.
pub fn encode_with(
    len: usize,
    data: usize,
    parity: usize,
    fill: impl FnOnce(&mut [u8]),
) -> Result<Stripes, ErasureError> {
    check_shape(data, parity)?;
    let shard_len = shard_len(len, data);
    let mut bytes = vec![0u8; (data + parity) * shard_len];
    fill(&mut bytes[..len]);
    let encoding = matrix::encoding(data, parity);
    let coefficients = multipliers((data..data + parity).map(|row| encoding.row(row)));
    let (data_shards, parity_shards) = bytes.split_at_mut(data * shard_len);
    let inputs: Vec<&[u8]> = data_shards.chunks_exact(shard_len).collect();
    let mut outputs: Vec<&mut [u8]> = parity_shards.chunks_exact_mut(shard_len).collect();
    mul_add_matrix(&coefficients, &inputs, &mut outputs);
    Ok(Stripes { bytes, shard_len })
}

/// Splits `bytes` into `data` data shards and `parity` parity shards, each
/// [`shard_len`] bytes; the last data shard is zero-padded.
pub fn encode(bytes: &[u8], data: usize, parity: usize) -> Result<Vec<Vec<u8>>, ErasureError> {
    let stripes = encode_with(bytes.len(), data, parity, |buffer| buffer.copy_from_slice(bytes))?;
    Ok(stripes.shards().map(<[u8]>::to_vec).collect())
}

/// Turns every shard that is not `shard_len` bytes long or does not match its
/// address into `None`; returns how many remain. A reader fetches the data shards
/// first, calls this, and fetches parity shards only if fewer than `k` survived.
pub fn drop_bad_shards(shards: &mut [Option<Vec<u8>>], addresses: &[ShardAddress], shard_len: usize) -> usize {
    let mut good = 0;
    for (slot, address) in shards.iter_mut().zip(addresses) {
        let ok = slot.as_deref().is_some_and(|s| s.len() == shard_len && address.matches(s));
        if ok {
            good += 1;
        } else {
            *slot = None;
        }
    }
    good
}

/// Rebuilds the `len` bytes that [`encode`] split into `shards`.
///
/// `shards[i]` is shard `i` as fetched (`None` if missing) and `addresses[i]` its
/// address from the manifest. Shards that are the wrong length or do not match their
/// address are dropped first; with fewer than `data` left this fails with
/// [`ErasureError::TooFewShards`] (`Integrity`) and never guesses. The result is
/// still sealed: open it before trusting it.
pub fn reconstruct(
    mut shards: Vec<Option<Vec<u8>>>,
    addresses: &[ShardAddress],
    data: usize,
    parity: usize,
    len: usize,
) -> Result<Vec<u8>, ErasureError> {
    check_shape(data, parity)?;
    let total = data + parity;
    if shards.len() != total || addresses.len() != total {
        return Err(ErasureError::ShardCount { expected: total, shards: shards.len(), addresses: addresses.len() });
    }
    let good = drop_bad_shards(&mut shards, addresses, shard_len(len, data));
    if good < data {
        return Err(ErasureError::TooFewShards { good, needed: data });
    }
    if shards[..data].iter().any(Option::is_none) {
        rebuild_data_shards(&mut shards, data, parity);
    }
    let mut out = Vec::with_capacity(len);
    for shard in shards.into_iter().take(data).flatten() {
        let take = (len - out.len()).min(shard.len());
        out.extend_from_slice(&shard[..take]);
    }
    debug_assert_eq!(out.len(), len);
    Ok(out)
}

/// Fills in the missing data shards from the first `data` shards present, which
/// must all be one length. The same shards as `reed-solomon-erasure` decodes from, so
/// even shards that do not belong together decode to its bytes.
fn rebuild_data_shards(shards: &mut [Option<Vec<u8>>], data: usize, parity: usize) {
    let present: Vec<usize> = (0..shards.len()).filter(|&i| shards[i].is_some()).take(data).collect();
    let missing: Vec<usize> = (0..data).filter(|&i| shards[i].is_none()).collect();
    let decoding = matrix::decoding(data, parity, &present);
    let coefficients = multipliers(missing.iter().map(|&row| decoding.row(row)));
    let inputs: Vec<&[u8]> = shards.iter().flatten().take(data).map(Vec::as_slice).collect();
    let mut rebuilt = vec![vec![0; inputs[0].len()]; missing.len()];
    let mut outputs: Vec<&mut [u8]> = rebuilt.iter_mut().map(Vec::as_mut_slice).collect();
    mul_add_matrix(&coefficients, &inputs, &mut outputs);
    for (i, shard) in missing.into_iter().zip(rebuilt) {
        shards[i] = Some(shard);
    }
}

/// The kernel's multipliers for these rows of a matrix, row after row.
fn multipliers<'a>(rows: impl Iterator<Item = &'a [u8]>) -> Vec<Multiplier> {
    rows.flatten().map(|&factor| Multiplier::new(factor)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addresses(shards: &[Vec<u8>]) -> Vec<ShardAddress> {
        shards.iter().map(|s| ShardAddress::of(s)).collect()
    }

    #[test]
    fn systematic_layout() {
        let bytes: Vec<u8> = (0..10).collect();
        let shards = encode(&bytes, 4, 2).unwrap();
        assert_eq!(shards.len(), 6);
        assert!(shards.iter().all(|s| s.len() == 3));
        assert_eq!(shards[0], [0, 1, 2]);
        assert_eq!(shards[3], [9, 0, 0]);
    }

    #[test]
    fn any_m_losses_rebuild_and_m_plus_one_fail() {
        let bytes: Vec<u8> = (0..1000u32).map(|i| (i * 31 % 251) as u8).collect();
        let shards = encode(&bytes, 4, 2).unwrap();
        let addrs = addresses(&shards);
        for a in 0..6 {
            for b in 0..6 {
                let mut got: Vec<_> = shards.iter().cloned().map(Some).collect();
                got[a] = None;
                if let Some(shard) = got[b].as_mut() {
                    shard[0] ^= 1; // corrupt: dropped for not matching its address
                }
                assert_eq!(reconstruct(got, &addrs, 4, 2, bytes.len()).unwrap(), bytes);
            }
        }
        let mut got: Vec<_> = shards.iter().cloned().map(Some).collect();
        got[0] = None;
        got[2].as_mut().unwrap().push(0); // wrong length, even before hashing
        got[5] = None;
        assert_eq!(reconstruct(got, &addrs, 4, 2, bytes.len()), Err(ErasureError::TooFewShards { good: 3, needed: 4 }));
    }

    #[test]
    fn empty_input_and_bounds() {
        let shards = encode(b"", 1, 1).unwrap();
        assert_eq!(shards, vec![vec![0], vec![0]]);
        let got = vec![None, Some(shards[1].clone())];
        assert_eq!(reconstruct(got, &addresses(&shards), 1, 1, 0).unwrap(), b"");
        assert_eq!(encode(b"x", 0, 2), Err(ErasureError::Shape { data: 0, parity: 2 }));
        assert_eq!(encode(b"x", 9, 2), Err(ErasureError::Shape { data: 9, parity: 2 }));
        assert_eq!(encode(b"x", 4, 0), Err(ErasureError::Shape { data: 4, parity: 0 }));
        assert_eq!(encode(b"x", 4, 5), Err(ErasureError::Shape { data: 4, parity: 5 }));
        let err = reconstruct(vec![None; 5], &[ShardAddress::of(b""); 6], 4, 2, 1).unwrap_err();
        assert_eq!(err.code(), ErrorCode::InvalidInput);
    }
}
