//! What the native benchmarks share: accounts and percentiles.

use coffer_core::account::{self, KdfParams, RootSecret};
use coffer_core::b64;
use coffer_core::identity::UserKeys;
use coffer_core::proto::{SessionResponse, SignUpRequest};

/// `N` random bytes.
pub fn random<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).expect("randomness");
    bytes
}

/// Signs up a user with the smallest allowed KDF cost and returns its token.
pub async fn sign_up(http: &reqwest::Client, url: &str) -> String {
    let username = format!("bench-{}", b64::encode(random::<6>()));
    let salt: [u8; 16] = random();
    let kdf = KdfParams { mem_kib: KdfParams::MIN_MEM_KIB, iterations: 1, ..KdfParams::default() };
    let pwk = account::derive_password_key("bench", &salt, &kdf).expect("derive");
    let root = RootSecret::from_bytes(random());
    let req = SignUpRequest {
        username: username.clone(),
        salt: b64::encode(salt),
        kdf,
        login_public_key: b64::encode(pwk.login_key().public_key()),
        wrapped_root: b64::encode(pwk.wrap_key().wrap(&root, &username, random())),
        user_public_key: Some(b64::encode(UserKeys::derive(&root).public_key())),
    };
    let answer = http.post(format!("{url}/v1/auth/signup")).json(&req).send().await.expect("sign up");
    assert!(answer.status().is_success(), "sign-up refused: {}", answer.text().await.unwrap_or_default());
    answer.json::<SessionResponse>().await.expect("session").token
}

/// The `q` quantile (0–1) of sorted `values`.
#[allow(dead_code)] // not every benchmark reports quantiles this way
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}
