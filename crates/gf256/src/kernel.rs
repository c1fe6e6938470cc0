//! The erasure code's inner loop: `dst ^= c · src` over byte slices, for a constant
//! `c` of GF(2⁸), and a matrix of such constants applied to whole shards.
//!
//! Multiplication by `c` distributes over XOR, so for a byte `b = (h << 4) ^ l`,
//! `c · b = c · (h << 4) ^ c · l`: two 16-entry tables per constant, looked up by the
//! byte's high and low nibble, give its product. A 16-byte shuffle instruction looks
//! up 16 bytes at once in such a table — SIMD128's `i8x16.swizzle` in the browser,
//! SSSE3's `pshufb` natively — so the kernel does 16 bytes in a handful of
//! instructions. Without either it looks each byte up in the constant's 256-byte
//! product row.

use crate::field as gf256;

/// Bytes of every shard the matrix product works on at a time: the inputs' blocks
/// (at most 8 × 4 KiB) stay in the L1 cache while every output's block takes them in.
const BLOCK: usize = 4096;

/// Multiplication by one constant, prepared for the kernel.
pub struct Multiplier {
    factor: u8,
    /// `low[l] = c · l` and `high[h] = c · (h << 4)` for the 16 nibbles.
    low: [u8; 16],
    high: [u8; 16],
    /// `row[b] = c · b`, for the kernel without a shuffle instruction (never in
    /// wasm: the module requires SIMD128).
    #[cfg(not(target_arch = "wasm32"))]
    row: [u8; 256],
}

impl Multiplier {
    /// Prepares multiplication by `factor`.
    pub fn new(factor: u8) -> Multiplier {
        let low: [u8; 16] = std::array::from_fn(|l| gf256::mul(factor, l as u8));
        let high: [u8; 16] = std::array::from_fn(|h| gf256::mul(factor, (h as u8) << 4));
        Multiplier {
            factor,
            low,
            high,
            #[cfg(not(target_arch = "wasm32"))]
            row: std::array::from_fn(|b| low[b & 15] ^ high[b >> 4]),
        }
    }

    /// `c · b` from the nibble tables: the vector kernels' last few bytes.
    fn times(&self, b: u8) -> u8 {
        self.low[usize::from(b & 15)] ^ self.high[usize::from(b >> 4)]
    }
}

/// `outputs[r] ^= Σ_c coefficients[r · n + c] · inputs[c]` for the `n = inputs.len()`
/// inputs, all slices one length. [`BLOCK`] bytes of every slice at a time, so each
/// output block sums its inputs while they are in cache.
pub fn mul_add_matrix(coefficients: &[Multiplier], inputs: &[&[u8]], outputs: &mut [&mut [u8]]) {
    let len = inputs.first().map_or(0, |input| input.len());
    assert!(inputs.iter().all(|input| input.len() == len) && outputs.iter().all(|output| output.len() == len));
    assert_eq!(coefficients.len(), inputs.len() * outputs.len());
    for start in (0..len).step_by(BLOCK) {
        let end = len.min(start + BLOCK);
        for (output, row) in outputs.iter_mut().zip(coefficients.chunks_exact(inputs.len())) {
            for (input, by) in inputs.iter().zip(row) {
                mul_add(&mut output[start..end], &input[start..end], by);
            }
        }
    }
}

/// `dst ^= c · src`, `c` being `by`'s constant.
pub fn mul_add(dst: &mut [u8], src: &[u8], by: &Multiplier) {
    assert_eq!(dst.len(), src.len());
    if by.factor == 0 {
        return;
    }
    #[cfg(target_arch = "wasm32")]
    simd128::mul_add(dst, src, by);
    #[cfg(target_arch = "x86_64")]
    if ssse3::available() {
        ssse3::mul_add(dst, src, by);
        return;
    }
    #[cfg(not(target_arch = "wasm32"))]
    portable(dst, src, by);
}

/// One table lookup per byte.
#[cfg(not(target_arch = "wasm32"))]
fn portable(dst: &mut [u8], src: &[u8], by: &Multiplier) {
    for (d, &s) in dst.iter_mut().zip(src) {
        *d ^= by.row[usize::from(s)];
    }
}

/// The browser's kernel. No runtime check: an engine without SIMD128 refuses the
/// whole module when it compiles it, and the module already needs SIMD128 anyway —
/// blake3's `wasm32_simd` feature (shard addresses) emits it unconditionally.
#[cfg(target_arch = "wasm32")]
#[allow(unsafe_code)]
mod simd128 {
    use core::arch::wasm32::{u8x16_shr, u8x16_splat, u8x16_swizzle, v128, v128_and, v128_load, v128_store, v128_xor};

    use super::Multiplier;

    #[target_feature(enable = "simd128")]
    pub(super) fn mul_add(dst: &mut [u8], src: &[u8], by: &Multiplier) {
        let low = load(&by.low);
        let high = load(&by.high);
        let nibble = u8x16_splat(0x0f);
        let mut dst = dst.chunks_exact_mut(16);
        let mut src = src.chunks_exact(16);
        for (d, s) in (&mut dst).zip(&mut src) {
            let d: &mut [u8; 16] = d.try_into().expect("chunks of 16");
            let s = load(s.try_into().expect("chunks of 16"));
            let product = v128_xor(u8x16_swizzle(low, v128_and(s, nibble)), u8x16_swizzle(high, u8x16_shr(s, 4)));
            store(d, v128_xor(load(d), product));
        }
        for (d, &s) in dst.into_remainder().iter_mut().zip(src.remainder()) {
            *d ^= by.times(s);
        }
    }

