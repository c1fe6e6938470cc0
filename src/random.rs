//! Randomness for the core, which draws none itself: the browser's CSPRNG
//! (`crypto.getRandomValues`, through `getrandom`).

/// `N` random bytes.
pub fn bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    fill(&mut out);
    out
}

/// Fills `buf` with random bytes.
pub fn fill(buf: &mut [u8]) {
    getrandom::fill(buf).expect("the browser's crypto.getRandomValues is available");
}

/// A random number in [0, 1), for retry jitter.
pub fn unit() -> f64 {
    let b = bytes::<8>();
    (u64::from_le_bytes(b) >> 11) as f64 / (1u64 << 53) as f64
}