    #[target_feature(enable = "simd128")]
    fn load(bytes: &[u8; 16]) -> v128 {
        // SAFETY: the pointer is valid for reading 16 bytes, and `v128.load` has no
        // alignment requirement.
        unsafe { v128_load(bytes.as_ptr().cast()) }
    }

    #[target_feature(enable = "simd128")]
    fn store(bytes: &mut [u8; 16], value: v128) {
        // SAFETY: the pointer is valid for writing 16 bytes, and `v128.store` has no
        // alignment requirement.
        unsafe { v128_store(bytes.as_mut_ptr().cast(), value) }
    }
}

/// The native kernel for the accelerator and the tests, on any x86-64 since 2006.
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod ssse3 {
    use std::arch::x86_64::{
        __m128i, _mm_and_si128, _mm_loadu_si128, _mm_set1_epi8, _mm_shuffle_epi8, _mm_srli_epi64, _mm_storeu_si128,
        _mm_xor_si128,
    };

    use super::Multiplier;

    pub(super) fn available() -> bool {
        std::is_x86_feature_detected!("ssse3")
    }

    /// Panics unless [`available`].
    pub(super) fn mul_add(dst: &mut [u8], src: &[u8], by: &Multiplier) {
        assert!(available());
        // SAFETY: the CPU has SSSE3, checked just above.
        unsafe { mul_add_ssse3(dst, src, by) }
    }

    /// # Safety
    ///
    /// The CPU must have SSSE3.
    #[target_feature(enable = "ssse3")]
    unsafe fn mul_add_ssse3(dst: &mut [u8], src: &[u8], by: &Multiplier) {
        let mut dst = dst.chunks_exact_mut(16);
        let mut src = src.chunks_exact(16);
        // SAFETY: every intrinsic here is SSE2 (part of x86-64) or SSSE3, which the
        // caller promises; every load and store is of 16 bytes inside a slice, and
        // `loadu`/`storeu` have no alignment requirement.
        unsafe {
            let low = _mm_loadu_si128(by.low.as_ptr().cast::<__m128i>());
            let high = _mm_loadu_si128(by.high.as_ptr().cast::<__m128i>());
            let nibble = _mm_set1_epi8(0x0f);
            for (d, s) in (&mut dst).zip(&mut src) {
                let s = _mm_loadu_si128(s.as_ptr().cast::<__m128i>());
                // No byte shift in SSE: shift 64-bit lanes, then mask off what crossed.
                let s_high = _mm_and_si128(_mm_srli_epi64(s, 4), nibble);
                let product =
                    _mm_xor_si128(_mm_shuffle_epi8(low, _mm_and_si128(s, nibble)), _mm_shuffle_epi8(high, s_high));
                let d = d.as_mut_ptr().cast::<__m128i>();
                _mm_storeu_si128(d, _mm_xor_si128(_mm_loadu_si128(d), product));
            }
        }
        for (d, &s) in dst.into_remainder().iter_mut().zip(src.remainder()) {
            *d ^= by.times(s);
        }
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn by_definition(dst: &[u8], src: &[u8], c: u8) -> Vec<u8> {
        dst.iter().zip(src).map(|(&d, &s)| d ^ gf256::mul(c, s)).collect()
    }

    /// Every kernel this machine has, each against the field's `mul`, for every
    /// constant and byte.
    #[test]
    fn kernels_multiply_every_byte() {
        let src: Vec<u8> = (0..=255).chain(0..=255).collect::<Vec<u8>>()[..509].to_vec();
        let dst: Vec<u8> = src.iter().rev().map(|b| b.wrapping_mul(7)).collect();
        for c in 0..=255 {
            let by = Multiplier::new(c);
            let expect = by_definition(&dst, &src, c);
            for b in 0..=255 {
                assert_eq!(by.times(b), gf256::mul(c, b));
            }
            let mut got = dst.clone();
            portable(&mut got, &src, &by);
            assert_eq!(got, expect, "portable, c = {c}");
            #[cfg(target_arch = "x86_64")]
            if ssse3::available() {
                let mut got = dst.clone();
                ssse3::mul_add(&mut got, &src, &by);
                assert_eq!(got, expect, "SSSE3, c = {c}");
            }
            let mut got = dst.clone();
            mul_add(&mut got, &src, &by);
            assert_eq!(got, expect, "mul_add, c = {c}");
        }
    }

    proptest! {
        #[test]
        fn matrix_product_is_sums_of_products(
            rows in 1usize..=4,
            cols in 1usize..=8,
            len in prop_oneof![0usize..40, 4000usize..9000],
            seed: u64,
        ) {
            let mut state = seed;
            let mut byte = move || {
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                (state >> 56) as u8
            };
            let factors: Vec<u8> = (0..rows * cols).map(|_| byte()).collect();
            let inputs: Vec<Vec<u8>> = (0..cols).map(|_| (0..len).map(|_| byte()).collect()).collect();
            let outputs: Vec<Vec<u8>> = (0..rows).map(|_| (0..len).map(|_| byte()).collect()).collect();
            let mut expect = outputs.clone();
            for (r, out) in expect.iter_mut().enumerate() {
                for (c, input) in inputs.iter().enumerate() {
                    *out = by_definition(out, input, factors[r * cols + c]);
                }
            }
            let coefficients: Vec<Multiplier> = factors.iter().map(|&f| Multiplier::new(f)).collect();
            let mut got = outputs.clone();
            let input_refs: Vec<&[u8]> = inputs.iter().map(Vec::as_slice).collect();
            let mut output_refs: Vec<&mut [u8]> = got.iter_mut().map(Vec::as_mut_slice).collect();
            mul_add_matrix(&coefficients, &input_refs, &mut output_refs);
            prop_assert_eq!(got, expect);
        }
    }
}
